"""Benchmark: one day of DynamoDB export files in S3 -> Parquet partition (issue 3).

Runs on the local stack (a moto server of its own). For N generated items of one day it
writes a full export in the exact AWS layout, then measures in the same run:
  - machine limits: gunzip alone, pyarrow's JSON reader on the decompressed lines, and a
    Python `json.loads` loop (the naive approach) on a sample;
  - the real path: `day_builder.build_days` for the day (S3 download, md5, typed
    decoding, Parquet write and upload, manifest commit), `--repeat` times, median taken.
Two item shapes: `scalar` (10 attributes, every column type the realistic table has) and
`with_map` (the same plus a DynamoDB map attribute in a JSON column).

    .venv/bin/python -m bench.parquet --items 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import sys
import tempfile
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.json as pj
from isal import isal_zlib

from migration_assets.devstack.moto_server import start_moto
from migration_assets.devstack.processes import stop_pid
from migration_assets.dynamodb.coverage import completed_exports, cover_day
from migration_assets.dynamodb.export_writer import write_full_export
from migration_assets.parquet.coverage_store import save_coverage
from migration_assets.parquet.day_builder import build_days
from migration_assets.parquet.split_cache import split_prefix
from migration_assets.spec import parse_spec

from .common import median_time, write_json

DAY = dt.date(2025, 6, 1)
COLUMNS = [
    {"attribute": "customer_id", "column": "customer_id", "type": "bigint", "nullable": False},
    {"attribute": "order_id", "column": "order_id", "type": "bigint", "nullable": False},
    {"attribute": "created_at", "column": "created_at", "type": "datetime(3)", "nullable": False},
    {"attribute": "amount", "column": "amount", "type": "decimal(18,4)"},
    {"attribute": "currency", "column": "currency", "type": "varchar(3)"},
    {"attribute": "status", "column": "status", "type": "varchar(16)"},
    {"attribute": "quantity", "column": "quantity", "type": "int"},
    {"attribute": "discount", "column": "discount", "type": "double"},
    {"attribute": "is_gift", "column": "is_gift", "type": "boolean"},
    {"attribute": "channel", "column": "channel", "type": "varchar(16)"},
]
MAP_COLUMN = {"attribute": "attrs", "column": "attrs", "type": "json"}


def bench_spec(bucket: str, with_map: bool):
    return parse_spec(
        {
            "name": "bench",
            "partitions": {"start": "2025-01-01"},
            "dynamodb": {
                "table": "bench_orders",
                "event_time": {"attribute": "created_at", "unit": "ms"},
                "on_bad_record": "quarantine",
            },
            "s3": {"bucket": bucket, "export_prefix": "exports/bench", "parquet_prefix": "pq"},
            "columns": COLUMNS + ([MAP_COLUMN] if with_map else []),
            "mysql": {
                "temp_table": "stage",
                "target_table": "orders",
                "key": ["customer_id", "order_id", "created_at"],
            },
        }
    )


def generate_lines(count: int, with_map: bool, seed: int = 1) -> list[bytes]:
    """`count` realistic full-export lines for DAY (vectorized draws, f-string encoding)."""
    rng = np.random.default_rng(seed)
    start_ms = int(dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp() * 1000)
    times = np.sort(start_ms + rng.integers(0, 86_400_000, count))
    customers = rng.integers(1, 3_000_000_000, count)
    amounts = rng.integers(0, 10**9, count)
    quantities = rng.integers(1, 20, count)
    discounts = rng.random(count).round(4)
    gifts = rng.random(count) < 0.1
    statuses = ("NEW", "PAID", "SHIPPED", "DELIVERED", "RETURNED")
    channels = ("web", "ios", "android", "store")
    currency = ("EUR", "USD", "GBP")
    picks = rng.integers(0, 60, size=(count, 3))
    lines = []
    for i in range(count):
        a, b, c = picks[i]
        amount = f"{amounts[i] // 10000}.{amounts[i] % 10000:04d}".rstrip("0").rstrip(".")
        attrs = (
            f',"attrs":{{"M":{{"coupon":{{"S":"C{a}"}},"items":{{"N":"{b}"}},'
            f'"tags":{{"SS":["t{c}"]}}}}}}'
            if with_map
            else ""
        )
        lines.append(
            (
                f'{{"Item":{{"customer_id":{{"N":"{customers[i]}"}},"order_id":{{"N":"{i + 1}"}},'
                f'"created_at":{{"N":"{times[i]}"}},"amount":{{"N":"{amount}"}},'
                f'"currency":{{"S":"{currency[a % 3]}"}},"status":{{"S":"{statuses[b % 5]}"}},'
                f'"quantity":{{"N":"{quantities[i]}"}},"discount":{{"N":"{discounts[i]}"}},'
                f'"is_gift":{{"BOOL":{"true" if gifts[i] else "false"}}},'
                f'"channel":{{"S":"{channels[c % 4]}"}}{attrs}}}}}\n'
            ).encode()
        )
    random.Random(seed).shuffle(lines)  # exports are in hash order, not time order
    return lines


def convert_unsplit(s3, spec, manifest):
    """`build_days` converting the export itself: the split by day an earlier repeat made
    (`parquet/split_cache.py`) is removed first, or the repeat would only read it back."""
    prefix = split_prefix(spec, manifest.summary.export_id) + "/"
    listed = s3.list_objects_v2(Bucket=spec.s3.bucket, Prefix=prefix).get("Contents", [])
    for item in listed:
        s3.delete_object(Bucket=spec.s3.bucket, Key=item["Key"])
    return build_days(s3, spec, [DAY])


def run_shape(s3, bucket: str, items: int, files: int, with_map: bool, repeat: int) -> dict:
    spec = bench_spec(bucket, with_map)
    lines = generate_lines(items, with_map)
    export_time = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(1), dt.UTC)
    write_full_export(
        s3,
        bucket=bucket,
        prefix=spec.s3.export_prefix,
        table_arn="arn:aws:dynamodb:us-east-1:111122223333:table/bench_orders",
        export_time=export_time,
        lines=lines,
        files=files,
        empty_files=0,
    )
    manifest = completed_exports(s3, bucket, spec.s3.export_prefix)[-1]
    save_coverage(s3, spec, cover_day(DAY, [manifest]))
    gz_files = [s3.get_object(Bucket=bucket, Key=f.key)["Body"].read() for f in manifest.files]
    texts = [isal_zlib.decompress(g, 31) for g in gz_files]

    gunzip_s = median_time(lambda: [isal_zlib.decompress(g, 31) for g in gz_files], repeat)
    arrow_s = median_time(lambda: [pj.read_json(pa.BufferReader(t)) for t in texts], repeat)
    sample = [line for text in texts[:1] for line in text.splitlines()][:100_000]
    loop_s = median_time(lambda: [json.loads(line) for line in sample], 1) * items / len(sample)
    pool = pa.default_memory_pool()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pipeline_s = median_time(lambda: convert_unsplit(s3, spec, manifest), repeat)
    rows = convert_unsplit(s3, spec, manifest).results[0].manifest.rows
    assert rows == items, f"{rows} rows written for {items} items"
    return {
        "shape": "with_map" if with_map else "scalar",
        "items": items,
        "files": files,
        "gz_mb": round(sum(len(g) for g in gz_files) / 1e6, 1),
        "json_mb": round(sum(len(t) for t in texts) / 1e6, 1),
        "pipeline_s": round(pipeline_s, 3),
        "pipeline_items_per_s": round(items / pipeline_s),
        "limit_gunzip_items_per_s": round(items / gunzip_s),
        "limit_arrow_json_items_per_s": round(items / arrow_s),
        "naive_json_loads_items_per_s": round(items / loop_s),
        "ratio_to_arrow_json": round(arrow_s / pipeline_s, 2),
        "ratio_to_naive": round(loop_s / pipeline_s, 2),
        "arrow_pool_peak_mb": round(pool.max_memory() / 1e6),
        "process_peak_rss_mb": round(
            max(rss_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1e3
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default="scalar,with_map")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        moto = start_moto(Path(folder))
        try:
            s3 = boto3.client(
                "s3",
                endpoint_url=moto.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            results = []
            for shape in args.shapes.split(","):
                bucket = f"bench-{shape.replace('_', '-')}"
                s3.create_bucket(Bucket=bucket)
                result = run_shape(
                    s3, bucket, args.items, args.files, shape == "with_map", args.repeat
                )
                print(json.dumps(result), flush=True)
                results.append(result)
        finally:
            stop_pid(moto.pid)
    write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
