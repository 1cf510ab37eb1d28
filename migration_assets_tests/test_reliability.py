"""Fault injection: a worker killed (SIGKILL) in the middle of a MySQL statement, then the
partition materialized again, must end with exact per-second parity and no duplicates.

The kill is real: `dagster asset materialize` runs in its own process group, the test
watches the server's process list for the statement it wants to interrupt and kills the
whole group while that statement runs. No hook in the product code.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
import yaml
from dagster_aws.s3 import S3Resource

from migration_assets.definitions import build_assets
from migration_assets.devstack.mysql_server import start_throwaway_mysql
from migration_assets.devstack.processes import stop_pid
from migration_assets.devstack.seed import seed
from migration_assets.mysql.connection import connection, ensure_database
from migration_assets.resources import DynamoDBResource, MySQLResource
from migration_assets.spec import EXAMPLE_SPEC

DAY = "2023-01-02"
ALL = (
    "dynamodb_export",
    "parquet_partitions",
    "aurora_temp_table",
    "bigint_table_copy",
    "target_table",
)


def fetch(settings, sql, params=()):
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def seed_day(spec, settings, s3_client, dynamodb_client) -> None:
    """A seeded day big enough that each statement runs for a moment."""
    seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=settings,
        days=[dt.date.fromisoformat(DAY)],
        items_per_day=10_000,
    )


def worker_env(spec, settings, stack, tmp_path) -> dict[str, str]:
    """The environment of a separate `dagster asset materialize` process."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"], data["dynamodb"]["table"] = spec.s3.bucket, spec.dynamodb.table
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return {
        **os.environ,
        "MIGRATION_SPEC": str(spec_path),
        "MIGRATION_MYSQL_URL": settings.url,
        "AWS_ENDPOINT_URL": stack.aws_endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }


@pytest.fixture
def seeded(spec, stack, mysql_db, s3_client, dynamodb_client, tmp_path):
    seed_day(spec, mysql_db, s3_client, dynamodb_client)
    return worker_env(spec, mysql_db, stack, tmp_path)


MATERIALIZE = [
    sys.executable, "-m", "dagster", "asset", "materialize", "-m",
    "migration_assets.definitions", "--select", ",".join(ALL), "--partition", DAY,
]  # fmt: skip


def start_worker(env, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        MATERIALIZE, env=env, cwd=cwd, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def wait_for_statement(settings, worker, statement_prefix: str, timeout_s: float = 240) -> str:
    """Poll the server's process list until a statement starting with `statement_prefix`
    runs; returns it (fails if the worker ends first)."""
    deadline = time.monotonic() + timeout_s
    with connection(settings) as conn, conn.cursor() as cur:
        while time.monotonic() < deadline and worker.poll() is None:
            cur.execute(
                "SELECT INFO FROM information_schema.PROCESSLIST WHERE DB = DATABASE()"
                " AND INFO LIKE %s",
                (statement_prefix.replace("%", "%%") + "%",),
            )
            row = cur.fetchone()
            if row:
                return row[0]
            time.sleep(0.005)
    output = worker.communicate(timeout=60)[0] if worker.poll() is not None else ""
    raise AssertionError(f"never saw {statement_prefix!r} running:\n{output[-3000:]}")


def kill_during(env, cwd, settings, statement_prefix: str) -> str:
    """Run the whole graph for DAY in a new process group; SIGKILL it while the server runs
    a statement starting with `statement_prefix`. Returns the statement interrupted."""
    worker = start_worker(env, cwd)
    try:
        return wait_for_statement(settings, worker, statement_prefix)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


def assert_day_exact(spec, settings, resources, *, rerun: bool = True) -> None:
    """Materialize the day again (or, with `rerun=False`, only re-run its checks): all eight
    checks pass, no duplicate key, and every legacy row of the day is copied or a tombstone."""
    if rerun:
        rerun = dg.materialize(build_assets(spec), partition_key=DAY, resources=resources)
    else:
        rerun = dg.materialize(
            build_assets(spec),
            selection=dg.AssetSelection.all_asset_checks(),
            tags={"dagster/partition": DAY},
            resources=resources,
        )
    assert rerun.success
    checks = rerun.get_asset_check_evaluations()
    assert len(checks) == 8 and all(e.passed for e in checks)  # exact per-second parity
    duplicates = fetch(
        settings,
        "SELECT COUNT(*) FROM (SELECT 1 FROM orders GROUP BY customer_id, order_id, created_at"
        " HAVING COUNT(*) > 1) AS d",
    )[0][0]
    assert duplicates == 0
    window = (DAY, "2023-01-03")
    legacy = fetch(
        settings, "SELECT COUNT(*) FROM table01 WHERE created_at >= %s AND created_at < %s", window
    )[0][0]
    copied = fetch(
        settings,
        "SELECT COUNT(*) FROM orders WHERE created_at >= %s AND created_at < %s"
        " AND id < 2147483648",
        window,
    )[0][0]
    tombstones = fetch(settings, "SELECT COUNT(*) FROM orders_tombstones")[0][0]
    assert copied + tombstones == legacy and copied > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "statement_prefix",
    [
        "LOAD DATA LOCAL INFILE",  # aurora_temp_table streaming the day into staging
        "INSERT INTO `orders` (`id`",  # bigint_table_copy copying a chunk of legacy rows
        "INSERT INTO `orders` (`customer_id`",  # target_table merging a chunk
    ],
)
def test_a_worker_killed_mid_statement_leaves_nothing_a_rerun_cannot_finish_exactly(
    spec, mysql_db, resources, seeded, tmp_path, statement_prefix
):
    interrupted = kill_during(seeded, tmp_path, mysql_db, statement_prefix)
    assert interrupted.startswith(statement_prefix)
    time.sleep(0.5)  # the server notices the dead client and rolls its transaction back
    assert_day_exact(spec, mysql_db, resources)


