"""How a spec column is declared in the tables the project creates (staging, target, the
unmatched table, the columns the BIGINT copy adds to the new table).

Strings and JSON are utf8mb4 with a binary collation: keys and merged values are compared
byte for byte, as DynamoDB compares them (MySQL 8.0's default `utf8mb4_0900_ai_ci` holds
keys that differ in case or accents equal), and a comparison with a `_ci` column of the same
character set uses the `_bin` collation rather than failing with error 1267 (MySQL manual,
"Collation Coercibility in Expressions"). JSON is text checked by JSON_VALID, never MySQL's
JSON type, which stores a normalised binary form: numbers beyond 64-bit integers become
doubles, object keys are re-sorted and duplicate keys dropped (MySQL manual, "The JSON Data
Type": normalization), so the text read back would differ from the Parquet's.
"""

from __future__ import annotations

from ..identifiers import quote_identifier as q
from ..spec import Column

BINARY = "utf8mb4_bin"


def string_type(sql: str, collation: str = BINARY) -> str:
    return f"{sql} CHARACTER SET utf8mb4 COLLATE {collation}"


def column_type(column: Column, collation: str | None = None) -> str:
    """The type (with character set and collation for text) of a column the project creates;
    `collation` overrides the binary one (a key column that must match a legacy table's)."""
    kind = column.type.kind
    if kind == "json":
        return string_type("LONGTEXT")
    if kind in ("varchar", "text"):
        return string_type(column.type.sql, collation or BINARY)
    return column.type.sql


def json_check(column: Column) -> str:
    """The column-level CHECK that keeps a json column's text valid JSON (enforced from MySQL
    8.0.16 and by MariaDB; 5.7 parses and ignores it, and the values come from Parquet the
    pipeline wrote as JSON)."""
    return f" CHECK (JSON_VALID({q(column.column)}))" if column.type.kind == "json" else ""
