"""A/B of the one-day run: two code trees (or settings) alternated on one seeded day.

This machine's speed drifts by up to 1.6x within a session, so a change's effect on the
one-day run is only visible against a baseline measured in turns with it. This seeds one day
of `--items` items once, runs the day once to split the export (a backfill's steady state,
not measured), then alternates the variants `--rounds` times (ABBA...), each run into a database and
Dagster instance of its own, and prints per-step seconds and their medians per variant.

A variant is a checkout of this repository (its `python -m bench.e2e --child` runs the day
with that checkout's code) with optional environment settings after it:

    git worktree add /tmp/before HEAD~1
    .venv/bin/python -m bench.ab --rounds 3 /tmp/before . \\
        MIGRATION_MYSQL_CONNECTIONS_PER_STEP=1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from migration_assets.devstack.stack import start_stack, stop_stack
from migration_assets.identifiers import quote_identifier as q
from migration_assets.mysql.connection import connection, ensure_database

from . import e2e
from .common import server_cpu_seconds


def variants(arguments: list[str]) -> list[tuple[Path, dict[str, str]]]:
    """`TREE [NAME=VALUE ...]` groups: a tree is any argument without `=`."""
    found: list[tuple[Path, dict[str, str]]] = []
    for argument in arguments:
        if "=" not in argument:
            tree = Path(argument).resolve()
            if not (tree / "bench" / "bench_e2e.py").exists():
                raise SystemExit(f"{argument}: not a checkout of this repository")
            found.append((tree, {}))
        elif not found:
            raise SystemExit(f"{argument}: a setting before any tree")
        else:
            name, value = argument.split("=", 1)
            found[-1][1][name] = value
    return found


def run_day(stack: Any, work: Path, number: int, tree: Path, env: dict[str, str]) -> dict:
    """The seeded day through every asset and check with `tree`'s code, in a fresh database
    and instance; wall seconds of the run and per step, worker and MySQL CPU seconds."""
    settings = stack.mysql.with_database(f"bench_ab_{number}")
    ensure_database(settings)
    run_work = work / f"run-{number}"
    run_work.mkdir()
    cpu = server_cpu_seconds(stack.mysql_pid)
    process = e2e.run_child(
        stack,
        work / "spec.yaml",
        e2e.DAY.isoformat(),
        settings.database,
        run_work / "home",
        run_work,
        tree=tree,
        settings=env,
    )
    report = e2e.finish_child(process)
    mysql_cpu = (server_cpu_seconds(stack.mysql_pid) or 0) - (cpu or 0)
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {q(settings.database)}")
    steps = sorted(report["steps"].items(), key=lambda item: item[1]["start"])
    return {
        "run": round(report["finished"] - report["started"], 2),
        "worker_cpu": round(report["cpu_seconds"], 2),
        "mysql_cpu": round(mysql_cpu, 2) if stack.mysql_pid else None,
        **{key: round(step["end"] - step["start"], 2) for key, step in steps},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("variant", nargs="+", help="TREE [NAME=VALUE ...], repeated")
    args = parser.parse_args()
    chosen = variants(args.variant)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    stack = start_stack(work / "stack", database="bench_ab")
    try:
        os.environ.update(stack.environment())
        spec, path, _ = e2e.seed_world(work, "ab", [e2e.DAY], args.items)
        path.rename(work / "spec.yaml")
        run_day(stack, work, 0, *chosen[0])  # splits the export; not measured
        runs: list[list[dict[str, Any]]] = [[] for _ in chosen]
        number = 1
        for round_number in range(args.rounds):
            order = list(enumerate(chosen))  # ABBA...: a drift in speed hits both alike
            for index, (tree, env) in order[:: -1 if round_number % 2 else 1]:
                runs[index].append(run_day(stack, work, number, tree, env))
                print(f"variant {index}", json.dumps(runs[index][-1]), flush=True)
                number += 1
        for index, (tree, env) in enumerate(chosen):
            keys = [k for k, v in runs[index][0].items() if v is not None]
            median = {k: round(statistics.median(r[k] for r in runs[index]), 2) for k in keys}
            print(f"variant {index} ({tree} {env or ''}) medians: {json.dumps(median)}")
    finally:
        stop_stack(stack)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