@pytest.mark.slow
def test_two_runs_of_the_same_partition_at_once_end_exact(
    spec, mysql_db, resources, seeded, tmp_path
):
    """Both runs succeed or one fails cleanly; never a mixed result."""
    runs = [start_worker(seeded, tmp_path) for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    codes = [run.returncode for run in runs]
    assert 0 in codes, outputs[0][-3000:] + outputs[1][-3000:]
    for code, output in zip(codes, outputs, strict=True):
        if code != 0:  # a clean failure says why (a lock it could not get, a deadlock...)
            assert "Error" in output or "Failure" in output, output[-3000:]
    assert_day_exact(spec, mysql_db, resources, rerun=False)  # as the two runs left it


@pytest.fixture
def own_server(tmp_path):
    """A MariaDB of this test's own, which the test crashes and restarts."""
    server = {"now": start_throwaway_mysql(tmp_path / "own-mysql")}
    try:
        yield server
    finally:
        stop_pid(server["now"].pid, timeout_s=60)


@pytest.mark.slow
@pytest.mark.parametrize(
    "statement_prefix",
    ["LOAD DATA LOCAL INFILE", "INSERT INTO `orders` (`customer_id`"],  # a load, a merge
)
def test_the_mysql_server_crashing_and_restarting_mid_statement(
    spec, stack, own_server, s3_client, dynamodb_client, tmp_path, statement_prefix
):
    """The server is killed (SIGKILL: a crash, like a failover) while the statement runs and
    started again on the same data and port. The run retries lost connections with backoff:
    it either finishes by itself or fails cleanly; the day is then exact after a re-run."""
    settings = own_server["now"].settings("reliability")
    ensure_database(settings)
    seed_day(spec, settings, s3_client, dynamodb_client)
    worker = start_worker(worker_env(spec, settings, stack, tmp_path), tmp_path)
    try:
        interrupted = wait_for_statement(settings, worker, statement_prefix)
        crashed = own_server["now"]
        os.kill(crashed.pid, signal.SIGKILL)
        os.waitpid(crashed.pid, 0)  # our child: reap it
        own_server["now"] = start_throwaway_mysql(tmp_path / "own-mysql", port=crashed.port)
        output = worker.communicate(timeout=600)[0]
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
    assert interrupted.startswith(statement_prefix)
    retried = "transient MySQL error" in output  # logged by each retry
    assert retried, output[-3000:]
    assert worker.returncode == 0 or "MySQL" in output, output[-3000:]  # or failed, saying so
    resources = {
        "s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3),
        "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
        "mysql": MySQLResource(url=settings.url),
    }
    assert_day_exact(spec, settings, resources)
