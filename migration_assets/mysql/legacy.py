"""The INT -> BIGINT copy of the legacy table, one day at a time (no Dagster here).

The new table is created from the source's own definition (information_schema), with
`legacy_copy.bigint_columns` widened to BIGINT (UNSIGNED kept), the spec's columns the source
lacks (the merged DynamoDB attributes) added as NULLable, the source's primary key, a unique
key on `mysql.key` (the merge matches by it) and an index on the time column. A day is copied
with set-based `INSERT ... SELECT ... ON DUPLICATE KEY UPDATE` statements over primary-key
ranges holding at most `chunk_rows` of the day's rows (sparse ids cost nothing): idempotent
(a re-run rewrites the same values), and the merged columns, which only `target_table`
writes, are never overwritten by the copy. Not registered as an asset yet (issue 6).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from ..identifiers import quote_identifier as q
from ..identifiers import quote_identifiers
from ..spec import MigrationSpec
from .ddl import SchemaConflictError, primary_key

DEFAULT_COPY_CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class SourceColumn:
    name: str
    column_type: str  # e.g. "int(11)", "int(10) unsigned", "decimal(18,4)"
    nullable: bool
    auto_increment: bool


@dataclass
class CopyResult:
    day: dt.date
    rows: int = 0
    chunks: int = 0
    seconds: float = 0.0


def source_columns(conn: Any, table: str) -> list[SourceColumn]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (table,),
        )
        return [
            SourceColumn(name, column_type.lower(), nullable == "YES", "auto_increment" in extra)
            for name, column_type, nullable, extra in cur.fetchall()
        ]


def _widened(column: SourceColumn, bigint_columns: tuple[str, ...]) -> str:
    if column.name not in bigint_columns:
        return column.column_type.upper()
    return "BIGINT UNSIGNED" if "unsigned" in column.column_type else "BIGINT"


def copy_target_ddl(conn: Any, spec: MigrationSpec) -> str:
    """CREATE TABLE for the new BIGINT table, derived from the legacy table and the spec."""
    assert spec.legacy_copy is not None
    legacy = spec.legacy_copy
    columns = source_columns(conn, legacy.source_table)
    if not columns:
        raise SchemaConflictError(f"legacy table {legacy.source_table!r} does not exist")
    missing = [n for n in legacy.bigint_columns if n not in {c.name for c in columns}]
    if missing:
        raise SchemaConflictError(
            f"legacy_copy.bigint_columns {missing} are not columns of {legacy.source_table!r}"
        )
    key = primary_key(conn, legacy.source_table)
    lines = []
    for column in columns:
        sql = f"{q(column.name)} {_widened(column, legacy.bigint_columns)}"
        sql += "" if column.nullable else " NOT NULL"
        # a single integer primary key keeps numbering new (DynamoDB-only) rows
        if column.auto_increment or (key == [column.name] and column.name in legacy.bigint_columns):
            sql += " AUTO_INCREMENT"
        lines.append(sql)
    present = {c.name for c in columns}
    for column in spec.columns:
        if column.column not in present:
            lines.append(f"{q(column.column)} {column.type.sql}")
    lines.append(f"PRIMARY KEY ({quote_identifiers(key or spec.mysql.key)})")
    if key and sorted(key) != sorted(spec.mysql.key):
        lines.append(f"UNIQUE KEY `merge_key` ({quote_identifiers(spec.mysql.key)})")
    lines.append(f"KEY `by_time` ({q(legacy.time_column)})")
    return (
        f"CREATE TABLE IF NOT EXISTS {q(spec.mysql.target_table)} (\n  "
        + ",\n  ".join(lines)
        + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def copy_day(
    conn: Any, spec: MigrationSpec, day: dt.date, chunk_rows: int = DEFAULT_COPY_CHUNK_ROWS
) -> CopyResult:
    """Copy the legacy rows whose time column falls in `day` into the new table."""
    assert spec.legacy_copy is not None
    legacy = spec.legacy_copy
    source, target = q(legacy.source_table), q(spec.mysql.target_table)
    key = primary_key(conn, legacy.source_table)
    if len(key) != 1:
        raise SchemaConflictError(
            f"{legacy.source_table!r} needs a single-column primary key to be copied in ranges"
        )
    pk, when = q(key[0]), q(legacy.time_column)
    names = [c.name for c in source_columns(conn, legacy.source_table)]
    merged = set(spec.mysql.update_columns)
    refresh = ", ".join(
        f"{q(n)} = VALUES({q(n)})" for n in names if n not in merged and n != key[0]
    )
    day_filter = f"{when} >= %s AND {when} < %s"
    window = (day, day + dt.timedelta(days=1))
    result = CopyResult(day)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        last = None  # chunks sized by rows: each ends at the chunk_rows-th next id of the day
        while True:
            after = "" if last is None else f" AND {pk} > %s"
            bound = () if last is None else (last,)
            cur.execute(
                f"SELECT MAX({pk}), COUNT(*) FROM (SELECT {pk} FROM {source} WHERE {day_filter}"
                f"{after} ORDER BY {pk} LIMIT {int(chunk_rows)}) AS chunk",
                (*window, *bound),
            )
            upper, count = cur.fetchone()
            if not count:
                break
            cur.execute(
                f"INSERT INTO {target} ({quote_identifiers(names)}) "
                f"SELECT {quote_identifiers(names)} FROM {source} "
                f"WHERE {day_filter}{after} AND {pk} <= %s "
                f"ON DUPLICATE KEY UPDATE {refresh or f'{pk} = {pk}'}",
                (*window, *bound, upper),
            )
            conn.commit()
            result.rows += int(count)
            result.chunks += 1
            last = upper
    result.seconds = time.perf_counter() - started
    return result
