"""The chaos benchmark's faults on a short backfill (`bench/chaos.py`, docs/backfills.md): a
deployed Dagster (code server, webserver, daemon) on PostgreSQL backfills a dozen days of the
whole graph while its daemon is SIGKILLed and started again, a run's worker is SIGKILLed and
the MariaDB server restarts. Nobody intervenes: every partition must end materialized, every
check passed against the latest materialization, no key twice in the target, the killed run
retried by the daemon."""

import datetime as dt

import pytest
import yaml

from bench.chaos import FAULTS, run_backfill
from migration_assets.devstack.seed import seed
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

from .helpers import require_postgres

pytestmark = [pytest.mark.chaos, pytest.mark.reliability, pytest.mark.slow]

DAYS, ITEMS_PER_DAY, DAYS_PER_RUN = 12, 200, 3  # 4 runs: two at a time, then the retry


def test_a_backfill_ends_complete_and_exact_through_daemon_worker_and_mysql_crashes(
    stack, bucket, s3_client, dynamodb_client, mysql_db, tmp_path
):
    require_postgres()
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"] = bucket
    data["dynamodb"]["table"] = f"orders_{bucket[-8:]}"
    start = dt.date.fromisoformat(data["partitions"]["start"])
    data["partitions"]["end"] = (start + dt.timedelta(days=DAYS)).isoformat()
    spec = parse_spec(data)
    days = [start + dt.timedelta(days=n) for n in range(DAYS)]
    seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=mysql_db,
        days=days,
        items_per_day=ITEMS_PER_DAY,
    )

    outcome = run_backfill(
        stack,
        data,
        tmp_path,
        storage="postgres",
        shares=(0.0, 0.25, 0.25),  # the daemon at once, then the worker, MySQL 15 s later
        days_per_run=DAYS_PER_RUN,
        timeout_s=600,
        legacy_database=mysql_db.database,
    )

    summary = {k: v for k, v in outcome.items() if k not in ("checks", "assets")}
    assert [f["fault"] for f in outcome["faults"]] == list(FAULTS), summary
    assert outcome["every_partition_materialized"], outcome["assets"]
    assert outcome["every_check_passed"], outcome["checks"]
    assert set(outcome["checks"].values()) == {DAYS}
    assert outcome["duplicated_keys"] == 0 and outcome["target_rows"] > 0, summary
    assert outcome["runs_retried"] >= 1 and outcome["runs_failed_for_good"] == [], summary
    assert outcome["status"] == "COMPLETED_SUCCESS", summary
