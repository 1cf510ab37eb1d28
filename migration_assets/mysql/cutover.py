"""The cutover: the new BIGINT table takes the legacy table's name in one atomic RENAME.

1. Catch up the tail without locks (the bulk of the late rows).
2. `LOCK TABLES legacy READ` on one connection: the application's writes wait (reads go on).
   On another connection: copy the last rows and compare per-second counts of the last
   `verify_days` days; any difference refuses the cutover and releases the lock.
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
   so no scheduled drain interleaves), then every day it ever changed is verified without
   locks; a day that differs then (a change not yet applied) is kept for step 3.
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
from ..quality.counts import copied_second_counts, legacy_second_counts, mismatched_seconds
from ..spec import MigrationSpec
from .apply import CaptureBusy, ChangeApplier, DrainResult, changed_days, settings_of
from .binlog import CaptureRefused, server_position
from .catalog import primary_key, table_columns, table_exists
from .connection import MySQLSettings, read_committed
from .legacy import (
    Connect,
    LegacyKey,
    catch_up,
    copied_days_table,
    copy_ids_above,
    legacy_key,
)


class CutoverRefused(RuntimeError):
    """The cutover did not happen; both tables are as they were."""


@dataclass
class CutoverResult:
    legacy_table: str  # the name the new table has now
    old_table: str  # where the legacy table is kept
    caught_up_rows: int = 0  # copied before the locks
    final_rows: int = 0  # copied under the locks
    rows_after_swap: int = 0  # found in the old table after the swap (the safety net; 0)
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
            first = catch_up(conn, spec)
            if first.copied_through is None:
                raise CutoverRefused("no day has been copied yet: nothing to cut over to")
            result.caught_up_rows = first.new_rows
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
    with connect() as holder, holder.cursor() as locks, connect() as conn:
        locks.execute("SET SESSION lock_wait_timeout = %s", (lock_wait_timeout_s,))
        locks.execute(f"LOCK TABLES {q(source)} READ")  # the application's writes wait
        started = time.perf_counter()
        try:
            if while_locked:
                while_locked()
            final = catch_up(conn, spec, measure_lag=False)
            result.final_rows = final.new_rows
            for day in days:
                verify_day(conn, spec, day, key)
                result.verified_days.append(day.isoformat())
            conn.commit()  # no metadata lock of ours may stand in the RENAME's way
            _rename_queued_behind(
                connect, holder, f"{q(source)} TO {q(old)}, {q(target)} TO {q(source)}"
            )
        finally:
            locks.execute("UNLOCK TABLES")
            result.locked_seconds = time.perf_counter() - started
        # a safety net: nothing can have reached the legacy table after the final copy (its
        # writers waited behind the lock, then behind the RENAME), and it takes no writes now
        assert final.copied_through is not None
        result.rows_after_swap = copy_ids_above(
            conn, spec, key, final.copied_through, tables=(old, source)
        )
        if (
            not table_exists(conn, old)
            or table_columns(conn, source)[key.column].data_type != "bigint"
        ):
            raise RuntimeError(f"the swap of {source!r} and {target!r} did not take effect")
        assert primary_key(conn, source) == [key.column]
    return result


def verify_day(conn: Any, spec: MigrationSpec, day: dt.date, key: LegacyKey) -> None:
    """The proof a day must pass before the swap: per-second counts of the legacy rows and
    of their copies (legacy-range ids) agree. Raises CutoverRefused naming the day."""
    assert spec.legacy_copy is not None
    legacy = legacy_second_counts(conn, spec, day)
    differing = mismatched_seconds(legacy, copied_second_counts(conn, spec, day, key))
    if differing:
        raise CutoverRefused(
            f"{day}: {len(differing)} seconds differ between {spec.legacy_copy.source_table!r} "
            f"and {spec.mysql.target_table!r} (first: {_iso(differing[0])}); nothing renamed"
        )


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
    source, target, old = spec.legacy_copy.source_table, spec.mysql.target_table, result.old_table
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
        # 2. every day changed since capture began, without locks: a day that differs now
        # (a change not yet applied) is verified again under the lock with the others
        before_lock = applier.state().batches
        suspects: set[dt.date] = set()
        with connect() as conn:
            read_committed(conn)
            for day in changed_days(conn, spec):
                try:
                    verify_day(conn, spec, day, key)
                except CutoverRefused:
                    suspects.add(day)
                conn.commit()
        with connect() as holder, holder.cursor() as locks, connect() as conn:
            read_committed(conn)
            locks.execute("SET SESSION lock_wait_timeout = %s", (lock_wait_timeout_s,))
            locks.execute(f"LOCK TABLES {q(source)} READ")  # the application's writes wait
            started = time.perf_counter()
            try:
                if while_locked:
                    while_locked()
                # 3. no write can reach the legacy table now: drain to the binlog's head
                head = server_position(holder)
                final = _drain(applier, until=head, measure_lag=False)
                result.final_rows = final.row_events
                # 4. the last days, the suspects and whatever changed since step 2
                again = suspects | set(changed_days(conn, spec, after_batch=before_lock))
                for day in [*days, *sorted(again - set(days))]:
                    verify_day(conn, spec, day, key)
                    result.verified_days.append(day.isoformat())
                conn.commit()  # no metadata lock of ours may stand in the RENAME's way
                applier.conn.commit()
                _rename_queued_behind(
                    connect, holder, f"{q(source)} TO {q(old)}, {q(target)} TO {q(source)}"
                )
            finally:
                locks.execute("UNLOCK TABLES")
                result.locked_seconds = time.perf_counter() - started
    finally:
        applier.__exit__(None, None, None)
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


def _iso(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
