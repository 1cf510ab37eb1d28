"""Reading the legacy table's changes from the server's row-based binlog (no Dagster here).

Change capture (`legacy_copy.change_capture: binlog`, the default) poses as a replica with
`mysql-replication` (python-mysql-replication, on pymysql): no protocol code of our own. This
module holds what reading needs: the checks that refuse rather than lose a change (binlog off
or not ROW, an image that is not FULL, missing replication grants, a purged position, a DDL on
the legacy table), the start position recorded before the first chunk of the first day is
read, and a stream of the legacy table's row changes with the position after each
transaction. Applying them is `apply.py`'s.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql

from ..identifiers import quote_identifier as q
from ..spec import MigrationSpec
from .catalog import table_columns

AURORA_FIX = (
    "On Aurora MySQL: set binlog_format=ROW (and binlog_row_image=FULL) in the DB cluster "
    "parameter group and reboot the writer; on MySQL/MariaDB: start the server with "
    "--log-bin --binlog-format=ROW --binlog-row-image=FULL --server-id=N"
    " (--binlog-row-metadata=FULL on MySQL 8 / MariaDB 10.5+)"
)
RETENTION_FIX = (
    "keep binlogs longer than the migration takes: on Aurora MySQL "
    "CALL mysql.rds_set_configuration('binlog retention hours', N); on MySQL/MariaDB "
    "binlog_expire_logs_seconds"
)
_DDL = re.compile(
    r"^\s*(?:/\*.*?\*/\s*)*(ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE|DROP\s+TABLE|RENAME\s+TABLES?"
    r"|TRUNCATE(?:\s+TABLE)?|CREATE\s+OR\s+REPLACE\s+TABLE)\b",
    re.IGNORECASE | re.DOTALL,
)

_IN_TRANSACTION = re.compile(
    r"^\s*(BEGIN|SAVEPOINT|ROLLBACK\s+TO|XA\s+(START|BEGIN|END|PREPARE))", re.IGNORECASE
)


class CaptureRefused(RuntimeError):
    """Change capture cannot go on without losing a change; the message says how to fix it.
    Nothing was half-applied: the stored position is that of the last applied transaction."""


@dataclass(frozen=True)
class Position:
    file: str
    pos: int
    gtid: str | None = None  # the server's GTID state there, where it has one (informational)

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"

    def at_or_after(self, other: Position) -> bool:
        """Binlog files are numbered with a fixed-width suffix, so names order as files do."""
        return (self.file, self.pos) >= (other.file, other.pos)


# --------------------------------------------------------------------------- bookkeeping


def capture_table(spec: MigrationSpec) -> str:
    return f"{spec.mysql.target_table[:56]}_capture"


def changed_days_table(spec: MigrationSpec) -> str:
    return f"{spec.mysql.target_table[:51]}_changed_days"


def capture_bookkeeping_ddl(spec: MigrationSpec) -> list[str]:
    """Where capture started and where it stands (file, offset, GTID), and each day the
    applier changed: the days the cutover verifies again."""
    return [
        f"CREATE TABLE IF NOT EXISTS {q(capture_table(spec))} (`id` TINYINT NOT NULL PRIMARY KEY,"
        " `start_file` VARCHAR(255) NOT NULL, `start_pos` BIGINT NOT NULL, `start_gtid` TEXT,"
        " `file` VARCHAR(255) NOT NULL, `pos` BIGINT NOT NULL, `gtid` TEXT,"
        " `batches` BIGINT NOT NULL DEFAULT 0, `row_events` BIGINT NOT NULL DEFAULT 0,"
        " `last_event_at` DATETIME NULL, `started_at` DATETIME NOT NULL,"
        " `updated_at` DATETIME NOT NULL) ENGINE=InnoDB",
        f"CREATE TABLE IF NOT EXISTS {q(changed_days_table(spec))} (`day` DATE NOT NULL PRIMARY"
        " KEY, `row_events` BIGINT NOT NULL, `first_change_at` DATETIME NULL,"
        " `last_change_at` DATETIME NULL, `last_batch` BIGINT NOT NULL) ENGINE=InnoDB",
    ]


@dataclass(frozen=True)
class CaptureState:
    start: Position
    applied: Position
    batches: int
    row_events: int
    last_event_at: dt.datetime | None


def capture_state(
    cur: Any, spec: MigrationSpec, *, for_update: bool = False
) -> CaptureState | None:
    cur.execute(
        "SELECT `start_file`, `start_pos`, `start_gtid`, `file`, `pos`, `gtid`, `batches`,"
        f" `row_events`, `last_event_at` FROM {q(capture_table(spec))} WHERE `id` = 1"
        + (" FOR UPDATE" if for_update else "")
    )
    row = cur.fetchone()
    if row is None:
        return None
    return CaptureState(
        Position(row[0], int(row[1]), row[2]),
        Position(row[3], int(row[4]), row[5]),
        int(row[6]),
        int(row[7]),
        row[8],
    )


# --------------------------------------------------------------------------- the server


def _variable(cur: Any, name: str) -> str | None:
    cur.execute("SHOW GLOBAL VARIABLES LIKE %s", (name,))
    row = cur.fetchone()
    return None if row is None else str(row[1])


def server_position(conn: Any) -> Position:
    """The server's binlog head: where the next transaction will be written."""
    with conn.cursor() as cur:
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:  # MySQL 8.4 renamed it
            cur.execute("SHOW BINARY LOG STATUS")
        row = cur.fetchone()
        if row is None:
            raise CaptureRefused(
                f"the server's binlog is off: change capture needs it. {AURORA_FIX}"
            )
        gtid = _variable(cur, "gtid_binlog_pos")  # MariaDB
        if gtid is None:
            gtid = _variable(cur, "gtid_executed")  # MySQL with gtid_mode
    return Position(str(row[0]), int(row[1]), gtid or None)


