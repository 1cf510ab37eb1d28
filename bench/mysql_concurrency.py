"""Benchmark: what MySQL statements side by side cost in server CPU per row (issue 9).

The several-days goal is bound by CPU (workers and MySQL share 2 cores), so the MySQL CPU
per row decides it. This measures a day's `load_day`, `merge_day` and merge checks
(`merged_day`) of `--rows` key-sorted rows (as `parquet_partitions` writes them) into an
empty target partitioned by day (the default layout), in four shapes, each on fresh tables:

- `one_connection`: one day, every statement on one connection;
- `two_connections`: one day, the merge's chunks and the checks' ranges on two at once
  (what `connections_per_step=2` does for a day alone on the server);
- `two_connections_unpartitioned`: the same into the other layout (`target_partitioning:
  none`: one B-tree and an event-time index), for what partitioning by day changes;
- `two_days_at_once`: two days, each on one connection, side by side (two runs at once).

Each figure is wall seconds and the server's CPU seconds (the throwaway server's, or none
with `MIGRATION_MYSQL_URL`); `--repeat` runs the shapes in turn that many times and reports
medians, as the machine is noisy. `--buffer-pool-mb` resizes the server's buffer pool first
(the local stack's is 512 MB; two days in flight, staged and merged, need about 1 GB).

    .venv/bin/python -m bench.mysql_concurrency --rows 1000000 --repeat 3 \
        [--buffer-pool-mb 2048]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from migration_assets.mysql.connection import MySQLSettings, connection, open_connection
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets.mysql.seconds import merged_day

from . import target_growth as growth
from .common import bench_server, server_cpu_seconds, write_json
from .target_growth import FIRST_DAY, day_table, example_spec

SHAPES = ("one_connection", "two_connections", "two_connections_unpartitioned", "two_days_at_once")
STEPS = ("load", "merge", "check")


def side_by_side(work: list[Callable[[], Any]]) -> list[Any]:
    """Each callable in its own thread, all started together; their results."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = work[index]()
        except BaseException as exc:  # raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def shape(settings: MySQLSettings, pid: int | None, name: str, rows: int) -> dict[str, Any]:
    """One shape on fresh tables: per step, wall and server CPU seconds for all its days."""
    spec = example_spec("none" if name == "two_connections_unpartitioned" else "day")
    growth.fresh_tables(settings, spec)
    days = 2 if name == "two_days_at_once" else 1
    connections = 2 if name.startswith("two_connections") else 1
    tables: dict[dt.date, pa.Table] = {
        FIRST_DAY + dt.timedelta(days=n): day_table(spec, n, rows) for n in range(days)
    }
    more = {"connect": lambda: open_connection(settings), "connections": connections}

    def on_own_connection(step: str, day: dt.date) -> Callable[[], Any]:
        def run() -> Any:
            with connection(settings) as conn:
                if step == "load":
                    return load_day(conn, spec, day, tables[day])
                if step == "merge":
                    return merge_day(conn, spec, day, **more)
                return merged_day(conn, spec, day, **more)

        return run

    out: dict[str, Any] = {"rows": rows * days}
    for step in STEPS:
        reads, cpu = buffer_pool_reads(settings), server_cpu_seconds(pid)
        started = time.perf_counter()
        results = side_by_side([on_own_connection(step, day) for day in tables])
        out[f"{step}_seconds"] = time.perf_counter() - started
        out[f"{step}_pages_read_from_disk"] = buffer_pool_reads(settings) - reads
        if cpu is not None:
            out[f"{step}_mysql_cpu_seconds"] = server_cpu_seconds(pid) - cpu
        if step == "merge" and sum(r.inserted for r in results) != rows * days:
            raise RuntimeError(f"{name}: the merges inserted {[r.inserted for r in results]}")
        if step == "check" and sum(sum(r.merged.values()) for r in results) != rows * days:
            raise RuntimeError(f"{name}: the checks found other than the staged rows merged")
    return out


def _status(cur: Any, name: str) -> str:
    cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
    row = cur.fetchone()
    return str(row[1]) if row else ""


def buffer_pool_reads(settings: MySQLSettings) -> int:
    """Pages InnoDB had to read from disk so far (a lookup that missed the buffer pool)."""
    with connection(settings) as conn, conn.cursor() as cur:
        return int(_status(cur, "Innodb_buffer_pool_reads") or 0)


def buffer_pool_mb(settings: MySQLSettings, resize_to: int | None = None) -> int:
    """The server's buffer pool size in MB, after resizing it (a dynamic variable; the
    resize runs in the background, so wait until the server reports it done)."""
    with connection(settings) as conn, conn.cursor() as cur:
        if resize_to:
            cur.execute("SET GLOBAL innodb_buffer_pool_size = %s", (resize_to * 2**20,))
            for _ in range(600):
                cur.execute("SELECT @@innodb_buffer_pool_size")
                size = int(cur.fetchone()[0])
                status = _status(cur, "Innodb_buffer_pool_resize_status")
                if size == resize_to * 2**20 and "esizing" not in status:
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"the buffer pool did not reach {resize_to} MB in 60 s")
        cur.execute("SELECT @@innodb_buffer_pool_size")
        return int(cur.fetchone()[0]) // 2**20


def medians(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: round(statistics.median(s[key] for s in samples), 2) for key in samples[0]}


def run(settings: MySQLSettings, pid: int | None, rows: int, repeat: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in SHAPES}
    for round_number in range(repeat):
        for name in SHAPES:
            samples[name].append(shape(settings, pid, name, rows))
            print(round_number, name, medians(samples[name][-1:]), flush=True)
    result: dict[str, Any] = {
        "rows_per_day": rows,
        "repeat": repeat,
        "buffer_pool_mb": buffer_pool_mb(settings, None),
        "shapes": {},
    }
    for name, found in samples.items():
        summary = medians(found)
        if pid is not None:
            cpu = sum(summary[f"{step}_mysql_cpu_seconds"] for step in STEPS)
            summary["mysql_cpu_us_per_row"] = round(cpu / summary["rows"] * 1e6, 2)
        result["shapes"][name] = summary
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| shape | rows | load s (MySQL CPU s) | merge s (MySQL CPU s) | checks s (MySQL CPU s) "
        "| MySQL CPU µs/row | pages read from disk (load, merge, checks) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in result["shapes"].items():
        cells = [
            f"{s[f'{step}_seconds']} ({s.get(f'{step}_mysql_cpu_seconds', '—')})" for step in STEPS
        ]
        per_row = s.get("mysql_cpu_us_per_row", "—")
        reads = ", ".join(f"{int(s[f'{step}_pages_read_from_disk']):,}" for step in STEPS)
        lines.append(f"| {name} | {s['rows']:,} | {' | '.join(cells)} | {per_row} | {reads} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--buffer-pool-mb", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.repeat < 1 or args.rows < 1:
        parser.error("--rows and --repeat must be at least 1")
    if args.buffer_pool_mb and os.environ.get("MIGRATION_MYSQL_URL"):
        parser.error("--buffer-pool-mb resizes the throwaway server only, not a configured one")
    with bench_server("bench_concurrency") as (settings, pid):
        print(f"buffer pool: {buffer_pool_mb(settings, args.buffer_pool_mb)} MB", flush=True)
        result = run(settings, pid, args.rows, args.repeat)
    print(markdown(result))
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
