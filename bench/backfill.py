"""Benchmark: a three-year backfill of the whole graph on the local stack, through the daemon.

What it does, end to end (nothing is called in-process that a user would not also go through):
  1. starts the local stack (moto + a throwaway MariaDB, or `MIGRATION_MYSQL_URL`) and seeds
     `--days` days (1,096 = 2023-01-01..2025-12-31) of `--items-per-day` items: one full
     export in the AWS layout, two incremental exports on the last day, and the legacy
     `INT(11)` table (the example spec has `legacy_copy`, so `bigint_table_copy` is in the graph);
  2. for each repetition: a fresh Dagster instance (the project's `dagster_home/dagster.yaml`),
     a fresh MySQL database (the legacy table copied in) and Parquet prefix, then
     `dagster dev` (webserver + daemon) on the example spec closed at the last seeded day;
  3. launches one backfill of every partition of every asset (GraphQL `launchPartitionBackfill`,
     what the UI's "Materialize all" sends), waits until the daemon marks it finished, and
  4. verifies through the instance API that every partition of every asset is materialized
     and every check of every partition passed against that latest materialization; reads
     the target's row count from MySQL and the backfill ETAs the runs reported.

    .venv/bin/python -m bench.backfill --days 1096 --items-per-day 2000 \\
        --days-per-run 30,60 --json bench/results/backfill-latest.json

Wall time is from the launch request to the backfill's completion as the daemon records it
(so it includes the daemon's tick before the first run and after the last one).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from migration_assets.aws import aws_client, retry_config
from migration_assets.devstack.dagster_dev import start_dagster_dev, stop_dagster_dev
from migration_assets.devstack.processes import free_loopback_port, wait_until
from migration_assets.devstack.seed import seed
from migration_assets.devstack.stack import StackState, start_stack, stop_stack
from migration_assets.mysql.connection import connection, ensure_database
from migration_assets.spec import EXAMPLE_SPEC, MigrationSpec, parse_spec

from .common import REPO

TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def _say(message: str) -> None:
    print(f"[bench_backfill {dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def _spec_data(days: int, parquet_prefix: str) -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    start = dt.date.fromisoformat(data["partitions"]["start"])
    data["partitions"]["end"] = (start + dt.timedelta(days=days)).isoformat()
    data["s3"]["parquet_prefix"] = parquet_prefix
    return data


def seed_stack(stack: StackState, days: int, items_per_day: int) -> tuple[Any, float]:
    """`days` days from the example spec's start seeded on `stack` (exports in S3, the legacy
    table in the stack's database); the seed's report and its seconds."""
    spec = parse_spec(_spec_data(days, "parquet/orders-seed"))
    clock = time.monotonic()
    report = seed(
        spec,
        s3=aws_client("s3", config=retry_config(5)),
        dynamodb=aws_client("dynamodb", config=retry_config(5)),
        mysql=stack.mysql,
        days=[spec.partitions.start + dt.timedelta(days=n) for n in range(days)],
        items_per_day=items_per_day,
    )
    seeded = time.monotonic() - clock
    _say(
        f"seeded {days} days x {items_per_day} items in {seeded:.0f} s: "
        f"{report.full_export_items} items in the full export, {report.legacy_rows} legacy rows"
    )
    return report, seeded


def _graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def _loaded(base: str) -> bool:
    query = '{ assetNodeOrError(assetKey: {path: ["target_table"]}) { __typename } }'
    return _graphql(base, query)["assetNodeOrError"]["__typename"] == "AssetNode"


LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


def _copy_legacy_table(
    stack: StackState, spec: MigrationSpec, database: str, source: str | None = None
) -> None:
    """The seeded legacy table (in `source`, default the stack's database) into `database`."""
    assert spec.legacy_copy is not None
    settings = stack.mysql.with_database(database)
    ensure_database(settings)
    table = spec.legacy_copy.source_table
    source = source or stack.mysql.database
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{table}` LIKE `{source}`.`{table}`")
        cur.execute(f"INSERT INTO `{table}` SELECT * FROM `{source}`.`{table}`")
        conn.commit()


def _verify(home: Path, spec_path: Path, backfill_id: str) -> dict[str, Any]:
    """Every partition of every asset materialized; every check of every partition passed,
    against that partition's latest materialization (what the UI shows as current)."""
    import dagster as dg
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    os.environ["MIGRATION_SPEC"] = str(spec_path)
    from migration_assets.definitions import build_definitions
    from migration_assets.spec import load_spec

    defs = build_definitions(load_spec())
    instance = _instance(home)
    graph = defs.resolve_asset_graph()
    keys = sorted(  # the partitioned ones (not migration_proof, the report over them)
        (k for k in graph.get_all_asset_keys() if defs.resolve_assets_def(k).partitions_def),
        key=lambda k: k.to_user_string(),
    )
    partitions = defs.resolve_assets_def(keys[0]).partitions_def
    assert partitions is not None
    all_days = set(partitions.get_partition_keys())
    assets: dict[str, Any] = {}
    for key in keys:
        materialized = instance.get_materialized_partitions(key)
        assets[key.to_user_string()] = {
            "materialized": len(materialized & all_days),
            "missing": sorted(all_days - materialized)[:5],
        }
    checks: dict[str, Any] = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()):
        infos = instance.event_log_storage.get_asset_check_partition_info([check_key])
        by_day = {i.partition_key: i for i in infos if i.partition_key is not None}
        passed = [
            d
            for d, i in by_day.items()
            if i.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED
            and i.is_current
        ]
        checks[check_key.to_user_string()] = {
            "passed_and_current": len(set(passed) & all_days),
            "not_passed": sorted(all_days - set(passed))[:5],
        }
    runs = instance.get_run_records(
        dg.RunsFilter(tags={"dagster/backfill": backfill_id}), ascending=True
    )
    durations = [r.end_time - r.start_time for r in runs if r.start_time is not None and r.end_time]
    backfill = instance.get_backfill(backfill_id)
    first_start = min((r.start_time for r in runs if r.start_time), default=None)
    last_end = max((r.end_time for r in runs if r.end_time), default=None)
    etas = _eta_samples(instance, last_end)
    return {
        "partitions": len(all_days),
        "assets": assets,
        "checks": checks,
        "every_partition_materialized": all(
            a["materialized"] == len(all_days) for a in assets.values()
        ),
        "every_check_passed": all(
            c["passed_and_current"] == len(all_days) for c in checks.values()
        ),
        "runs_launched": len(runs),
        "run_statuses": _count(r.dagster_run.status.value for r in runs),
        "run_seconds_median": round(statistics.median(durations), 1) if durations else None,
        "run_seconds_max": round(max(durations), 1) if durations else None,
        "backfill_status": backfill.status.value if backfill else None,
        "backfill_created": backfill.backfill_timestamp if backfill else None,
        "backfill_ended": backfill.backfill_end_timestamp if backfill else None,
        "first_run_started": first_start,
        "last_run_ended": last_end,
        "eta_samples": etas,
    }


def _instance(home: Path) -> Any:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _eta_samples(instance: Any, last_end: float | None) -> list[dict[str, Any]]:
    """What `target_table`'s materializations predicted at about 25/50/75% of the backfill,
    against when its last run actually ended."""
    import dagster as dg

    records = []
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetKey("target_table"), limit=1000, cursor=cursor, ascending=True
        )
        records += page.records
        if not page.has_more:
            break
        cursor = page.cursor
    with_eta = [
        r
        for r in records
        if isinstance(
            getattr(r.asset_materialization.metadata.get("backfill_eta_seconds"), "value", None),
            float | int,
        )
    ]
    samples = []
    for share in (0.25, 0.5, 0.75):
        if not with_eta or last_end is None:
            break
        record = with_eta[min(len(with_eta) - 1, int(len(with_eta) * share))]
        meta = record.asset_materialization.metadata
        predicted = record.timestamp + meta["backfill_eta_seconds"].value
        samples.append(
            {
                "days_done": meta["backfill_days_done"].value,
                "days_left": meta["backfill_days_left"].value,
                "rows_per_second": meta["backfill_rows_per_second"].value,
                "eta_seconds": meta["backfill_eta_seconds"].value,
                "actual_seconds_left": round(last_end - record.timestamp, 1),
                "error_seconds": round(predicted - last_end, 1),
            }
        )
    return samples


def run_once(
    stack: StackState, args: argparse.Namespace, index: int, work: Path, days_per_run: int
) -> dict[str, Any]:
    prefix = f"parquet/orders-bench-{index}-{int(time.time())}"
    data = _spec_data(args.days, prefix)
    spec = parse_spec(data)
    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    database = f"backfill_{index}_{int(time.time())}"
    _copy_legacy_table(stack, spec, database)
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        **stack.environment(),
        "MIGRATION_MYSQL_URL": stack.mysql.with_database(database).url,
        "MIGRATION_SPEC": str(spec_path),
        "DAGSTER_HOME": str(home),
    }
    env["MIGRATION_DAYS_PER_RUN"] = str(days_per_run)
    port = free_loopback_port()
    base = f"http://127.0.0.1:{port}"
    process, log_path = start_dagster_dev(work, env, port)
    try:
        wait_until(lambda: _loaded(base), 300, "dagster dev", process, str(log_path))
        selection = [
            {"path": [key]}
            for key in (
                "dynamodb_export",
                "parquet_partitions",
                "aurora_temp_table",
                "target_table",
                "bigint_table_copy",
            )
        ]
        _say(f"repetition {index}: launching the backfill of every partition at {base}")
        started = time.time()
        launched = _graphql(
            base, LAUNCH, {"params": {"assetSelection": selection, "allPartitions": True}}
        )["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {launched}")
        backfill_id = launched["backfillId"]
        status = _wait_for_backfill(home, backfill_id, args.timeout)
        finished = time.time()
    finally:
        stop_dagster_dev(process)
    result = _verify(home, spec_path, backfill_id)
    with connection(stack.mysql.with_database(database)) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{spec.mysql.target_table}`")
        target_rows = int(cur.fetchone()[0])
    wall = finished - started
    ended = result["backfill_ended"] or finished
    return {
        "backfill_id": backfill_id,
        "status": status,
        "wall_seconds": round(wall, 1),
        "launch_to_backfill_end_seconds": round(ended - started, 1),
        "launch_to_last_run_end_seconds": (
            round(result["last_run_ended"] - started, 1) if result["last_run_ended"] else None
        ),
        "launch_to_first_run_start_seconds": (
            round(result["first_run_started"] - started, 1) if result["first_run_started"] else None
        ),
        "target_rows": target_rows,
        "days_per_run": days_per_run,
        **result,
    }


def _wait_for_backfill(home: Path, backfill_id: str, timeout_s: float) -> str:
    import dagster as dg

    instance = _instance(home)
    deadline = time.monotonic() + timeout_s
    last_note = 0.0
    while time.monotonic() < deadline:
        backfill = instance.get_backfill(backfill_id)
        status = backfill.status.value if backfill else "UNKNOWN"
        if status in TERMINAL:
            return status
        if time.monotonic() - last_note > 60:
            runs = instance.get_runs_count(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            _say(f"backfill {backfill_id}: {status}, {runs} runs so far")
            last_note = time.monotonic()
        time.sleep(5)  # the backfill record is large; polling it costs CPU the runs need
    raise TimeoutError(f"backfill {backfill_id} still running after {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=1096)
    parser.add_argument("--items-per-day", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--days-per-run",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[int(os.environ.get("MIGRATION_DAYS_PER_RUN", 30))],
        help="MIGRATION_DAYS_PER_RUN; a comma-separated list measures each (e.g. 30,60)",
    )
    parser.add_argument("--timeout", type=float, default=3_600)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    stack = start_stack(root / "stack", database="backfill_seed")
    try:
        os.environ.update(stack.environment())
        report, seeded = seed_stack(stack, args.days, args.items_per_day)
        repetitions = []
        for batch in args.days_per_run:
            for _ in range(args.repeat):
                index = len(repetitions)
                work = root / f"run-{index}"
                work.mkdir()
                outcome = run_once(stack, args, index, work, batch)
                _say(
                    f"repetition {index} ({batch} days per run): {outcome['status']} in "
                    f"{outcome['wall_seconds']} s, {outcome['runs_launched']} runs, every "
                    f"partition materialized: {outcome['every_partition_materialized']}, every "
                    f"check passed: {outcome['every_check_passed']}"
                )
                repetitions.append(outcome)
    finally:
        stop_stack(stack)
        with contextlib.suppress(OSError):
            shutil.rmtree(root / "stack", ignore_errors=True)
    by_batch = {
        batch: [r["wall_seconds"] for r in repetitions if r["days_per_run"] == batch]
        for batch in args.days_per_run
    }
    summary = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count()},
        "days": args.days,
        "items_per_day": args.items_per_day,
        "seed_seconds": round(seeded, 1),
        "full_export_items": report.full_export_items,
        "legacy_rows": report.legacy_rows,
        "wall_seconds_median_by_days_per_run": {
            str(batch): statistics.median(walls) for batch, walls in by_batch.items() if walls
        },
        "repetitions": repetitions,
    }
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