def binary_logs(conn: Any) -> dict[str, int]:
    """The binlog files the server still has, with their sizes."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return {str(row[0]): int(row[1]) for row in cur.fetchall()}


def _grants(cur: Any) -> str:
    """The current user's grants, with those of its active roles (MySQL 8 / Aurora MySQL 3,
    whose master user holds its privileges through `rds_superuser_role`)."""
    cur.execute("SHOW GRANTS")
    grants = [str(row[0]) for row in cur.fetchall()]
    try:
        cur.execute("SELECT CURRENT_ROLE()")
        roles = cur.fetchone()[0]
        if roles and str(roles).upper() != "NONE" and "@" in str(roles):
            # the server's own list of quoted role names, e.g. `rds_superuser_role`@`%`
            cur.execute(f"SHOW GRANTS FOR CURRENT_USER() USING {roles}")
            grants += [str(row[0]) for row in cur.fetchall()]
    except pymysql.err.MySQLError:  # MariaDB lists an enabled role's grants already
        pass
    return " ".join(grants).upper()


def preflight(conn: Any, spec: MigrationSpec, stored: Position | None = None) -> bool:
    """Refuse (CaptureRefused) whatever would let a change go unseen; return whether row
    events carry the column names (binlog_row_metadata=FULL; servers without the variable,
    MySQL 5.6/5.7 and Aurora MySQL 2, are read with names from information_schema)."""
    with conn.cursor() as cur:
        log_bin = _variable(cur, "log_bin")
        if (log_bin or "OFF").upper() not in ("ON", "1"):
            raise CaptureRefused(
                f"the server's binlog is off (log_bin={log_bin}): change capture of "
                f"{spec.legacy_copy.source_table!r} needs it. {AURORA_FIX}; or set "
                "legacy_copy.change_capture: none for an append-only table"
            )
        binlog_format = (_variable(cur, "binlog_format") or "").upper()
        if binlog_format != "ROW":
            raise CaptureRefused(
                f"binlog_format is {binlog_format or 'unset'}, not ROW: statement-based events "
                f"do not say which rows changed. {AURORA_FIX}"
            )
        image = (_variable(cur, "binlog_row_image") or "FULL").upper()
        if image != "FULL":
            raise CaptureRefused(
                f"binlog_row_image is {image}, not FULL: updates would not carry every column. "
                "SET GLOBAL binlog_row_image = FULL (on Aurora MySQL: in the DB cluster "
                "parameter group), then run again"
            )
        metadata = _variable(cur, "binlog_row_metadata")
        if metadata is not None and metadata.upper() != "FULL":
            raise CaptureRefused(
                f"binlog_row_metadata is {metadata}, not FULL: row events would not carry the "
                "column names and signedness. SET GLOBAL binlog_row_metadata = FULL (on Aurora "
                "MySQL 3: in the DB cluster parameter group), then run again"
            )
        grants = _grants(cur)
        for needed, alias in (
            ("REPLICATION SLAVE", "REPLICATION REPLICA"),
            ("REPLICATION CLIENT", "BINLOG MONITOR"),
        ):
            if (
                "ALL PRIVILEGES ON *.*" not in grants
                and needed not in grants
                and alias not in grants
            ):
                cur.execute("SELECT CURRENT_USER()")
                user = cur.fetchone()[0]
                raise CaptureRefused(
                    f"the MySQL user {user} lacks the {needed} privilege change capture needs: "
                    "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO that user"
                )
    if stored is not None:
        files = binary_logs(conn)
        if stored.file not in files or stored.pos > files[stored.file]:
            oldest = min(files) if files else "none"
            raise CaptureRefused(
                f"the binlog position change capture stopped at ({stored}) was purged from the "
                f"server (oldest binlog kept: {oldest}): the changes since then cannot be read "
                f"and nothing was applied. To start over, drop {spec.mysql.target_table!r} and "
                f"its bookkeeping tables and copy every day again; and {RETENTION_FIX}"
            )
    return metadata is not None


def record_start(conn: Any, spec: MigrationSpec) -> CaptureState:
    """Check the server, then record where capture starts unless it already has: called before
    a copy reads anything, so every change the copy may miss lies after the position. Days
    copied before capture was turned on are marked uncopied (they missed changes)."""
    from .legacy import copied_days_table  # legacy imports this module

    with conn.cursor() as cur:
        for ddl in capture_bookkeeping_ddl(spec):
            cur.execute(ddl)
        state = capture_state(cur, spec)
        preflight(conn, spec, state.applied if state else None)
        if state is not None:
            conn.commit()
            return state
        position = server_position(conn)
        cur.execute(
            f"INSERT IGNORE INTO {q(capture_table(spec))} (`id`, `start_file`, `start_pos`,"
            " `start_gtid`, `file`, `pos`, `gtid`, `started_at`, `updated_at`) VALUES"
            " (1, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(), UTC_TIMESTAMP())",
            (position.file, position.pos, position.gtid) * 2,
        )
        if cur.rowcount:
            cur.execute(f"DELETE FROM {q(copied_days_table(spec))}")
        state = capture_state(cur, spec, for_update=True)  # maybe a concurrent copy's
    conn.commit()
    assert state is not None
    return state


def replica_server_id(database: str, spec: MigrationSpec) -> int:
    """A server id of our own per migration (replicas must differ from each other)."""
    return 1 << 30 | zlib.crc32(f"{database}.{spec.mysql.target_table}".encode()) & 0xFFFFFF


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RowChange:
    """One row's change, values in the legacy table's column order: `after` is the full new
    row (insert, update), `before` the old one (update, delete)."""

    before: tuple | None
    after: tuple | None
    timestamp: int  # the event's time on the server (epoch seconds)


@dataclass(frozen=True)
class Slot:
    """The leading decoder's place holder for rows event `number`, decoded by another."""

    number: int


