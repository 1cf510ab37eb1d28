"""Applying the legacy table's binlog changes to the new BIGINT table (no Dagster here).

Why this converges (docs/change-capture.md): capture starts at a position taken before the
copy read anything, the copy share-locks what it reads, and every change after the position
is applied in binlog order as "write the full after-image by primary key" or "delete by
primary key". Both are idempotent, so replaying a stretch twice gives the same rows, and a
row's last event carries its final state.

- Changes are applied in batches: within a batch only each key's last change is written
  (a multi-row INSERT ... ON DUPLICATE KEY UPDATE of the legacy columns, as the copy writes
  them, so the merged DynamoDB columns are never overwritten; a DELETE by key). Rows the
  merge tombstoned are never written back.
- The position after the last whole transaction is stored in the same transaction as the
  rows, so a kill -9 anywhere resumes exactly there. Memory stays bounded: a batch holds at
  most `batch_rows` keys, a long transaction is written in pieces and committed at its end.
- One applier per migration at a time (a named lock): two appliers interleaving could
  write an older image after a newer one.
- Each day a change touched (the row's day before and after it) is recorded with the
  batch number: the cutover verifies those days again.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..identifiers import quote_identifier as q
from ..spec import MigrationSpec
from .binlog import (
    CaptureRefused,
    CaptureState,
    Position,
    RowChange,
    binary_logs,
    bytes_between,
    capture_state,
    capture_table,
    changed_days_table,
    preflight,
    read_changes,
    read_changes_in_processes,
    server_position,
    unsigned_integer_bits,
)
from .catalog import table_columns, table_exists
from .connection import MySQLSettings, legacy_dates, open_connection
from .legacy import _CopySql, legacy_key, tombstones_table

DEFAULT_BATCH_ROWS = 5_000
_COMMIT_EVERY_S = 1.0  # commit at the next transaction end once a batch is this old
_EVENTS_BEHIND_CAP = 100_000
_PROCESS_BACKLOG = 256 << 20  # binlog bytes behind from which decoding gets processes
DEFAULT_DECODERS = 2


class CaptureBusy(RuntimeError):
    """Another applier of this migration holds the lock."""


@dataclass
class DrainResult:
    row_events: int = 0  # row changes of the legacy table read and applied
    transactions: int = 0  # binlog transactions passed (every table's)
    batches: int = 0
    seconds: float = 0.0
    start: Position | None = None
    applied: Position | None = None  # where the next drain starts
    head: Position | None = None  # the server's binlog head when the drain ended
    caught_up: bool = False  # the last read reached the binlog's end
    behind_bytes: int = 0
    behind_events: int = 0  # binlog events between applied and head (capped)
    lag_seconds: float = 0.0  # age of the oldest change not yet applied (0 when caught up)
    changed_days: list[dt.date] = field(default_factory=list)  # touched by this drain

    @property
    def events_per_second(self) -> float:
        return self.row_events / self.seconds if self.seconds else 0.0


def replication_settings(settings: MySQLSettings) -> dict[str, Any]:
    """pymysql keyword arguments for the binlog reader's connections."""
    return {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password,
        "charset": "utf8mb4",
        "connect_timeout": settings.connect_timeout_s,
    }


def settings_of(conn: Any) -> MySQLSettings:
    """The settings a connection was opened with (the binlog reader opens its own)."""

    def text(value: Any) -> str:
        return value.decode("latin1") if isinstance(value, bytes) else str(value or "")

    return MySQLSettings(conn.host, conn.port, text(conn.user), text(conn.password), text(conn.db))


_EPOCH = dt.datetime(1970, 1, 1)
_ZERO_DATES = {
    "date": "0000-00-00",
    "datetime": "0000-00-00 00:00:00",
    "timestamp": "0000-00-00 00:00:00",
}


