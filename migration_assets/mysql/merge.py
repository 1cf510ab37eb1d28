"""Merge one staged day into the live target by the composite key, in bounded chunks.

Each chunk is a `_seq` range of the day (at most `chunk_rows` staged rows) and its own
short transaction, so no statement holds locks on the live table for long; a day new to the
target runs its chunks on several connections at once (`mysql/parallel.py`). Every statement
is idempotent (an upsert of the same values, an update to the same values, a delete of an
absent row), so a merge interrupted at any chunk is finished by running it again.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..identifiers import quote_identifier as q
from ..identifiers import quote_identifiers
from ..spec import MigrationSpec
from .catalog import indexes
from .connection import read_committed
from .ddl import CHANGE, DAY, SEQ, key_join, merges_table, unmatched_table
from .legacy import LegacyKey, legacy_key, tombstones_table
from .parallel import Connect, run_on_connections
from .partitioning import ensure_day_partition, partition_of, partitioned_by_day

DEFAULT_CHUNK_ROWS = 100_000  # ~1 s per chunk here; 0.84x a whole-day statement (bench)


@dataclass
class MergeResult:
    day: dt.date
    staged: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0  # delete_row: rows removed; null_columns: rows whose columns were nulled
    deletes_ignored: int = 0
    unmatched: int = 0
    chunks: int = 0
    connections: int = 1  # the chunks' connections at once (several only for a new day)
    partition: str | None = None  # the target partition of the day (None: not partitioned)
    partitions_added: int = 0  # day partitions split from p_future before this merge
    seconds: float = 0.0
    mode: str = ""
    on_delete: str = ""
    per_chunk: list[float] = field(default_factory=list)

    def add(self, part: MergeResult) -> None:
        """Count a chunk's outcome (`part`) in the day's."""
        self.inserted += part.inserted
        self.updated += part.updated
        self.deleted += part.deleted
        self.deletes_ignored += part.deletes_ignored
        self.unmatched += part.unmatched
        self.per_chunk.extend(part.per_chunk)


class _Sql:
    """The statements for one spec, built once from validated, quoted identifiers."""

    def __init__(self, spec: MigrationSpec, legacy: LegacyKey | None) -> None:
        self.spec = spec
        temp, target = q(spec.mysql.temp_table), q(spec.mysql.target_table)
        names = [c.column for c in spec.columns]
        join = key_join(spec)
        chunk = f"s.{q(DAY)} = %s AND s.{q(SEQ)} BETWEEN %s AND %s"
        put, delete = f"s.{q(CHANGE)} = 'put'", f"s.{q(CHANGE)} = 'delete'"
        selected = ", ".join(f"s.{q(n)}" for n in names)
        updates = spec.mysql.update_columns
        event = q(spec.event_time_column.column)
        self.day_has_rows = (
            f"SELECT EXISTS(SELECT 1 FROM {target} WHERE {event} >= %s AND {event} < %s)"
        )
        self.bounds = f"SELECT COUNT(*), COALESCE(MAX({q(SEQ)}), 0) FROM {temp} WHERE {q(DAY)} = %s"
        self.count_changes = (
            f"SELECT COALESCE(SUM({put}), 0), COALESCE(SUM({delete}), 0) FROM {temp} s "
            f"WHERE {chunk}"
        )
        matched = f"SELECT COUNT(*) FROM {temp} s JOIN {target} t ON {join} WHERE {chunk} AND "
        self.matched = matched + put
        # the SELECT's own columns (`s.col`), not VALUES(col): deprecated since MySQL 8.0.20,
        # and the row alias that replaces it (8.0.19) is not MariaDB syntax
        on_duplicate = ", ".join(f"{q(u)} = s.{q(u)}" for u in updates) or (
            # no update columns: a no-op, qualified (the SELECT's table has the column too)
            f"{target}.{q(spec.mysql.key[0])} = {target}.{q(spec.mysql.key[0])}"
        )
        self.upsert = (
            f"INSERT INTO {target} ({quote_identifiers(names)}) SELECT {selected} FROM {temp} s "
            f"WHERE {chunk} AND {put} ON DUPLICATE KEY UPDATE {on_duplicate}"
        )
        assignments = ", ".join(f"t.{q(u)} = s.{q(u)}" for u in updates)
        self.update = (
            f"UPDATE {target} t JOIN {temp} s ON {join} SET {assignments} WHERE {chunk} AND {put}"
            if updates
            else None
        )
        unmatched = q(unmatched_table(spec))
        self.record_unmatched = (
            f"INSERT INTO {unmatched} ({q(DAY)}, {q(SEQ)}, {quote_identifiers(names)})"
            f" SELECT s.{q(DAY)}, s.{q(SEQ)}, {selected}"
            f" FROM {temp} s LEFT JOIN {target} t ON {join}"
            f" WHERE {chunk} AND {put} AND t.{q(spec.mysql.key[0])} IS NULL"
        )
        self.forget_unmatched = f"DELETE FROM {q(unmatched_table(spec))} WHERE {q(DAY)} = %s"
        # a delete only touches a target row of its own day: an item moved to another day
        # keeps the row its put wrote there, whichever day merges first
        delete += f" AND t.{event} >= s.{q(DAY)} AND t.{event} < s.{q(DAY)} + INTERVAL 1 DAY"
        self.delete_rows = (
            f"DELETE t FROM {target} t JOIN {temp} s ON {join} WHERE {chunk} AND {delete}"
        )
        self.record_tombstones = None  # legacy rows deleted on purpose: never copied again
        if legacy is not None and spec.legacy_copy is not None:
            self.record_tombstones = (
                f"INSERT IGNORE INTO {q(tombstones_table(spec))} SELECT t.{q(legacy.column)}, "
                f"t.{q(spec.legacy_copy.time_column)}, UTC_TIMESTAMP() FROM {target} t "
                f"JOIN {temp} s ON {join} WHERE {chunk} AND {delete} "
                f"AND t.{q(legacy.column)} <= {int(legacy.limit)}"
            )
        nulls = ", ".join(f"t.{q(u)} = NULL" for u in updates)
        self.null_columns = (
            f"UPDATE {target} t JOIN {temp} s ON {join} SET {nulls} WHERE {chunk} AND {delete}"
            if updates
            else None
        )


def _scalar(cur: Any, sql: str, params: tuple) -> int:
    cur.execute(sql, params)
    return int(cur.fetchone()[0])


def merge_day(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    after_chunk: Callable[[int], None] | None = None,
    connect: Connect | None = None,
    connections: int = 1,
) -> MergeResult:
    """Merge the staged rows of `day` into the target (mode and on_delete from the spec).

    A day new to the target (`_fresh_day`) runs its chunks on up to `connections`
    connections at once (`conn` and more from `connect`): only inserts, no locks between
    chunks. Otherwise one connection: upserts that meet existing rows take next-key locks,
    and chunks side by side deadlock at their boundary (seen in the fault-injection suite:
    four re-merges in a row were deadlock victims)."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    started = time.perf_counter()
    added = ensure_day_partition(conn, spec, day)  # DDL when needed: before the day's statements
    legacy = legacy_key(conn, spec) if spec.legacy_copy else None
    if legacy is not None:
        keep_new_ids_above_legacy(conn, spec, legacy)
    sql = _Sql(spec, legacy)
    result = MergeResult(day, mode=spec.mysql.mode, on_delete=spec.mysql.on_delete)
    result.partition, result.partitions_added = partition_of(conn, spec, day), len(added)
    with conn.cursor() as cur:
        read_committed(conn)
        result.staged, last = (int(v) for v in _fetch(cur, sql.bounds, (day,)))
        fresh = _fresh_day(conn, cur, sql, spec, day)
        if spec.mysql.mode == "update_only":
            cur.execute(sql.forget_unmatched, (day,))
            conn.commit()

    def chunk(low: int) -> Callable[[Any], MergeResult]:
        def merge(on: Any) -> MergeResult:
            chunk_started = time.perf_counter()
            part = MergeResult(day)
            with on.cursor() as cur:
                _merge_chunk(cur, sql, spec, (day, low, low + chunk_rows - 1), part, fresh)
            on.commit()
            part.per_chunk.append(time.perf_counter() - chunk_started)
            return part

        return merge

    tasks = [chunk(low) for low in range(1, last + 1, chunk_rows)]
    result.connections = max(1, min(connections if fresh else 1, len(tasks)))  # see above
    parts = run_on_connections(
        conn,
        tasks,
        connect=connect,
        connections=result.connections,
        setup=read_committed,
        after_each=after_chunk,
    )
    result.chunks = len(parts)
    for part in parts:
        result.add(part)
    with conn.cursor() as cur:
        cur.execute(
            f"REPLACE INTO {q(merges_table(spec))} ({q(DAY)}, `merged_at`, `staged_rows`)"
            " VALUES (%s, UTC_TIMESTAMP(), %s)",
            (day, result.staged),
        )
    conn.commit()
    result.seconds = time.perf_counter() - started
    return result


