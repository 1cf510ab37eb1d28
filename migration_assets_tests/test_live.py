"""live_days_schedule: today and yesterday kept current, against the real moto server and MySQL."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import yaml
from dagster_aws.s3 import S3Resource

from migration_assets.definitions import build_assets, build_definitions
from migration_assets.defs.schedules import STATE_TAG
from migration_assets.devstack.seed import ensure_dynamodb_table, seed, table_arn
from migration_assets.dynamodb.coverage import DayCoverage, ExportRef
from migration_assets.dynamodb.export_writer import (
    encode_incremental_line,
    write_incremental_export,
)
from migration_assets.live import live_days, plan_live_runs
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import assets_named

UTC = dt.UTC
D1, D2, D3 = dt.date(2023, 1, 1), dt.date(2023, 1, 2), dt.date(2023, 1, 3)


def _coverage(day: dt.date, complete: bool, *incrementals: str) -> DayCoverage:
    full = ExportRef("01672707600000-aaaaaaaa", "FULL_EXPORT", 10, 1, "2023-01-03T01:00:00Z")
    refs = tuple(ExportRef(i, "INCREMENTAL_EXPORT", 1, 1) for i in incrementals)
    return DayCoverage(day.isoformat(), full, refs, "2023-01-03T13:00:00Z", complete)


def test_live_days_are_yesterday_and_today_within_the_partitions():
    assert live_days(D3, D1, None) == [D2, D3]
    assert live_days(D1, D1, None) == [D1]  # the first day has no yesterday
    assert live_days(D3, D1, D2) == [D2]  # a closed range ends before today


def test_a_days_state_is_its_export_chain_unless_the_run_requests_exports():
    tick = dt.datetime(2023, 1, 3, 14, tzinfo=UTC)
    covered = {D2: _coverage(D2, True, "i1"), D3: None}
    plain = plan_live_runs([D2, D3], covered, request_exports=False, tick=tick)
    assert plain[0].state and plain[0].state.startswith("2023-01-02:")
    assert plain[1].state is None and "no completed export" in plain[1].reason
    again = plan_live_runs([D2], {D2: _coverage(D2, True, "i1")}, request_exports=False, tick=tick)
    assert again[0].state == plain[0].state  # same chain, same state, whatever the tick
    grown = plan_live_runs(
        [D2], {D2: _coverage(D2, True, "i1", "i2")}, request_exports=False, tick=tick
    )
    assert grown[0].state != plain[0].state  # a new incremental changes the day
    asking = plan_live_runs([D2, D3], covered, request_exports=True, tick=tick)
    assert asking[0].state == plain[0].state  # complete: nothing to ask for
    assert asking[1].state == "2023-01-03:none:20230103T1400"  # asks on every tick


def _tick(defs, stack, instance, when: dt.datetime):
    schedule = defs.get_schedule_def("live_days_schedule")
    with dg.build_schedule_context(  # entered and left: it sets (and must reset) the
        instance=instance,  # current instance's state storage, a context variable
        scheduled_execution_time=when,
        repository_def=defs.get_repository_def(),  # resolves (and checks) the partition keys
        resources={"s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3)},
    ) as context:
        return schedule.evaluate_tick(context)


def test_live_days_run_when_their_exports_change(
    spec, stack, resources, mysql_db, s3_client, dynamodb_client, tmp_path
):
    seed(  # full export at 2023-01-03 01:00, incrementals until 13:00
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=mysql_db,
        days=[D1, D2],
        items_per_day=40,
    )
    defs = build_definitions(spec)
    schedule = defs.get_schedule_def("live_days_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    instance = dg.DagsterInstance.local_temp(str(tmp_path))  # schedules need a persistent one
    tick = dt.datetime(2023, 1, 3, 14, tzinfo=UTC)
    first = _tick(defs, stack, instance, tick)
    assert sorted(r.partition_key for r in first.run_requests) == ["2023-01-02", "2023-01-03"]
    assert {r.run_key for r in first.run_requests} == {
        r.tags[STATE_TAG] for r in first.run_requests
    }
    assert _tick(defs, stack, instance, tick).run_requests == first.run_requests  # same tick

    for request in first.run_requests:  # the whole graph for each live day, as the daemon would
        result = dg.materialize(
            build_assets(spec),
            partition_key=request.partition_key,
            tags=request.tags,
            instance=instance,
            resources=resources,
        )
        assert result.success
        assert {e.passed for e in result.get_asset_check_evaluations()} == {True}
    later = _tick(defs, stack, instance, tick + dt.timedelta(minutes=30))
    assert not later.run_requests  # nothing changed: both days are up to date
    assert "2023-01-02: up to date" in later.skip_message
    assert "2023-01-03: up to date" in later.skip_message

    window_from = dt.datetime(2023, 1, 3, 13, tzinfo=UTC)  # the chain grows by an hour
    write_incremental_export(
        s3_client,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table_arn=table_arn(spec, "us-east-1"),
        export_from=window_from,
        export_to=window_from + dt.timedelta(hours=1),
        lines=[
            encode_incremental_line(
                {"customer_id": {"N": "1"}, "order_id": {"N": "1"}},
                int(window_from.timestamp() * 1e6) + 5,
            )
        ],
    )
    grown = _tick(defs, stack, instance, tick + dt.timedelta(hours=1))
    assert sorted(r.partition_key for r in grown.run_requests) == ["2023-01-02", "2023-01-03"]
    assert not {r.run_key for r in grown.run_requests} & {r.run_key for r in first.run_requests}


@pytest.fixture
def request_spec(bucket):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"] = bucket
    data["dynamodb"]["table"] = f"orders_{bucket[-8:]}"
    data["dynamodb"]["request"] = True
    return parse_spec(data)


def test_with_requests_on_today_is_run_every_tick_and_its_run_asks_dynamodb(
    request_spec, stack, resources, dynamodb_client, tmp_path
):
    ensure_dynamodb_table(request_spec, dynamodb_client)  # PITR on; no export yet
    defs = build_definitions(request_spec)
    instance = dg.DagsterInstance.local_temp(str(tmp_path))  # schedules need a persistent one
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    first = _tick(defs, stack, instance, now)
    today = now.date().isoformat()
    (run,) = [r for r in first.run_requests if r.partition_key == today]
    result = dg.materialize(
        assets_named(request_spec, "dynamodb_export"),
        partition_key=today,
        tags=run.tags,
        instance=instance,
        resources=resources,
        run_config={"ops": {"dynamodb_export": {"config": {"wait_seconds": 5, "poll_seconds": 1}}}},
        raise_on_error=False,
    )
    assert not result.success  # moto completes the export but writes no manifest
    arn = dynamodb_client.describe_table(TableName=request_spec.dynamodb.table)["Table"]["TableArn"]
    (export,) = dynamodb_client.list_exports(TableArn=arn)["ExportSummaries"]
    described = dynamodb_client.describe_export(ExportArn=export["ExportArn"])
    assert described["ExportDescription"]["S3Prefix"] == request_spec.s3.export_prefix
    retried = _tick(defs, stack, instance, now + dt.timedelta(minutes=30))
    assert today in {r.partition_key for r in retried.run_requests}  # the failed day again
