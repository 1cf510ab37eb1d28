"""Benchmark: the three-year backfill on a deployed Dagster with PostgreSQL storage, while the
daemon is SIGKILLed and started again, a run's worker is SIGKILLed and MariaDB restarts.

End to end, as `bench/backfill.py` (the same seed, graph, checks and verification through the
instance API), but Dagster runs as deployed (`devstack/deployment.py`: a code server, a
webserver and a daemon, each its own process) on an instance of its own (`devstack/instance.py`:
a fresh PostgreSQL database, or SQLite: `--runs sqlite:...`) with the shipped instance
settings: run retries, run monitoring, pools. The backfill is launched as an operator would
(GraphQL `launchPartitionBackfill`, all partitions, tags `dagster/max_retries` and
`dagster/retry_strategy`), then the faults come one after the other, spread over the backfill
(after 15 %, 40 % and 65 % of its runs succeeded, each while a run is at work):

  daemon  SIGKILL the daemon (backfill, run queue, monitoring and retry daemons), start it again
  worker  SIGKILL a run's worker process (and what it started) in the middle of the run
  mysql   restart the throwaway MariaDB (clean shutdown, same data and port)

Nothing else is done by hand. At the end: every partition of every asset materialized, every
check of every partition passed against its latest materialization, no duplicate key in the
target table (MySQL), the target's rows; the runs retried and why.

    .venv/bin/python -m bench.chaos --days 1096 --items-per-day 2000 \\
        --runs postgres:chaos,postgres:none,sqlite:none --json bench/results/chaos-latest.json

runs the backfill with the faults on PostgreSQL, then the same without faults on PostgreSQL and
on SQLite (the baselines), one after the other on the same seed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migration_assets.devstack.deployment import Deployment
from migration_assets.devstack.instance import InstanceDir, create_instance, remove_instance
from migration_assets.devstack.mysql_server import start_throwaway_mysql
from migration_assets.devstack.processes import exported, free_loopback_port, stop_pid, wait_until
from migration_assets.devstack.stack import StackState, start_stack, stop_stack
from migration_assets.mysql.connection import connection
from migration_assets.spec import MigrationSpec, parse_spec

from .backfill import (
    LAUNCH,
    TERMINAL,
    _copy_legacy_table,
    _graphql,
    _instance,
    _loaded,
    _verify,
    seed_stack,
)
from .backfill import _spec_data as backfill_spec_data
from .common import write_json

FAULTS = ("daemon", "worker", "mysql")
SHARES = (0.15, 0.40, 0.65)  # the n-th fault: after this share of the backfill's runs succeeded
ASSETS = ("dynamodb_export", "parquet_partitions", "aurora_temp_table", "target_table")
RETRY_TAGS = {"dagster/max_retries": "3", "dagster/retry_strategy": "FROM_FAILURE"}


def _say(message: str) -> None:
    print(f"[bench_chaos {dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def restart_mysql(stack: StackState) -> float:
    """Stop the stack's throwaway MariaDB cleanly and start it on the same data and port;
    returns the seconds it was down. `stack.mysql_pid` is updated."""
    assert stack.mysql_pid is not None and stack.mysql_dir is not None, "needs the throwaway"
    started = time.monotonic()
    stop_pid(stack.mysql_pid, timeout_s=60)
    server = start_throwaway_mysql(Path(stack.mysql_dir), port=stack.mysql.port)
    stack.mysql_pid = server.pid
    return time.monotonic() - started


@dataclass
class Chaos:
    """The faults still to come, each after its share of the backfill's runs succeeded."""

    stack: StackState
    deployment: Deployment
    expected_runs: int
    todo: list[str]
    shares: tuple[float, ...] = SHARES
    min_run_age_s: float = 5.0  # a fault hits a run at work, not one starting up
    min_gap_s: float = 15.0  # nor the run the fault before hit
    done: list[dict[str, Any]] = field(default_factory=list)
    last_at: float = -math.inf

    def threshold(self) -> int:
        return math.ceil(self.expected_runs * self.shares[len(self.done)])

    def step(self, instance: Any, backfill_id: str, started: float) -> None:
        """Inject the next fault if its time has come (called every few seconds)."""
        if not self.todo:
            return
        import dagster as dg

        fault = self.todo[0]
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        succeeded = sum(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        now = time.time()
        busy = [
            r
            for r in runs
            if r.dagster_run.status == dg.DagsterRunStatus.STARTED
            and r.start_time is not None
            and now - r.start_time >= self.min_run_age_s
        ]
        waited = time.monotonic() - self.last_at >= self.min_gap_s
        if succeeded < self.threshold() or not busy or not waited:
            return
        note: dict[str, Any] = {
            "fault": fault,
            "at_seconds": round(time.monotonic() - started, 1),
            "runs_succeeded_before": succeeded,
            "runs_in_progress": len(busy),
        }
        if fault == "daemon":
            note["killed_pid"] = self.deployment.kill_daemon()
            time.sleep(5)  # a supervisor's restart delay
            self.deployment.start_daemon()
        elif fault == "worker":
            found = [
                (r.dagster_run.run_id, pid)
                for r in busy
                if (pid := self.deployment.worker_of(r.dagster_run.run_id)) is not None
            ]
            if not found:
                return  # no step of a busy run at work right now: try at the next poll
            note["run_id"], worker = found[0]
            note["killed_pids"] = self.deployment.kill_worker(worker)
        elif fault == "mysql":
            note["mysql_down_seconds"] = round(restart_mysql(self.stack), 1)
        self.todo.pop(0)
        self.done.append(note)
        self.last_at = time.monotonic()
        _say(f"fault injected: {note}")


def _runs_summary(instance: Any, backfill_id: str) -> dict[str, Any]:
    """The runs of the backfill: how many, how many were retries, step retries."""
    import dagster as dg

    records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    retries = [r for r in records if "dagster/retry_number" in r.dagster_run.tags]
    failed = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
    step_retries = 0
    for record in records:
        step_retries += len(
            instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
            )
        )
    return {
        "runs": len(records),
        "runs_retried": len(retries),
        "runs_failed_then_retried": sum(
            r.dagster_run.tags.get("dagster/will_retry") == "true" for r in failed
        ),
        "runs_failed_for_good": [
            r.dagster_run.run_id
            for r in failed
            if r.dagster_run.tags.get("dagster/will_retry") != "true"
        ],
        "step_retries": step_retries,
    }


