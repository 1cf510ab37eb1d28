"""Shared by the fault-injection tests (`test_reliability.py`, `test_faults.py`): seeding
one day, running the whole graph in a separate `dagster asset materialize` process group,
watching the server for a statement, and proving a day exact afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import dagster as dg
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


def seed_day(spec, settings, s3_client, dynamodb_client, items_per_day: int = 10_000) -> None:
    """A seeded day; 10,000 items: big enough that each statement runs for a moment."""
    seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=settings,
        days=[dt.date.fromisoformat(DAY)],
        items_per_day=items_per_day,
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
    """Materialize the day again (or, with `rerun=False`, only re-run its checks): all nine
    checks pass, no duplicate key, and every legacy row of the day is copied or a tombstone."""
    if rerun:
        result = dg.materialize(build_assets(spec), partition_key=DAY, resources=resources)
    else:
        result = dg.materialize(
            build_assets(spec),
            selection=dg.AssetSelection.all_asset_checks(),
            tags={"dagster/partition": DAY},
            resources=resources,
        )
    assert_exact(result, settings)


def assert_exact(result, settings) -> None:
    """`result` (a run of the whole graph or of every check for DAY) succeeded with all nine
    checks passed; no duplicate key; every legacy row of the day is copied or a tombstone."""
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 9 and all(e.passed for e in checks)  # exact per-second parity
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
