"""Per-day results of a run, and the progress of range runs and backfills in logs and metadata
(estimates: `progress.py`).

A range run's materializations are only written when its step ends, so progress inside a
run goes to the log (one line per day), and the metadata carries what is still useful
afterwards: the run's rate, and for a backfill run, the backfill's time remaining.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

import dagster as dg

from ..progress import estimate, format_duration, scaled_estimate

ROW_KEYS = ("rows", "rows_loaded", "rows_staged", "rows_copied")  # each asset's rows of a day
BACKFILL_TAG = "dagster/backfill"


def day_rows(metadata: Mapping[str, Any]) -> int | None:
    """The rows a day's metadata reports, whichever asset wrote it."""
    for key in ROW_KEYS:
        if isinstance(metadata.get(key), int):
            return metadata[key]
    return None


class DayLog:
    """Logs a run's progress through its days with the run's time remaining."""

    def __init__(self, context: dg.AssetExecutionContext, what: str) -> None:
        self.context, self.what = context, what
        self.total = len(context.partition_keys)
        self.rows: list[int] = []
        self.started = time.perf_counter()

    def done(self, day: str, rows: int) -> None:
        """Logged at each quarter of the run (each log line is a stored event)."""
        self.rows.append(rows)
        quarter = max(1, self.total // 4)
        if self.total < 2 or (len(self.rows) % quarter and len(self.rows) != self.total):
            return
        now = estimate(self.rows, self.total - len(self.rows), time.perf_counter() - self.started)
        eta = now.eta_seconds
        self.context.log.info(
            f"{self.what} {day}: day {len(self.rows)}/{self.total}, {rows:,} rows; run so far "
            f"{now.rows_per_second:,.0f} rows/s, ~{now.rows_left:,} rows left"
            + (f", about {format_duration(eta)}" if eta is not None else "")
        )


def backfill_metadata(context: dg.AssetExecutionContext, rows_of_days: list[int]) -> dict[str, Any]:
    """For a run launched by a backfill: the backfill's days of this asset done and left, the
    rate since the backfill began, and its time remaining. Empty outside backfills."""
    backfill_id = context.run.tags.get(BACKFILL_TAG)
    if not backfill_id:
        return {}
    try:
        backfill = context.instance.get_backfill(backfill_id)
        data = backfill.asset_backfill_data if backfill else None
        if data is None:
            return {}
        target = data.target_subset.partitions_subsets_by_asset_key.get(context.asset_key)
        done = data.materialized_subset.partitions_subsets_by_asset_key.get(context.asset_key)
        target_days = set(target.get_partition_keys()) if target else set()
        done_days = set(done.get_partition_keys()) if done else set()
    except Exception as exc:  # an estimate must never fail a run
        context.log.debug(f"no backfill estimate: {exc!r}")
        return {}
    done_days = (done_days | set(context.partition_keys)) & target_days
    days_left = len(target_days) - len(done_days)
    per_day = statistics.fmean(rows_of_days) if rows_of_days else 1.0
    backfill_now = scaled_estimate(
        len(done_days), days_left, per_day, time.time() - backfill.backfill_timestamp
    )
    metadata: dict[str, Any] = backfill_now.metadata("backfill")
    if not rows_of_days:  # an asset without row counts: the estimate counts days
        metadata = {k: v for k, v in metadata.items() if "_rows_" not in k}
    return metadata


def per_day_result(
    context: dg.AssetExecutionContext,
    results: dict[str, dict[str, Any]],
    data_version: dg.DataVersion | None = None,
    run: dict[str, Any] | None = None,
):
    """One day: its metadata. A range: each day's metadata on that day's materialization,
    plus a short summary of the run (and `run`) on all of them. In a backfill: its time
    remaining."""
    rows = [n for n in map(day_rows, results.values()) if n is not None]
    progress = {**(run or {}), **backfill_metadata(context, rows)}
    if len(results) == 1:
        return dg.MaterializeResult(
            metadata={**next(iter(results.values())), **progress}, data_version=data_version
        )
    for day, metadata in results.items():
        context.add_asset_metadata(metadata, partition_key=day)
    keys = list(results)
    summary: dict[str, Any] = {"run_days": len(keys), "run_range": f"{keys[0]}...{keys[-1]}"}
    if rows:
        summary["run_rows"] = sum(rows)
    return dg.MaterializeResult(metadata={**summary, **progress}, data_version=data_version)
