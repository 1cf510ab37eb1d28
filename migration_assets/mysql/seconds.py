"""Per-second row counts and row-hash sums of MySQL tables, computed where the data is.

One `GROUP BY` on the event time, bucketed by `TIMESTAMPDIFF(SECOND, epoch, t)`
(independent of the session time zone, floored like the Parquet days' seconds, which
`parquet/counts.py` counts with Arrow).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..days import NULL_TEXT_HASH, SecondCounts, day_seconds
from ..days import sum_by_second as _sum_by
from ..dynamodb.changes import CHANGE
from ..identifiers import quote_identifier as q
from ..spec import MigrationSpec
from .catalog import table_columns
from .ddl import DAY, SEQ, key_join, unmatched_table
from .legacy import LegacyKey, day_window, tombstones_table
from .parallel import Connect, run_on_connections
from .partitioning import partitioned_by_day

_MAX_CONCAT = (1 << 32) - 1  # MySQL's largest group_concat_max_len: ~40 bytes per group here
_SECOND = "TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {column})"


@dataclass(frozen=True)
class _Bucket:
    """How to group rows by second: `SELECT {select} AS s ... GROUP BY {group}`."""

    select: str
    group: str


def _bucket(column: str, whole_seconds: bool) -> _Bucket:
    """Group on the bare column when it holds whole seconds (the time index is walked in
    order and the epoch second computed once per group: 0.31 s instead of 0.97 s for a
    million rows here), else on the floored second."""
    second = _SECOND.format(column=column)
    return _Bucket(second, column if whole_seconds else second)


def _whole_seconds(conn: Any, table: str, column: str) -> bool:
    """The table's own type decides (the new table copies the legacy column's type)."""
    info = table_columns(conn, table).get(column)
    return info is not None and info.column_type in ("datetime", "timestamp")


def _event_bucket(spec: MigrationSpec, alias: str = "") -> _Bucket:
    column = spec.event_time_column
    return _bucket(f"{alias}{q(column.column)}", column.type.fsp == 0)


def _grouped_rows(conn: Any, sql: str, params: tuple, width: int) -> np.ndarray:
    """The rows of a grouped query whose columns are aliased c0..c{width-1}, as an int64
    array (NULL as 0). They come back as one concatenated string: pymysql parses a day's
    ~86,000 rows in ~1.5 s of Python, numpy parses the string in a fraction of that."""
    columns = ", ".join(f"IFNULL(x.c{i}, 0)" for i in range(width))
    with conn.cursor() as cur:
        # the result is cut at group_concat_max_len and also at max_allowed_packet (4 MiB
        # by default on MySQL 5.7, a day of 7-column rows can be more): a result that
        # reaches the bound may be cut, so the rows are read one by one instead
        cur.execute("SELECT LEAST(@@max_allowed_packet - 1024, %s)", (_MAX_CONCAT,))
        bound = int(cur.fetchone()[0])
        cur.execute("SET SESSION group_concat_max_len = %s", (bound,))
        cur.execute(
            f"SELECT GROUP_CONCAT(CONCAT_WS(',', {columns}) SEPARATOR ',') FROM ({sql}) x", params
        )
        (text,) = cur.fetchone()
        if text and len(text) >= bound - 1:
            cur.execute(f"SELECT {columns} FROM ({sql}) x", params)
            rows = cur.fetchall()
            return np.array(rows, dtype=np.int64).reshape(-1, width)
    if not text:
        return np.zeros((0, width), dtype=np.int64)
    if isinstance(text, bytes | bytearray):
        text = text.decode()
    return np.array(text.split(","), dtype=np.int64).reshape(-1, width)


def _grouped(conn: Any, sql: str, params: tuple) -> SecondCounts:
    """{c0: c1} of a query grouped by second (`SELECT ... AS c0, COUNT(*) AS c1 ...`)."""
    rows = _grouped_rows(conn, sql, params, 2)
    return dict(zip(rows[:, 0].tolist(), rows[:, 1].tolist(), strict=True))


def _seq_ranges(conn: Any, spec: MigrationSpec, day: dt.date, parts: int) -> list[tuple]:
    """The day's staged `_seq` values cut into `parts` ranges of equal length."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT COALESCE(MAX({q(SEQ)}), 0) FROM {q(spec.mysql.temp_table)} "
            f"WHERE {q(DAY)} = %s",
            (day,),
        )
        last = int(cur.fetchone()[0])
    step = max(1, -(-last // parts))
    return [(low, low + step - 1) for low in range(1, last + 1, step)] or [(1, 0)]


def _grouped_in_ranges(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    sql: str,
    width: int,
    *,
    connect: Connect | None,
    connections: int,
    alongside: Callable[[Any], Any] | None = None,
) -> tuple[np.ndarray, Any]:
    """The rows of `sql` (grouped, over the day's staged rows, `_seq BETWEEN %s AND %s`) for
    the day's `_seq` cut into ranges that run on up to `connections` connections at once
    (`conn` and more from `connect`), stacked: a group cut by two ranges comes once per
    range, so callers sum. `alongside(connection)` runs as one more task; its result second."""
    tasks: list[Callable[[Any], Any]] = [
        lambda on, r=r: _grouped_rows(on, sql, (day, *r), width)
        for r in _seq_ranges(conn, spec, day, connections)
    ]
    parts = len(tasks)
    if alongside is not None:
        tasks.append(alongside)
    results = run_on_connections(conn, tasks, connect=connect, connections=connections)
    return np.vstack(results[:parts]), results[parts] if alongside is not None else None


def _staged_seconds_sql(spec: MigrationSpec, *aggregates: str) -> str:
    """`c0` the second, `c1` the rows and `c2...` the `aggregates` (over alias `s`) of the
    day's staged puts in a `_seq` range, per second (parameters: day, low, high)."""
    second = _event_bucket(spec, "s.")
    extra = "".join(f", {a} AS c{n}" for n, a in enumerate(aggregates, start=2))
    return (
        f"SELECT {second.select} AS c0, COUNT(*) AS c1{extra} FROM {q(spec.mysql.temp_table)} s "
        f"WHERE s.{q(DAY)} = %s AND s.{q(SEQ)} BETWEEN %s AND %s AND s.{q(CHANGE)} = 'put' "
        f"GROUP BY {second.group}"
    )


def _target_seconds_sql(spec: MigrationSpec, *aggregates: str) -> str:
    """The same of the target's rows in a time window (alias `t`; parameters: start, end):
    the day's partition, or a range of the event-time index."""
    second = _event_bucket(spec, "t.")
    event = q(spec.event_time_column.column)
    extra = "".join(f", {a} AS c{n}" for n, a in enumerate(aggregates, start=2))
    return (
        f"SELECT {second.select} AS c0, COUNT(*) AS c1{extra} FROM {q(spec.mysql.target_table)} t "
        f"WHERE t.{event} >= %s AND t.{event} < %s GROUP BY {second.group}"
    )


def staged_second_counts(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    *,
    connect: Connect | None = None,
    connections: int = 1,
) -> SecondCounts:
    """Rows per second of the day's puts in the staging table, counted in `_seq` ranges on
    up to `connections` connections at once (`conn` and more from `connect`)."""
    return staged_seconds(conn, spec, day, text=False, connect=connect, connections=connections)[0]


def _json_hash_sql(alias: str, columns: tuple[str, ...]) -> str:
    """Per row: each json column's CRC32 of its exact text (NULL: 2^32) times its position,
    so two columns' values swapped do not hash alike."""
    return " + ".join(
        f"COALESCE(CRC32({alias}.{q(c)}), {NULL_TEXT_HASH}) * {n}"
        for n, c in enumerate(columns, start=1)
    )


def staged_seconds(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    *,
    text: bool = True,
    connect: Connect | None = None,
    connections: int = 1,
) -> tuple[SecondCounts, SecondCounts]:
    """The day's staged puts per second and, with `text` and json columns, the sums of their
    json text's `_json_hash_sql` (else empty), in one grouped scan: the sums equal the
    Parquet's only if every json value is staged byte for byte (a server that normalised
    JSON would change the text)."""
    columns = spec.json_columns if text else ()
    sql = _staged_seconds_sql(spec, *([f"SUM({_json_hash_sql('s', columns)})"] if columns else []))
    width = 3 if columns else 2
    rows, _ = _grouped_in_ranges(
        conn, spec, day, sql, width, connect=connect, connections=connections
    )
    counts = _sum_by(rows[:, 0], rows[:, 1])  # a second cut by two ranges is summed
    return counts, (_sum_by(rows[:, 0], rows[:, 2]) if columns else {})


def staged_json_checksums(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    *,
    connect: Connect | None = None,
    connections: int = 1,
) -> SecondCounts:
    """`staged_seconds`' json text sums alone."""
    return staged_seconds(conn, spec, day, connect=connect, connections=connections)[1]


@dataclass(frozen=True)
class MergedDay:
    """What a day's staged puts and the target hold, per second: both target checks are
    judged on it (`merged_day`)."""

    staged: SecondCounts  # staged puts, per staged second
    merged: SecondCounts  # join: of those, held by the target (a row, whatever its values:
    #                       they are the checksums'); scans: the target's rows of the day
    found_in_day: SecondCounts  # join: per target second within the day, rows a put found
    staged_checksums: SecondCounts  # sum of the staged puts' row hashes (what must be there)
    target_checksums: SecondCounts  # the same of the target rows at those keys (scans: of the day)
    target_in_day: SecondCounts | None = None  # join: all target rows of the day, `exclusive`
    method: str = "join"  # "join" or "scans" (`merged_day`)


def exclusive(spec: MigrationSpec) -> bool:
    """Whether every target row of a day must come from that day's staged puts: upsert +
    delete_row and no `legacy_copy` (other modes keep other rows on purpose; with
    `legacy_copy` the target also holds the legacy rows, which `bigint_table_copy`'s own
    parity covers)."""
    return (
        spec.legacy_copy is None
        and spec.mysql.mode == "upsert"
        and spec.mysql.on_delete == "delete_row"
    )


def scans_suffice(spec: MigrationSpec) -> bool:
    """Whether the target's rows of a day can be compared with the staged puts without
    looking each one up: every target row of the day must be a staged put (`exclusive`), and
    the key holds the event time, so a put and its target row share their second."""
    return exclusive(spec) and spec.event_time_column.column in spec.mysql.key


def merged_day(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    *,
    connect: Connect | None = None,
    connections: int = 1,
    method: Literal["auto", "join"] = "auto",
) -> MergedDay:
    """The day's staged puts against the target, per second, on up to `connections`
    connections at once (`conn` and more from `connect`).

    Where `scans_suffice` and the target is partitioned by day, two grouped scans
    (`_scanned_day`): the staged puts and the target's day partition, each counted and
    checksummed per second; equal counts and equal checksum sums in every second mean the
    same rows (a 1,000,000-row day: 0.80-0.87 s and 1.39-1.51 s of MySQL CPU against
    1.98-2.09 s and 3.30-3.56 s, `bench/bench_target_checks.py`; unpartitioned, the day's
    rows are found through the event-time index, a row lookup each, and the join is
    faster). Otherwise, or with `method="join"`, or when a staged put lies outside its day (a
    safeguard: parquet_partitions quarantines such records, but a staging table loaded by
    other means may hold them): each staged put looked up in the target by its key
    (`_joined_day`)."""
    if method == "auto" and scans_suffice(spec) and partitioned_by_day(conn, spec):
        scanned = _scanned_day(conn, spec, day, connect=connect, connections=connections)
        seconds = day_seconds(day)
        if all(second in seconds for second in scanned.staged):
            return scanned
    return _joined_day(conn, spec, day, connect=connect, connections=connections)


def _scanned_day(
    conn: Any, spec: MigrationSpec, day: dt.date, *, connect: Connect | None, connections: int
) -> MergedDay:
    """The target's day as one task (partitioned by day it has no event-time index: a
    window of the day would scan the whole partition again) and the staged puts in `_seq`
    ranges, on the connections at once: the target takes one, the ranges the others."""
    columns = checksum_columns(spec)
    staged_sql = _staged_seconds_sql(spec, hash_sum(row_hash("s", columns)))
    target_sql = _target_seconds_sql(spec, hash_sum(row_hash("t", columns)))
    window = (day, day + dt.timedelta(days=1))
    tasks: list[Callable[[Any], np.ndarray]] = [
        lambda on: _grouped_rows(on, target_sql, window, 3),
        *(
            lambda on, r=r: _grouped_rows(on, staged_sql, (day, *r), 3)
            for r in _seq_ranges(conn, spec, day, max(1, connections - 1))
        ),
    ]
    target_rows, *staged_parts = run_on_connections(
        conn, tasks, connect=connect, connections=connections
    )
    staged_rows = np.vstack(staged_parts)
    target_counts = _sum_by(target_rows[:, 0], target_rows[:, 1])
    return MergedDay(
        staged=_sum_by(staged_rows[:, 0], staged_rows[:, 1]),
        merged=target_counts,
        found_in_day=target_counts,
        staged_checksums=_sum_by(staged_rows[:, 0], staged_rows[:, 2]),
        target_checksums=_sum_by(target_rows[:, 0], target_rows[:, 2]),
        method="scans",
    )


def _joined_day(
    conn: Any, spec: MigrationSpec, day: dt.date, *, connect: Connect | None, connections: int
) -> MergedDay:
    """The day's staged puts against the target, in one LEFT JOIN grouped by (staged second,
    target second), cut into `_seq` ranges that run on up to `connections` connections at
    once. In update_only mode only the puts the target matched count towards the checksums
    (the count check reports the unmatched ones)."""
    staged, target = _event_bucket(spec, "s."), _event_bucket(spec, "t.")
    matched = f"t.{q(spec.mysql.key[0])} IS NOT NULL"  # key columns are NOT NULL in the target
    columns = checksum_columns(spec)
    staged_hash = row_hash("s", columns)
    if spec.mysql.mode == "update_only":
        staged_hash = f"IF({matched}, {staged_hash}, NULL)"
    target_hash = f"IF({matched}, {row_hash('t', columns)}, NULL)"
    join = (
        f"SELECT {staged.select} AS c0, {target.select} AS c1, COUNT(*) AS c2, "
        f"SUM({matched}) AS c3, {hash_sum(staged_hash)} AS c4, "
        f"{hash_sum(target_hash)} AS c5 FROM {q(spec.mysql.temp_table)} s "
        f"LEFT JOIN {q(spec.mysql.target_table)} t ON {key_join(spec)} "
        f"WHERE s.{q(DAY)} = %s AND s.{q(SEQ)} BETWEEN %s AND %s AND s.{q(CHANGE)} = 'put' "
        f"GROUP BY {staged.group}, {target.group}"
    )
    rows, target_in_day = _grouped_in_ranges(
        conn,
        spec,
        day,
        join,
        6,
        connect=connect,
        connections=connections,
        # every target row of the day must be staged: count them on a connection meanwhile
        alongside=(lambda on: _target_day_counts(on, spec, day)) if exclusive(spec) else None,
    )
    second, target_second, found = rows[:, 0], rows[:, 1], rows[:, 3]
    seconds = day_seconds(day)
    in_day = (found > 0) & (target_second >= seconds.start) & (target_second < seconds.stop)
    return MergedDay(
        staged=_sum_by(second, rows[:, 2]),
        merged=_sum_by(second, found),
        found_in_day=_sum_by(target_second[in_day], found[in_day]),
        staged_checksums=_sum_by(second, rows[:, 4]),
        target_checksums=_sum_by(second, rows[:, 5]),
        target_in_day=target_in_day,
    )


def merged_second_counts(
    conn: Any, spec: MigrationSpec, day: dt.date, facts: MergedDay
) -> SecondCounts:
    """Staged puts of the day that the target holds a row for, per second (compared by
    `scans`: the target's rows of the day): rows are counted, a row whose values differ is
    not missing (the checksums judge values).

    When the target's rows of the day come only from the staged puts (`exclusive`), any
    other target row of the day (one added, or a deleted row still present) is counted too
    and breaks parity. In `update_only` mode the rows kept in the unmatched table count as
    accounted for: they are reported, not lost.
    """
    counts = dict(facts.merged)
    if facts.target_in_day is not None:  # then every target row of the day must be staged
        for key, value in _unstaged(facts.target_in_day, facts.found_in_day).items():
            counts[key] = counts.get(key, 0) + value  # a row added, or a deleted row still there
    if spec.mysql.mode == "update_only":
        unmatched = _grouped(
            conn,
            f"SELECT {_event_bucket(spec).select} AS c0, COUNT(*) AS c1 "
            f"FROM {q(unmatched_table(spec))} WHERE {q(DAY)} = %s GROUP BY c0",
            (day,),
        )
        for key, value in unmatched.items():
            counts[key] = counts.get(key, 0) + value
    return counts


def _target_day_counts(conn: Any, spec: MigrationSpec, day: dt.date) -> SecondCounts:
    """All target rows of the day per second."""
    return _grouped(conn, _target_seconds_sql(spec), (day, day + dt.timedelta(days=1)))


def _unstaged(in_day: SecondCounts, matched_in_day: SecondCounts) -> SecondCounts:
    """Target rows of the day whose key no staged put of the day has, per second.

    Counted as all target rows of the day minus those a staged put found by the target's
    key (`matched_in_day`). The direct anti-join probes the staging table by key, which it
    has no index for (an index there slows the load 2.5x): quadratic, 87 s for a 20,000-row
    day. Staged puts of a day have distinct keys (the partition keeps one row per key), so
    each target row is matched at most once."""
    extras = {second: rows - matched_in_day.get(second, 0) for second, rows in in_day.items()}
    return {second: rows for second, rows in extras.items() if rows}


def legacy_second_counts(conn: Any, spec: MigrationSpec, day: dt.date) -> SecondCounts:
    """Rows per second of the legacy table's day (by `legacy_copy.time_column`)."""
    assert spec.legacy_copy is not None
    when = q(spec.legacy_copy.time_column)
    whole_seconds = _whole_seconds(
        conn, spec.legacy_copy.source_table, spec.legacy_copy.time_column
    )
    second = _bucket(when, whole_seconds)
    return _grouped(
        conn,
        f"SELECT {second.select} AS c0, COUNT(*) AS c1 FROM {q(spec.legacy_copy.source_table)} "
        f"WHERE {when} >= %s AND {when} < %s GROUP BY {second.group}",
        day_window(day),
    )


def copied_second_counts(
    conn: Any, spec: MigrationSpec, day: dt.date, key: LegacyKey
) -> SecondCounts:
    """Rows per second of the day that the new table holds from the legacy table (ids up to
    the legacy type's limit; larger ids were created elsewhere), plus the legacy rows a
    merge deleted on purpose (tombstones): together they must equal the legacy counts."""
    assert spec.legacy_copy is not None
    when = q(spec.legacy_copy.time_column)
    whole_seconds = _whole_seconds(conn, spec.mysql.target_table, spec.legacy_copy.time_column)
    second = _bucket(when, whole_seconds)
    counts = _grouped(
        conn,
        f"SELECT {second.select} AS c0, COUNT(*) AS c1 FROM {q(spec.mysql.target_table)}"
        f" WHERE {when} >= %s AND {when} < %s AND {q(key.column)} <= %s GROUP BY {second.group}",
        (*day_window(day), key.limit),
    )
    deleted = _grouped(  # only while the legacy row exists (a legacy delete ends it)
        conn,
        f"SELECT {_SECOND.format(column='d.`event_time`')} AS c0, COUNT(*) AS c1 "
        f"FROM {q(tombstones_table(spec))} d JOIN {q(spec.legacy_copy.source_table)} l "
        f"ON l.{q(key.column)} = d.`legacy_id` "
        "WHERE d.`event_time` >= %s AND d.`event_time` < %s GROUP BY c0",
        day_window(day),
    )
    for second, count in deleted.items():
        counts[second] = counts.get(second, 0) + count
    return counts


def mysql_id_types(conn: Any, table: str, columns: tuple[str, ...]) -> dict[str, str | None]:
    """DATA_TYPE of each id column in information_schema (None when the column is missing)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        found = {name: data_type.lower() for name, data_type in cur.fetchall()}
    return {name: found.get(name) for name in columns}


def row_hash(alias: str, columns: tuple[str, ...]) -> str:
    """A per-row hash, summed per second by `hash_sum` (order-independent): CRC32 of the
    decimal digits of CRC32 of the row's text. The text is the values, each `QUOTE`d (a
    string quoted and escaped, NULL the bare word NULL, a number its digits whatever its
    integer type: INT 5 and BIGINT 5 alike) and joined by commas, so two different rows
    never hash the same text (a value holding the separator, or a string that reads like
    NULL, cannot pass for another).

    Why this and a sum: a changed row goes unseen only when its inner CRC32 is unchanged
    (never for a change within 32 consecutive bits of its text, about once in 2^32
    otherwise) or the outer one collides (about once in 2^32). CRC32 alone is affine over
    GF(2): with a BIT_XOR of CRC32s two same-length values swapped between rows of one second
    always cancel, and with a plain sum they cancel about once in 2^16 (whenever the two CRCs
    differ in every bit the swap flips). Writing the inner CRC in decimal is not linear over
    GF(2), so the outer values carry no such structure: a swap cancels only by chance. It
    costs what one CRC32 of the text costs (the text is the expensive part); 64 bits of MD5
    (collisions ~2^-64) cost ~1.5x, reladiff's own hash, and a squared CRC32 ~1.3x (SQL
    computes the text twice): `bench/copy_checksum.py`."""
    parts = ", ".join(f"QUOTE({alias}.{q(c)})" for c in columns)
    return f"CRC32(CRC32(CONCAT_WS(',', {parts})))"


_2_64, _2_63 = 1 << 64, 1 << 63


def hash_sum(row_hashes: str) -> str:
    """SUM of `row_hash` values mod 2^64, as a signed 64-bit number (two's complement: r
    below 2^63 stays r, else r - 2^64): it fits the int64 arrays the grouped rows are read
    into, and numpy's wrapping int64 sums of the parts of a second (cut by ranges) stay the
    sum mod 2^64. SUM of BIGINT UNSIGNED is an exact DECIMAL: nothing is lost before it."""
    # one SUM: each SUM(...) written out is evaluated on its own, row hashes and all
    return f"((SUM({row_hashes}) + {_2_63}) MOD {_2_64} - {_2_63})"


def checksum_columns(spec: MigrationSpec) -> tuple[str, ...]:
    """What a merge promises: the key and the merged (update) columns, per row."""
    return tuple(spec.mysql.key) + tuple(spec.mysql.update_columns)


DRILL_KEYS = 100  # keys a drill-down names, at most (stated in the check's metadata)
DRILL_SECONDS = 1_000  # mismatching seconds a drill-down reads, at most (the first ones)


def _iso(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _in_seconds(column: str, seconds: list[int]) -> str:
    """`column`'s second is one of `seconds` (a literal list of ints: no parameters)."""
    listed = ", ".join(str(int(s)) for s in seconds)
    return f"{_SECOND.format(column=column)} IN ({listed})"


