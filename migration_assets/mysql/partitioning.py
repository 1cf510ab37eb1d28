"""A target partitioned by day of event time: every day's merge meets a small B-tree.

Why: the example key starts with `customer_id`, so an unpartitioned target takes each day's
rows all over one primary key that grows to billions of rows, far past any buffer pool; a
day's merge and checks then slow down as the target grows (bench_target_growth.py). With
`PARTITION BY RANGE COLUMNS(<event time>)`, one partition per UTC day, a day's rows land in
a partition of their own (a lookup by the full key goes to one partition, a day's range
prunes to one), so a day costs the same in a target of any size, and no event-time index is
needed: counting a day's rows reads its partition. MySQL and MariaDB allow this only when
every unique key holds the event time (the spec enforces it: `mysql.target_partitioning`).

Layout: `p_before` (before partitions.start), `dYYYYMMDD` for every day from the start to
`AHEAD_DAYS` past today, `p_future` (MAXVALUE). Live days run into the last day partitions;
before a day beyond them is merged, `ensure_day_partition` splits `p_future` (empty by then,
so the split moves no rows) under a named lock. Where a row lands never changes a result,
only its cost, so a stale view of the layout can only cost speed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..identifiers import quote_identifier as q
from ..spec import MigrationSpec

AHEAD_DAYS = 31  # day partitions made past the newest needed day (one split a month, live)
BEFORE, FUTURE = "p_before", "p_future"
SPLIT_LOCK_WAIT_S = 60  # lock_wait_timeout of the split's metadata lock


def partition_name(day: dt.date) -> str:
    return f"d{day:%Y%m%d}"


def _day_partitions(first: dt.date, last: dt.date) -> list[str]:
    """`PARTITION dYYYYMMDD VALUES LESS THAN (next midnight)` for each day of [first, last]."""
    return [
        f"PARTITION {partition_name(first + dt.timedelta(days=n))} VALUES LESS THAN "
        f"('{first + dt.timedelta(days=n + 1)} 00:00:00')"
        for n in range((last - first).days + 1)
    ]


def _last_day(spec: MigrationSpec, needed: dt.date) -> dt.date:
    """The last day to give a partition: `AHEAD_DAYS` past `needed`, within partitions.end."""
    last = needed + dt.timedelta(days=AHEAD_DAYS)
    if spec.partitions.end is not None:
        last = min(last, spec.partitions.end - dt.timedelta(days=1))
    return max(last, spec.partitions.start)


def partition_clause(spec: MigrationSpec, today: dt.date) -> str:
    """The `PARTITION BY` of a new target: a partition per day from the start to
    `AHEAD_DAYS` past today (three years: ~1,130 partitions, created in about a second)."""
    start = spec.partitions.start
    parts = [
        f"PARTITION {BEFORE} VALUES LESS THAN ('{start} 00:00:00')",
        *_day_partitions(start, _last_day(spec, today)),
        f"PARTITION {FUTURE} VALUES LESS THAN (MAXVALUE)",
    ]
    event = q(spec.event_time_column.column)
    return f"PARTITION BY RANGE COLUMNS({event}) (\n  " + ",\n  ".join(parts) + "\n)"


# (database, table) -> the first day without a day partition, or None: not partitioned by
# day. Read from SHOW CREATE TABLE (not information_schema, see `prepare_tables`), once per
# process and table, and again only when a day falls past it.
_COVERED_UNTIL: dict[tuple[Any, str], dt.date | None] = {}

# How servers print the clause: MariaDB `PARTITION BY RANGE  COLUMNS(`created_at`)`, MySQL
# 5.5-8.0 `/*!50500 PARTITION BY RANGE  COLUMNS(created_at)` (no backticks unless needed,
# inside a version comment), partition names bare or quoted; case and spacing vary.
_RANGE_COLUMNS = re.compile(r"PARTITION\s+BY\s+RANGE\s+COLUMNS\s*\(\s*([^)]*?)\s*\)", re.I)
_PARTITION = re.compile(
    r"PARTITION\s+`?(\w+)`?\s+VALUES\s+LESS\s+THAN\s*(?:\(\s*([^)]*?)\s*\)|(MAXVALUE))", re.I
)
_DAY_BOUND = re.compile(r"'(\d{4}-\d{2}-\d{2})(?: 00:00:00(?:\.0+)?)?'")


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == "`":
        return name[1:-1].replace("``", "`")
    return name


def _layout_until(bounds: list[tuple[str, str]]) -> dt.date | None:
    """The first day past the day partitions, given (partition name, bound text) pairs
    (bound `MAXVALUE` for the last); None unless it is this module's layout (`p_future`
    last, every other bound a midnight)."""
    if not bounds or bounds[-1][0] != FUTURE or bounds[-1][1].upper() != "MAXVALUE":
        return None
    days = []
    for _, bound in bounds[:-1]:
        match = _DAY_BOUND.fullmatch(bound.strip())
        if match is None:
            return None
        days.append(dt.date.fromisoformat(match.group(1)))
    return max(days) if days else None


def layout_from_create_table(ddl: str, event: str) -> dt.date | None:
    """`_layout_until` of a `SHOW CREATE TABLE` text (MariaDB's or MySQL 5.7/8.0's)."""
    match = _RANGE_COLUMNS.search(ddl)
    if match is None or [_unquote(c) for c in match.group(1).split(",")] != [event]:
        return None
    clause = ddl[match.end() :]
    return _layout_until(
        [(name, bound or maxvalue) for name, bound, maxvalue in _PARTITION.findall(clause)]
    )


def layout_from_partitions(rows: list[tuple], event: str) -> dt.date | None:
    """`_layout_until` of information_schema.PARTITIONS rows (PARTITION_NAME,
    PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION) in ordinal order: the
    expression is `` `col` `` on MySQL 8.0 and MariaDB, bounds are quoted literals."""
    if not rows or any((r[1] or "").upper() != "RANGE COLUMNS" for r in rows):
        return None
    if any(_unquote(r[2] or "") != event for r in rows):
        return None
    return _layout_until([(r[0], r[3] or "") for r in rows])


def read_partitions(conn: Any, table: str) -> list[tuple]:
    """The table's information_schema.PARTITIONS rows `layout_from_partitions` reads."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION"
            " FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = %s AND PARTITION_NAME IS NOT NULL"
            " ORDER BY PARTITION_ORDINAL_POSITION",
            (table,),
        )
        return list(cur.fetchall())


