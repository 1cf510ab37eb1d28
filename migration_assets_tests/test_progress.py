"""Time-remaining estimates: rows per second measured so far times rows left."""

from __future__ import annotations

import datetime as dt

from migration_assets.progress import estimate, format_duration, scaled_estimate


def test_rows_left_come_from_the_mean_of_the_days_done():
    now = estimate([1_000, 3_000], days_left=3, seconds=4.0)
    assert now.rows_done == 4_000 and now.rows_left == 6_000
    assert now.rows_per_second == 1_000.0
    assert now.eta_seconds == 6.0


def test_nothing_measured_yet_has_no_eta_and_nothing_left_is_zero():
    assert estimate([], days_left=5, seconds=0.0).eta_seconds is None
    assert estimate([10], days_left=5, seconds=0.0).eta_seconds is None
    assert estimate([10, 20], days_left=0, seconds=1.0).eta_seconds == 0.0


def test_a_backfill_seen_from_one_run_scales_its_days():
    # 300 of 1,096 days done in 120 s at 2,000 rows a day: 796 days left take 318.4 s
    now = scaled_estimate(300, 796, 2_000.0, 120.0)
    assert now.rows_per_second == 5_000.0
    assert now.rows_left == 1_592_000
    assert round(now.eta_seconds, 1) == 318.4
    at = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    metadata = now.metadata("backfill", now=at)
    assert metadata["backfill_days_left"] == 796
    assert metadata["backfill_eta_seconds"] == 318.4
    assert metadata["backfill_eta"] == "5m 18s (about 2026-01-01 12:05 UTC)"


def test_durations_read_like_a_clock():
    assert format_duration(9.6) == "10s"
    assert format_duration(318.4) == "5m 18s"
    assert format_duration(3 * 3600 + 7 * 60 + 5) == "3h 07m"


def test_a_backfill_run_reports_the_backfills_time_remaining(
    spec, stack, s3_client, dynamodb_client, tmp_path
):
    """A run launched by a backfill puts the backfill's days left and ETA on its
    materializations (here: 3 of the backfill's 10 days, launched 30 s ago)."""
    import time

    import dagster as dg
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster_aws.s3 import S3Resource

    from migration_assets.defs.partitions import daily_partitions
    from migration_assets.defs.resources import DynamoDBResource
    from migration_assets.devstack.seed import seed
    from migration_assets_tests.helpers import assets_named

    days = [dt.date(2023, 1, d) for d in (1, 2, 3)]
    seed(spec, s3=s3_client, dynamodb=dynamodb_client, mysql=None, days=days, items_per_day=20)
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    target = [f"2023-01-{d:02d}" for d in range(1, 11)]
    subset = AssetGraphSubset(
        partitions_subsets_by_asset_key={
            dg.AssetKey("dynamodb_export"): daily_partitions(spec).subset_with_partition_keys(
                target
            )
        }
    )
    instance.add_backfill(
        PartitionBackfill.from_asset_graph_subset(
            "bftest", time.time() - 30, {}, instance, subset, None, None, None
        )
    )
    result = dg.materialize(
        assets_named(spec, "dynamodb_export"),
        instance=instance,
        resources={
            "s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3),
            "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
        },
        tags={
            "dagster/backfill": "bftest",
            "dagster/asset_partition_range_start": "2023-01-01",
            "dagster/asset_partition_range_end": "2023-01-03",
        },
    )
    assert result.success
    (first, *_) = result.asset_materializations_for_node("dynamodb_export")
    meta = first.metadata
    assert meta["backfill_days_done"].value == 3
    assert meta["backfill_days_left"].value == 7
    assert 30 * 7 / 3 <= meta["backfill_eta_seconds"].value < 30 * 7  # ~70 s at 3 days/30 s
    assert "backfill_rows_per_second" not in meta  # dynamodb_export has no rows to count
    assert meta["run_days"].value == 3