def differing_keys(
    conn: Any, spec: MigrationSpec, day: dt.date, seconds: list[int], limit: int = DRILL_KEYS
) -> list[dict[str, Any]]:
    """Drill-down for the mismatching seconds (the first `DRILL_SECONDS`), in one pass over
    the day's staged puts: those whose target row is `missing` or `changed` (other merged
    values), with both sides' values, first seconds first, at most `limit`."""
    if not seconds:
        return []
    event = q(spec.event_time_column.column)
    differs = " OR ".join(
        [f"t.{q(spec.mysql.key[0])} IS NULL"]
        + [f"NOT (t.{q(u)} <=> s.{q(u)})" for u in spec.mysql.update_columns]
    )
    keys = ", ".join(f"s.{q(k)}" for k in spec.mysql.key)
    staged = ", ".join(f"s.{q(u)}" for u in spec.mysql.update_columns)
    merged = ", ".join(f"t.{q(u)}" for u in spec.mysql.update_columns)
    second = _SECOND.format(column=f"s.{event}")
    selected = ", ".join(
        filter(None, [second, keys, staged, merged, f"t.{q(spec.mysql.key[0])} IS NULL"])
    )
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {selected} FROM {q(spec.mysql.temp_table)} s "
            f"LEFT JOIN {q(spec.mysql.target_table)} t ON {key_join(spec)} "
            f"WHERE s.{q(DAY)} = %s AND s.{q(CHANGE)} = 'put' "
            f"AND {_in_seconds(f's.{event}', seconds[:DRILL_SECONDS])} AND ({differs}) "
            f"ORDER BY 1 LIMIT {int(limit)}",
            (day,),
        )
        rows = cur.fetchall()
    updates, width = spec.mysql.update_columns, len(spec.mysql.key)
    result = []
    for row in rows:
        staged_values = row[1 + width : 1 + width + len(updates)]
        merged_values = row[1 + width + len(updates) : 1 + width + 2 * len(updates)]
        missing = bool(row[-1])
        result.append(
            {
                "second": _iso(int(row[0])),
                "key": dict(zip(spec.mysql.key, (str(v) for v in row[1 : 1 + width]), strict=True)),
                "difference": "missing" if missing else "changed",
                "staged": {u: _text(v) for u, v in zip(updates, staged_values, strict=True)},
                "target": {}
                if missing
                else {u: _text(v) for u, v in zip(updates, merged_values, strict=True)},
            }
        )
    return result


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def unstaged_rows(
    conn: Any, spec: MigrationSpec, day: dt.date, seconds: list[int], limit: int = DRILL_KEYS
) -> list[dict[str, Any]]:
    """Drill-down where every target row of the day must be a staged put (`scans_suffice`):
    target rows of the mismatching seconds (the first `DRILL_SECONDS`) whose key no staged
    put of the day has (`extra`: a row added, or a deleted row left behind). Both sides'
    rows of those seconds are read and compared here (the staging table has no index on the
    key to probe)."""
    if not seconds:
        return []
    event = q(spec.event_time_column.column)
    keys = ", ".join(q(k) for k in spec.mysql.key)
    updates = spec.mysql.update_columns
    within = _in_seconds(event, seconds[:DRILL_SECONDS])
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {keys} FROM {q(spec.mysql.temp_table)} WHERE {q(DAY)} = %s "
            f"AND {q(CHANGE)} = 'put' AND {within}",
            (day,),
        )
        staged = {tuple(row) for row in cur.fetchall()}
        selected = ", ".join([_SECOND.format(column=event), keys, *(q(u) for u in updates)])
        cur.execute(  # the day's window first: the target's day partition, or its index
            f"SELECT {selected} FROM {q(spec.mysql.target_table)} "
            f"WHERE {event} >= %s AND {event} < %s AND {within} ORDER BY 1",
            (day, day + dt.timedelta(days=1)),
        )
        rows = cur.fetchall()
    width = len(spec.mysql.key)
    return [
        {
            "second": _iso(int(row[0])),
            "key": dict(zip(spec.mysql.key, (str(v) for v in row[1 : 1 + width]), strict=True)),
            "difference": "extra",
            "staged": {},
            "target": {u: _text(v) for u, v in zip(updates, row[1 + width :], strict=True)},
        }
        for row in rows
        if tuple(row[1 : 1 + width]) not in staged
    ][:limit]