def _read_covered_until(conn: Any, spec: MigrationSpec) -> dt.date | None:
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {q(spec.mysql.target_table)}")
        ddl = cur.fetchone()[1]
    return layout_from_create_table(ddl, spec.event_time_column.column)


def covered_until(conn: Any, spec: MigrationSpec, *, fresh: bool = False) -> dt.date | None:
    """The first day past the target's day partitions (None: the target is not partitioned
    by day, e.g. an existing table made before, or `target_partitioning: none`)."""
    key = (getattr(conn, "db", None), spec.mysql.target_table)
    if fresh or key not in _COVERED_UNTIL:
        _COVERED_UNTIL[key] = _read_covered_until(conn, spec)
    return _COVERED_UNTIL[key]


def partition_of(conn: Any, spec: MigrationSpec, day: dt.date) -> str | None:
    """The target partition that holds `day` (None: the target is not partitioned by day)."""
    until = covered_until(conn, spec)
    if until is None:
        return None
    if day < spec.partitions.start:
        return BEFORE
    return partition_name(day) if day < until else FUTURE


def forget_layouts() -> None:
    """Drop what this process read of targets' layouts (for code that drops and re-creates a
    target under the same name, as the benchmarks do)."""
    _COVERED_UNTIL.clear()


def partitioned_by_day(conn: Any, spec: MigrationSpec) -> bool:
    return covered_until(conn, spec) is not None


def ensure_day_partition(conn: Any, spec: MigrationSpec, day: dt.date) -> list[str]:
    """Give `day` (and `AHEAD_DAYS` more) partitions of their own before its merge, if the
    target is partitioned by day and they are missing; returns the partitions added.

    One caller at a time per table (`GET_LOCK`); the layout is read again under the lock,
    so a split made meanwhile by another run is not repeated. The split is DDL: it waits for
    the statements running on the target (each merge chunk is a short transaction) and
    commits whatever the connection had open, so it runs before the day's merge starts.
    """
    until = covered_until(conn, spec)
    if until is None or day < until:
        return []
    lock = f"migration_partitions:{spec.mysql.target_table}"[:64]
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 600)", (lock,))
        if cur.fetchone()[0] != 1:
            raise TimeoutError(f"waited 600 s for {lock!r} to split {FUTURE} for {day}")
        try:
            until = covered_until(conn, spec, fresh=True)
            if until is None or day < until:
                return []
            last = _last_day(spec, day)
            if last < until:  # past partitions.end: p_future takes it (never a result change)
                return []
            added = _day_partitions(until, last)
            cur.execute("SELECT @@SESSION.lock_wait_timeout")
            (saved,) = cur.fetchone()
            # the metadata lock is waited for under a bound (the default is a year): a
            # long transaction on the target fails the split (and the merge, retried)
            # instead of queueing every later statement on the table behind it
            cur.execute("SET SESSION lock_wait_timeout = %s", (SPLIT_LOCK_WAIT_S,))
            try:
                cur.execute(
                    f"ALTER TABLE {q(spec.mysql.target_table)} REORGANIZE PARTITION {FUTURE} "
                    f"INTO ({', '.join(added)}, PARTITION {FUTURE} VALUES LESS THAN (MAXVALUE))"
                )
            finally:
                cur.execute("SET SESSION lock_wait_timeout = %s", (int(saved),))
            covered_until(conn, spec, fresh=True)
            return [p.split()[1] for p in added]
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
            cur.fetchall()
