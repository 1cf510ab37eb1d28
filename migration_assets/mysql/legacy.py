"""The INT -> BIGINT copy of the live legacy table, a day at a time.

The new table is created from the legacy table's own definition (information_schema), with
`legacy_copy.bigint_columns` widened to BIGINT (UNSIGNED kept), the spec's columns the legacy
table lacks (the merged DynamoDB attributes) added as NULLable, the legacy primary key, a
unique key on `mysql.key` (the merge matches by it) and an index on the time column.

Provenance by id: the legacy key is one INT-family column, so every legacy id is at most that
type's largest value (`LegacyKey.limit`). The new table's AUTO_INCREMENT starts above it, so
rows created anywhere else (DynamoDB-only rows of the merge; after cutover, the application)
can never collide with a legacy id still to be copied, and "the rows copied from the legacy
table" are exactly the rows with `id <= limit`: that is what the copy's parity counts.

A day is copied with set-based `INSERT ... SELECT ... ON DUPLICATE KEY UPDATE` statements over
id ranges holding about `chunk_rows` of the day's rows each (boundaries from one walk of
the time index), spread over a few connections. Each statement is
idempotent: a re-run rewrites the same values, and the merged columns, which only
`target_table` writes, are never overwritten. Rows the merge deleted on purpose
(`on_delete: delete_row`) are remembered as tombstones, so a re-copy does not resurrect them
and the parity still adds up.

The tail (rows that arrived after their day was copied) works by id: each copied day records
the largest legacy id when its copy began, and the tail copies every id above the smallest
such mark, then above its own watermark. That is `legacy_copy.change_capture: none`, for
append-only tables; with `binlog` (the default) the copy records the binlog position before
it reads, share-locks the rows it reads, and the applier (apply.py) carries every later
insert, update and delete.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..identifiers import quote_identifier as q
from ..identifiers import quote_identifiers
from ..spec import MigrationSpec
from .binlog import capture_bookkeeping_ddl, record_start
from .catalog import SchemaConflictError, indexes, primary_key, table_columns, unique_keys
from .columns import column_type, json_check
from .connection import legacy_dates, read_committed
from .parallel import Connect, run_on_connections

DEFAULT_COPY_CHUNK_ROWS = 200_000
DEFAULT_TAIL_OVERLAP_IDS = 100_000  # ~2.4 h of a million-rows-a-day table, ~0.5 s to re-copy
_INT_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32}


@dataclass(frozen=True)
class LegacyKey:
    column: str
    limit: int  # the largest id the legacy column can hold; ids above it were never legacy


def legacy_key(conn: Any, spec: MigrationSpec) -> LegacyKey:
    """The legacy table's single integer primary key, or a clear refusal."""
    assert spec.legacy_copy is not None
    source = spec.legacy_copy.source_table
    columns = table_columns(conn, source)
    if not columns:
        raise SchemaConflictError(f"legacy table {source!r} does not exist")
    key = primary_key(conn, source)
    info = columns[key[0]] if len(key) == 1 else None
    if info is not None and info.data_type == "bigint":
        raise SchemaConflictError(
            f"legacy table {source!r} already has a BIGINT {key[0]!r}: the cutover has "
            f"happened. Remove legacy_copy from the spec and set mysql.target_table: {source}"
        )
    if (
        info is None
        or info.data_type not in _INT_BITS
        or key[0] not in spec.legacy_copy.bigint_columns
    ):
        raise SchemaConflictError(
            f"legacy table {source!r}: its primary key ({', '.join(key) or 'none'}) must be one "
            "INT-family column listed in legacy_copy.bigint_columns"
        )
    bits = _INT_BITS[info.data_type] - (0 if "unsigned" in info.column_type else 1)
    return LegacyKey(key[0], 2**bits - 1)


# --------------------------------------------------------------------------- tables


