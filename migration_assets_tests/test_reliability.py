"""Fault injection: a worker killed (SIGKILL) in the middle of a MySQL statement, then the
partition materialized again, must end with exact per-second parity and no duplicates.

The kill is real: `dagster asset materialize` runs in its own process group, the test
watches the server's process list for the statement it wants to interrupt and kills the
whole group while that statement runs. No hook in the product code.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from dagster_aws.s3 import S3Resource

from migration_assets.defs.resources import DynamoDBResource, MySQLResource
from migration_assets.devstack.mysql_server import start_throwaway_mysql
from migration_assets.devstack.processes import stop_pid
from migration_assets.mysql.connection import ensure_database

from .faults import (
    assert_day_exact,
    kill_during,
    seed_day,
    start_worker,
    wait_for_statement,
    worker_env,
)

pytestmark = pytest.mark.reliability  # docs/RELIABILITY.md


@pytest.fixture
def seeded(spec, stack, mysql_db, s3_client, dynamodb_client, tmp_path):
    seed_day(spec, mysql_db, s3_client, dynamodb_client)
    return worker_env(spec, mysql_db, stack, tmp_path)


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
