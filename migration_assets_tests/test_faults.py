"""Fault injection through a real proxy (`fault_proxy.py`): S3 errors, slow and broken
responses, MySQL connections cut mid-statement while the server keeps running, and
`dagster asset materialize` killed (SIGKILL) while it writes Parquet or verifies an export.

After every scenario the day must be exact: all nine per-second parity checks pass from
the export census to the target, no duplicate key, every legacy row copied or a tombstone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import signal
import time
from urllib.parse import urlsplit

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from migration_assets.definitions import build_assets
from migration_assets.defs.resources import DynamoDBResource, MySQLResource
from migration_assets.devstack import synthetic
from migration_assets.devstack.seed import WINDOW, incremental_lines, table_arn
from migration_assets.dynamodb.export_writer import write_incremental_export
from migration_assets.dynamodb.layout import require_manifest
from migration_assets.parquet.store import manifest_key, read_manifest, read_partition

from .fault_proxy import HttpFaultProxy, TcpFaultProxy
from .faults import DAY, assert_day_exact, assert_exact, fetch, seed_day, start_worker, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.reliability]  # whole-graph runs, several s each

ITEMS = 1_000  # a small day: every hop still runs, each run takes seconds
PARTS = f"/dt={DAY}/part-"  # the day's Parquet data files (PUT by parquet_partitions)
THE_DAY = dt.date.fromisoformat(DAY)


@pytest.fixture
def day(spec, mysql_db, s3_client, dynamodb_client):
    seed_day(spec, mysql_db, s3_client, dynamodb_client, items_per_day=ITEMS)


@pytest.fixture
def s3_proxy(stack):
    with HttpFaultProxy("127.0.0.1", urlsplit(stack.aws_endpoint_url).port) as proxy:
        yield proxy


@pytest.fixture
def mysql_proxy(mysql_db):
    with TcpFaultProxy(mysql_db.host, mysql_db.port) as proxy:
        yield proxy


def resources_via(stack, mysql_db, s3_url: str | None = None, mysql_port: int | None = None):
    """The code location's resources (S3 as in `default_resources`), through the proxies."""
    mysql = dataclasses.replace(mysql_db, host="127.0.0.1", port=mysql_port or mysql_db.port)
    return {
        "s3": S3Resource(endpoint_url=s3_url or stack.aws_endpoint_url, max_attempts=10),
        "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
        "mysql": MySQLResource(url=mysql.url),
    }


def materialize(spec, resources, **kwargs):
    return dg.materialize(build_assets(spec), partition_key=DAY, resources=resources, **kwargs)


def failures(result) -> dict[str, str]:
    """Failed step -> its error, causes included."""
    return {
        e.step_key: e.step_failure_data.error.to_string() for e in result.get_step_failure_events()
    }


def test_s3_transient_errors_broken_and_slow_responses_are_retried_to_an_exact_day(
    spec, stack, mysql_db, day, s3_proxy
):
    """503 SlowDown and 500 InternalError on GETs of the export's data files and on the
    Parquet PUTs, responses reset mid-body and before any byte, responses delayed (below
    the client's 60 s read timeout): the run retries or waits through every one and the
    day is exact."""
    faults = [
        s3_proxy.add("GET", "manifest-summary.json", "delay", delay_s=1.5),
        # botocore backs off up to 2**n s before its n-th retry: one 503 and one 500 each
        s3_proxy.add("GET", "/data/", "error", status=503, code="SlowDown"),
        s3_proxy.add("GET", "/data/", "error", status=500, code="InternalError"),
        s3_proxy.add("GET", "/data/", "reset", times=2, reset_after_body_bytes=100),
        s3_proxy.add("GET", "/data/", "delay", delay_s=1.5),
        s3_proxy.add("GET", "manifest-files.json", "reset", reset_after_body_bytes=None),
        s3_proxy.add("PUT", PARTS, "error", status=503, code="SlowDown"),
        s3_proxy.add("PUT", PARTS, "error", status=500, code="InternalError"),
        s3_proxy.add("PUT", PARTS, "delay", delay_s=1.5),
        # the manifest PUT lands but its answer is lost: retried, same bytes
        s3_proxy.add("PUT", "/_manifest.json", "reset", reset_after_body_bytes=None),
        # the 404 of the day's absent manifest, broken off mid-body
        s3_proxy.add("GET", "/_manifest.json", "reset", reset_after_body_bytes=10),
    ]
    started = time.monotonic()
    result = materialize(spec, resources_via(stack, mysql_db, s3_url=s3_proxy.url))
    assert time.monotonic() - started >= 4.5  # the delays happened, inside the run
    assert [len(f.hits) for f in faults] == [f.times for f in faults]  # every fault happened
    assert_exact(result, mysql_db)