def keep_new_ids_above_legacy(conn: Any, spec: MigrationSpec, legacy: LegacyKey) -> bool:
    """Raise the new table's AUTO_INCREMENT above the legacy id range when it has fallen into
    it: MySQL 5.7 re-initialises an InnoDB counter to MAX(id)+1 at a restart or failover (5.7
    manual, "AUTO_INCREMENT Handling in InnoDB"; 8.0 and MariaDB persist it), and until an id
    above the range exists, the merge's inserts would then take legacy-range ids. Returns
    whether it was raised (an in-place change of the counter alone, under a bounded lock
    wait)."""
    table = q(spec.mysql.target_table)
    with conn.cursor() as cur:
        name = spec.mysql.target_table  # LIKE: `_` and `%` escaped, then the exact name kept
        cur.execute("SHOW TABLE STATUS LIKE %s", (re.sub(r"([\\_%])", r"\\\1", name),))
        columns = [d[0].lower() for d in cur.description]
        found = [r for r in cur.fetchall() if r[columns.index("name")] == name]
        counter = found[0][columns.index("auto_increment")] if found else None
        if counter is None or int(counter) > legacy.limit:
            return False
        cur.execute("SELECT @@SESSION.lock_wait_timeout")
        (saved,) = cur.fetchone()
        cur.execute("SET SESSION lock_wait_timeout = 60")
        try:
            cur.execute(f"ALTER TABLE {table} AUTO_INCREMENT = {int(legacy.limit) + 1}")
        finally:
            cur.execute("SET SESSION lock_wait_timeout = %s", (int(saved),))
    return True


