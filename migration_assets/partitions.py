"""The one daily partitioning every asset and check shares, derived from the spec."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from .spec import MigrationSpec


def daily_partitions(spec: MigrationSpec) -> dg.DailyPartitionsDefinition:
    """UTC days from the spec's start; open-ended specs include today (live data)."""
    if spec.partitions.end is not None:
        return dg.DailyPartitionsDefinition(
            start_date=spec.partitions.start.isoformat(),
            end_date=spec.partitions.end.isoformat(),
            timezone="UTC",
        )
    return dg.DailyPartitionsDefinition(
        start_date=spec.partitions.start.isoformat(), timezone="UTC", end_offset=1
    )


def partition_day(context: dg.AssetExecutionContext) -> dt.date:
    return dt.date.fromisoformat(context.partition_key)


# Days per run in backfills: ~30 keeps a three-year backfill at a few dozen runs (see
# docs/dagster-ui-and-backfills.md) while each run reads every export file only once.
DAYS_PER_RUN = 30