def add_changes(spec, s3_client) -> None:
    """One more incremental export after the seeded ones, changing the day: a run that
    succeeded now would rewrite its Parquet and its MySQL rows."""
    batch = synthetic.generate_day(spec, THE_DAY, ITEMS, 7)
    start = dt.datetime.combine(THE_DAY + dt.timedelta(days=1), dt.time(1), dt.UTC) + 2 * WINDOW
    rng = random.Random(99)
    write_incremental_export(
        s3_client,
        bucket=spec.s3.bucket,
        prefix=spec.s3.export_prefix,
        table_arn=table_arn(spec, "us-east-1"),
        export_from=start,
        export_to=start + WINDOW,
        lines=incremental_lines(spec, batch, start, rng, 2),
        rng=rng,
    )


def day_state(spec, s3_client, settings) -> tuple:
    """The committed Parquet day (manifest bytes; every file it names is read and its sha256
    checked) and a checksum of the MySQL tables."""
    manifest = s3_client.get_object(Bucket=spec.s3.bucket, Key=manifest_key(spec, THE_DAY))
    rows = read_partition(s3_client, spec, THE_DAY).num_rows  # raises if a file is missing
    tables = fetch(settings, "CHECKSUM TABLE orders, orders_stage, table01")
    return manifest["Body"].read(), rows, tables


def test_a_permanent_s3_error_fails_naming_the_object_and_leaves_the_day_as_it_was(
    spec, stack, mysql_db, day, s3_proxy, s3_client
):
    """403 on the export's manifest, 404 on a data file and 403 on the Parquet manifest PUT
    each fail the run with the bucket and key in the message, and change nothing: the old
    Parquet manifest still names files that exist, MySQL is untouched. Then, the faults
    gone, the day is exact again with the new changes."""
    resources = resources_via(stack, mysql_db, s3_url=s3_proxy.url)
    assert_exact(materialize(spec, resources), mysql_db)
    add_changes(spec, s3_client)
    before = day_state(spec, s3_client, mysql_db)
    incremental = read_manifest(s3_client, spec, THE_DAY).exports[1]  # verified by the 1st run
    data_file = next(
        f
        for f in require_manifest(
            s3_client, spec.s3.bucket, spec.s3.export_prefix, incremental
        ).files
        if f.item_count
    )
    scenarios = [  # rule, the step that must fail, what its message must say
        (("GET", "manifest-summary.json", 403, "AccessDenied"), "dynamodb_export", "AccessDenied"),
        (("GET", data_file.key, 404, "NoSuchKey"), "parquet_partitions", "does not exist"),
        (("PUT", "/_manifest.json", 403, "AccessDenied"), "parquet_partitions", "AccessDenied"),
    ]
    for (method, path, status, code), step, says in scenarios:
        s3_proxy.clear()
        rule = s3_proxy.add(method, path, "error", times=10**6, status=status, code=code)
        result = materialize(spec, resources, raise_on_error=False)
        failed = failures(result)
        assert not result.success and list(failed) == [step], failed
        message = failed[step]
        key = rule.hits[0].split("?")[0].removeprefix(f"/{spec.s3.bucket}/")
        assert says in message and spec.s3.bucket in message and key in message, message
        assert day_state(spec, s3_client, mysql_db) == before
    s3_proxy.clear()
    assert_exact(materialize(spec, resources), mysql_db)
    assert day_state(spec, s3_client, mysql_db)[0] != before[0]  # the changes are in now


