"""Per-second row counts, computed where the data is (no Dagster here).

Parquet partitions are counted with Arrow; MySQL tables with one `GROUP BY` on the event
time, bucketed by `TIMESTAMPDIFF(SECOND, epoch, t)` (independent of the session time zone,
floored like the partitions' seconds).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..dynamodb.changes import CHANGE, epoch_seconds
from ..identifiers import quote_identifier as q
from ..mysql.ddl import DAY, unmatched_table
from ..spec import MigrationSpec

SecondCounts = dict[int, int]  # epoch second -> rows
_SECOND = "TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {column})"


def parquet_second_counts(table: pa.Table, spec: MigrationSpec) -> SecondCounts:
    """Rows per second of a day partition (puts only: deletes are not rows of the day)."""
    puts = table.filter(pc.equal(table.column(CHANGE), "put"))
    if not puts.num_rows:
        return {}
    seconds, counts = np.unique(
        epoch_seconds(puts.column(spec.event_time_column.column)), return_counts=True
    )
    return dict(zip(seconds.tolist(), counts.tolist(), strict=True))


def rejects_in_day(rejects: list[dict[str, Any]], day: dt.date) -> list[int]:
    """Event seconds of quarantined records that belong to `day` (others are elsewhere)."""
    first = (day - dt.date(1970, 1, 1)).days * 86_400
    return [
        r["event_second"]
        for r in rejects
        if r.get("event_second") is not None and first <= r["event_second"] < first + 86_400
    ]


def _grouped(conn: Any, sql: str, params: tuple) -> SecondCounts:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return {int(second): int(count) for second, count in cur.fetchall()}


def staged_second_counts(conn: Any, spec: MigrationSpec, day: dt.date) -> SecondCounts:
    """Rows per second of the day's puts in the staging table."""
    second = _SECOND.format(column=q(spec.event_time_column.column))
    return _grouped(
        conn,
        f"SELECT {second} AS s, COUNT(*) FROM {q(spec.mysql.temp_table)} "
        f"WHERE {q(DAY)} = %s AND {q(CHANGE)} = 'put' GROUP BY s",
        (day,),
    )


def merged_second_counts(conn: Any, spec: MigrationSpec, day: dt.date) -> SecondCounts:
    """Staged puts of the day that the target holds with the merged values, per second.

    In `update_only` mode the rows kept in the unmatched table count as accounted for:
    they are reported, not lost.
    """
    event = q(spec.event_time_column.column)
    second = _SECOND.format(column=f"s.{event}")
    join = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in spec.mysql.key)
    same = "".join(f" AND t.{q(u)} <=> s.{q(u)}" for u in spec.mysql.update_columns)
    counts = _grouped(
        conn,
        f"SELECT {second} AS s2, COUNT(*) FROM {q(spec.mysql.temp_table)} s "
        f"JOIN {q(spec.mysql.target_table)} t ON {join}{same} "
        f"WHERE s.{q(DAY)} = %s AND s.{q(CHANGE)} = 'put' GROUP BY s2",
        (day,),
    )
    if spec.mysql.mode == "update_only":
        unmatched = _grouped(
            conn,
            f"SELECT {_SECOND.format(column=event)} AS s2, COUNT(*) "
            f"FROM {q(unmatched_table(spec))} WHERE {q(DAY)} = %s GROUP BY s2",
            (day,),
        )
        for key, value in unmatched.items():
            counts[key] = counts.get(key, 0) + value
    return counts


def mysql_id_types(conn: Any, table: str, columns: tuple[str, ...]) -> dict[str, str | None]:
    """DATA_TYPE of each id column in information_schema (None when the column is missing)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        found = {name: data_type.lower() for name, data_type in cur.fetchall()}
    return {name: found.get(name) for name in columns}
