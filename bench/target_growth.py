"""Benchmark: a new day's merge and its merge checks as the target grows (issue 9).

The one-day benchmark merges into an empty target. A three-year backfill merges into a
target that grows to billions of rows, far past any buffer pool, and the example spec's key
starts with `customer_id`, so in an unpartitioned target (`--partitioning none`) every day's
rows land all over one primary key; partitioned by day (the default layout, `mysql/
partitioning.py`) each day meets a partition of its own. This
stages `--days` new days of `--rows` rows each (random customer ids; key-sorted, as
`parquet_partitions` writes them) with the real `load_day`, and for each day measures
`merge_day` (a new day: `--connections` connections) and the `target_table_merge_checks`
pass (`merged_day`): seconds, and the MySQL server's CPU seconds when it is the throwaway
server. MySQL: `MIGRATION_MYSQL_URL` when set (database `bench_growth`), else a throwaway
MariaDB (its 512 MB buffer pool is what `make demo` and `make bench` use).

    .venv/bin/python -m bench.target_growth --days 8 --rows 1000000 [--order random] \
        [--partitioning none]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from migration_assets.identifiers import quote_identifier as q
from migration_assets.mysql.connection import MySQLSettings, connection, open_connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import DEFAULT_CHUNK_ROWS, forget_indexes, merge_day
from migration_assets.mysql.partitioning import forget_layouts
from migration_assets.mysql.seconds import merged_day
from migration_assets.parquet.store import partition_schema
from migration_assets.spec import EXAMPLE_SPEC, MigrationSpec, parse_spec

from .common import bench_server, server_cpu_seconds, write_json

FIRST_DAY = dt.date(2024, 1, 1)
TIERS = pa.array(["bronze", "silver", "gold", "platinum", None])
ATTRS = pa.array(['{"channel":"web","items":3}', '{"channel":"app","flags":["gift"]}', None])


def example_spec(partitioning: str = "day") -> MigrationSpec:
    """The example's DynamoDB path (every target row comes from a day); `partitioning`:
    `day` (what the spec's default gives it) or `none` (one B-tree with an event-time index)."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    data["mysql"]["target_partitioning"] = partitioning
    return parse_spec(data)


def day_table(spec: MigrationSpec, number: int, rows: int, order: str = "key") -> pa.Table:
    """Day `number`'s puts in the partition schema, sorted by the MySQL key as
    `parquet_partitions` writes them (`order="random"`: shuffled, to measure what that buys)."""
    rng = np.random.default_rng(number)
    midnight = int(dt.datetime.combine(FIRST_DAY, dt.time(), dt.UTC).timestamp()) + number * 86_400
    columns = {
        "customer_id": pa.array(rng.integers(1, 2**31, rows)),
        "order_id": pa.array(number * 2_000_000 + np.arange(1, rows + 1)),
        "created_at": pa.array(midnight + np.sort(rng.integers(0, 86_400, rows))),
        "amount": pa.array(rng.integers(0, 10**8, rows)).cast(pa.decimal128(38, 4)),
        "loyalty_tier": TIERS.take(pa.array(rng.integers(0, len(TIERS), rows))),
        "attrs": ATTRS.take(pa.array(rng.integers(0, len(ATTRS), rows))),
        "_change": pa.array(["put"] * rows),
    }
    schema = partition_schema(spec)
    table = pa.table([columns[f.name].cast(f.type) for f in schema], schema=schema)
    if order == "random":
        return table.take(pa.array(rng.permutation(rows)))
    return table.sort_by([(name, "ascending") for name in spec.mysql.key])


def fresh_tables(settings: MySQLSettings, spec: MigrationSpec) -> None:
    """An empty staging table and target, as the spec defines them (and what this process
    knew of the target before forgotten: the same name may now have another layout)."""
    with connection(settings) as conn, conn.cursor() as cur:
        for table in (spec.mysql.target_table, spec.mysql.temp_table):
            cur.execute(f"DROP TABLE IF EXISTS {q(table)}")
        ensure_tables(conn, spec)
    forget_layouts()
    forget_indexes()


def target_megabytes(settings: MySQLSettings, table: str) -> float:
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"ANALYZE TABLE {q(table)}")
        cur.fetchall()
        cur.execute(
            "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        return int(cur.fetchone()[0]) / 2**20


def run(
    settings: MySQLSettings,
    pid: int | None,
    days: int,
    rows: int,
    connections: int,
    order: str = "key",
    partitioning: str = "day",
) -> dict:
    spec = example_spec(partitioning)
    fresh_tables(settings, spec)
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@innodb_buffer_pool_size")
        buffer_pool = int(cur.fetchone()[0])
    per_day: list[dict[str, Any]] = []
    with connection(settings) as conn:
        for number in range(days):
            day = FIRST_DAY + dt.timedelta(days=number)
            load_day(conn, spec, day, day_table(spec, number, rows, order))
            more = {"connect": lambda: open_connection(settings), "connections": connections}
            steps = {
                "merge": partial(merge_day, chunk_rows=DEFAULT_CHUNK_ROWS, **more),
                "check": partial(merged_day, **more),
            }
            row: dict[str, Any] = {"target_rows_before": number * rows}
            outcome = {}
            for name, step in steps.items():
                cpu, started = server_cpu_seconds(pid), time.perf_counter()
                outcome[name] = step(conn, spec, day)
                row[f"{name}_seconds"] = round(time.perf_counter() - started, 2)
                if cpu is not None:
                    row[f"{name}_mysql_cpu_seconds"] = round(server_cpu_seconds(pid) - cpu, 2)
            merged = sum(outcome["check"].merged.values())
            if outcome["merge"].inserted != rows or merged != rows:  # a broken merge is no result
                raise RuntimeError(f"{day}: inserted {outcome['merge'].inserted}, {merged} checked")
            row["target_mb_after"] = round(target_megabytes(settings, spec.mysql.target_table))
            per_day.append(row)
            print(json.dumps(row), flush=True)
    return {
        "rows_per_day": rows,
        "connections": connections,
        "order": order,
        "partitioning": partitioning,
        "buffer_pool_mb": buffer_pool // 2**20,
        "days": per_day,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--order", choices=("key", "random"), default="key")
    parser.add_argument("--partitioning", choices=("day", "none"), default="day")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_server("bench_growth") as (settings, pid):
        result = run(
            settings, pid, args.days, args.rows, args.connections, args.order, args.partitioning
        )
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