class ChangeApplier:
    """The applier of one migration: `with ChangeApplier(settings, spec) as applier:
    applier.drain(...)`. Holds the migration's applier lock while open."""

    def __init__(
        self,
        settings: MySQLSettings,
        spec: MigrationSpec,
        *,
        lock_timeout_s: float = 0,
        decoders: int | None = None,  # processes decoding rows; None: by the backlog
    ) -> None:
        assert spec.legacy_copy is not None
        self.settings, self.spec, self.lock_timeout_s = settings, spec, lock_timeout_s
        self.decoders = decoders
        self.lock_name = f"migration_capture_{zlib.crc32(self._scope().encode()):08x}"

    def _scope(self) -> str:
        return f"{self.settings.database}.{self.spec.mysql.target_table}"

    def __enter__(self) -> ChangeApplier:
        self.conn = open_connection(self.settings)
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT GET_LOCK(%s, %s)", (self.lock_name, self.lock_timeout_s))
                if cur.fetchone()[0] != 1:
                    raise CaptureBusy(
                        f"another change applier of {self._scope()} is running; try again later"
                    )
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            key = legacy_key(self.conn, self.spec)
            # the legacy columns as the new table has them: the binlog before a DDL on the
            # legacy table carries those (the reader refuses at the DDL itself)
            target = table_columns(self.conn, self.spec.mysql.target_table)
            names = table_columns(self.conn, self.spec.legacy_copy.source_table)
            self.sql = _CopySql(self.conn, self.spec, key, names=[n for n in names if n in target])
            self.columns = self.sql.names
            self.pk_index = self.columns.index(key.column)
            self.time_index = self.columns.index(self.spec.legacy_copy.time_column)
            self.unsigned = unsigned_integer_bits(self.conn, self.spec.legacy_copy.source_table)
            self.zero_date_columns = [  # a NULL read there was a zero date (`_zero_dates`)
                i
                for i, n in enumerate(self.columns)
                if names[n].data_type in _ZERO_DATES and not names[n].nullable
            ]
            self.timestamp_columns = [  # a zero TIMESTAMP is read as the epoch
                i for i, n in enumerate(self.columns) if names[n].data_type == "timestamp"
            ]
            self._types = [names[n].data_type for n in self.columns]
            state = None
            if table_exists(self.conn, capture_table(self.spec)):
                with self.conn.cursor() as cur:
                    state = capture_state(cur, self.spec)
            if state is None:
                raise CaptureRefused(
                    "change capture has no start position yet: copy a day first "
                    "(bigint_table_copy records it before reading)"
                )
            self.names_in_events = preflight(self.conn, self.spec, state.applied)
            self.conn.commit()
        except BaseException:
            self.conn.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()  # releases the lock

    # ------------------------------------------------------------------ draining

    def state(self) -> CaptureState:
        with self.conn.cursor() as cur:
            state = capture_state(cur, self.spec)
        self.conn.commit()
        assert state is not None  # checked on entering
        return state

    def drain(
        self,
        *,
        until: Position | None = None,
        max_seconds: float | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        measure_lag: bool = True,
        after_batch: Any = None,
    ) -> DrainResult:
        """Apply changes from the stored position: to the binlog's end as it is now, or,
        with `until`, at least to that position (waiting for it to be written), or for
        about `max_seconds`. `after_batch(result)` runs after each commit (tests)."""
        started = time.monotonic()
        state = self.state()
        result = DrainResult(start=state.applied, applied=state.applied)
        self.touched: set[dt.date] = set()
        self.batch = state.batches
        while True:
            out_of_time = self._pass(result, batch_rows, until, started, max_seconds, after_batch)
            assert result.applied is not None
            if until is None or result.applied.at_or_after(until) or out_of_time:
                break
            time.sleep(0.02)  # `until` not yet sent to us: read on
        result.changed_days = sorted(self.touched)
        result.seconds = time.monotonic() - started
        if measure_lag:
            self._measure_lag(result)
        return result

    def _pass(
        self,
        result: DrainResult,
        batch_rows: int,
        until: Position | None,
        started: float,
        max_seconds: float | None,
        after_batch: Any,
    ) -> bool:
        """One read to the binlog's end; True when stopped by `until` or the time budget."""
        pending: dict[Any, tuple | None] = {}  # key -> its last after-image (None: deleted)
        days: dict[dt.date, list[int]] = {}  # day -> [changes, first ts, last ts]
        committed = result.applied
        whole: Position | None = None  # the last whole transaction's end, not yet committed
        rows_batch = rows_open = last_ts = 0  # rows since the commit / in the open transaction
        batch_started = time.monotonic()
        assert committed is not None
        decoders = self._decoders(committed)
        reader = functools.partial(read_changes_in_processes, decoders=decoders)
        changes = (reader if decoders else read_changes)(
            replication_settings(self.settings),
            self.settings.database,
            self.spec,
            self.columns,
            committed,
            names_in_events=self.names_in_events,
            unsigned_bits=self.unsigned,
        )
        try:
            for item in _with_refusal_last(changes):
                if isinstance(item, CaptureRefused):
                    # what came before the DDL is whole transactions: keep it, then refuse
                    if whole is not None and not rows_open:
                        self._flush(pending, days)
                        self._commit(whole, rows_batch, last_ts)
                        result.applied = whole
                    raise item
                if isinstance(item, RowChange):
                    self._add(item, pending, days)
                    rows_batch += 1
                    rows_open += 1
                    result.row_events += 1
                    last_ts = item.timestamp
                    if len(pending) >= batch_rows:  # a long transaction: write it in pieces
                        self._flush(pending, days)
                    continue
                if item.end and rows_open:  # never: the binlog holds whole transactions
                    self.conn.rollback()
                    result.applied = committed
                    return False
                result.caught_up = item.end
                result.transactions += not item.end
                whole, rows_open = item.position, 0
                reached = until is not None and whole.at_or_after(until)
                out_of_time = max_seconds is not None and time.monotonic() - started >= max_seconds
                if not (
                    item.end
                    or reached
                    or out_of_time
                    or rows_batch >= batch_rows
                    or time.monotonic() - batch_started >= _COMMIT_EVERY_S
                ):
                    continue
                self._flush(pending, days)
                self._commit(whole, rows_batch, last_ts)
                committed = result.applied = whole
                whole, rows_batch, batch_started = None, 0, time.monotonic()
                result.batches += 1
                if after_batch:
                    after_batch(result)
                if reached or out_of_time:
                    return True
            return False
        finally:
            changes.close()

    def _decoders(self, applied: Position) -> int:
        """Decoder processes for this read: none (decoded here) for a small backlog."""
        if self.decoders is not None:
            return self.decoders
        files = binary_logs(self.conn)
        behind = bytes_between(files, applied, server_position(self.conn))
        return DEFAULT_DECODERS if behind >= _PROCESS_BACKLOG else 0

    def _add(self, change: RowChange, pending: dict, days: dict) -> None:
        for day in {
            image[self.time_index].date()
            for image in (change.before, change.after)
            if image is not None and image[self.time_index] is not None
        }:
            entry = days.setdefault(day, [0, change.timestamp, change.timestamp])
            entry[0] += 1
            entry[2] = change.timestamp
        if change.before is not None and (
            change.after is None or change.after[self.pk_index] != change.before[self.pk_index]
        ):
            pending[change.before[self.pk_index]] = None
        if change.after is not None:
            pending[change.after[self.pk_index]] = change.after

    def _flush(self, pending: dict, days: dict) -> None:
        """Write the batch's last image per key (no commit)."""
        batch = self.batch + 1
        self.touched.update(days)
        with self.conn.cursor() as cur:
            deleted = [k for k, image in pending.items() if image is None]
            images = [image for image in pending.values() if image is not None]
            pk = self.sql.pk
            for part in _parts(deleted, 1000):
                cur.execute(
                    f"DELETE FROM {self.sql.target} WHERE {pk} IN ({_marks(part)})",
                    part,
                )
            tombstoned: set = set()
            for part in _parts([image[self.pk_index] for image in images], 1000):
                cur.execute(
                    f"SELECT `legacy_id` FROM {q(tombstones_table(self.spec))} WHERE `legacy_id`"
                    f" IN ({_marks(part)})",
                    part,
                )
                tombstoned.update(row[0] for row in cur.fetchall())
            if tombstoned:
                images = [image for image in images if image[self.pk_index] not in tombstoned]
            if self.zero_date_columns or self.timestamp_columns:
                images = self._zero_dates(cur, images)
            with legacy_dates(self.conn):  # zero dates of a 5.6 table under 5.7/8.0's sql_mode
                for part in _parts(images, 500):
                    cur.execute(self.sql.upsert(len(part)), [v for image in part for v in image])
            for day, (n, first, last) in days.items():  # a few days per batch
                cur.execute(
                    f"INSERT INTO {q(changed_days_table(self.spec))} VALUES (%s, %s,"
                    " FROM_UNIXTIME(%s), FROM_UNIXTIME(%s), %s) ON DUPLICATE KEY UPDATE"
                    " `row_events` = `row_events` + %s, `last_change_at` = FROM_UNIXTIME(%s),"
                    " `last_batch` = %s",
                    (day, n, first, last, batch, n, last, batch),
                )
        pending.clear()
        days.clear()

    def _zero_dates(self, cur: Any, images: list[tuple]) -> list[tuple]:
        """The reader decodes a zero date (`0000-00-00`, `2024-00-00`) as None: in a NOT NULL
        column that can only be one, so its value is read again from the legacy row as text
        (its current state: a later event of the row follows in the binlog), or, for a row
        deleted since, the zero date (its delete follows). A zero TIMESTAMP is stored as 0 and
        read as the epoch, which no TIMESTAMP can hold otherwise (they start a second later)."""
        if self.timestamp_columns:
            images = [
                tuple(
                    _ZERO_DATES["timestamp"] if i in self.timestamp_columns and v == _EPOCH else v
                    for i, v in enumerate(image)
                )
                if any(image[c] == _EPOCH for c in self.timestamp_columns)
                else image
                for image in images
            ]
        unsure = [
            i
            for i, image in enumerate(images)
            if any(image[c] is None for c in self.zero_date_columns)
        ]
        if not unsure:
            return images
        names = [self.columns[c] for c in self.zero_date_columns]
        found: dict[Any, tuple] = {}
        ids = [images[i][self.pk_index] for i in unsure]
        for part in _parts(ids, 1000):
            cur.execute(
                f"SELECT {self.sql.pk}, "
                + ", ".join(f"CAST({q(n)} AS CHAR)" for n in names)
                + f" FROM {self.sql.source} WHERE {self.sql.pk} IN ({_marks(part)})",
                part,
            )
            found.update((row[0], row[1:]) for row in cur.fetchall())
        images = list(images)
        for i in unsure:
            image = list(images[i])
            current = found.get(image[self.pk_index])
            for k, c in enumerate(self.zero_date_columns):
                if image[c] is None:
                    image[c] = current[k] if current else _ZERO_DATES[self._types[c]]
            images[i] = tuple(image)
        return images

    def _commit(self, position: Position, rows: int, last_ts: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                f"UPDATE {q(capture_table(self.spec))} SET `file` = %s, `pos` = %s, `gtid` = %s,"
                " `batches` = `batches` + 1, `row_events` = `row_events` + %s, `last_event_at`"
                " = COALESCE(FROM_UNIXTIME(NULLIF(%s, 0)), `last_event_at`), `updated_at` ="
                " UTC_TIMESTAMP() WHERE `id` = 1",
                (position.file, position.pos, position.gtid, rows, last_ts),
            )
        self.conn.commit()
        self.batch += 1

    def _measure_lag(self, result: DrainResult) -> None:
        head = server_position(self.conn)
        result.head = head
        applied = result.applied
        assert applied is not None
        files = binary_logs(self.conn)
        result.behind_bytes = bytes_between(files, applied, head)
        if result.caught_up:  # read to the end (what follows is this applier's own commit)
            return
        with self.conn.cursor() as cur:
            events = 0
            for name in sorted(n for n in files if applied.file <= n <= head.file):
                if events >= _EVENTS_BEHIND_CAP:
                    break
                start = applied.pos if name == applied.file else 4
                cur.execute(
                    f"SHOW BINLOG EVENTS IN %s FROM {int(start)} LIMIT "
                    f"{_EVENTS_BEHIND_CAP - events}",
                    (name,),
                )
                events += len(cur.fetchall())
            result.behind_events = events
            cur.execute(
                f"SELECT UNIX_TIMESTAMP() - UNIX_TIMESTAMP(`last_event_at`) FROM "
                f"{q(capture_table(self.spec))} WHERE `id` = 1"
            )
            row = cur.fetchone()
            result.lag_seconds = float(row[0]) if row and row[0] is not None else 0.0
        self.conn.commit()


