"""What the server says about a table (information_schema), for comparing it with the spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SchemaConflictError(RuntimeError):
    """An existing table does not match the spec; it is left exactly as it is."""


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str  # information_schema DATA_TYPE, lower case (bigint, varchar, longtext...)
    column_type: str  # full type, e.g. "decimal(18,4)", "int(10) unsigned"
    nullable: bool
    auto_increment: bool = False
    collation: str | None = None  # COLLATION_NAME (None: not a string column)


def table_columns(conn: Any, table: str) -> dict[str, ColumnInfo]:
    """The table's columns in this database, in order (empty when the table does not exist)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, EXTRA, COLLATION_NAME"
            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
            " AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (table,),
        )
        return {
            name: ColumnInfo(
                name,
                data_type.lower(),
                column_type.lower(),
                nullable == "YES",
                "auto_increment" in extra.lower(),
                collation,
            )
            for name, data_type, column_type, nullable, extra, collation in cur.fetchall()
        }


def indexes(conn: Any, table: str, *, unique: bool = False) -> dict[str, list[str]]:
    """The table's indexes (only the unique ones, PRIMARY included, if asked): name -> its
    columns in order."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
            + (" AND NON_UNIQUE = 0" if unique else "")
            + " ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (table,),
        )
        return group_index_rows(cur.fetchall())


def group_index_rows(rows: Any) -> dict[str, list[str]]:
    """(INDEX_NAME, COLUMN_NAME) rows in order -> name: its parts. A functional key part
    (MySQL 8.0.13+) has a NULL COLUMN_NAME: it becomes `(expression N)`, a name no column
    can have, so such an index never passes for one on plain columns."""
    found: dict[str, list[str]] = {}
    for index, column in rows:
        parts = found.setdefault(index, [])
        parts.append(column if column is not None else f"(expression {len(parts) + 1})")
    return found


def unique_keys(conn: Any, table: str) -> dict[str, list[str]]:
    return indexes(conn, table, unique=True)


def primary_key(conn: Any, table: str) -> list[str]:
    return unique_keys(conn, table).get("PRIMARY", [])


def table_exists(conn: Any, table: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        return bool(cur.fetchone()[0])
