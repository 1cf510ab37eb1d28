"""Benchmark: one legacy day copied into the new BIGINT table, with its parity check (issue 6).

For a day of N rows in a legacy `INT(11)` table (plus rows on the neighbouring days), measured
in the same run on the same server, each repetition from a fresh empty new table:
  - limit: one bare `INSERT ... SELECT` of the day into an identical empty table;
  - ours: `copy_day` (id-range chunks of `--chunk-rows`, on 1 and on 2 connections) followed
    by the `per_second_count_parity` check's work: per-second counts of both sides and their
    Great Expectations validation (GE imported beforehand, as a run imports it once).
MySQL: `MIGRATION_MYSQL_URL` when set (a database `bench_bigint` is created), else a
throwaway MariaDB.

    .venv/bin/python -m bench.bigint_copy --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from migration_assets.mysql.connection import (
    MySQLSettings,
    connection,
)
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.legacy import DEFAULT_COPY_CHUNK_ROWS, copy_day, legacy_key
from migration_assets.mysql.seconds import copied_second_counts, legacy_second_counts
from migration_assets.quality.validate import second_count_parity
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

from .common import bench_database, timed, write_json

DAY = dt.date(2025, 6, 1)
COLUMNS = "id, customer_id, order_id, created_at, amount, attrs"


def write_legacy_tsv(path: str, rows: int, neighbours: int) -> None:
    """The day's rows plus `neighbours` rows on each adjacent day, ids in time order."""
    rng = np.random.default_rng(5)
    midnight = dt.datetime.combine(DAY, dt.time())
    offsets = np.sort(
        np.concatenate(
            [
                rng.integers(-86_400, 0, neighbours),
                rng.integers(0, 86_400, rows),
                rng.integers(86_400, 2 * 86_400, neighbours),
            ]
        )
    )
    with open(path, "w") as sink:
        for index, offset in enumerate(offsets.tolist()):
            moment = midnight + dt.timedelta(seconds=offset)
            sink.write(
                f"{index + 1}\t{index % 50_000_000 + 1}\t{index + 1}\t{moment:%Y-%m-%d %H:%M:%S}"
                f'\t{index % 100_000}.{index % 100:02d}00\t{{"channel":"web","n":{index % 7}}}\n'
            )


def seed_legacy_day(settings: MySQLSettings, spec, rows: int) -> int:
    """The legacy table with a day of `rows` rows and a tenth as many on each side; the day's
    rows."""
    handle, tsv = tempfile.mkstemp(suffix=".tsv")
    os.close(handle)
    try:
        write_legacy_tsv(tsv, rows, neighbours=rows // 10)
        return prepare(settings, spec, tsv)
    finally:
        os.unlink(tsv)


def prepare(settings: MySQLSettings, spec, tsv: str) -> int:
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS table01")
        cur.execute(
            "CREATE TABLE table01 (id INT(11) NOT NULL AUTO_INCREMENT, customer_id INT(11) NOT"
            " NULL, order_id INT(11) NOT NULL, created_at DATETIME NOT NULL, amount"
            " DECIMAL(18,4), attrs JSON, PRIMARY KEY (id), KEY by_time (created_at))"
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )
        cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE table01 ({COLUMNS})", (tsv,))
        conn.commit()
        cur.execute(
            "SELECT COUNT(*) FROM table01 WHERE created_at >= %s AND created_at < %s",
            (DAY, DAY + dt.timedelta(days=1)),
        )
        return int(cur.fetchone()[0])


def fresh_targets(settings: MySQLSettings, spec) -> None:
    with connection(settings) as conn, conn.cursor() as cur:
        for table in (
            "orders",
            "bare_copy",
            "orders_copied_days",
            "orders_tombstones",
            "orders_capture",
            "orders_changed_days",
        ):
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        conn.commit()
        ensure_tables(conn, spec)
        cur.execute("CREATE TABLE bare_copy LIKE orders")
        conn.commit()


def parity(settings: MySQLSettings, spec) -> bool:
    """What the `per_second_count_parity` check of bigint_table_copy does for a day."""
    with connection(settings) as conn:
        expected = legacy_second_counts(conn, spec, DAY)
        observed = copied_second_counts(conn, spec, DAY, legacy_key(conn, spec))
    return second_count_parity(expected, observed, "bench").passed


def run(settings: MySQLSettings, rows: int, repeat: int, chunk_rows: int) -> dict:
    spec = parse_spec(yaml.safe_load(EXAMPLE_SPEC.read_text()))
    day_rows = seed_legacy_day(settings, spec, rows)
    import great_expectations  # noqa: F401  (imported once per run in a real run too)

    bare = (
        f"INSERT INTO bare_copy ({COLUMNS}) SELECT {COLUMNS} FROM table01 "
        "WHERE created_at >= %s AND created_at < %s"
    )
    window = (DAY, DAY + dt.timedelta(days=1))
    times: dict[str, list[float]] = {k: [] for k in ("limit", "one", "two", "check")}
    for _ in range(repeat):
        for connections, name in ((1, "one"), (2, "two")):
            fresh_targets(settings, spec)
            with connection(settings) as conn, conn.cursor() as cur:

                def bare_copy(conn=conn, cur=cur):
                    cur.execute(bare, window)
                    conn.commit()

                if connections == 1:  # the limit, measured next to each of ours
                    times["limit"].append(timed(bare_copy))

            def ours(connections=connections):
                copied = copy_day(
                    lambda: connection(settings),
                    spec,
                    DAY,
                    chunk_rows=chunk_rows,
                    connections=connections,
                )
                assert copied.rows == day_rows
                started = time.perf_counter()
                assert parity(settings, spec)
                times["check"].append(time.perf_counter() - started)

            times[name].append(timed(ours))
    m = statistics.median
    return {
        "rows": day_rows,
        "chunk_rows": chunk_rows,
        "limit_bare_insert_select_rows_per_s": round(day_rows / m(times["limit"])),
        "ours_1_connection_with_check_rows_per_s": round(day_rows / m(times["one"])),
        "ours_2_connections_with_check_rows_per_s": round(day_rows / m(times["two"])),
        "ratio_1_connection": round(m(times["limit"]) / m(times["one"]), 2),
        "ratio_2_connections": round(m(times["limit"]) / m(times["two"]), 2),
        "parity_check_seconds_median": round(m(times["check"]), 2),
        "seconds": {k: [round(v, 2) for v in vs] for k, vs in times.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_COPY_CHUNK_ROWS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_database("bench_bigint") as settings:
        result = run(settings, args.rows, args.repeat, args.chunk_rows)
    print(json.dumps(result), flush=True)
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
