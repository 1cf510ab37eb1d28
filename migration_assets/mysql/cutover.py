"""The cutover: the new BIGINT table takes the legacy table's name in one atomic RENAME.

1. Catch up the tail without locks (the bulk of the late rows).
2. Take write locks on the legacy and new tables (the application's writes wait, briefly),
   copy the last rows, and compare per-second counts of the last `verify_days` days; any
   difference refuses the cutover and releases the locks, nothing renamed.
3. `RENAME TABLE legacy TO old, new TO legacy`, one atomic statement. MySQL 8.0.13+ runs it
   under the write locks. MariaDB refuses RENAME under LOCK TABLES (error 1192), so a second
   connection issues it while the locks are held, and the locks are released once it waits:
   a pending exclusive metadata lock is granted before the application's queued writes,
   which then reach the new table by name (the way gh-ost cuts over). MariaDB takes the
   RENAME's locks one table at a time in name order, so a write queued on the legacy table
   can still slip in first when the new table's name sorts before it (measured in the tests);
4. therefore every legacy id above the final mark is copied from the old table, which takes
   no writes once renamed: exact, with such rows absent from the new table for milliseconds.
The old table is kept.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pymysql

from ..identifiers import quote_identifier as q
from ..identifiers import validate_identifier
from ..quality.counts import copied_second_counts, legacy_second_counts, mismatched_seconds
from ..spec import MigrationSpec
from .catalog import primary_key, table_columns, table_exists
from .legacy import (
    Connect,
    catch_up,
    copied_days_table,
    copy_ids_above,
    legacy_key,
    tail_table,
    tombstones_table,
)

RENAME_UNDER_LOCK_REFUSED = 1192  # MariaDB: "Can't execute ... you have active locked tables"


class CutoverRefused(RuntimeError):
    """The cutover did not happen; both tables are as they were."""


@dataclass
class CutoverResult:
    legacy_table: str  # the name the new table has now
    old_table: str  # where the legacy table is kept
    caught_up_rows: int = 0  # copied before the locks
    final_rows: int = 0  # copied under the locks
    rows_after_swap: int = 0  # written to the legacy table between unlock and swap (MariaDB)
    verified_days: list[str] = field(default_factory=list)
    locked_seconds: float = 0.0
    method: str = ""


def cutover(
    connect: Connect,
    spec: MigrationSpec,
    *,
    verify_days: int = 2,
    keep_old_as: str | None = None,
    today: dt.date | None = None,
    lock_wait_timeout_s: int = 30,
    while_locked: Callable[[], None] | None = None,
) -> CutoverResult:
    """Swap the tables (module docstring). The verified days end today (or with the last
    partition of a bounded spec). `while_locked` runs once the write locks are held, before
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
        if table_exists(conn, old):
            raise CutoverRefused(f"table {old!r} already exists: choose another keep_old_as")
        if not table_exists(conn, target):
            raise CutoverRefused(f"the new table {target!r} does not exist: copy the days first")
        key = legacy_key(conn, spec)
        _refuse_uncopied_days(conn, spec, days[-1])
        first = catch_up(conn, spec)
        if first.copied_through is None:
            raise CutoverRefused("no day has been copied yet: nothing to cut over to")
        result.caught_up_rows = first.rows
    locked = [source, target, tombstones_table(spec), copied_days_table(spec), tail_table(spec)]
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = %s", (lock_wait_timeout_s,))
        cur.execute("LOCK TABLES " + ", ".join(f"{q(t)} WRITE" for t in locked))
        started = time.perf_counter()
        try:
            if while_locked:
                while_locked()
            final = catch_up(conn, spec)
            result.final_rows = final.rows
            for day in days:
                legacy = legacy_second_counts(conn, spec, day)
                differing = mismatched_seconds(legacy, copied_second_counts(conn, spec, day, key))
                if differing:
                    raise CutoverRefused(
                        f"{day}: {len(differing)} seconds differ between {source!r} and "
                        f"{target!r} (first: {_iso(differing[0])}); nothing renamed"
                    )
                result.verified_days.append(day.isoformat())
            result.method = _rename(
                connect, conn, f"{q(source)} TO {q(old)}, {q(target)} TO {q(source)}"
            )
        finally:
            cur.execute("UNLOCK TABLES")
            result.locked_seconds = time.perf_counter() - started
        # rows a writer slipped into the legacy table between the unlock and the swap: the
        # old table takes no writes any more, so copying every id above the mark is exact
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


def _refuse_uncopied_days(conn: Any, spec: MigrationSpec, verified_from: dt.date) -> None:
    """Every partition day before the verified ones must have been copied, and no legacy row
    may lie before the first partition (no partition would ever copy it)."""
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
            f"SELECT COUNT(*) FROM {q(spec.legacy_copy.source_table)} WHERE {when} < %s", (first,)
        )
        early = int(cur.fetchone()[0])
        if early:
            raise CutoverRefused(
                f"{early} legacy rows are older than partitions.start ({first}): move the start "
                "back and copy those days; nothing renamed"
            )


def _iso(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rename(connect: Connect, locked: Any, renames: str) -> str:
    """Swap the names while `locked` holds the write locks; returns how it was done."""
    try:
        with locked.cursor() as cur:
            cur.execute(f"RENAME TABLE {renames}")
        return "rename under the write locks"
    except pymysql.err.MySQLError as exc:
        if not exc.args or exc.args[0] != RENAME_UNDER_LOCK_REFUSED:
            raise
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
        with locked.cursor() as cur:
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
                    raise CutoverRefused(
                        "the RENAME never queued behind the locks; nothing renamed"
                    )
                pending.result()  # raises what the RENAME raised
            cur.execute("UNLOCK TABLES")  # the queued RENAME goes first
        pending.result(timeout=120)
    return "rename queued behind the write locks"
