"""What `json_text_parity` adds to a day's staging checks: the Parquet side (CRC32 of each
json value with zlib, in a thread beside MySQL) and the staging scan that counts the rows
per second and now also sums the json text's CRC32s, against the count-only scan, on a
synthetic day of `--rows` puts with a json map each.

    python -m bench.json_check --rows 1000000 [--json bench/results/json-check-latest.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import time
from pathlib import Path

import pyarrow as pa
import yaml

from bench.common import bench_server, server_cpu_seconds, write_json
from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.load import load_day
from migration_assets.mysql.seconds import (
    staged_seconds,
)
from migration_assets.parquet.counts import parquet_json_checksums
from migration_assets.parquet.store import partition_schema
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

DAY = dt.date(2024, 3, 1)


def day_table(spec, rows: int) -> pa.Table:
    rng = random.Random(7)
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC)
    columns = {
        "customer_id": [rng.randrange(1, 10**9) for _ in range(rows)],
        "order_id": list(range(rows)),
        "created_at": [start + dt.timedelta(seconds=n * 86_400 // rows) for n in range(rows)],
        "amount": [None] * rows,
        "loyalty_tier": ["gold"] * rows,
        "attrs": [
            json.dumps({"n": n, "tags": ["a", "b"], "big": 10**37 + n}, separators=(",", ":"))
            for n in range(rows)
        ],
        "_change": ["put"] * rows,
    }
    table = pa.Table.from_pydict(columns, schema=partition_schema(spec))
    return table.sort_by([(k, "ascending") for k in spec.mysql.key])


def timed(work):
    started = time.perf_counter()
    value = work()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    spec = parse_spec(data)
    table = day_table(spec, args.rows)
    result: dict[str, object] = {"rows": args.rows}
    with bench_server("bench_json_check") as (settings, pid), connection(settings) as conn:
        ensure_tables(conn, spec)
        _, result["load_s"] = timed(lambda: load_day(conn, spec, DAY, table))
        expected, result["parquet_hash_s"] = timed(lambda: parquet_json_checksums(table, spec))
        before = server_cpu_seconds(pid)
        (_, observed), result["staged_scan_with_text_s"] = timed(
            lambda: staged_seconds(conn, spec, DAY, text=True)
        )
        middle = server_cpu_seconds(pid)
        _, result["staged_scan_counts_only_s"] = timed(
            lambda: staged_seconds(conn, spec, DAY, text=False)
        )
        after = server_cpu_seconds(pid)
        if pid is not None:
            result["mysql_cpu_with_text_s"] = round(middle - before, 2)
            result["mysql_cpu_counts_only_s"] = round(after - middle, 2)
        result["equal"] = expected == observed
    print(json.dumps(result, indent=2))
    write_json(result, args.json)


if __name__ == "__main__":
    main()