def copied_days_table(spec: MigrationSpec) -> str:
    return f"{spec.mysql.target_table[:51]}_copied_days"


def tombstones_table(spec: MigrationSpec) -> str:
    return f"{spec.mysql.target_table[:53]}_tombstones"


def tail_table(spec: MigrationSpec) -> str:
    return f"{spec.mysql.target_table[:53]}_copy_tail"


def copy_bookkeeping_ddl(spec: MigrationSpec) -> list[str]:
    """Which days were copied (and the largest legacy id when each began), the legacy rows
    the merge deleted on purpose, the tail's watermark, and change capture's position."""
    assert spec.legacy_copy is not None
    capture = capture_bookkeeping_ddl(spec) if spec.legacy_copy.change_capture == "binlog" else []
    return [
        *capture,
        f"CREATE TABLE IF NOT EXISTS {q(copied_days_table(spec))} (`day` DATE NOT NULL PRIMARY"
        " KEY, `copied_at` DATETIME NOT NULL, `source_rows` BIGINT NOT NULL,"
        " `source_max_id` BIGINT NOT NULL) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {q(tombstones_table(spec))} (`legacy_id` BIGINT NOT NULL"
        " PRIMARY KEY, `event_time` DATETIME(6) NOT NULL, `deleted_at` DATETIME NOT NULL,"
        " KEY `by_time` (`event_time`)) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {q(tail_table(spec))} (`id` TINYINT NOT NULL PRIMARY KEY,"
        " `copied_through` BIGINT NOT NULL, `updated_at` DATETIME NOT NULL) ENGINE=InnoDB",
    ]


_INT_TYPE = r"(?:tinyint|smallint|mediumint|int)(?:\(\d+\))?"


def copy_target_ddl(conn: Any, spec: MigrationSpec) -> str:
    """CREATE TABLE for the new BIGINT table: the legacy table's own `SHOW CREATE TABLE`
    (defaults, ON UPDATE, charsets, ENUM literals, CHECKs and secondary indexes kept as the
    server prints them), with the widened columns' types changed to BIGINT (UNSIGNED kept),
    the key AUTO_INCREMENT, the spec's missing columns, a unique key on mysql.key and a time
    index added when absent. Foreign keys are not copied (their names are unique per
    schema; add them after the cutover if wanted)."""
    assert spec.legacy_copy is not None
    legacy = spec.legacy_copy
    key = legacy_key(conn, spec)
    columns = table_columns(conn, legacy.source_table)
    missing = [n for n in legacy.bigint_columns if n not in columns]
    if missing:
        raise SchemaConflictError(
            f"legacy_copy.bigint_columns {missing} are not columns of {legacy.source_table!r}"
        )
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {q(legacy.source_table)}")
        first, *body = cur.fetchone()[1].splitlines()
    closing = next(i for i, line in enumerate(body) if line.startswith(")"))
    definitions = [line.strip().rstrip(",") for line in body[:closing]]
    options = re.sub(r"\s*AUTO_INCREMENT=\d+", "", body[closing])
    kept: list[str] = []
    json_columns = [c for c in spec.columns if c.type.kind == "json" and c.column in columns]
    for line in definitions:
        if "FOREIGN KEY" in line:
            continue
        line = re.sub(r"^CONSTRAINT `[^`]+` CHECK", "CHECK", line)  # names are per schema
        for name in legacy.bigint_columns:
            line = re.sub(rf"^(`{name}` ){_INT_TYPE}", r"\1bigint", line)
        for c in json_columns:  # MySQL's JSON type rewrites merged values: checked text
            line, native = re.subn(rf"^`{c.column}` json\b", f"`{c.column}` {column_type(c)}", line)
            line += json_check(c) if native else ""
        if line.startswith(f"`{key.column}` ") and "AUTO_INCREMENT" not in line:
            line += " AUTO_INCREMENT"
        kept.append(line)
    columns_end = next(i for i, line in enumerate(kept) if not line.startswith("`"))
    added = [
        f"{q(c.column)} {column_type(c)}{json_check(c)}"  # binary utf8mb4 text, checked JSON
        for c in spec.columns
        if c.column not in columns
    ]
    unique = unique_keys(conn, legacy.source_table).values()
    if not any(sorted(cols) == sorted(spec.mysql.key) for cols in unique):
        kept.append(f"UNIQUE KEY `merge_key` ({quote_identifiers(spec.mysql.key)})")
    if not any(c[0] == legacy.time_column for c in indexes(conn, legacy.source_table).values()):
        kept.append(f"KEY `by_time` ({q(legacy.time_column)})")
    lines = kept[:columns_end] + added + kept[columns_end:]
    return (
        f"CREATE TABLE IF NOT EXISTS {q(spec.mysql.target_table)} (\n  "
        + ",\n  ".join(lines)
        # new rows are numbered above every id the legacy column can hold (provenance)
        + f"\n{options} AUTO_INCREMENT={key.limit + 1}"
        + "".join(f"\n{line}" for line in body[closing + 1 :])
    )


