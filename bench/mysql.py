"""Benchmark: one day staged into MySQL and merged into the target (issue 4).

For N key-sorted rows of one day, measured in the same run on the same server:
  - limit: a bare `LOAD DATA LOCAL INFILE` of a pre-written, key-sorted TSV into the same
    staging table; naive: pymysql `executemany` INSERTs (on a sample, rate extrapolated);
  - ours: `load_day` (Arrow -> load text -> LOAD DATA, day replaced atomically);
  - merge limit: one bare `INSERT ... SELECT ... ON DUPLICATE KEY UPDATE` over the whole day;
  - ours: `merge_day` in chunks of `--chunk-rows`, same starting state (empty target).
MySQL: `MIGRATION_MYSQL_URL` when set (a database `bench_mysql` is created), else a
throwaway MariaDB.

    .venv/bin/python -m bench.mysql --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from migration_assets.mysql.connection import (
    MySQLSettings,
    connection,
)
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.load import load_day, tsv_chunks
from migration_assets.mysql.merge import DEFAULT_CHUNK_ROWS, merge_day
from migration_assets.parquet.store import partition_schema
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

from .common import bench_database, timed, write_json

DAY = dt.date(2025, 6, 1)


def bench_spec():
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    return parse_spec(data)


def day_table(spec, rows: int) -> pa.Table:
    rng = np.random.default_rng(3)
    start = int(dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp())
    customers = np.sort(rng.integers(1, 3_000_000_000, rows))
    table = pa.table(
        {
            "customer_id": customers,
            "order_id": np.arange(1, rows + 1),
            "created_at": pa.array(start + rng.integers(0, 86_400, rows), pa.int64()).cast(
                pa.timestamp("s", tz="UTC")
            ),
            "amount": pa.array(
                [f"{v // 100}.{v % 100:02d}" for v in rng.integers(0, 10**8, rows)]
            ).cast(pa.decimal128(18, 4)),
            "loyalty_tier": pa.array(
                np.array(["gold", "silver", "bronze"])[rng.integers(0, 3, rows)]
            ),
            "attrs": pa.array(['{"channel":"web","items":3}'] * rows),
            "_change": pa.array(["put"] * rows),
        }
    )
    return table.cast(partition_schema(spec)).sort_by([(k, "ascending") for k in spec.mysql.key])


def reset(settings: MySQLSettings, spec) -> None:
    with connection(settings) as conn, conn.cursor() as cur:
        for table in (spec.mysql.temp_table, spec.mysql.target_table, "bare_stage"):
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        conn.commit()
        ensure_tables(conn, spec)
        cur.execute(f"CREATE TABLE bare_stage LIKE `{spec.mysql.temp_table}`")
        conn.commit()


def run(settings: MySQLSettings, rows: int, repeat: int, chunk_rows: int) -> dict:
    spec = bench_spec()
    table = day_table(spec, rows)
    names = ", ".join(["_seq", "_change", *(f"`{c.column}`" for c in spec.columns)])
    handle, tsv_path = tempfile.mkstemp(suffix=".tsv")
    with os.fdopen(handle, "wb") as sink:
        for chunk in tsv_chunks(table, spec):
            sink.write(chunk)
    load_sql = (
        "LOAD DATA LOCAL INFILE %s INTO TABLE bare_stage FIELDS TERMINATED BY '\\t' "
        f"ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({names}) SET _day = %s"
    )
    merge_sql = (
        "INSERT INTO `orders` (customer_id, order_id, created_at, amount, loyalty_tier, attrs) "
        "SELECT customer_id, order_id, created_at, amount, loyalty_tier, attrs FROM orders_stage "
        "WHERE _day = %s AND _change = 'put' "
        "ON DUPLICATE KEY UPDATE loyalty_tier = VALUES(loyalty_tier)"
    )
    sample = min(rows, 100_000)
    sample_rows = [
        (
            DAY,
            i + 1,
            "put",
            *(v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for v in values),
        )
        for i, values in enumerate(
            zip(
                *(table.column(c.column).slice(0, sample).to_pylist() for c in spec.columns),
                strict=True,
            )
        )
    ]
    insert_sql = f"INSERT INTO bare_stage (_day, {names}) VALUES ({', '.join(['%s'] * 9)})"
    times: dict[str, list[float]] = {k: [] for k in ("limit", "ours", "mlimit", "mours", "naive")}
    try:
        for _ in range(repeat):
            reset(settings, spec)
            with connection(settings) as conn, conn.cursor() as cur:

                def execute(sql, params, many=False, conn=conn, cur=cur):
                    (cur.executemany if many else cur.execute)(sql, params)
                    conn.commit()

                times["limit"].append(timed(lambda: execute(load_sql, (tsv_path, DAY))))
                times["ours"].append(timed(lambda conn=conn: load_day(conn, spec, DAY, table)))
                times["mlimit"].append(timed(lambda: execute(merge_sql, (DAY,))))
                execute("TRUNCATE TABLE `orders`", ())
                times["mours"].append(
                    timed(lambda conn=conn: merge_day(conn, spec, DAY, chunk_rows=chunk_rows))
                )
                execute("TRUNCATE TABLE bare_stage", ())
                naive_s = timed(lambda: execute(insert_sql, sample_rows, many=True))
                times["naive"].append(naive_s * rows / sample)
    finally:
        os.unlink(tsv_path)
    load_limit, load_ours = times["limit"], times["ours"]
    merge_limit, merge_ours, naive = times["mlimit"], times["mours"], times["naive"]
    m = statistics.median
    return {
        "rows": rows,
        "chunk_rows": chunk_rows,
        "load_limit_rows_per_s": round(rows / m(load_limit)),
        "load_ours_rows_per_s": round(rows / m(load_ours)),
        "load_ratio_to_limit": round(m(load_limit) / m(load_ours), 2),
        "load_naive_executemany_rows_per_s": round(rows / m(naive)),
        "load_ratio_to_naive": round(m(naive) / m(load_ours), 2),
        "merge_limit_rows_per_s": round(rows / m(merge_limit)),
        "merge_ours_rows_per_s": round(rows / m(merge_ours)),
        "merge_ratio_to_limit": round(m(merge_limit) / m(merge_ours), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_database("bench_mysql") as settings:
        result = run(settings, args.rows, args.repeat, args.chunk_rows)
    print(json.dumps(result), flush=True)
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
