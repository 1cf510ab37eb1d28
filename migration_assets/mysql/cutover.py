"""The cutover: the new BIGINT table takes the legacy table's name in one atomic RENAME.

1. Without locks: the checksum of every copied day before the last `verify_days`
   (`verify_copied_days_checksums`, on parallel connections); any day whose values differ
   refuses the cutover, naming the days. Then catch up the tail (the bulk of the late rows).
   Without change capture this is what proves the older days: a change the application made
   to them after this pass is not captured (only appended rows are: the tail).
2. `LOCK TABLES legacy READ` on one connection: the application's writes wait (reads go on).
   On others: copy the last rows and verify the last `verify_days` days, counts and checksums
   (`verify_day`); any difference refuses the cutover and releases the lock.
3. `RENAME TABLE legacy TO old, new TO legacy`, one atomic statement, issued on a third
   connection while the lock is held; once it waits, the lock is released. A pending
   exclusive metadata lock is granted before the writes queued on the same table (INSERTs,
   UPDATEs, DELETEs), which then reach the new table by name: the way gh-ost cuts over. The
   same on MySQL 8 / Aurora MySQL 3 and MariaDB (which refuses RENAME under LOCK TABLES).
   The RENAME takes its locks in name order; nothing else may hold the new table then (the
   final copy has committed; pause `target_table` runs during the cutover), so it waits on
   the legacy table, ahead of the application.
4. A safety net: legacy ids above the final mark are copied from the old table (0 expected).
The old table is kept.

With change capture (`legacy_copy.change_capture: binlog`) the tail is the applier's:
1. The applier catches up without locks (it holds the migration's applier lock throughout,
   so no scheduled drain interleaves), then the checksums of every copied day and every day
   it changed are verified without locks; a day that differs then (maybe a change not yet
   applied) is drained and checked again, and kept for step 3 if it still differs.
2. `LOCK TABLES legacy READ`; the server's binlog head is read: no change of the legacy
   table can lie beyond it. The applier drains to it.
3. Under the lock, `verify_day` for the last `verify_days` days, the days that differed in
   step 1 and every day changed since; any difference refuses the cutover. Then the RENAME
   as above. A kill at any point leaves one table or the other under the legacy name (the
   RENAME is one statement); running again finishes, or refuses saying why.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..identifiers import quote_identifier as q
from ..identifiers import validate_identifier
from ..spec import MigrationSpec
from .apply import CaptureBusy, ChangeApplier, DrainResult, changed_days, settings_of
from .binlog import CaptureRefused, server_position
from .catalog import primary_key, table_columns, table_exists
from .connection import MySQLSettings, read_committed
from .copy_checksum import day_checksums, drill_down, iso_second
from .legacy import (
    Connect,
    LegacyKey,
    catch_up,
    copied_days_table,
    copy_ids_above,
    legacy_key,
)

CHECKSUM_CONNECTIONS = 2  # the unlocked checksum pass and the verification under the lock
_NAMED_DAYS = 20  # differing days named in a refusal, at most


class CutoverRefused(RuntimeError):
    """The cutover did not happen; both tables are as they were. `days`: the days whose
    copy differs, with their first differing second and key (for the op's metadata)."""

    def __init__(self, message: str, days: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.days = days or []


@dataclass(frozen=True)
class DayDifference:
    day: dt.date
    seconds: int  # differing seconds
    first_second: int
    first_key: dict[str, Any] | None  # drill_down's first entry (None: nothing to name)

    def where(self) -> str:
        found = f"first second {iso_second(self.first_second)}"
        if self.first_key is not None:
            ((column, value),) = self.first_key["key"].items()
            found += f", key {column}={value}"
        return found

    def named(self) -> str:
        return f"{self.day} ({self.where()})"

    def as_metadata(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "differing_seconds": self.seconds,
            "first_second": iso_second(self.first_second),
            "first_key": self.first_key,
        }


def _difference(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    key: LegacyKey,
    connect: Connect | None,
    connections: int,
) -> DayDifference | None:
    """The day's checksums compared (counts included), or None when they agree."""
    seconds = day_checksums(
        conn, spec, day, key, connect=connect, connections=connections
    ).differing_seconds()
    if not seconds:
        return None
    first = drill_down(conn, spec, day, seconds, key, limit=1)
    return DayDifference(day, len(seconds), seconds[0], first[0] if first else None)


def verify_copied_days_checksums(
    connect: Connect,
    spec: MigrationSpec,
    days: list[dt.date],
    *,
    connections: int = CHECKSUM_CONNECTIONS,
) -> list[DayDifference]:
    """The days (of `days`) whose copy differs from the legacy table in rows or values,
    each day's two sides read on `connections` connections at once; no locks taken."""
    differing = []
    with connect() as conn:
        key = legacy_key(conn, spec)
        for day in days:
            found = _difference(conn, spec, day, key, connect, connections)
            conn.commit()  # each day on a fresh snapshot; no long-held read view
            if found is not None:
                differing.append(found)
    return differing


def refuse_differing_days(differing: list[DayDifference]) -> None:
    """A refusal naming the days whose copy differs (none: nothing happens)."""
    if not differing:
        return
    named = ", ".join(d.named() for d in differing[:_NAMED_DAYS])
    more = f" and {len(differing) - _NAMED_DAYS} more" if len(differing) > _NAMED_DAYS else ""
    raise CutoverRefused(
        f"{len(differing)} days differ: {named}{more}; re-materialize bigint_table_copy for "
        "them; nothing renamed",
        days=[d.as_metadata() for d in differing],
    )


def verify_day(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    key: LegacyKey,
    *,
    connect: Connect | None = None,
    connections: int = 1,
) -> None:
    """Refuse unless the day's copied rows equal the legacy rows: first the rows per second
    (counts), then their values (checksums), from one pass over each side (what the
    `per_second_count_parity` and `per_second_checksum_parity` checks compare)."""
    assert spec.legacy_copy is not None
    source, target = spec.legacy_copy.source_table, spec.mysql.target_table
    sums = day_checksums(conn, spec, day, key, connect=connect, connections=connections)
    counted = sorted(
        s
        for s in set(sums.legacy_rows) | set(sums.copied_rows)
        if sums.legacy_rows.get(s, 0) != sums.copied_rows.get(s, 0)
    )
    if counted:
        raise CutoverRefused(
            f"{day}: {len(counted)} seconds differ between {source!r} and {target!r} "
            f"(first: {iso_second(counted[0])}); nothing renamed",
            days=[DayDifference(day, len(counted), counted[0], None).as_metadata()],
        )
    seconds = sums.differing_seconds()
    if seconds:
        first = drill_down(conn, spec, day, seconds, key, limit=1)
        difference = DayDifference(day, len(seconds), seconds[0], first[0] if first else None)
        raise CutoverRefused(
            f"{day}: the values of {len(seconds)} seconds differ between {source!r} and "
            f"{target!r} ({difference.where()}); re-materialize bigint_table_copy for it; "
            "nothing renamed",
            days=[difference.as_metadata()],
        )


@dataclass
class CutoverResult:
    legacy_table: str  # the name the new table has now
    old_table: str  # where the legacy table is kept
    caught_up_rows: int = 0  # copied before the locks
    final_rows: int = 0  # copied under the locks
    rows_after_swap: int = 0  # found in the old table after the swap (the safety net; 0)
    checksummed_days: int = 0  # days whose checksums were verified without locks
    checksum_seconds: float = 0.0  # how long that took
    verified_days: list[str] = field(default_factory=list)
    locked_seconds: float = 0.0  # how long the application's writes waited


def cutover(
    connect: Connect,
    spec: MigrationSpec,
    *,
    verify_days: int = 2,
    keep_old_as: str | None = None,
    today: dt.date | None = None,
    lock_wait_timeout_s: int = 30,
    while_locked: Callable[[], None] | None = None,
    catch_up_timeout_s: float = 600,
) -> CutoverResult:
    """Swap the tables (module docstring). The verified days end today (or with the last
    partition of a bounded spec). `while_locked` runs once the legacy table is locked, before
    the final copy (to observe the pause, e.g. in tests)."""
    if verify_days < 1:
        raise ValueError("verify_days must be at least 1")
    assert spec.legacy_copy is not None
    source, target = spec.legacy_copy.source_table, spec.mysql.target_table
    old = validate_identifier(keep_old_as or f"{source[:60]}_old", "keep_old_as")
    last = today or dt.datetime.now(dt.UTC).date()
    if spec.partitions.end is not None:  # a bounded migration: its last partition
        last = min(last, spec.partitions.end - dt.timedelta(days=1))
    days = [last - dt.timedelta(days=i) for i in range(verify_days)]
    result = CutoverResult(legacy_table=source, old_table=old)
    with connect() as conn:
        if table_exists(conn, old) and table_exists(conn, source):
            legacy_key(conn, spec)  # after a swap: "the cutover has happened"
        if table_exists(conn, old):
            raise CutoverRefused(f"table {old!r} already exists: choose another keep_old_as")
        if not table_exists(conn, target):
            raise CutoverRefused(f"the new table {target!r} does not exist: copy the days first")
        key = legacy_key(conn, spec)
        _refuse_uncopied_days(conn, spec, days[-1], days[0] + dt.timedelta(days=1))
        if spec.legacy_copy.change_capture == "binlog":
            with conn.cursor() as cur:
                cur.execute(f"SELECT EXISTS (SELECT 1 FROM {q(copied_days_table(spec))})")
                if not cur.fetchone()[0]:
                    raise CutoverRefused("no day has been copied yet: nothing to cut over to")
            settings = settings_of(conn)
        else:
            earlier = _copied_days_before(conn, spec, days[-1])
    if spec.legacy_copy.change_capture == "binlog":
        _cutover_with_capture(
            connect,
            settings,
            spec,
            key,
            days,
            result,
            lock_wait_timeout_s=lock_wait_timeout_s,
            while_locked=while_locked,
            catch_up_timeout_s=catch_up_timeout_s,
        )
        return result
    started = time.perf_counter()
    refuse_differing_days(verify_copied_days_checksums(connect, spec, earlier))
    result.checksummed_days = len(earlier)
    result.checksum_seconds = time.perf_counter() - started
    with connect() as conn:
        first = catch_up(conn, spec)
        if first.copied_through is None:
            raise CutoverRefused("no day has been copied yet: nothing to cut over to")
        result.caught_up_rows = first.new_rows
    final: list = []

    def copy_last_rows(holder: Any, conn: Any) -> list[dt.date]:
        final.append(catch_up(conn, spec, measure_lag=False))
        result.final_rows = final[0].new_rows
        return days

    _swap_under_lock(
        connect,
        spec,
        key,
        result,
        copy_last_rows,
        lock_wait_timeout_s=lock_wait_timeout_s,
        while_locked=while_locked,
    )
    # a safety net: nothing can have reached the legacy table after the final copy (its
    # writers waited behind the lock, then behind the RENAME), and it takes no writes now
    assert final[0].copied_through is not None
    with connect() as conn:
        result.rows_after_swap = copy_ids_above(
            conn, spec, key, final[0].copied_through, tables=(old, source)
        )
        assert primary_key(conn, source) == [key.column]
    return result


def _cutover_with_capture(
    connect: Connect,
    settings: MySQLSettings,
    spec: MigrationSpec,
    key: LegacyKey,
    days: list[dt.date],
    result: CutoverResult,
    *,
    lock_wait_timeout_s: int,
    while_locked: Callable[[], None] | None,
    catch_up_timeout_s: float,
) -> None:
    """The swap gated on the applier (module docstring, "With change capture")."""
    assert spec.legacy_copy is not None
    try:
        applier = ChangeApplier(settings, spec, lock_timeout_s=lock_wait_timeout_s)
        applier.__enter__()
    except (CaptureRefused, CaptureBusy) as exc:
        raise CutoverRefused(f"{exc}; nothing renamed") from None
    try:
        deadline = time.monotonic() + catch_up_timeout_s
        while True:  # 1. catch up without locks
            drained = _drain(applier, max_seconds=max(1.0, deadline - time.monotonic()))
            result.caught_up_rows += drained.row_events
            if drained.caught_up:
                break
            if time.monotonic() >= deadline:
                raise CutoverRefused(
                    f"the change applier is still {drained.behind_bytes} binlog bytes behind "
                    f"after {catch_up_timeout_s:.0f} s: run bigint_change_capture until it "
                    "keeps up, then cut over; nothing renamed"
                )
        # 2. without locks, the checksums of every copied day before the verified ones and of
        # every day the applier changed: a day that differs may hold a change not applied
        # yet (a live writer), so it is drained and checked again, and one that still differs
        # is verified under the lock with the others (where a difference refuses, named)
        before_lock = applier.state().batches
        with connect() as conn:
            earlier = set(_copied_days_before(conn, spec, days[-1]))
            candidates = sorted((earlier | set(changed_days(conn, spec))) - set(days))
        started = time.perf_counter()
        suspects = {d.day for d in verify_copied_days_checksums(connect, spec, candidates)}
        if suspects:
            result.caught_up_rows += _drain(applier, max_seconds=60).row_events
            again = verify_copied_days_checksums(connect, spec, sorted(suspects))
            suspects = {d.day for d in again}
        result.checksummed_days = len(candidates)
        result.checksum_seconds = time.perf_counter() - started

        def drain_to_the_lock(holder: Any, conn: Any) -> list[dt.date]:
            read_committed(conn)
            # 3. no write can reach the legacy table now: drain to the binlog's head
            head = server_position(holder)
            result.final_rows = _drain(applier, until=head, measure_lag=False).row_events
            applier.conn.commit()  # no metadata lock of its own in the RENAME's way
            # 4. the last days, the suspects and whatever changed since step 2
            again = suspects | set(changed_days(conn, spec, after_batch=before_lock))
            return [*days, *sorted(again - set(days))]

        _swap_under_lock(
            connect,
            spec,
            key,
            result,
            drain_to_the_lock,
            lock_wait_timeout_s=lock_wait_timeout_s,
            while_locked=while_locked,
        )
    finally:
        applier.__exit__(None, None, None)


def _swap_under_lock(
    connect: Connect,
    spec: MigrationSpec,
    key: LegacyKey,
    result: CutoverResult,
    up_to_the_lock: Callable[[Any, Any], list[dt.date]],
    *,
    lock_wait_timeout_s: int,
    while_locked: Callable[[], None] | None,
) -> None:
    """`LOCK TABLES legacy READ` on one connection (the application's writes wait); then
    `up_to_the_lock(holder, conn)` brings the new table up to the lock and returns the days
    to verify, each is verified (`verify_day`, refusing on a difference), and the RENAME is
    queued behind the lock; the lock is released however this ends."""
    assert spec.legacy_copy is not None
    source, target, old = spec.legacy_copy.source_table, spec.mysql.target_table, result.old_table
    with connect() as holder, holder.cursor() as locks, connect() as conn:
        locks.execute("SET SESSION lock_wait_timeout = %s", (lock_wait_timeout_s,))
        locks.execute(f"LOCK TABLES {q(source)} READ")
        started = time.perf_counter()
        try:
            if while_locked:
                while_locked()
            for day in up_to_the_lock(holder, conn):
                verify_day(conn, spec, day, key, connect=connect, connections=CHECKSUM_CONNECTIONS)
                result.verified_days.append(day.isoformat())
            conn.commit()  # no metadata lock of ours may stand in the RENAME's way
            _rename_queued_behind(
                connect, holder, f"{q(source)} TO {q(old)}, {q(target)} TO {q(source)}"
            )
        finally:
            locks.execute("UNLOCK TABLES")
            result.locked_seconds = time.perf_counter() - started
    with connect() as conn:
        if (
            not table_exists(conn, old)
            or table_columns(conn, source)[key.column].data_type != "bigint"
        ):
            raise RuntimeError(f"the swap of {source!r} and {target!r} did not take effect")


def _drain(applier: ChangeApplier, **kwargs: Any) -> DrainResult:
    try:
        return applier.drain(**kwargs)
    except CaptureRefused as exc:
        raise CutoverRefused(f"{exc}; nothing renamed") from None


def _refuse_uncopied_days(
    conn: Any, spec: MigrationSpec, verified_from: dt.date, after: dt.date
) -> None:
    """Every partition day before the verified ones must have been copied, and no legacy row
    may lie outside the partitions (before the first, from `after` on, or undated): no
    partition would ever copy it."""
    assert spec.legacy_copy is not None
    first = spec.partitions.start
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT `day` FROM {q(copied_days_table(spec))} WHERE `day` >= %s AND `day` < %s",
            (first, verified_from),
        )
        copied = {row[0] for row in cur.fetchall()}
        missing = [
            first + dt.timedelta(days=i)
            for i in range((verified_from - first).days)
            if first + dt.timedelta(days=i) not in copied
        ]
        if missing:
            raise CutoverRefused(
                f"{len(missing)} days were never copied (first: {missing[0]}): materialize "
                "bigint_table_copy for them first; nothing renamed"
            )
        when = q(spec.legacy_copy.time_column)
        cur.execute(
            f"SELECT COALESCE(SUM({when} < %s), 0), COALESCE(SUM({when} >= %s), 0), "
            f"COALESCE(SUM({when} IS NULL), 0) FROM {q(spec.legacy_copy.source_table)} "
            f"WHERE {when} < %s OR {when} >= %s OR {when} IS NULL",
            (first, after, first, after),
        )
        early, late, undated = (int(v) for v in cur.fetchone())
        if early:
            raise CutoverRefused(
                f"{early} legacy rows are older than partitions.start ({first}): move the start "
                "back and copy those days; nothing renamed"
            )
        if late or undated:
            raise CutoverRefused(
                f"{late} legacy rows are dated after {after - dt.timedelta(days=1)} and "
                f"{undated} have no {spec.legacy_copy.time_column}: no partition copies them; "
                "nothing renamed"
            )


def _copied_days_before(conn: Any, spec: MigrationSpec, before: dt.date) -> list[dt.date]:
    """The copied partition days before `before` (the days verified under the lock)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT `day` FROM {q(copied_days_table(spec))} WHERE `day` >= %s AND `day` < %s "
            "ORDER BY `day`",
            (spec.partitions.start, before),
        )
        return [row[0] for row in cur.fetchall()]


def _rename_queued_behind(connect: Connect, holder: Any, renames: str) -> None:
    """Issue the RENAME on another connection while `holder` keeps the legacy table
    read-locked, and release the lock once the RENAME waits for it: a pending exclusive
    metadata lock is granted before the writes queued on the same table, which then reach
    the new table by name. The RENAME takes its locks in name order and nothing else holds
    the new table (the final copy has committed), so the legacy table is what it waits on."""
    waiting: dict[str, int] = {}

    def rename() -> None:
        with connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            waiting["id"] = int(cur.fetchone()[0])
            cur.execute("SET SESSION lock_wait_timeout = 60")
            cur.execute(f"RENAME TABLE {renames}")

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(rename)
        deadline = time.monotonic() + 30
        with holder.cursor() as cur:
            while not pending.done() and time.monotonic() < deadline:
                if "id" in waiting:
                    cur.execute(
                        "SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = %s",
                        (waiting["id"],),
                    )
                    row = cur.fetchone()
                    if row and "metadata lock" in (row[0] or "").lower():
                        break
                time.sleep(0.02)
            else:
                if not pending.done():
                    if "id" in waiting:
                        cur.execute(f"KILL QUERY {int(waiting['id'])}")
                    raise CutoverRefused("the RENAME never queued behind the lock; nothing renamed")
                pending.result()  # raises what the RENAME raised
            cur.execute("UNLOCK TABLES")  # the queued RENAME goes first
        pending.result(timeout=120)