# --------------------------------------------------------------------------- copying


class _CopySql:
    """The copy statements for one spec and legacy key (validated, quoted identifiers);
    `tables` = (legacy, new) when they no longer have the spec's names (after the swap)."""

    def __init__(
        self,
        conn: Any,
        spec: MigrationSpec,
        key: LegacyKey,
        tables: tuple[str, str] | None = None,
        names: list[str] | None = None,  # the legacy columns written (default: all of them)
    ) -> None:
        assert spec.legacy_copy is not None
        source, target = tables or (spec.legacy_copy.source_table, spec.mysql.target_table)
        self.source, self.target = q(source), q(target)
        self.pk, self.when = q(key.column), q(spec.legacy_copy.time_column)
        self.names = names = names or list(table_columns(conn, source))
        merged = set(spec.mysql.update_columns)
        # a row the merge inserted first (same merge key, an id above the legacy range)
        # takes the legacy id; then the other copied columns
        refresh = ", ".join(  # the SELECT's columns, not the deprecated VALUES(col)
            f"{q(n)} = {self.source}.{q(n)}"
            for n in [key.column, *(n for n in names if n != key.column)]
            if n not in merged
        )
        # the applier's write of full row images (apply.py): the same rules as the copy, the
        # images as a derived table `s` (MySQL 8 deprecates VALUES(col); MariaDB lacks the
        # `AS new` row alias)
        image_refresh = ", ".join(
            f"{q(n)} = s.{q(n)}"
            for n in [key.column, *(n for n in names if n != key.column)]
            if n not in merged
        )
        first_image = ", ".join(f"%s AS {q(n)}" for n in names)
        self._other_image = " UNION ALL SELECT " + ", ".join(["%s"] * len(names))
        self._upsert = (
            f"INSERT INTO {self.target} ({quote_identifiers(names)}) SELECT "
            f"{quote_identifiers(names)} FROM (SELECT {first_image}{{more}}) s "
            f"ON DUPLICATE KEY UPDATE {image_refresh}"
        )
        self.day = f"{self.when} >= %s AND {self.when} < %s"
        tombstones = q(tombstones_table(spec))
        self.not_deleted = (
            f" AND NOT EXISTS (SELECT 1 FROM {tombstones} WHERE {tombstones}.`legacy_id` = "
            f"{self.source}.{self.pk})"
        )
        self.insert = (
            f"INSERT INTO {self.target} ({quote_identifiers(names)}) "
            f"SELECT {quote_identifiers(names)} FROM {self.source} WHERE {{where}} "
            f"ON DUPLICATE KEY UPDATE {refresh}"
        )
        self.deleted_in_day = (
            f"SELECT EXISTS (SELECT 1 FROM {tombstones} WHERE `event_time` >= %s"
            " AND `event_time` < %s)"
        )

    def upsert(self, images: int) -> str:
        """INSERT of `images` full row images (their values in column order, one after the
        other, as parameters)."""
        return self._upsert.format(more=self._other_image * (images - 1))

    def copy(self, where: str, *, skip_deleted: bool, share_lock: bool = False) -> str:
        """INSERT ... SELECT of the legacy rows matching `where` (an SQL condition).

        `share_lock` (with change capture): the rows read stay share-locked until the chunk
        commits, so no newer version of them can commit, and so reach the applier, before
        the chunk's older one is written: the copy never overwrites a change the applier
        already applied (gh-ost's row copy does the same)."""
        sql = self.insert.format(where=where)
        suffix = (self.not_deleted if skip_deleted else "") + (
            " LOCK IN SHARE MODE" if share_lock else ""
        )
        return sql.replace(" ON DUPLICATE KEY", suffix + " ON DUPLICATE KEY", 1)


