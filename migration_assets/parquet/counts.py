"""Per-second row counts of a Parquet day, with Arrow (the MySQL side counts in SQL where the
data is: `mysql/seconds.py`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..days import SecondCounts, day_seconds
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