def _with_refusal_last(changes: Iterator) -> Iterator:
    """The reader's items, and a CaptureRefused it raises as a last item (so the applier can
    keep the whole transactions before it)."""
    try:
        yield from changes
    except CaptureRefused as refused:
        yield refused


def _marks(items: list) -> str:
    return ", ".join(["%s"] * len(items))


def _parts(items: list, size: int) -> Iterator[list]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def changed_days(conn: Any, spec: MigrationSpec, *, after_batch: int = 0) -> list[dt.date]:
    """The days the applier changed in batches after `after_batch` (0: every one)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT `day` FROM {q(changed_days_table(spec))} WHERE `last_batch` > %s"
            " ORDER BY `day`",
            (after_batch,),
        )
        return [row[0] for row in cur.fetchall()]


def days_changed_since_copy(conn: Any, spec: MigrationSpec) -> list[dt.date]:
    """Copied days the applier changed after their copy ended (by the binlog's event times;
    for reporting: the cutover verifies every day changed since capture began)."""
    from .legacy import copied_days_table

    with conn.cursor() as cur:
        cur.execute(
            f"SELECT c.`day` FROM {q(changed_days_table(spec))} c JOIN "
            f"{q(copied_days_table(spec))} d ON d.`day` = c.`day` WHERE c.`last_change_at` >="
            " d.`copied_at` ORDER BY c.`day`"
        )
        days = [row[0] for row in cur.fetchall()]
    conn.commit()
    return days


def drain(
    settings: MySQLSettings,
    spec: MigrationSpec,
    *,
    max_seconds: float | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    lock_timeout_s: float = 0,
) -> DrainResult:
    """One bounded drain (the Dagster op's and the catch-up's)."""
    with ChangeApplier(settings, spec, lock_timeout_s=lock_timeout_s) as applier:
        return applier.drain(max_seconds=max_seconds, batch_rows=batch_rows)