@dataclass
class CopyResult:
    day: dt.date
    rows: int = 0
    chunks: int = 0
    connections: int = 1
    seconds: float = 0.0
    source_max_id: int = 0
    orphans_deleted: int = 0  # copied rows whose legacy row has since been deleted


def _delete_orphans(cur: Any, sql: _CopySql, key: LegacyKey, day: dt.date) -> int:
    """A re-copy also carries legacy deletes: copied rows of the day (legacy-range ids)
    whose legacy row is gone are deleted. Skipped (one index probe) when the new table has
    no copied row of the day yet."""
    new_day = f"t.{sql.when} >= %s AND t.{sql.when} < %s AND t.{sql.pk} <= %s"
    cur.execute(
        f"SELECT EXISTS (SELECT 1 FROM {sql.target} t WHERE {new_day})",
        (*day_window(day), key.limit),
    )
    if not cur.fetchone()[0]:
        return 0
    cur.execute(
        f"DELETE t FROM {sql.target} t LEFT JOIN {sql.source} s ON s.{sql.pk} = t.{sql.pk} "
        f"WHERE {new_day} AND s.{sql.pk} IS NULL",
        (*day_window(day), key.limit),
    )
    return cur.rowcount


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1)


def _chunk_bounds(cur: Any, sql: _CopySql, day: dt.date, chunk_rows: int) -> list[int]:
    """Ids that split the day into chunks of about `chunk_rows` rows.

    The time index is walked `chunk_rows` entries at a time (index-only; one pass over the
    day), and the id found at each step becomes a boundary. Chunks are then id ranges (read
    in primary-key order, like a sequential scan) within the day: every row of the day falls
    in exactly one of them whatever its id; ids that follow time make them even, and an
    outlying id (a late row) only lands in the first or the last chunk."""
    start, end = day_window(day)
    moment, bounds = start, []
    while True:
        cur.execute(
            f"SELECT {sql.when}, {sql.pk} FROM {sql.source} WHERE {sql.day} "
            f"ORDER BY {sql.when}, {sql.pk} LIMIT 1 OFFSET {int(chunk_rows)}",
            (moment, end),
        )
        row = cur.fetchone()
        if row is None:
            return sorted(set(bounds))
        if row[0] == moment:  # more than a chunk of rows in one instant: go past it
            cur.execute(
                f"SELECT MIN({sql.when}) FROM {sql.source} WHERE {sql.when} > %s AND "
                f"{sql.when} < %s",
                (moment, end),
            )
            following = cur.fetchone()[0]
            if following is None:
                return sorted(set(bounds))
            moment = following
            continue
        moment = row[0]
        bounds.append(int(row[1]))


