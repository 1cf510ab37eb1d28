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
_BOUND = re.compile(r"VALUES LESS THAN \('(\d{4}-\d{2}-\d{2})[ 0:]*'\)")


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


def _read_covered_until(conn: Any, spec: MigrationSpec) -> dt.date | None:
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {q(spec.mysql.target_table)}")
        ddl = cur.fetchone()[1]
    event = spec.event_time_column.column
    if not re.search(rf"PARTITION BY RANGE\s+COLUMNS\(`{re.escape(event)}`\)", ddl):
        return None
    if f"`{FUTURE}`" not in ddl and f" {FUTURE} " not in ddl:
        return None  # not a layout this module made: left alone
    bounds = [dt.date.fromisoformat(b) for b in _BOUND.findall(ddl)]
    return max(bounds) if bounds else None


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
            cur.execute(
                f"ALTER TABLE {q(spec.mysql.target_table)} REORGANIZE PARTITION {FUTURE} INTO "
                f"({', '.join(added)}, PARTITION {FUTURE} VALUES LESS THAN (MAXVALUE))"
            )
            covered_until(conn, spec, fresh=True)
            return [p.split()[1] for p in added]
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
            cur.fetchall()