@dataclass(frozen=True)
class Owned:
    """Rows event `number`'s changes, from the decoder that owns it."""

    number: int
    changes: list[RowChange]


@dataclass(frozen=True)
class Commit:
    """A transaction ended; reading resumes at `position` (where the next event starts)."""

    position: Position
    timestamp: int
    end: bool = False  # the binlog's end as it was: no transaction here, only a position


def read_changes(
    connection_settings: dict[str, Any],
    database: str,
    spec: MigrationSpec,
    columns: list[str],
    start: Position,
    *,
    names_in_events: bool,
    unsigned_bits: dict[str, int],
    share: tuple[int, int] | None = None,
) -> Iterator[RowChange | Commit | Slot | Owned]:
    """The legacy table's row changes from `start` to the end of the binlog as it is now
    (non-blocking), each transaction's followed by its Commit; a DDL on the legacy table
    raises CaptureRefused before anything after it is yielded.

    `share=(k, n)`: one of n decoders (`read_changes_in_processes`). Rows events are numbered
    in binlog order and event i is decoded by decoder i % n only (mysql-replication decodes
    an event's rows when they are first asked for). Decoder 0 leads: it yields everything,
    a Slot for each event another decoder owns; the others follow (blocking, never ending
    before the leader) and yield only the Owned events."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, QueryEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    assert spec.legacy_copy is not None
    source = spec.legacy_copy.source_table
    decoder, decoders = share or (0, 1)
    stream = BinLogStreamReader(
        connection_settings=connection_settings,
        server_id=replica_server_id(database, spec) + decoder,  # one dump per server id
        resume_stream=True,
        blocking=decoder > 0,
        log_file=start.file,
        log_pos=start.pos,
        only_events=[
            WriteRowsEvent,
            UpdateRowsEvent,
            DeleteRowsEvent,
            XidEvent,
            QueryEvent,
            GtidEvent,
            MariadbGtidEvent,
        ],
        only_schemas=[database],
        only_tables=[source],
        use_column_name_cache=not names_in_events,
        enable_logging=False,
    )
    mentions = re.compile(rf"(?<![\w$])`?{re.escape(source)}`?(?![\w$])", re.IGNORECASE)
    gtid: str | None = start.gtid
    number = -1
    try:
        for event in stream:
            if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                number += 1
                if number % decoders != decoder:
                    if decoder == 0:
                        yield Slot(number)
                    continue
                if decoder > 0:
                    yield Owned(number, list(_changes(event, columns, unsigned_bits)))
                    continue
                yield from _changes(event, columns, unsigned_bits)
            elif decoder > 0:
                continue  # a follower: only rows
            elif isinstance(event, XidEvent):
                yield Commit(Position(stream.log_file, stream.log_pos, gtid), event.timestamp)
            elif isinstance(event, GtidEvent | MariadbGtidEvent):
                gtid = event.gtid
            elif isinstance(event, QueryEvent):
                query = event.query if isinstance(event.query, str) else event.query.decode()
                schema = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
                if (
                    _DDL.match(query)
                    and mentions.search(query)
                    and (schema == database or database in query)
                ):
                    raise CaptureRefused(
                        f"a DDL statement on the legacy table {source!r} at binlog "
                        f"{stream.log_file}:{stream.log_pos} ({query.strip()[:120]!r}): the new "
                        "table cannot follow a change of the legacy table's definition, and "
                        "every change before it was applied. Drop "
                        f"{spec.mysql.target_table!r} and its bookkeeping tables and copy again "
                        "(alter the legacy table only after the cutover)"
                    )
                if not _IN_TRANSACTION.match(query):  # COMMIT, or a statement of its own
                    yield Commit(Position(stream.log_file, stream.log_pos, gtid), event.timestamp)
        # the end: what followed the last transaction (other tables' maps, a rotation) is
        # passed, so a drain `until` a position can reach it
        yield Commit(Position(stream.log_file, stream.log_pos, gtid), 0, end=True)
    finally:
        stream.close()


def read_changes_in_processes(
    *args: Any, decoders: int = 2, batch: int = 1_000, **kwargs: Any
) -> Iterator[RowChange | Commit]:
    """`read_changes` (same arguments and items) decoded by `decoders` child processes, each
    taking every n-th rows event (mysql-replication decodes in pure Python: this spreads it
    over cores, away from the applier). Items travel in batches through bounded queues; the
    leader's stream gives the order. Worth its start-up (about a second) for a backlog."""
    import multiprocessing
    from collections import deque

    context = multiprocessing.get_context("spawn")  # no fork of a threaded Dagster process
    channels, children = [], []
    for decoder in range(decoders):
        channel = context.Queue(maxsize=64)  # bounded memory: 64 batches in flight each
        child = context.Process(
            target=_read_into,
            # a follower never reaches an end: it sends each event as soon as it has it
            args=(
                channel,
                args,
                {**kwargs, "share": (decoder, decoders)},
                batch if decoder == 0 else 1,
                os.getpid(),
            ),
            daemon=True,
            name=f"binlog-decoder-{decoder}",
        )
        child.start()
        channels.append(channel)
        children.append(child)
    pending: list[deque] = [deque() for _ in range(decoders)]

    def take(decoder: int) -> Any:
        while not pending[decoder]:
            items = _receive(channels[decoder], children[decoder])
            if items is None:
                raise RuntimeError(f"binlog decoder {decoder} ended before the leader")
            pending[decoder].extend(items)
        return pending[decoder].popleft()

    try:
        while True:
            items = _receive(channels[0], children[0])
            if items is None:
                return
            for item in items:
                if isinstance(item, Slot):
                    owned = take(item.number % decoders)
                    assert owned.number == item.number, (owned.number, item.number)
                    yield from owned.changes
                else:
                    yield item
    finally:
        for child in children:
            child.terminate()
        for child, channel in zip(children, channels, strict=True):
            child.join(timeout=10)
            channel.close()