def copy_day(
    connect: Connect,
    spec: MigrationSpec,
    day: dt.date,
    *,
    chunk_rows: int = DEFAULT_COPY_CHUNK_ROWS,
    connections: int = 1,
    after_chunk: Callable[[int], None] | None = None,
) -> CopyResult:
    """Copy the legacy rows whose time column falls in `day` into the new table
    (`after_chunk(chunks copied so far)` after each chunk's commit).

    Rows of the day inserted while the copy runs are taken when they arrive before their
    chunk is copied; later ones are the tail's."""
    if chunk_rows < 1 or connections < 1:
        raise ValueError("chunk_rows and connections must be at least 1")
    result = CopyResult(day, connections=connections)
    started = time.perf_counter()
    assert spec.legacy_copy is not None
    capture = spec.legacy_copy.change_capture == "binlog"
    with connect() as conn, conn.cursor() as cur:
        key = legacy_key(conn, spec)
        if capture:  # before anything is read: every later change lies after the position
            record_start(conn, spec)
        sql = _CopySql(conn, spec, key)
        cur.execute(f"SELECT COALESCE(MAX({sql.pk}), 0) FROM {sql.source}")
        result.source_max_id = int(cur.fetchone()[0])
        cur.execute(f"SELECT COUNT(*) FROM {sql.source} WHERE {sql.day}", day_window(day))
        result.rows = int(cur.fetchone()[0])
        bounds = _chunk_bounds(cur, sql, day, chunk_rows)
        cur.execute(sql.deleted_in_day, day_window(day))
        skip_deleted = bool(cur.fetchone()[0])
        result.orphans_deleted = _delete_orphans(cur, sql, key, day)
        conn.commit()
    ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
    window = day_window(day)

    def chunk(lower: int | None, upper: int | None) -> Callable[[Any], None]:
        where = [sql.day]
        where += [] if lower is None else [f"{sql.pk} > %s"]
        where += [] if upper is None else [f"{sql.pk} <= %s"]
        params = (*window, *(v for v in (lower, upper) if v is not None))

        def copy(conn: Any) -> None:
            # zero dates of a 5.6 table under 5.7/8.0's default sql_mode
            with conn.cursor() as cur, legacy_dates(conn):
                cur.execute(
                    sql.copy(" AND ".join(where), skip_deleted=skip_deleted, share_lock=capture),
                    params,
                )
            conn.commit()

        return copy

    with connect() as conn:
        run_on_connections(
            conn,
            [chunk(lower, upper) for lower, upper in ranges],
            connect=connect,
            connections=connections,
            setup=read_committed,
            after_each=after_chunk,
        )
        result.chunks = len(ranges)
        with conn.cursor() as cur:
            cur.execute(
                f"REPLACE INTO {q(copied_days_table(spec))} VALUES (%s, UTC_TIMESTAMP(), %s, %s)",
                (day, result.rows, result.source_max_id),
            )
        conn.commit()
    result.seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- the live tail


@dataclass
class TailResult:
    rows: int = 0  # legacy rows copied, the overlap below the mark included
    new_rows: int = 0  # of those, rows above the mark: arrived since the last catch-up
    chunks: int = 0
    copied_through: int | None = None  # every legacy id up to here is in the new table
    source_max_id: int = 0
    rows_behind: int = 0  # legacy rows above the watermark when the catch-up finished
    lag_seconds: float | None = None  # newest legacy event time minus newest copied one
    seconds: float = 0.0


