"""Benchmark: `migration_proof` over a three-year (1,096-day) instance.

Seeds 1,096 days of `--items` items each (moto and a throwaway MySQL, `devstack.stack`),
materializes the whole chain with its checks in one in-process range run per `--days-per-run`
days on a local SQLite instance (as backfill batches run them: one materialization and one
evaluation per check and day), then materializes the proof `--repeat` times and reports the
median wall seconds of its run and of its own work (its `seconds` metadata: the instance
queries, MySQL aggregates, export manifests, the table, the chart and CSV). Goal: < 30 s.

    .venv/bin/python -m bench.proof --items 2 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import boto3
import dagster as dg
import yaml
from dagster_aws.s3 import S3Resource

from migration_assets.definitions import build_assets
from migration_assets.defs.partitions import daily_partitions
from migration_assets.defs.proof.assets import build_migration_proof
from migration_assets.defs.resources import DynamoDBResource, MySQLResource
from migration_assets.devstack.seed import seed
from migration_assets.devstack.stack import start_stack, stop_stack
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

from .common import write_json

FIRST, END = dt.date(2023, 1, 1), dt.date(2026, 1, 1)  # 1,096 days


def three_year_spec(bucket: str):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"] = bucket
    data["partitions"]["end"] = END.isoformat()
    return parse_spec(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2, help="items per day")
    parser.add_argument("--days-per-run", type=int, default=1_096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-proof-"))
    state = start_stack(work / "stack")
    try:

        def client(service: str):
            return boto3.client(
                service,
                endpoint_url=state.aws_endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )

        spec = three_year_spec("bench-proof")
        days = [FIRST + dt.timedelta(days=n) for n in range((END - FIRST).days)]
        mysql = state.mysql
        started = time.perf_counter()
        seed(
            spec,
            s3=client("s3"),
            dynamodb=client("dynamodb"),
            mysql=mysql,
            days=days,
            items_per_day=args.items,
            incremental_windows=0,
        )
        seeded = time.perf_counter() - started
        resources = {
            "s3": S3Resource(endpoint_url=state.aws_endpoint_url, max_attempts=3),
            "dynamodb": DynamoDBResource(endpoint_url=state.aws_endpoint_url),
            "mysql": MySQLResource(url=state.mysql_url),
        }
        graph = build_assets(spec)
        keys = [d.key for d in graph if not isinstance(d, dg.AssetChecksDefinition)]
        proof = build_migration_proof(
            spec, daily_partitions(spec), keys, [k for d in graph for k in d.check_keys]
        )
        instance = dg.DagsterInstance.local_temp(str(work / "dagster"))
        started = time.perf_counter()
        for low in range(0, len(days), args.days_per_run):
            batch = days[low : low + args.days_per_run]
            result = dg.materialize(
                graph,
                resources=resources,
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": batch[0].isoformat(),
                    "dagster/asset_partition_range_end": batch[-1].isoformat(),
                },
            )
            assert result.success
        backfilled = time.perf_counter() - started
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
        metadata = event.metadata
        report = {
            "days": len(days),
            "items_per_day": args.items,
            "seed_seconds": round(seeded, 1),
            "backfill_seconds": round(backfilled, 1),
            "proof_run_seconds_median": round(statistics.median(walls), 2),
            "proof_own_seconds_median": round(statistics.median(own), 2),
            "proof_run_seconds": [round(w, 2) for w in walls],
            "days_passed": metadata["days_passed"].value,
            "export_items_match": metadata["export_items_match"].value,
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
