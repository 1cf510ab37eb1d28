"""Per-second row counts of a Parquet day, with Arrow (the MySQL side counts in SQL where the
data is: `mysql/seconds.py`)."""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..days import NULL_TEXT_HASH, SecondCounts, day_seconds, sum_by_second
from ..dynamodb.changes import CHANGE, epoch_seconds
from ..spec import MigrationSpec


def parquet_counted_columns(spec: MigrationSpec) -> list[str]:
    """The partition columns `parquet_second_counts` reads (the others need not be decoded)."""
    return [spec.event_time_column.column, CHANGE]


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
    seconds = day_seconds(day)
    return [
        r["event_second"]
        for r in rejects
        if r.get("event_second") is not None and r["event_second"] in seconds
    ]


def json_counted_columns(spec: MigrationSpec) -> list[str]:
    """The partition columns `parquet_json_checksums` reads."""
    return [*parquet_counted_columns(spec), *spec.json_columns]


def parquet_json_checksums(table: pa.Table, spec: MigrationSpec) -> SecondCounts:
    """Per second, the sum over the puts of each json column's CRC32 of its exact text (NULL:
    `NULL_TEXT_HASH`) times its position, as `mysql/seconds.staged_json_checksums` sums the
    staged text (zlib's CRC32 is MySQL's over the utf8mb4 bytes)."""
    puts = table.filter(pc.equal(table.column(CHANGE), "put"))
    if not puts.num_rows:
        return {}
    seconds = epoch_seconds(puts.column(spec.event_time_column.column))
    total = np.zeros(puts.num_rows, dtype=np.int64)
    for n, name in enumerate(spec.json_columns, start=1):
        hashes = np.fromiter(
            (
                NULL_TEXT_HASH if v is None else zlib.crc32(v.encode())
                for v in puts.column(name).to_pylist()
            ),
            dtype=np.int64,
            count=puts.num_rows,
        )
        total += hashes * n
    return sum_by_second(np.asarray(seconds), total)