def _watermark(cur: Any, spec: MigrationSpec) -> int | None:
    cur.execute(f"SELECT `copied_through` FROM {q(tail_table(spec))} WHERE `id` = 1")
    row = cur.fetchone()
    if row is not None:
        return int(row[0])
    cur.execute(f"SELECT MIN(`source_max_id`) FROM {q(copied_days_table(spec))}")
    row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def catch_up(
    conn: Any,
    spec: MigrationSpec,
    *,
    chunk_rows: int = DEFAULT_COPY_CHUNK_ROWS,
    overlap_ids: int = DEFAULT_TAIL_OVERLAP_IDS,
    measure_lag: bool = True,
) -> TailResult:
    """Copy every legacy row above the watermark (rows that arrived after their day was
    copied), chunk by chunk, each chunk committed with the watermark it reaches.

    The copy starts `overlap_ids` below the mark: an id handed out before the mark but
    committed after it (a long application transaction) is copied by the next catch-up
    instead of being skipped. Re-copying the overlap is idempotent."""
    result = TailResult()
    started = time.perf_counter()
    key = legacy_key(conn, spec)
    sql = _CopySql(conn, spec, key)
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        mark = _watermark(cur, spec)
        if mark is None:  # no day copied yet: the daily copies come first
            return result
        cur.execute(f"SELECT COUNT(*) FROM {sql.source} WHERE {sql.pk} > %s", (mark,))
        result.new_rows = int(cur.fetchone()[0])
        last = max(0, mark - overlap_ids)
        statement = sql.copy(f"{sql.pk} > %s AND {sql.pk} <= %s", skip_deleted=True)
        for lower, upper, rows in _id_chunks(cur, sql, last, chunk_rows):
            with legacy_dates(conn):
                cur.execute(statement, (lower, upper))
            cur.execute(
                f"REPLACE INTO {q(tail_table(spec))} VALUES (1, %s, UTC_TIMESTAMP())", (upper,)
            )
            conn.commit()
            result.rows += rows
            result.chunks += 1
            last = upper
        result.copied_through = max(last, mark)
        if measure_lag:
            _measure_lag(cur, sql, result)
    result.seconds = time.perf_counter() - started
    return result


def copy_ids_above(
    conn: Any, spec: MigrationSpec, key: LegacyKey, last: int, tables: tuple[str, str]
) -> int:
    """Copy every row with an id above `last` from tables[0] into tables[1] (one statement;
    for the few rows written between the last catch-up and the swap)."""
    sql = _CopySql(conn, spec, key, tables)
    with conn.cursor() as cur:
        with legacy_dates(conn):
            cur.execute(sql.copy(f"{sql.pk} > %s", skip_deleted=True), (last,))
        cur.execute(f"SELECT COUNT(*) FROM {sql.source} WHERE {sql.pk} > %s", (last,))
        rows = int(cur.fetchone()[0])
    conn.commit()
    return rows


def _id_chunks(cur: Any, sql: _CopySql, last: int, chunk_rows: int) -> Iterator[tuple]:
    while True:
        cur.execute(
            f"SELECT MAX(id), COUNT(*) FROM (SELECT {sql.pk} AS id FROM {sql.source} "
            f"WHERE {sql.pk} > %s ORDER BY {sql.pk} LIMIT {int(chunk_rows)}) AS chunk",
            (last,),
        )
        upper, rows = cur.fetchone()
        if not rows:
            return
        yield last, int(upper), int(rows)
        last = int(upper)


def _measure_lag(cur: Any, sql: _CopySql, result: TailResult) -> None:
    """Primary-key lookups only: rows above the watermark, and how much event time lies
    between the newest copied legacy row and the newest legacy row (by id)."""
    cur.execute(f"SELECT COALESCE(MAX({sql.pk}), 0) FROM {sql.source}")
    result.source_max_id = int(cur.fetchone()[0])
    cur.execute(f"SELECT COUNT(*) FROM {sql.source} WHERE {sql.pk} > %s", (result.copied_through,))
    result.rows_behind = int(cur.fetchone()[0])
    cur.execute(f"SELECT {sql.when} FROM {sql.source} WHERE {sql.pk} = %s", (result.source_max_id,))
    newest = cur.fetchone()
    cur.execute(
        f"SELECT {sql.when} FROM {sql.target} WHERE {sql.pk} = %s", (result.copied_through,)
    )
    copied = cur.fetchone()
    if newest and copied and newest[0] is not None and copied[0] is not None:
        result.lag_seconds = max(0.0, (newest[0] - copied[0]).total_seconds())