@pytest.mark.parametrize(
    ("statement", "occurrence", "extra_bytes"),
    [
        (b"LOAD DATA LOCAL INFILE", 1, 16_384),  # cut while the day's rows stream in
        (b"INSERT INTO `orders` (`customer_id`", 2, 0),  # cut as merge chunk 2 runs
    ],
)
def test_mysql_connections_cut_mid_statement_are_retried_to_an_exact_day(
    spec, stack, mysql_db, day, mysql_proxy, statement, occurrence, extra_bytes
):
    """The proxy closes every open MySQL connection (the server keeps running) once the
    statement has been sent (plus some of the LOAD DATA file): the run retries and
    finishes; the day is exact."""
    mysql_proxy.cut_after(statement, occurrence=occurrence, extra_bytes=extra_bytes)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(
        spec,
        resources_via(stack, mysql_db, mysql_port=mysql_proxy.port),
        instance=instance,
        run_config={"ops": {"target_table": {"config": {"chunk_rows": 250}}}},
        raise_on_error=False,
    )
    assert mysql_proxy.triggered.is_set() and mysql_proxy.cuts >= 1
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("transient MySQL error" in message for message in logs), failures(result)
    assert_exact(result, mysql_db)


def kill_when(env, cwd, rule, timeout_s: float = 240) -> None:
    """Run the whole graph for DAY in a new process group; SIGKILL it while the proxy
    holds the first request `rule` matches."""
    worker = start_worker(env, cwd)
    try:
        deadline = time.monotonic() + timeout_s
        while not rule.seen.wait(0.1):
            if worker.poll() is not None or time.monotonic() > deadline:
                output = worker.communicate(timeout=60)[0] if worker.poll() is not None else ""
                raise AssertionError(f"the worker never sent {rule.path_contains}:\n{output}")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/_manifest.json"),  # parquet_partitions: files uploaded, the commit held
        ("GET", "/data/"),  # dynamodb_export verifying the export's data files
    ],
)
def test_a_worker_killed_mid_s3_request_leaves_a_day_a_rerun_makes_exact(
    spec, stack, mysql_db, resources, day, s3_proxy, s3_client, tmp_path, method, path
):
    """`dagster asset materialize` (its S3 client pointed at the proxy) is killed while the
    proxy holds the request; that request never reaches S3. Nothing half-done is visible:
    no Parquet manifest (so none naming missing files), no verification marker or coverage
    record before the verification finished. The re-run is exact."""
    env = {**worker_env(spec, mysql_db, stack, tmp_path), "AWS_ENDPOINT_URL": s3_proxy.url}
    rule = s3_proxy.add(method, path, "stall", delay_s=120)
    kill_when(env, tmp_path, rule)
    s3_proxy.clear()
    assert read_manifest(s3_client, spec, THE_DAY) is None
    prefix = spec.s3.parquet_prefix + ("/" if method == "GET" else f"/dt={DAY}/part-")
    listed = s3_client.list_objects_v2(Bucket=spec.s3.bucket, Prefix=prefix)
    if method == "GET":  # killed inside dynamodb_export: it recorded nothing
        assert listed.get("KeyCount", 0) == 0, listed.get("Contents")
    else:  # the day's files were uploaded; nothing names them
        assert listed.get("KeyCount", 0) >= 1
    assert_day_exact(spec, mysql_db, resources)
    read_partition(s3_client, spec, THE_DAY)  # the manifest names only files that exist
