"""dynamodb_export_sensor against the real moto server: new exports become runs, once."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
from dagster_aws.s3 import S3Resource

from migration_assets.definitions import build_definitions
from migration_assets.devstack.seed import seed, table_arn
from migration_assets.dynamodb.export_writer import (
    encode_incremental_line,
    write_incremental_export,
    write_started_only,
)


def _tick(defs, stack, cursor=None):
    sensor = defs.get_sensor_def("dynamodb_export_sensor")
    context = dg.build_sensor_context(
        cursor=cursor,
        resources={"s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3)},
    )
    return sensor(context)


def test_new_exports_request_their_days_once(spec, stack, s3_client, dynamodb_client):
    report = seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=None,
        days=[dt.date(2023, 1, 1), dt.date(2023, 1, 2)],
        items_per_day=20,
    )
    defs = build_definitions(spec)
    started = dt.datetime(2023, 1, 4, 2, tzinfo=dt.UTC)
    unfinished = write_started_only(  # begun, not finished: not requested yet
        s3_client, bucket=spec.s3.bucket, prefix=spec.s3.export_prefix, export_time=started
    )
    first = _tick(defs, stack)
    backfills = [r for r in first.run_requests if r.asset_graph_subset is not None]
    runs = [r for r in first.run_requests if r.asset_graph_subset is None]
    (backfill,) = backfills  # the full export: one backfill, not one tick per day
    assert backfill.tags["migration/export_id"] == report.full_export_id
    subset = backfill.asset_graph_subset
    assert {k.to_user_string() for k in subset.asset_keys} >= {
        "dynamodb_export",
        "parquet_partitions",
        "aurora_temp_table",
        "target_table",
    }
    days = subset.partitions_subsets_by_asset_key[dg.AssetKey("target_table")]
    assert sorted(days.get_partition_keys()) == ["2023-01-01", "2023-01-02", "2023-01-03"]
    # two incremental windows on 2023-01-03: one run each, keyed by export and day
    assert sorted(r.run_key for r in runs) == sorted(
        f"{export_id}:2023-01-03" for export_id in report.incremental_export_ids
    )
    assert {r.partition_key for r in runs} == {"2023-01-03"}

    second = _tick(defs, stack, first.cursor)
    assert not second.run_requests  # idempotent across ticks
    assert unfinished in second.skip_reason.skip_message  # still waited for

    # a new incremental completes: only its window's days are requested
    window_from = dt.datetime(2023, 1, 4, 13, tzinfo=dt.UTC)
    summary = write_incremental_export(
        s3_client,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table_arn=table_arn(spec, "us-east-1"),
        export_from=window_from,
        export_to=window_from + dt.timedelta(hours=14),
        lines=[
            encode_incremental_line(
                {"customer_id": {"N": "1"}, "order_id": {"N": "1"}},
                int(window_from.timestamp() * 1e6) + 5,
            )
        ],
    )
    third = _tick(defs, stack, second.cursor)
    assert sorted(r.run_key for r in third.run_requests) == [
        f"{summary.export_id}:2023-01-04",
        f"{summary.export_id}:2023-01-05",
    ]
    assert summary.export_id in json.loads(third.cursor)["handled"]