def _receive(channel: Any, child: Any) -> Any:
    """The next batch (None: the end), raising what the child sent or its death."""
    import queue as queues

    while True:
        try:
            items = channel.get(timeout=1.0)
        except queues.Empty:
            if not child.is_alive():
                exited = f"the binlog reader process exited ({child.exitcode})"
                raise RuntimeError(exited) from None
            continue
        if isinstance(items, BaseException):
            raise items
        return items


def _read_into(channel: Any, args: tuple, kwargs: dict, batch: int, parent: int) -> None:
    import queue as queues

    def send(message: Any) -> None:
        while True:  # a parent killed with SIGKILL cannot stop us: give up once orphaned
            try:
                channel.put(message, timeout=1.0)
                return
            except queues.Full:
                if os.getppid() != parent:
                    os._exit(1)

    items: list = []
    try:
        for item in read_changes(*args, **kwargs):
            items.append(item)
            if len(items) >= batch:
                send(items)
                items = []
        send(items)
        send(None)
    except CaptureRefused as refused:
        send(items)
        send(refused)
    except Exception as exc:  # sent as text: a driver's exception may not survive pickling
        send(items)
        send(RuntimeError(f"the binlog reader failed: {type(exc).__name__}: {exc}"))


def bytes_between(files: dict[str, int], applied: Position, head: Position) -> int:
    """Binlog bytes from `applied` to `head` (`files`: SHOW BINARY LOGS)."""
    if applied.file == head.file:
        return max(0, head.pos - applied.pos)
    middle = sum(size for name, size in files.items() if applied.file < name < head.file)
    return files.get(applied.file, applied.pos) - applied.pos + middle + head.pos


