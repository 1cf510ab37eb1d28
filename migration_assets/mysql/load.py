"""Load one day's Parquet rows into the staging table.

Fast path: the Arrow table is turned into MySQL's tab-separated load format by Arrow kernels
(no Python loop per row), written to a local file and sent with `LOAD DATA LOCAL INFILE` in
the order of the staging table's primary key (`_day`, `_seq`), so InnoDB appends. Servers that
refuse LOCAL INFILE get multi-row INSERTs instead. The day's old rows are deleted in the same
transaction, so readers see the old day or the new one, never a mix; a failure rolls back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pymysql

from ..dynamodb.changes import CHANGE
from ..identifiers import quote_identifier as q
from ..identifiers import quote_identifiers
from ..spec import MigrationSpec
from .ddl import DAY, SEQ, merges_table

LoadMethod = Literal["auto", "local_infile", "insert"]
# not allowed, rejected, disabled (MySQL 8.0), disabled (MariaDB 10.11)
_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 4166}
_INSERT_BATCH = 5_000
FEED_THREAD = "load-data-feed"  # the thread writing the load text into the named pipe
_log = logging.getLogger(__name__)


class LoadError(RuntimeError):
    """The server reported a problem with loaded values (a warning under LOCAL is an error)."""


LOCAL_INFILE_HELP = (
    "LOAD DATA LOCAL INFILE was refused (server error {code}), so the day was loaded with "
    "multi-row INSERTs, several times slower. Enable it on the server: local_infile=1 (MySQL "
    "8.0 defaults to OFF; on Aurora MySQL set it in the DB cluster parameter group); the "
    "client side already allows it."
)


@dataclass
class LoadResult:
    day: dt.date
    rows: int
    deleted_before: int
    method: str
    seconds: float
    fallback: str | None = None  # why the INSERT fallback was used (LOCAL_INFILE_HELP)


def _text(values: pa.Array, kind: str) -> pa.Array:
    """One column as load-format text: escaped, NULL as \\N."""
    if kind == "boolean":
        text = pc.if_else(values, "1", "0")
    elif kind == "datetime":
        naive = pc.cast(values, pa.timestamp(values.type.unit))  # UTC wall clock
        text = pc.cast(naive, pa.string())
    elif kind in ("varbinary", "blob"):
        text = pa.array(
            [None if v is None else v.hex() for v in values.to_pylist()], pa.string()
        )  # one C call per value; sent as hex and UNHEX()ed by the server
    else:
        text = pc.cast(values, pa.string())
        if kind in ("varchar", "text", "json"):
            for raw, escaped in (
                ("\\", "\\\\"),
                ("\t", "\\t"),
                ("\n", "\\n"),
                ("\r", "\\r"),
                ("\x00", "\\0"),
            ):
                text = pc.replace_substring(text, raw, escaped)
    return pc.fill_null(text, "\\N")


def tsv_chunks(table: pa.Table, spec: MigrationSpec, first_seq: int = 1) -> Iterator[bytes]:
    """The rows as LOAD DATA text (`_seq`, `_change`, spec columns), in bounded chunks."""
    for offset in range(0, table.num_rows, 250_000):
        part = table.slice(offset, 250_000)
        seq = pa.array(range(first_seq + offset, first_seq + offset + part.num_rows), pa.int64())
        columns = [pc.cast(seq, pa.string()), part.column(CHANGE).combine_chunks()]
        for column in spec.columns:
            columns.append(_text(part.column(column.column).combine_chunks(), column.type.kind))
        lines = pc.binary_join_element_wise(*columns, "\t")
        lines = pc.binary_join_element_wise(lines, "", "\n")
        if lines.null_count:  # pragma: no cover - every field is filled (NULL is \N)
            raise ValueError("a load line is null")
        _, offsets, data = lines.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int32)[
            lines.offset : lines.offset + len(lines) + 1
        ]
        yield memoryview(data)[int(bounds[0]) : int(bounds[-1])].tobytes()


def _load_columns(spec: MigrationSpec) -> tuple[str, str]:
    """The LOAD DATA column list and SET clause (binary columns arrive as hex)."""
    names, sets = [q(SEQ), q(CHANGE)], []
    for column in spec.columns:
        if column.type.kind in ("varbinary", "blob"):
            variable = f"@hex_{len(sets)}"
            names.append(variable)
            sets.append(f"{q(column.column)} = UNHEX({variable})")
        else:
            names.append(q(column.column))
    return ", ".join(names), ", ".join([f"{q(DAY)} = %s", *sets])


def _check_warnings(cur: Any, table: str) -> None:
    cur.execute("SHOW WARNINGS LIMIT 5")
    warnings = cur.fetchall()
    if warnings:
        details = "; ".join(f"{level} {code}: {message}" for level, code, message in warnings)
        raise LoadError(f"loading {table!r} produced warnings, so values were changed: {details}")


def _feed_pipe(path: str, chunks: Iterator[bytes], errors: list[BaseException]) -> None:
    """Write the load text into the named pipe as the server reads it (runs in a thread).

    A write to a pipe that a signal interrupts returns the bytes written so far, which an
    unbuffered file reports rather than retries: the rest is written again, so no byte is
    lost (found under a sampling profiler, whose pauses cut a day's text short)."""
    try:
        with open(path, "wb", buffering=0) as pipe:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[pipe.write(view) or 0 :]
    except BrokenPipeError:
        pass  # the reader went away: the LOAD statement failed and reports why
    except BaseException as exc:  # surfaced by the caller after the statement
        errors.append(exc)


def _unblock_writer(path: str) -> None:
    """Open the pipe's read end once, so a writer still waiting in open() can finish."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))


def _load_local_infile(cur: Any, spec: MigrationSpec, day: dt.date, table: pa.Table) -> None:
    """Stream the day through a named pipe: Arrow formats the next rows while the server
    inserts the previous ones, and no copy of the day lands on local disk."""
    columns, sets = _load_columns(spec)
    folder = tempfile.mkdtemp(prefix="load-")
    path = os.path.join(folder, "day.tsv")
    os.mkfifo(path, 0o600)
    errors: list[BaseException] = []
    writer = threading.Thread(
        target=_feed_pipe,
        args=(path, tsv_chunks(table, spec), errors),
        name=FEED_THREAD,
        daemon=True,
    )
    writer.start()
    try:
        cur.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {q(spec.mysql.temp_table)} "
            "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
            f"LINES TERMINATED BY '\\n' ({columns}) SET {sets}",
            (path, day),
        )
        loaded = cur.rowcount
    finally:
        # the writer may not have reached open() yet when the statement failed early: keep
        # opening the read end until it has finished (it then gets a broken pipe and exits)
        while writer.is_alive():
            _unblock_writer(path)
            writer.join(timeout=0.1)
        os.unlink(path)
        os.rmdir(folder)
    if errors:
        raise errors[0]
    _check_warnings(cur, spec.mysql.temp_table)
    if loaded != table.num_rows:
        raise LoadError(f"LOAD DATA stored {loaded} of {table.num_rows} rows")


def _python_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _load_insert(cur: Any, spec: MigrationSpec, day: dt.date, table: pa.Table) -> None:
    names = [DAY, SEQ, CHANGE, *(c.column for c in spec.columns)]
    sql = (
        f"INSERT INTO {q(spec.mysql.temp_table)} ({quote_identifiers(names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))})"
    )
    spec_names = [c.column for c in spec.columns]
    for offset in range(0, table.num_rows, _INSERT_BATCH):
        part = table.slice(offset, _INSERT_BATCH)
        columns = [part.column(name).to_pylist() for name in [CHANGE, *spec_names]]
        rows = [
            (day, offset + index + 1, *(_python_value(v) for v in values))
            for index, values in enumerate(zip(*columns, strict=True))
        ]
        cur.executemany(sql, rows)


def load_day(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    table: pa.Table,
    method: LoadMethod = "auto",
) -> LoadResult:
    """Replace the staging table's rows of `day` with `table` (key-sorted), atomically."""
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cur.execute(f"DELETE FROM {q(spec.mysql.temp_table)} WHERE {q(DAY)} = %s", (day,))
        deleted = cur.rowcount
        # newly staged rows are not merged yet (clean_days must not drop them)
        cur.execute(f"DELETE FROM {q(merges_table(spec))} WHERE {q(DAY)} = %s", (day,))
        used, fallback = method, None
        if method in ("auto", "local_infile"):
            try:
                _load_local_infile(cur, spec, day, table)
                used = "local_infile"
            except pymysql.err.MySQLError as exc:
                code = exc.args[0] if exc.args else None
                if method == "local_infile" or code not in _LOCAL_INFILE_REFUSED:
                    conn.rollback()
                    raise
                used, fallback = "insert", LOCAL_INFILE_HELP.format(code=code)
                _log.warning("%s: %s", spec.mysql.temp_table, fallback)
        if used == "insert":
            _load_insert(cur, spec, day, table)
    conn.commit()
    elapsed = time.perf_counter() - started
    return LoadResult(day, table.num_rows, deleted, used, elapsed, fallback)


def clean_days(conn: Any, spec: MigrationSpec, before: dt.date, batch: int = 50_000) -> int:
    """Delete staging rows of merged days before `before` in small batches; a day staged but
    not merged yet (a backfill in flight) is never touched."""
    total = 0
    merged = f"SELECT {q(DAY)} FROM {q(merges_table(spec))} WHERE {q(DAY)} < %s"
    with conn.cursor() as cur:
        while True:
            cur.execute(
                f"DELETE FROM {q(spec.mysql.temp_table)} WHERE {q(DAY)} < %s "
                f"AND {q(DAY)} IN ({merged}) LIMIT {int(batch)}",
                (before, before),
            )
            conn.commit()
            total += cur.rowcount
            if cur.rowcount < batch:
                return total
