"""Rows per day of the MySQL tables, for the migration's proof (`quality/proof.py`): one
grouped pass over each table's time index for the whole range of days, not a query per
day (1,096 days)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..identifiers import quote_identifier as q
from ..spec import MigrationSpec
from .catalog import table_columns
from .legacy import LegacyKey


def _per_day(
    conn: Any,
    table: str,
    column: str,
    first: dt.date,
    last: dt.date,
    extra: str = "",
    params: tuple = (),
) -> dict[str, int]:
    """{YYYY-MM-DD: rows} of `table` by `column` between the first and the last day; {}
    when the table does not exist yet (nothing reached it)."""
    if not table_columns(conn, table):
        return {}
    when = q(column)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT DATE({when}), COUNT(*) FROM {q(table)} "
            f"WHERE {when} >= %s AND {when} < %s{extra} GROUP BY DATE({when})",
            (first, last + dt.timedelta(days=1), *params),
        )
        return {day.isoformat(): int(rows) for day, rows in cur.fetchall()}


def target_rows_per_day(
    conn: Any, spec: MigrationSpec, first: dt.date, last: dt.date
) -> dict[str, int]:
    """The target's rows per day of the event time."""
    column = spec.event_time_column.column
    return _per_day(conn, spec.mysql.target_table, column, first, last)


def legacy_rows_per_day(
    conn: Any, spec: MigrationSpec, first: dt.date, last: dt.date
) -> dict[str, int]:
    """The legacy table's rows per day of `legacy_copy.time_column`."""
    assert spec.legacy_copy is not None
    copy = spec.legacy_copy
    return _per_day(conn, copy.source_table, copy.time_column, first, last)


def copied_rows_per_day(
    conn: Any, spec: MigrationSpec, key: LegacyKey, first: dt.date, last: dt.date
) -> dict[str, int]:
    """The new table's rows per day of `legacy_copy.time_column` with an id the legacy
    type can hold (larger ids were created elsewhere)."""
    assert spec.legacy_copy is not None
    copy = spec.legacy_copy
    return _per_day(
        conn,
        spec.mysql.target_table,
        copy.time_column,
        first,
        last,
        f" AND {q(key.column)} <= %s",
        (key.limit,),
    )


def table_rows(conn: Any, table: str) -> int:
    """COUNT(*) of a table (0 when it does not exist)."""
    if not table_columns(conn, table):
        return 0
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {q(table)}")
        return int(cur.fetchone()[0])