def _duplicates(stack: StackState, database: str, spec: Any) -> dict[str, int]:
    key = ", ".join(f"`{c}`" for c in spec.mysql.key)
    table = f"`{spec.mysql.target_table}`"
    with connection(stack.mysql.with_database(database)) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        rows = int(cur.fetchone()[0])
        cur.execute(
            f"SELECT COUNT(*) FROM (SELECT {key} FROM {table} GROUP BY {key} "
            "HAVING COUNT(*) > 1) AS d"
        )
        duplicated = int(cur.fetchone()[0])
    return {"target_rows": rows, "duplicated_keys": duplicated}


@contextlib.contextmanager
def own_instance(home: Path, storage: str, keep: bool = False) -> Iterator[InstanceDir]:
    """A fresh instance (`devstack/instance.py`) whose variables this process has too (it
    reads the runs), removed afterwards unless `keep`."""
    instance_dir = create_instance(home, storage)  # type: ignore[arg-type]
    try:
        # bench.backfill._verify sets MIGRATION_SPEC
        with exported(instance_dir.environment(), also_restore=["MIGRATION_SPEC"]):
            yield instance_dir
    finally:
        if not keep:
            remove_instance(instance_dir)


def _launch(base: str, spec: MigrationSpec) -> str:
    """Every partition of every asset, as the UI's "Materialize all" sends it, with the run
    retry tags an operator sets in the launch dialog."""
    selection = [{"path": [key]} for key in ASSETS]
    if spec.legacy_copy is not None:
        selection.append({"path": ["bigint_table_copy"]})
    tags = [{"key": k, "value": v} for k, v in RETRY_TAGS.items()]
    params = {"assetSelection": selection, "allPartitions": True, "tags": tags}
    launched = _graphql(base, LAUNCH, {"params": params})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill not launched: {launched}")
    return launched["backfillId"]


def run_backfill(
    stack: StackState,
    spec_data: dict[str, Any],
    work: Path,
    *,
    storage: str = "auto",
    faults: tuple[str, ...] = FAULTS,
    shares: tuple[float, ...] = SHARES,
    days_per_run: int = 30,
    timeout_s: float = 3_600,
    keep_instance: bool = False,
    legacy_database: str | None = None,
) -> dict[str, Any]:
    """One backfill of every partition with `faults`; its verified outcome. The seeded legacy
    table is in `legacy_database` (default: the stack's own database, where `seed` wrote it)."""
    spec = parse_spec(spec_data)
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec_data))
    database = f"chaos_{os.getpid()}_{int(time.time())}"
    _copy_legacy_table(stack, spec, database, legacy_database)
    assert spec.partitions.end is not None
    days = (spec.partitions.end - spec.partitions.start).days
    with own_instance(work / "dagster_home", storage, keep_instance) as instance_dir:
        env = {
            **os.environ,
            **stack.environment(),
            "MIGRATION_MYSQL_URL": stack.mysql.with_database(database).url,
            "MIGRATION_SPEC": str(spec_path),
            "MIGRATION_DAYS_PER_RUN": str(days_per_run),
        }
        port = free_loopback_port()
        base = f"http://127.0.0.1:{port}"
        deployment = Deployment(work, env, port)
        chaos = Chaos(stack, deployment, math.ceil(days / days_per_run), list(faults), shares)
        try:
            deployment.start()
            wait_until(lambda: _loaded(base), 300, "webserver", deployment.processes["webserver"])
            started = time.monotonic()
            backfill_id = _launch(base, spec)
            _say(f"backfill {backfill_id} of {days} days launched on {instance_dir.storage}")
            instance = _instance(instance_dir.home)
            status = _wait(
                instance, backfill_id, timeout_s, lambda: chaos.step(instance, backfill_id, started)
            )
            wall = time.monotonic() - started
        finally:
            deployment.stop()
        result = _verify(instance_dir.home, spec_path, backfill_id)
        runs = _runs_summary(_instance(instance_dir.home), backfill_id)
    return {
        "backfill_id": backfill_id,
        "storage": instance_dir.storage,
        "status": status,
        "wall_seconds": round(wall, 1),
        "days": days,
        "days_per_run": days_per_run,
        "faults": chaos.done,
        "faults_not_injected": chaos.todo,
        "daemon_starts": deployment.daemon_starts,
        **runs,
        **_duplicates(stack, database, spec),
        "every_partition_materialized": result["every_partition_materialized"],
        "every_check_passed": result["every_check_passed"],
        "checks": {k: v["passed_and_current"] for k, v in result["checks"].items()},
        "assets": {k: v["materialized"] for k, v in result["assets"].items()},
        "run_seconds_median": result["run_seconds_median"],
        "backfill_status": result["backfill_status"],
    }


