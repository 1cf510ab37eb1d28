"""Tables derived from the spec, and a refusal to touch a target that disagrees with it.

The staging (temp) table holds many days at once: `_day` first in its primary key, then
`_seq`, the row's position in the day's key-sorted Parquet, so a day loads as one sequential
append, is replaced or cleaned with one range delete, and merges in bounded `_seq` chunks.
One row per key and day is guaranteed upstream (parquet_partitions sets key collisions
aside); a unique key here would cost a second index on every load. The target has the
spec's composite primary key, BIGINT ids and an index on the event-time column. An
existing target is compared with the spec and never altered: conflicts are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..identifiers import quote_identifier as q
from ..identifiers import quote_identifiers
from ..spec import Column, MigrationSpec

DAY, SEQ, CHANGE = "_day", "_seq", "_change"


class SchemaConflictError(RuntimeError):
    """An existing table does not match the spec; it is left exactly as it is."""


def _column_sql(column: Column, spec: MigrationSpec, *, nullable: bool | None = None) -> str:
    sql = (
        "BIGINT" if column.column in spec.id_columns and column.type.is_integer else column.type.sql
    )
    allow_null = column.nullable if nullable is None else nullable
    return f"{q(column.column)} {sql}{'' if allow_null else ' NOT NULL'}"


def _event_index(spec: MigrationSpec) -> str:
    name = spec.event_time_column.column
    return f"KEY {q('by_' + name[:60])} ({q(name)})"


def key_join(spec: MigrationSpec) -> str:
    """`t.k1 = s.k1 AND ...`: a target row (`t`) matched to a staged row (`s`) by mysql.key."""
    return " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in spec.mysql.key)


def temp_table_ddl(spec: MigrationSpec) -> str:
    columns = [_column_sql(c, spec) for c in spec.columns]
    return (
        f"CREATE TABLE IF NOT EXISTS {q(spec.mysql.temp_table)} (\n  "
        + ",\n  ".join(
            [
                f"{q(DAY)} DATE NOT NULL",
                f"{q(SEQ)} INT UNSIGNED NOT NULL",
                f"{q(CHANGE)} ENUM('put','delete') NOT NULL",
                *columns,
                f"PRIMARY KEY ({q(DAY)}, {q(SEQ)})",
            ]
        )
        + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def target_table_ddl(spec: MigrationSpec) -> str:
    columns = [_column_sql(c, spec) for c in spec.columns]
    return (
        f"CREATE TABLE IF NOT EXISTS {q(spec.mysql.target_table)} (\n  "
        + ",\n  ".join(
            [*columns, f"PRIMARY KEY ({quote_identifiers(spec.mysql.key)})", _event_index(spec)]
        )
        + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def unmatched_table(spec: MigrationSpec) -> str:
    """Where update_only keeps temp rows that matched no target row (queryable, per day)."""
    return f"{spec.mysql.temp_table[:54]}_unmatched"


def unmatched_table_ddl(spec: MigrationSpec) -> str:
    columns = [_column_sql(c, spec, nullable=True) for c in spec.columns]
    return (
        f"CREATE TABLE IF NOT EXISTS {q(unmatched_table(spec))} (\n  "
        + ",\n  ".join(
            [
                f"{q(DAY)} DATE NOT NULL",
                f"{q(SEQ)} INT UNSIGNED NOT NULL",
                *columns,
                "`recorded_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP",
                f"PRIMARY KEY ({q(DAY)}, {q(SEQ)})",
            ]
        )
        + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


def merges_table(spec: MigrationSpec) -> str:
    """Which staged days have been merged (and with how many staged rows)."""
    return f"{spec.mysql.temp_table[:57]}_merges"


def merges_table_ddl(spec: MigrationSpec) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {q(merges_table(spec))} ({q(DAY)} DATE NOT NULL PRIMARY KEY,"
        " `merged_at` DATETIME NOT NULL, `staged_rows` INT UNSIGNED NOT NULL)"
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str  # information_schema DATA_TYPE, lower case (bigint, varchar, longtext...)
    column_type: str  # full type, e.g. "decimal(18,4)", "bigint(20)"
    nullable: bool


def table_columns(conn: Any, table: str) -> dict[str, ColumnInfo]:
    """The table's columns in this database (empty when the table does not exist)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE"
            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (table,),
        )
        return {
            name: ColumnInfo(name, data_type.lower(), column_type.lower(), nullable == "YES")
            for name, data_type, column_type, nullable in cur.fetchall()
        }


