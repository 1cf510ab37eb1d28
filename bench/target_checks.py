"""Benchmark: how `target_table_merge_checks` gathers a day's facts, `join` against `scans`.

`merged_day` looks each staged put up in the target by its key (`join`), or, where every
target row of the day must be a staged put, the key holds the event time and the target is
partitioned by day, counts and hashes the staged puts and the target's day partition in two
grouped scans (`scans`: what `auto` picks for the example spec without `legacy_copy`).
This stages and merges one day of `--rows` key-sorted rows (as `parquet_partitions` writes
them) into an empty target in each layout, then runs both ways in turn `--repeat` times on
`--connections` connections and reports the median wall seconds and MySQL server CPU seconds
(the throwaway server's; none with `MIGRATION_MYSQL_URL`). Both ways must find the merge
exact, or the run fails.

    .venv/bin/python -m bench.target_checks --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from migration_assets.mysql.connection import MySQLSettings, connection, open_connection
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets.mysql.seconds import merged_day, merged_second_counts

from . import target_growth as growth
from .common import bench_server, server_cpu_seconds, write_json

METHODS = ("join", "auto")


def run_layout(
    settings: MySQLSettings, pid: int | None, layout: str, rows: int, repeat: int, connections: int
) -> dict[str, Any]:
    spec = growth.example_spec(layout)
    growth.fresh_tables(settings, spec)
    day = growth.FIRST_DAY
    more = {"connect": lambda: open_connection(settings), "connections": connections}
    with connection(settings) as conn:
        load_day(conn, spec, day, growth.day_table(spec, 0, rows))
        merge_day(conn, spec, day, **more)
    samples: dict[str, list[tuple[float, float | None]]] = {m: [] for m in METHODS}
    used = {}
    for _ in range(repeat):
        for method in METHODS:  # in turns: the machine's speed drifts
            with connection(settings) as conn:
                cpu, started = server_cpu_seconds(pid), time.perf_counter()
                facts = merged_day(conn, spec, day, method=method, **more)
                wall, cpu_after = time.perf_counter() - started, server_cpu_seconds(pid)
                exact = merged_second_counts(conn, spec, day, facts) == facts.staged
            if not exact or facts.staged_checksums != facts.target_checksums:
                raise SystemExit(f"{layout}/{method}: the merged day does not check out")
            used[method] = facts.method
            samples[method].append((wall, None if cpu is None else cpu_after - cpu))
    result: dict[str, Any] = {"layout": layout, "rows": rows}
    for method, values in samples.items():
        cpus = [c for _, c in values if c is not None]
        result[method] = {
            "compared_by": used[method],
            "seconds": round(statistics.median(w for w, _ in values), 3),
            "mysql_cpu_seconds": round(statistics.median(cpus), 3) if cpus else None,
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_server("bench_target_checks") as (settings, pid):
        results = [
            run_layout(settings, pid, layout, args.rows, args.repeat, args.connections)
            for layout in ("day", "none")
        ]
    print("| target layout | join s | join MySQL CPU s | auto: compared by | s | MySQL CPU s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        join, auto = r["join"], r["auto"]
        print(
            f"| {r['layout']} | {join['seconds']} | {join['mysql_cpu_seconds']} "
            f"| {auto['compared_by']} | {auto['seconds']} | {auto['mysql_cpu_seconds']} |"
        )
    write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
