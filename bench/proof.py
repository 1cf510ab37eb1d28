"""Benchmark: `migration_proof` over a three-year (1,096-day) instance.

What the proof reads is what a three-year backfill leaves behind, so this builds that state
directly rather than running the backfill (an in-process range run writes ~50 ms of Dagster
events per asset and day here: the real backfill takes hours on this machine):
- S3 (moto) and MySQL (a throwaway server, `devstack.stack`): 1,096 days of `--items` items
  seeded (`devstack.seed`: the full export with its manifests, the legacy table), the target
  filled from the legacy table;
- a Dagster instance (SQLite in memory; `--on-disk`: a local one): per day, one
  materialization of each of the five assets with the metadata they record, then one
  evaluation of each of their ten checks tied to it (`report_runless_asset_event`: the
  same event-log and check-execution rows a run writes), `--failed` days failing the
  target's count check, the Parquet of `--stale` days materialized again after its checks.

Then the proof is materialized `--repeat` times; reported: the median wall seconds of its run
and of its own work (its `seconds` metadata: instance queries, MySQL aggregates, export
manifests, table, chart and CSV). Goal: < 30 s.

    .venv/bin/python -m bench.proof --items 2 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

import boto3
import dagster as dg
import yaml
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluation,
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster_aws.s3 import S3Resource

from migration_assets.definitions import build_assets
from migration_assets.defs.partitions import daily_partitions
from migration_assets.defs.proof.assets import build_migration_proof
from migration_assets.defs.resources import DynamoDBResource, MySQLResource
from migration_assets.devstack.seed import seed
from migration_assets.devstack.stack import start_stack, stop_stack
from migration_assets.mysql.connection import connection
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

from .common import write_json

FIRST, END = dt.date(2023, 1, 1), dt.date(2026, 1, 1)  # 1,096 days


def three_year_spec(bucket: str):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"] = bucket
    data["partitions"]["end"] = END.isoformat()
    return parse_spec(data)


def recorded(role: str, items: int) -> dict:
    """The counts each asset records per day (the proof reads these)."""
    return {
        "parquet_partitions": {"rows": items, "deletes": 0, "rejects": 0},
        "aurora_temp_table": {"rows_loaded": items},
    }.get(role, {"rows": items})


def evaluation(check: dg.AssetCheckKey, day: str, storage_id: int, items: int, ok: bool):
    second = f"{day}T00:00:01Z"
    metadata = {"expected_rows": items, "observed_rows": items if ok else items - 1}
    if not ok:
        metadata["first_mismatches"] = dg.MetadataValue.json(
            [{"second": second, "expected": 1, "observed": 0}]
        )
    return AssetCheckEvaluation(
        asset_key=check.asset_key,
        check_name=check.name,
        passed=ok,
        metadata=metadata,
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=storage_id, run_id="", timestamp=time.time()
        ),
        partition=day,
        description=None if ok else "staging -> target: 1 row(s) missing and 0 extra.",
    )


def fill_instance(instance, keys, checks, days: list[str], items: int, failed, stale) -> float:
    started = time.perf_counter()
    for key in keys:
        for day in days:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition=day, metadata=recorded(key.path[-1], items))
            )
    storage = {}
    for key in keys:
        cursor = None
        while True:
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key), limit=1_000, cursor=cursor
            )
            for record in page.records:
                storage.setdefault((key, record.partition_key), record.storage_id)
            if not page.has_more:
                break
            cursor = page.cursor
    for check in checks:
        for day in days:
            ok = not (day in failed and check.asset_key.path[-1] == "target_table")
            instance.report_runless_asset_event(
                evaluation(check, day, storage[(check.asset_key, day)], items, ok)
            )
    parquet = next(k for k in keys if k.path[-1] == "parquet_partitions")
    for day in stale:  # materialized again after its checks
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                parquet, partition=day, metadata=recorded("parquet_partitions", items)
            )
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2, help="items per day")
    parser.add_argument("--failed", type=int, default=3, help="days failing a check")
    parser.add_argument("--stale", type=int, default=3, help="days materialized again")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--on-disk",
        action="store_true",
        help="a local SQLite instance on disk (filling it takes ~40 ms per materialization "
        "and more per check evaluation here: half an hour); default: SQLite in memory",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-proof-"))
    state = start_stack(work / "stack")
    os.environ.update(state.environment())  # the resources' AWS endpoint and credentials
    try:

        def client(service: str):
            return boto3.client(service, endpoint_url=state.aws_endpoint_url)

        spec = three_year_spec("bench-proof")
        days = [FIRST + dt.timedelta(days=n) for n in range((END - FIRST).days)]
        started = time.perf_counter()
        seed(
            spec,
            s3=client("s3"),
            dynamodb=client("dynamodb"),
            mysql=state.mysql,
            days=days,
            items_per_day=args.items,
            incremental_windows=0,
        )
        with connection(state.mysql) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE orders LIKE table01")
            cur.execute("INSERT INTO orders SELECT * FROM table01")
            conn.commit()
        seeded = time.perf_counter() - started
        resources = {
            "s3": S3Resource(endpoint_url=state.aws_endpoint_url, max_attempts=3),
            "dynamodb": DynamoDBResource(endpoint_url=state.aws_endpoint_url),
            "mysql": MySQLResource(url=state.mysql_url),
        }
        graph = build_assets(spec)
        keys = [d.key for d in graph if not isinstance(d, dg.AssetChecksDefinition)]
        checks = [k for d in graph for k in d.check_keys]
        proof = build_migration_proof(spec, daily_partitions(spec), keys, checks)
        if args.on_disk:
            (work / "dagster").mkdir()
            instance = dg.DagsterInstance.local_temp(str(work / "dagster"))
        else:
            instance = dg.DagsterInstance.ephemeral()
        names = [d.isoformat() for d in days]
        step = len(names) // (args.failed + args.stale + 1)
        marked = names[step::step]
        failed, stale = set(marked[: args.failed]), set(marked[args.failed :][: args.stale])
        filled = fill_instance(instance, keys, checks, names, args.items, failed, stale)
        walls, own = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            run = dg.materialize(
                [*graph, proof],
                selection=dg.AssetSelection.assets(proof.key),
                resources=resources,
                instance=instance,
            )
            walls.append(time.perf_counter() - started)
            (event,) = run.asset_materializations_for_node(proof.key.path[-1])
            own.append(event.metadata["seconds"].value)
        meta = {name: value.value for name, value in event.metadata.items()}
        assert meta["days_failed"] == len(failed) and meta["days_stale"] == len(stale)
        assert meta["export_items_match"] and meta["legacy_rows_match"]
        report = {
            "days": len(days),
            "items_per_day": args.items,
            "instance": "sqlite on disk" if args.on_disk else "sqlite in memory",
            "events": len(keys) * len(days) + len(checks) * len(days) + len(stale),
            "seed_seconds": round(seeded, 1),
            "instance_fill_seconds": round(filled, 1),
            "proof_run_seconds_median": round(statistics.median(walls), 2),
            "proof_own_seconds_median": round(statistics.median(own), 2),
            "proof_run_seconds": [round(w, 2) for w in walls],
            "days_passed": meta["days_passed"],
            "days_failed": meta["days_failed"],
            "days_stale": meta["days_stale"],
            "goal_seconds": 30,
        }
        print(yaml.safe_dump(report, sort_keys=False))
        write_json(report, args.json)
        if report["proof_run_seconds_median"] >= 30:
            raise SystemExit("the proof took 30 s or more")
    finally:
        stop_stack(state)


if __name__ == "__main__":
    main()