def primary_key(conn: Any, table: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA ="
            " DATABASE() AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY'"
            " ORDER BY ORDINAL_POSITION",
            (table,),
        )
        return [row[0] for row in cur.fetchall()]


_FAMILIES = {
    "json": {"json", "longtext"},  # MariaDB stores JSON as LONGTEXT with a json_valid check
    "boolean": {"tinyint"},
    "text": {"text", "mediumtext", "longtext"},
    "blob": {"blob", "mediumblob", "longblob"},
}


def _type_problem(column: Column, info: ColumnInfo, spec: MigrationSpec) -> str | None:
    expected = column.type
    if column.column in spec.id_columns and expected.is_integer:
        if info.data_type != "bigint":
            return f"is {info.column_type}, but id columns must be BIGINT"
        return None
    allowed = _FAMILIES.get(expected.kind, {expected.kind})
    if info.data_type not in allowed:
        return f"is {info.column_type}, the spec says {expected}"
    if expected.kind in ("decimal", "varchar", "varbinary"):
        wanted = str(expected).replace(" ", "")
        if info.column_type.replace(" ", "") != wanted:
            return f"is {info.column_type}, the spec says {wanted}"
    return None


def target_conflicts(conn: Any, spec: MigrationSpec) -> list[str]:
    """How an existing target differs from the spec (empty: compatible, or not there yet)."""
    table = spec.mysql.target_table
    columns = table_columns(conn, table)
    if not columns:
        return []
    problems = []
    for column in spec.columns:
        info = columns.get(column.column)
        if info is None:
            problems.append(f"column {column.column!r} is missing")
            continue
        problem = _type_problem(column, info, spec)
        if problem:
            problems.append(f"column {column.column!r} {problem}")
    key = primary_key(conn, table)
    if sorted(key) != sorted(spec.mysql.key):
        problems.append(
            f"primary key is ({', '.join(key) or 'none'}), the spec's mysql.key is "
            f"({', '.join(spec.mysql.key)})"
        )
    return [f"table {table!r}: {p}" for p in problems]


def staging_conflicts(conn: Any, spec: MigrationSpec) -> list[str]:
    """An existing staging table made for another spec (it holds only reloadable data)."""
    columns = table_columns(conn, spec.mysql.temp_table)
    if not columns:
        return []
    wanted = [DAY, SEQ, CHANGE, *(c.column for c in spec.columns)]
    missing = [name for name in wanted if name not in columns]
    if not missing:
        return []
    return [
        f"staging table {spec.mysql.temp_table!r} lacks {', '.join(missing)}; it was made for "
        "another spec: drop it (it only holds staged days, which reload from Parquet)"
    ]


def ensure_tables(conn: Any, spec: MigrationSpec) -> None:
    """Create missing tables; refuse (never alter) tables that conflict with the spec."""
    problems = target_conflicts(conn, spec) + staging_conflicts(conn, spec)
    if problems:
        raise SchemaConflictError(
            "existing tables conflict with the spec and are left unchanged:\n  "
            + "\n  ".join(problems)
        )
    with conn.cursor() as cur:
        for ddl in (
            temp_table_ddl(spec),
            target_table_ddl(spec),
            unmatched_table_ddl(spec),
            merges_table_ddl(spec),
        ):
            cur.execute(ddl)
    conn.commit()