def _wait(instance: Any, backfill_id: str, timeout_s: float, tick: Callable[[], None]) -> str:
    deadline = time.monotonic() + timeout_s
    last_note = 0.0
    while time.monotonic() < deadline:
        backfill = instance.get_backfill(backfill_id)
        status = backfill.status.value if backfill else "UNKNOWN"
        if status in TERMINAL:
            return status
        tick()
        if time.monotonic() - last_note > 60:
            _say(f"backfill {backfill_id}: {status}")
            last_note = time.monotonic()
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} still running after {timeout_s:.0f} s")


def _plan(text: str) -> tuple[str, tuple[str, ...]]:
    """`storage:faults`: `postgres:chaos` (every fault), `sqlite:none`, `postgres:daemon+mysql`."""
    storage, _, faults = text.partition(":")
    chosen = (
        FAULTS if faults in ("", "chaos") else () if faults == "none" else tuple(faults.split("+"))
    )
    if storage not in ("auto", "postgres", "sqlite") or set(chosen) - set(FAULTS):
        raise argparse.ArgumentTypeError(
            f"{text!r}: STORAGE:FAULTS with STORAGE postgres, sqlite or auto and FAULTS chaos, "
            f"none or +-joined from {', '.join(FAULTS)}"
        )
    return storage, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=1096)
    parser.add_argument("--items-per-day", type=int, default=2_000)
    parser.add_argument("--days-per-run", type=int, default=30)
    parser.add_argument(
        "--runs",
        type=lambda text: [_plan(t) for t in text.split(",")],
        default=[("postgres", FAULTS)],
        help="backfills on the same seed, one after the other: comma-separated STORAGE:FAULTS "
        "(default postgres:chaos; e.g. postgres:chaos,postgres:none,sqlite:none)",
    )
    parser.add_argument("--timeout", type=float, default=3_600)
    parser.add_argument("--json", type=Path, help="written after each backfill")
    args = parser.parse_args()
    # a SIGTERM (e.g. `kill <pid>`) stops the deployment and the stack and drops the instance
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="bench-chaos-"))
    stack = start_stack(root / "stack", database="chaos_seed")
    summary: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.chaos", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count()},
        "days": args.days,
        "items_per_day": args.items_per_day,
        "backfills": [],
    }
    try:
        os.environ.update(stack.environment())
        summary["seed_seconds"] = round(seed_stack(stack, args.days, args.items_per_day)[1], 1)
        data = backfill_spec_data(args.days, "parquet/orders-chaos")
        for index, (storage, faults) in enumerate(args.runs):
            work = root / f"run-{index}"
            work.mkdir()
            data["s3"]["parquet_prefix"] = f"parquet/orders-chaos-{index}-{int(time.time())}"
            outcome = run_backfill(
                stack,
                data,
                work,
                storage=storage,
                faults=faults,
                days_per_run=args.days_per_run,
                timeout_s=args.timeout,
            )
            outcome["load_average_at_end"] = os.getloadavg()
            summary["backfills"].append(outcome)
            _say(
                f"backfill {index} ({storage}, faults: {'+'.join(faults) or 'none'}): "
                f"{outcome['wall_seconds']} s, {outcome['runs']} runs "
                f"({outcome['runs_retried']} retried), complete and exact: {_exact(outcome)}"
            )
            if args.json:
                write_json(summary, args.json)
    finally:
        stop_stack(stack)
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(summary, indent=2, default=str))
    if not all(_exact(outcome) for outcome in summary["backfills"]):
        sys.exit("a backfill did not end complete and exact (see above)")


def _exact(outcome: dict[str, Any]) -> bool:
    return bool(
        outcome["every_partition_materialized"]
        and outcome["every_check_passed"]
        and outcome["duplicated_keys"] == 0
        and not outcome["faults_not_injected"]
        and not outcome["runs_failed_for_good"]
    )


if __name__ == "__main__":
    main()