def _fresh_day(conn: Any, cur: Any, sql: _Sql, spec: MigrationSpec, day: dt.date) -> bool:
    """Whether no staged put of the day can match a target row: the key holds the event
    time (a matching row would be of the same day) and the target has no row of the day.
    Then chunks do not count their matches first (a join per chunk: ~30% of a new day's
    merge). Asked only where the day's partition or an index on the event time answers it
    at once."""
    event = spec.event_time_column.column
    if event not in spec.mysql.key:
        return False
    if not partitioned_by_day(conn, spec) and not _indexed_by(conn, spec.mysql.target_table, event):
        return False
    return not _scalar(cur, sql.day_has_rows, (day, day + dt.timedelta(days=1)))


_INDEXED: dict[tuple[Any, str, str], bool] = {}


def _indexed_by(conn: Any, table: str, column: str) -> bool:
    """Whether an index of `table` starts with `column`; asked once per process and table
    (a run merges up to 30 days, and information_schema queries from concurrent runs are
    what MariaDB 10.11 was seen crashing in, see `prepare_tables`)."""
    key = (getattr(conn, "db", None), table, column)
    if key not in _INDEXED:
        _INDEXED[key] = any(cols[0] == column for cols in indexes(conn, table).values())
    return _INDEXED[key]


def forget_indexes() -> None:
    """Drop the index answers `_indexed_by` keeps (a target dropped and re-created, as the
    benchmarks do, may differ)."""
    _INDEXED.clear()


def _fetch(cur: Any, sql: str, params: tuple) -> tuple:
    cur.execute(sql, params)
    return cur.fetchone()


def _merge_chunk(
    cur: Any, sql: _Sql, spec: MigrationSpec, params: tuple, result: MergeResult, fresh: bool
) -> None:
    """One chunk. An UPDATE reports the rows it matched (FOUND_ROWS is on for every
    connection); an upsert's affected rows cannot tell an insert from an unchanged match,
    so matches are counted first, unless the day is `fresh` (none can match)."""
    puts, deletes = (int(v) for v in _fetch(cur, sql.count_changes, params))
    if puts and spec.mysql.mode == "upsert":
        matched = 0 if fresh else _scalar(cur, sql.matched, params)
        cur.execute(sql.upsert, params)
        result.inserted += puts - matched
        result.updated += matched
    elif puts:
        if sql.update:
            cur.execute(sql.update, params)
            result.updated += cur.rowcount
        else:
            result.updated += _scalar(cur, sql.matched, params)
        cur.execute(sql.record_unmatched, params)
        result.unmatched += cur.rowcount
    if not deletes:
        return
    if spec.mysql.on_delete == "delete_row":
        if sql.record_tombstones:
            cur.execute(sql.record_tombstones, params)
        cur.execute(sql.delete_rows, params)
        result.deleted += cur.rowcount
    elif spec.mysql.on_delete == "null_columns" and sql.null_columns:
        cur.execute(sql.null_columns, params)
        result.deleted += cur.rowcount
    else:
        result.deletes_ignored += deletes