def _changes(event: Any, columns: list[str], unsigned_bits: dict[str, int]) -> Iterator[RowChange]:
    from pymysqlreplication.row_event import DeleteRowsEvent, WriteRowsEvent

    for row in event.rows:
        yield RowChange(
            None
            if isinstance(event, WriteRowsEvent)
            else _values(row.get("before_values", row.get("values")), columns, unsigned_bits),
            None
            if isinstance(event, DeleteRowsEvent)
            else _values(row.get("after_values", row.get("values")), columns, unsigned_bits),
            event.timestamp,
        )


def _values(row: dict[str, Any], columns: list[str], unsigned_bits: dict[str, int]) -> tuple:
    """A row event's values in column order. Without binlog_row_metadata the reader cannot
    know a column is UNSIGNED and decodes large values as negative: put them back."""
    try:
        values = [row[name] for name in columns]
    except KeyError as exc:
        raise CaptureRefused(
            f"a row event lacks the column {exc.args[0]!r} (it has {sorted(row)}): the legacy "
            "table's definition changed or the binlog lacks column names "
            "(binlog_row_metadata=FULL)"
        ) from None
    for index, name in enumerate(columns):
        value = values[index]
        if name in unsigned_bits and isinstance(value, int) and value < 0:
            values[index] = value + (1 << unsigned_bits[name])
        elif isinstance(value, set):  # SET columns
            values[index] = ",".join(sorted(value))
        elif isinstance(value, dict | list):  # MySQL's binary JSON, decoded by the reader
            values[index] = _json(value)
    return tuple(values)


def _json(value: Any) -> str:
    import json

    def plain(item: Any) -> Any:
        if isinstance(item, bytes):
            return item.decode()
        if isinstance(item, dict):
            return {plain(k): plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        return item

    return json.dumps(plain(value))


def unsigned_integer_bits(conn: Any, table: str) -> dict[str, int]:
    bits = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "bigint": 64}
    return {
        name: bits[info.data_type]
        for name, info in table_columns(conn, table).items()
        if info.data_type in bits and "unsigned" in info.column_type
    }
