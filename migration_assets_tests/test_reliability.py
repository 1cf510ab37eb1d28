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

from migration_assets.definitions import build_assets
from migration_assets.devstack.seed import seed
from migration_assets.mysql.connection import connection
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


@pytest.fixture
def seeded(spec, stack, mysql_db, s3_client, dynamodb_client, tmp_path):
    """A seeded day big enough that each statement runs for a moment, and the environment
    of a separate `dagster asset materialize` process against it."""
    seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=mysql_db,
        days=[dt.date.fromisoformat(DAY)],
        items_per_day=10_000,
    )
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"], data["dynamodb"]["table"] = spec.s3.bucket, spec.dynamodb.table
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    (tmp_path / "dagster_home").mkdir()
    return {
        **os.environ,
        "MIGRATION_SPEC": str(spec_path),
        "MIGRATION_MYSQL_URL": mysql_db.url,
        "AWS_ENDPOINT_URL": stack.aws_endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }


def kill_during(env, cwd, settings, statement_prefix: str, timeout_s: float = 240) -> str:
    """Run the whole graph for DAY in a new process group; SIGKILL it while the server runs
    a statement starting with `statement_prefix`. Returns the statement interrupted."""
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "migration_assets.definitions",
            "--select",
            ",".join(ALL),
            "--partition",
            DAY,
        ],
        env=env,
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    try:
        with connection(settings) as conn, conn.cursor() as cur:
            while time.monotonic() < deadline and worker.poll() is None:
                cur.execute(
                    "SELECT INFO FROM information_schema.PROCESSLIST WHERE DB = DATABASE()"
                    " AND INFO LIKE %s",
                    (statement_prefix.replace("%", "%%") + "%",),
                )
                row = cur.fetchone()
                if row:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(timeout=30)
                    return row[0]
                time.sleep(0.005)
        _, errors = worker.communicate(timeout=30)
        raise AssertionError(f"never saw {statement_prefix!r} running:\n{errors[-3000:]}")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)


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
    rerun = dg.materialize(build_assets(spec), partition_key=DAY, resources=resources)
    assert rerun.success
    checks = rerun.get_asset_check_evaluations()
    assert len(checks) == 8 and all(e.passed for e in checks)  # exact per-second parity
    duplicates = fetch(
        mysql_db,
        "SELECT COUNT(*) FROM (SELECT 1 FROM orders GROUP BY customer_id, order_id, created_at"
        " HAVING COUNT(*) > 1) AS d",
    )[0][0]
    assert duplicates == 0
    legacy = fetch(
        mysql_db,
        "SELECT COUNT(*) FROM table01 WHERE created_at >= %s AND created_at < %s",
        (DAY, "2023-01-03"),
    )[0][0]
    copied = fetch(
        mysql_db,
        "SELECT COUNT(*) FROM orders WHERE created_at >= %s AND created_at < %s"
        " AND id < 2147483648",
        (DAY, "2023-01-03"),
    )[0][0]
    tombstones = fetch(mysql_db, "SELECT COUNT(*) FROM orders_tombstones")[0][0]
    assert copied + tombstones == legacy and copied > 0


@pytest.mark.slow
def test_two_runs_of_the_same_partition_at_once_end_exact(
    spec, mysql_db, resources, seeded, tmp_path
):
    """Both runs succeed or one fails cleanly; never a mixed result."""
    command = [
        sys.executable, "-m", "dagster", "asset", "materialize", "-m",
        "migration_assets.definitions", "--select", ",".join(ALL), "--partition", DAY,
    ]  # fmt: skip
    runs = [
        subprocess.Popen(
            command,
            env=seeded,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    codes = [run.returncode for run in runs]
    assert 0 in codes, outputs[0][-3000:] + outputs[1][-3000:]
    for code, output in zip(codes, outputs, strict=True):
        if code != 0:  # a clean failure says why (a lock it could not get, a deadlock...)
            assert "Error" in output or "Failure" in output, output[-3000:]
    recheck = dg.materialize(
        build_assets(spec),
        selection=dg.AssetSelection.all_asset_checks(),
        tags={"dagster/partition": DAY},
        resources=resources,
    )
    checks = recheck.get_asset_check_evaluations()
    assert len(checks) == 8 and all(e.passed for e in checks)
    duplicates = fetch(
        mysql_db,
        "SELECT COUNT(*) FROM (SELECT 1 FROM orders GROUP BY customer_id, order_id, created_at"
        " HAVING COUNT(*) > 1) AS d",
    )[0][0]
    assert duplicates == 0
