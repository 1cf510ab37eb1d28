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
from ..mysql.ddl import DAY, key_join, unmatched_table
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

    With upsert + delete_row and no `legacy_copy`, the target's rows of the day come only
    from the staged puts, so any other target row of the day (one added, or a deleted row
    still present) is counted too and breaks parity; other modes keep such rows on purpose.
    With `legacy_copy` the target also holds the legacy rows, which `bigint_table_copy`'s
    own parity covers. In `update_only` mode the rows kept in the
    unmatched table count as accounted for: they are reported, not lost.
    """
    event = q(spec.event_time_column.column)
    second = _SECOND.format(column=f"s.{event}")
    join = key_join(spec)
    same = "".join(f" AND t.{q(u)} <=> s.{q(u)}" for u in spec.mysql.update_columns)
    counts = _grouped(
        conn,
        f"SELECT {second} AS s2, COUNT(*) FROM {q(spec.mysql.temp_table)} s "
        f"JOIN {q(spec.mysql.target_table)} t ON {join}{same} "
        f"WHERE s.{q(DAY)} = %s AND s.{q(CHANGE)} = 'put' GROUP BY s2",
        (day,),
    )
    exclusive = (
        spec.legacy_copy is None
        and spec.mysql.mode == "upsert"
        and spec.mysql.on_delete == "delete_row"
    )
    if exclusive:  # then every target row of the day must come from the staged puts
        extras = _grouped(
            conn,
            f"SELECT {_SECOND.format(column=f't.{event}')} AS s2, COUNT(*) "
            f"FROM {q(spec.mysql.target_table)} t LEFT JOIN {q(spec.mysql.temp_table)} s "
            f"ON {join} AND s.{q(DAY)} = %s AND s.{q(CHANGE)} = 'put' "
            f"WHERE t.{event} >= %s AND t.{event} < %s AND s.{q(DAY)} IS NULL GROUP BY s2",
            (day, day, day + dt.timedelta(days=1)),
        )
        for key, value in extras.items():  # a row added, or a deleted row still there
            counts[key] = counts.get(key, 0) + value
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


def _row_hash(alias: str, columns: tuple[str, ...]) -> str:
    """An order-independent per-row hash: CRC32 of the values joined with a separator that
    cannot be mistaken for NULL (NULL becomes a marker of its own)."""
    parts = ", ".join(f"IFNULL({alias}.{q(c)}, '\\\\N')" for c in columns)
    return f"CRC32(CONCAT_WS('|', {parts}))"


def checksum_columns(spec: MigrationSpec) -> tuple[str, ...]:
    """What a merge promises: the key and the merged (update) columns, per row."""
    return tuple(spec.mysql.key) + tuple(spec.mysql.update_columns)


def staged_second_checksums(conn: Any, spec: MigrationSpec, day: dt.date) -> SecondCounts:
    """Per second, the sum of the staged puts' row hashes (what the target must hold)."""
    second = _SECOND.format(column=f"s.{q(spec.event_time_column.column)}")
    matched_only = ""  # update_only: unmatched puts are reported by the count check instead
    if spec.mysql.mode == "update_only":
        join = key_join(spec)
        matched_only = f"JOIN {q(spec.mysql.target_table)} t ON {join} "
    return _grouped(
        conn,
        f"SELECT {second} AS s2, SUM({_row_hash('s', checksum_columns(spec))}) "
        f"FROM {q(spec.mysql.temp_table)} s {matched_only}"
        f"WHERE s.{q(DAY)} = %s AND s.{q(CHANGE)} = 'put' GROUP BY s2",
        (day,),
    )


def target_second_checksums(conn: Any, spec: MigrationSpec, day: dt.date) -> SecondCounts:
    """Per second, the sum of the target rows' hashes at the staged puts' keys."""
    second = _SECOND.format(column=f"s.{q(spec.event_time_column.column)}")
    join = key_join(spec)
    return _grouped(
        conn,
        f"SELECT {second} AS s2, SUM({_row_hash('t', checksum_columns(spec))}) "
        f"FROM {q(spec.mysql.temp_table)} s JOIN {q(spec.mysql.target_table)} t ON {join} "
        f"WHERE s.{q(DAY)} = %s AND s.{q(CHANGE)} = 'put' GROUP BY s2",
        (day,),
    )


def differing_keys(
    conn: Any, spec: MigrationSpec, day: dt.date, second: int, limit: int = 20
) -> list[dict[str, Any]]:
    """Drill-down for one mismatching second: staged puts whose target row is missing or
    holds other merged values, with both sides' values."""
    event = q(spec.event_time_column.column)
    join = key_join(spec)
    differs = " OR ".join(
        [f"t.{q(spec.mysql.key[0])} IS NULL"]
        + [f"NOT (t.{q(u)} <=> s.{q(u)})" for u in spec.mysql.update_columns]
    )
    keys = ", ".join(f"s.{q(k)}" for k in spec.mysql.key)
    staged = ", ".join(f"s.{q(u)}" for u in spec.mysql.update_columns)
    merged = ", ".join(f"t.{q(u)}" for u in spec.mysql.update_columns)
    selected = ", ".join(filter(None, [keys, staged, merged, f"t.{q(spec.mysql.key[0])} IS NULL"]))
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {selected} FROM {q(spec.mysql.temp_table)} s "
            f"LEFT JOIN {q(spec.mysql.target_table)} t ON {join} "
            f"WHERE s.{q(DAY)} = %s AND s.{q(CHANGE)} = 'put' "
            f"AND {_SECOND.format(column=f's.{event}')} = %s AND ({differs}) "
            f"LIMIT {int(limit)}",
            (day, second),
        )
        rows = cur.fetchall()
    updates = spec.mysql.update_columns
    result = []
    for row in rows:
        key = dict(zip(spec.mysql.key, (str(v) for v in row[: len(spec.mysql.key)]), strict=True))
        offset = len(spec.mysql.key)
        staged_values = row[offset : offset + len(updates)]
        merged_values = row[offset + len(updates) : offset + 2 * len(updates)]
        result.append(
            {
                "key": key,
                "missing_in_target": bool(row[-1]),
                "staged": {u: str(v) for u, v in zip(updates, staged_values, strict=True)},
                "target": {u: str(v) for u, v in zip(updates, merged_values, strict=True)},
            }
        )
    return result
