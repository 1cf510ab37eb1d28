"""Tables derived from the spec, and a refusal to touch a target that disagrees with it.

The staging (temp) table holds many days at once: `_day` first in its primary key, then
`_seq`, the row's position in the day's key-sorted Parquet, so a day loads as one sequential
append, is replaced or cleaned with one range delete, and merges in bounded `_seq` chunks.
One row per key and day is guaranteed upstream (parquet_partitions sets key collisions
aside); a unique key here would cost a second index on every load. The target has the
spec's composite primary key and BIGINT ids, and is partitioned by day of event time
(`target_partitioning: day`, `partitioning.py`) or else indexed on the event time. An
existing target is compared with the spec and never altered: conflicts are listed (its
partitioning is not a conflict: it changes costs, never results).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..identifiers import quote_identifier as q
from ..identifiers import quote_identifiers
from ..spec import Column, MigrationSpec
from .catalog import ColumnInfo, SchemaConflictError, table_columns, unique_keys
from .columns import BINARY, column_type, json_check
from .connection import legacy_dates
from .legacy import copy_bookkeeping_ddl, copy_target_ddl
from .partitioning import partition_clause

DAY, SEQ, CHANGE = "_day", "_seq", "_change"


def _column_sql(
    column: Column,
    spec: MigrationSpec,
    *,
    nullable: bool | None = None,
    collations: dict[str, str] | None = None,
) -> str:
    """`collations`: column -> collation for key columns that must match another table's."""
    if column.column in spec.id_columns and column.type.is_integer:
        sql = "BIGINT"
    else:
        sql = column_type(column, (collations or {}).get(column.column))
    allow_null = column.nullable if nullable is None else nullable
    return f"{q(column.column)} {sql}{'' if allow_null else ' NOT NULL'}{json_check(column)}"


def _event_index(spec: MigrationSpec) -> str:
    name = spec.event_time_column.column
    return f"KEY {q('by_' + name[:60])} ({q(name)})"


def key_join(spec: MigrationSpec) -> str:
    """`t.k1 = s.k1 AND ...`: a target row (`t`) matched to a staged row (`s`) by mysql.key."""
    return " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in spec.mysql.key)


def temp_table_ddl(spec: MigrationSpec, collations: dict[str, str] | None = None) -> str:
    columns = [_column_sql(c, spec, collations=collations) for c in spec.columns]
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


