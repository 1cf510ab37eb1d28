"""`dynamodb.request: true`: dynamodb_export asks DynamoDB for the export a day needs."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import yaml
from dagster_aws.s3 import S3Resource

from migration_assets.defs.resources import DynamoDBResource
from migration_assets.devstack.seed import ensure_dynamodb_table
from migration_assets.dynamodb.coverage import DayCoverage, ExportRef
from migration_assets.dynamodb.requests import (
    ExportRequest,
    PitrWindow,
    client_token,
    plan_after_chain,
    plan_request,
)
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import assets_named

UTC = dt.UTC
DAY = dt.date(2026, 3, 2)
PITR = PitrWindow(dt.datetime(2026, 2, 1, tzinfo=UTC), dt.datetime(2026, 3, 2, 18, tzinfo=UTC))


def coverage(covered_until: str, complete: bool = False) -> DayCoverage:
    full = ExportRef("01772442005123-9f3c2a1b", "FULL_EXPORT", 10, 1, "2026-03-02T01:00:00Z")
    return DayCoverage(DAY.isoformat(), full, (), covered_until, complete)


def test_plan_asks_for_what_the_day_lacks():
    assert plan_request(DAY, None, PITR) == ExportRequest("FULL_EXPORT")
    assert plan_request(DAY, coverage("2026-03-03T01:00:00.000Z", True), PITR) is None
    partial = plan_request(DAY, coverage("2026-03-02T01:00:00.000Z"), PITR)
    assert partial == ExportRequest(
        "INCREMENTAL_EXPORT",
        dt.datetime(2026, 3, 2, 1, tzinfo=UTC),
        dt.datetime(2026, 3, 2, 18, tzinfo=UTC),  # up to the latest restorable time
    )
    assert plan_request(DAY, coverage("2026-03-02T17:50:00.000Z"), PITR) is None  # < 15 min
    stale = coverage("2026-01-15T00:00:00.000Z")  # the chain's end left the PITR window
    assert plan_request(DAY, stale, PITR) == ExportRequest("FULL_EXPORT")
    long_gap = PitrWindow(PITR.earliest, dt.datetime(2026, 3, 5, tzinfo=UTC))
    window = plan_request(DAY, coverage("2026-03-02T01:00:00.000Z"), long_gap)
    assert window.window_to - window.window_from == dt.timedelta(hours=24)  # DynamoDB's maximum


def test_a_day_the_chain_has_not_reached_asks_for_the_next_window_not_a_full_export():
    chain_end = dt.datetime(2026, 3, 1, 23, tzinfo=UTC)  # today (DAY) has no coverage yet
    assert plan_after_chain(DAY, chain_end, PITR) == ExportRequest(
        "INCREMENTAL_EXPORT", chain_end, PITR.latest
    )
    assert plan_after_chain(DAY, None, PITR) == ExportRequest("FULL_EXPORT")  # no full export


def test_client_token_is_stable_per_request():
    arn = "arn:aws:dynamodb:us-east-1:111122223333:table/orders"
    request = ExportRequest("INCREMENTAL_EXPORT", PITR.earliest, PITR.latest)
    assert client_token(arn, request) == client_token(arn, request)
    assert client_token(arn, request) != client_token(arn, ExportRequest("FULL_EXPORT"))


@pytest.fixture
def request_spec(bucket):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"] = bucket
    data["dynamodb"]["table"] = f"orders_{bucket[-8:]}"
    data["dynamodb"]["request"] = True
    return parse_spec(data)


def _materialize(spec, stack, day="2023-01-01"):
    export_only = assets_named(spec, "dynamodb_export")
    return dg.materialize(
        export_only,
        partition_key=day,
        resources={
            "s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3),
            "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
        },
        run_config={"ops": {"dynamodb_export": {"config": {"wait_seconds": 5, "poll_seconds": 1}}}},
        raise_on_error=False,
    )


def _failure(result) -> str:
    return next(e for e in result.all_events if e.is_step_failure).event_specific_data.error.message


def test_request_starts_one_full_export_into_the_export_prefix(
    request_spec, stack, dynamodb_client
):
    ensure_dynamodb_table(request_spec, dynamodb_client)  # PITR on
    result = _materialize(request_spec, stack)
    assert not result.success  # moto writes no manifests, so the day stays uncovered
    message = _failure(result)
    assert "requested export arn:aws:dynamodb" in message and "manifest-summary.json" in message
    table_arn = dynamodb_client.describe_table(TableName=request_spec.dynamodb.table)["Table"][
        "TableArn"
    ]
    (summary,) = dynamodb_client.list_exports(TableArn=table_arn)["ExportSummaries"]
    description = dynamodb_client.describe_export(ExportArn=summary["ExportArn"])
    assert description["ExportDescription"]["S3Prefix"] == request_spec.s3.export_prefix
    assert description["ExportDescription"]["S3Bucket"] == request_spec.s3.bucket


def test_request_without_pitr_fails_clearly(request_spec, stack, dynamodb_client):
    ensure_dynamodb_table(request_spec, dynamodb_client)
    dynamodb_client.update_continuous_backups(
        TableName=request_spec.dynamodb.table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
    )
    result = _materialize(request_spec, stack)
    assert not result.success
    assert "point-in-time recovery is not enabled" in _failure(result)