def target_table_ddl(spec: MigrationSpec, today: dt.date | None = None) -> str:
    """Partitioned by day (`mysql/partitioning.py`), or one B-tree with an event-time index."""
    by_day = spec.mysql.target_partitioning == "day"
    columns = [_column_sql(c, spec) for c in spec.columns]
    definitions = [*columns, f"PRIMARY KEY ({quote_identifiers(spec.mysql.key)})"]
    if not by_day:
        definitions.append(_event_index(spec))
    today = today or dt.datetime.now(dt.UTC).date()
    return (
        f"CREATE TABLE IF NOT EXISTS {q(spec.mysql.target_table)} (\n  "
        + ",\n  ".join(definitions)
        + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        + (f"\n{partition_clause(spec, today)}" if by_day else "")
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


_FAMILIES = {
    "json": {"json", "longtext"},  # MariaDB stores JSON as LONGTEXT with a json_valid check
    "boolean": {"tinyint"},
    "text": {"text", "mediumtext", "longtext"},
    "blob": {"blob", "mediumblob", "longblob"},
    "datetime": {"datetime", "timestamp"},  # sessions are UTC: a TIMESTAMP holds the same
}


def _type_problem(
    column: Column, info: ColumnInfo, spec: MigrationSpec, *, native_json: bool = False
) -> str | None:
    """`native_json`: MySQL's JSON type is acceptable (a legacy column: the new table
    declares it as checked text, `copy_target_ddl`)."""
    expected = column.type
    if expected.kind == "json" and info.data_type == "json" and not native_json:
        return (
            "is MySQL's JSON type, which normalises values (numbers beyond 64-bit integers "
            "become doubles, keys are re-sorted, duplicate keys dropped), so the merged text "
            "would differ from the Parquet's; make it text checked as JSON: ALTER TABLE ... "
            f"MODIFY {q(column.column)} LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin "
            f"CHECK (JSON_VALID({q(column.column)}))"
        )
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
    """How an existing target differs from the spec (empty: compatible, or not there yet).

    The merge needs a primary or unique key on exactly mysql.key (the new table of a
    `legacy_copy` keeps the legacy primary key and adds a unique key on it)."""
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
    keys = unique_keys(conn, table)
    if not any(sorted(columns) == sorted(spec.mysql.key) for columns in keys.values()):
        found = "; ".join(f"{name} ({', '.join(cols)})" for name, cols in keys.items())
        problems.append(
            f"no primary or unique key on the spec's mysql.key ({', '.join(spec.mysql.key)}); "
            f"unique keys: {found or 'none'}"
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


def legacy_conflicts(conn: Any, spec: MigrationSpec) -> list[str]:
    """Spec columns the legacy table also has must agree with it: the new table takes the
    legacy column's type, so a disagreement would only surface after the table was made."""
    if spec.legacy_copy is None:
        return []
    table = spec.legacy_copy.source_table
    columns = table_columns(conn, table)
    problems = []
    for column in spec.columns:
        info = columns.get(column.column)
        if info is None:
            continue
        if column.column in spec.legacy_copy.bigint_columns:
            continue  # widened to BIGINT in the new table
        problem = _type_problem(column, info, spec, native_json=True)
        if problem and column.column in spec.id_columns:
            problem += " (list it in legacy_copy.bigint_columns to widen it)"
        if problem:
            problems.append(f"legacy table {table!r}: column {column.column!r} {problem}")
    return problems


def _string_keys(spec: MigrationSpec) -> list[Column]:
    by_name = {c.column: c for c in spec.columns}
    return [by_name[k] for k in spec.mysql.key if by_name[k].type.kind in ("varchar", "text")]


def key_collations(conn: Any, spec: MigrationSpec) -> dict[str, str]:
    """The collation each string key column gets in a new staging table: the existing
    target's, else the legacy table's with `legacy_copy` (the new target copies the legacy
    definition), else binary (absent here)."""
    keys = _string_keys(spec)
    if not keys:
        return {}
    found = {}
    sources = [spec.mysql.target_table]
    sources += [spec.legacy_copy.source_table] if spec.legacy_copy else []
    for table in sources:
        columns = table_columns(conn, table)
        for c in keys:
            if c.column not in found and c.column in columns and columns[c.column].collation:
                found[c.column] = columns[c.column].collation
    return found


def collation_conflicts(conn: Any, spec: MigrationSpec) -> list[str]:
    """String key columns whose collation differs between the staging table and the target
    (as they are, or as `ensure_tables` would create them): the merge joins on them, and a
    join across collations compares in one of them, so it can match keys the other holds
    apart (`_ci`: case, accents) and cannot use the target's key index."""
    keys = _string_keys(spec)
    if not keys:
        return []
    staging = table_columns(conn, spec.mysql.temp_table)
    target = table_columns(conn, spec.mysql.target_table)
    derived = key_collations(conn, spec)
    problems = []
    for column in keys:
        made = derived.get(column.column, BINARY)  # what a new table of either kind gets
        ours = staging[column.column].collation if column.column in staging else made
        theirs = target[column.column].collation if column.column in target else made
        if ours != theirs:
            problems.append(
                f"key column {column.column!r} is {ours} in staging table "
                f"{spec.mysql.temp_table!r} but {theirs} in target {spec.mysql.target_table!r}: "
                "the merge's key join needs one collation; drop the staging table (it only "
                "holds staged days, which reload from Parquet) or convert the target column"
            )
    return problems


def ensure_tables(conn: Any, spec: MigrationSpec) -> None:
    """Create missing tables; refuse (never alter) tables that conflict with the spec."""
    problems = target_conflicts(conn, spec) + staging_conflicts(conn, spec)
    problems += legacy_conflicts(conn, spec) + collation_conflicts(conn, spec)
    if problems:
        raise SchemaConflictError(
            "existing tables conflict with the spec and are left unchanged:\n  "
            + "\n  ".join(problems)
        )
    # with legacy_copy the target is the new BIGINT table, derived from the legacy one
    target = copy_target_ddl(conn, spec) if spec.legacy_copy else target_table_ddl(spec)
    copy_tables = copy_bookkeeping_ddl(spec) if spec.legacy_copy else []
    with conn.cursor() as cur:
        for ddl in (temp_table_ddl(spec, key_collations(conn, spec)), target):
            with legacy_dates(conn):  # the new table keeps a 5.6 table's zero-date defaults
                cur.execute(ddl)
        for ddl in (unmatched_table_ddl(spec), merges_table_ddl(spec), *copy_tables):
            cur.execute(ddl)
    conn.commit()
