"""Benchmark: bigint_table_copy's `per_second_checksum_parity` against reladiff's hashdiff on
the same legacy day and its BIGINT copy, in the same run on the same server (issue 23).

The day of `bench/bigint_copy.py` (N rows in a legacy `INT(11)` table, rows on the
neighbouring days) is copied once; then 3 copied values of the day are changed by hand (an
amount, the JSON text, a customer id). Each repetition times:
  - ours: the check's work for the day (`day_checksums` on 2 connections, the Great
    Expectations validation of the per-second sums, the drill-down to keys);
  - reladiff 0.6.0, `algorithm=hashdiff`, on the same tables and columns (the day by a
    `where` on the time column, the legacy id range), with 1 and with 2 threads.
Both must name exactly the 3 changed ids. Also timed once per repetition: one grouped pass
of the legacy day per aggregate (SUM of CRC32, SUM and BIT_XOR of 64 bits of MD5, SUM of
squared CRC32, SUM of CRC32 of CRC32: ours), the alternatives `mysql/seconds.row_hash` weighs.

reladiff is a bench-only extra (`pip install -c requirements.lock -e ".[bench]"`); the bench
installs it so into the running venv when it is missing. MySQL: `MIGRATION_MYSQL_URL` when
set (a database `bench_checksum` is created), else a throwaway MariaDB.

    .venv/bin/python -m bench.copy_checksum --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.bigint_copy import DAY, fresh_targets, seed_legacy_day
from bench.common import bench_database, write_json
from migration_assets.mysql.connection import MySQLSettings, connection
from migration_assets.mysql.copy_checksum import compared_columns, day_checksums, drill_down
from migration_assets.mysql.legacy import copy_day, legacy_key
from migration_assets.mysql.seconds import hash_sum, row_hash
from migration_assets.quality.validate import second_count_parity
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

ROOT = Path(__file__).resolve().parent.parent


def ensure_reladiff() -> None:
    try:
        import reladiff  # noqa: F401
    except ImportError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-c", str(ROOT / "requirements.lock")]
            + ["-e", f"{ROOT}[bench]"],
            check=True,
        )


def change_three_values(settings: MySQLSettings) -> set[int]:
    """An amount, the JSON text and a customer id of three copied rows of the day."""
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM orders WHERE created_at >= %s AND created_at < %s ORDER BY id "
            "LIMIT 3 OFFSET 1000",
            (DAY, DAY + dt.timedelta(days=1)),
        )
        a, b, c = (int(r[0]) for r in cur.fetchall())
        cur.execute("UPDATE orders SET amount = amount + 0.0001 WHERE id = %s", (a,))
        cur.execute("""UPDATE orders SET attrs = '{"channel":"web","n":99}' WHERE id = %s""", (b,))
        cur.execute("UPDATE orders SET customer_id = customer_id + 1 WHERE id = %s", (c,))
        conn.commit()
    return {a, b, c}


def ours(settings: MySQLSettings, spec) -> set[int]:
    """What the check does for the day: both sides' sums, their validation, the drill-down."""
    with connection(settings) as conn:
        key = legacy_key(conn, spec)
        sums = day_checksums(
            conn, spec, DAY, key, connect=lambda: connection(settings), connections=2
        )
        validation = second_count_parity(sums.legacy_sums, sums.copied_sums, "bench", "checksum")
        assert not validation.passed
        keys = drill_down(conn, spec, DAY, sums.differing_seconds(), key)
    return {int(k["key"]["id"]) for k in keys}


def reladiff_hashdiff(settings: MySQLSettings, columns: tuple[str, ...], threads: int) -> set:
    from reladiff import Algorithm, connect_to_table, diff_tables

    url = f"mysql://{settings.user}@{settings.host}:{settings.port}/{settings.database}"
    where = (
        f"created_at >= '{DAY}' AND created_at < '{DAY + dt.timedelta(days=1)}' "
        f"AND id <= {2**31 - 1}"
    )
    extra = tuple(c for c in columns if c != "id")
    legacy = connect_to_table(url, "table01", "id", thread_count=threads)
    new = connect_to_table(url, "orders", "id", thread_count=threads)
    try:
        with diff_tables(
            legacy,
            new,
            extra_columns=extra,
            where=where,
            algorithm=Algorithm.HASHDIFF,
            max_threadpool_size=threads,
        ) as diff:
            return {int(row[1][0]) for row in diff}
    finally:
        legacy.database.close()
        new.database.close()


def alternatives(settings: MySQLSettings, columns: tuple[str, ...]) -> dict[str, float]:
    """One grouped pass of the legacy day per aggregate of row hashes."""
    text = "CONCAT_WS(',', " + ", ".join(f"QUOTE(l.`{c}`)" for c in columns) + ")"
    md5 = f"CAST(CONV(LEFT(MD5({text}), 16), 16, 10) AS UNSIGNED)"
    aggregates = {
        "count_only": "COUNT(*)",
        "sum_crc32": f"SUM(CRC32({text}))",
        "bit_xor_md5_64": f"BIT_XOR({md5})",
        "sum_md5_64_mod_2_64": hash_sum(md5),
        "sum_crc32_squared_mod_2_64": hash_sum(f"CRC32({text}) * CRC32({text})"),
        "sum_crc32_of_crc32 (ours)": hash_sum(row_hash("l", columns)),
    }
    times = {}
    with connection(settings) as conn, conn.cursor() as cur:
        for name, aggregate in aggregates.items():
            started = time.perf_counter()
            cur.execute(
                f"SELECT COUNT(*) FROM (SELECT l.created_at, {aggregate} FROM table01 l "
                "WHERE l.created_at >= %s AND l.created_at < %s GROUP BY l.created_at) x",
                (DAY, DAY + dt.timedelta(days=1)),
            )
            cur.fetchall()
            times[name] = time.perf_counter() - started
    return times


def run(settings: MySQLSettings, rows: int, repeat: int) -> dict:
    spec = parse_spec(yaml.safe_load(EXAMPLE_SPEC.read_text()))
    day_rows = seed_legacy_day(settings, spec, rows)
    fresh_targets(settings, spec)
    copy_day(lambda: connection(settings), spec, DAY, connections=2)
    changed = change_three_values(settings)
    with connection(settings) as conn:
        columns = compared_columns(conn, spec)
    import great_expectations  # noqa: F401  (imported once per run in a real run too)
    import reladiff  # noqa: F401

    times: dict[str, list[float]] = {"ours": [], "reladiff_1_thread": [], "reladiff_2_threads": []}
    passes: dict[str, list[float]] = {}
    for _ in range(repeat):
        for name, function in (
            ("ours", lambda: ours(settings, spec)),
            ("reladiff_1_thread", lambda: reladiff_hashdiff(settings, columns, 1)),
            ("reladiff_2_threads", lambda: reladiff_hashdiff(settings, columns, 2)),
        ):
            started = time.perf_counter()
            found = function()
            times[name].append(time.perf_counter() - started)
            assert found == changed, (name, sorted(found), sorted(changed))
        for name, seconds in alternatives(settings, columns).items():
            passes.setdefault(name, []).append(seconds)
    m = statistics.median
    best_reladiff = min(m(times["reladiff_1_thread"]), m(times["reladiff_2_threads"]))
    return {
        "rows": day_rows,
        "columns": list(columns),
        "changed_ids_found_by_both": sorted(changed),
        "ours_seconds_median": round(m(times["ours"]), 2),
        "reladiff_hashdiff_1_thread_seconds_median": round(m(times["reladiff_1_thread"]), 2),
        "reladiff_hashdiff_2_threads_seconds_median": round(m(times["reladiff_2_threads"]), 2),
        "speedup_vs_best_reladiff": round(best_reladiff / m(times["ours"]), 2),
        "one_pass_of_the_legacy_day_seconds_median": {k: round(m(v), 2) for k, v in passes.items()},
        "seconds": {k: [round(v, 2) for v in vs] for k, vs in times.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ensure_reladiff()
    with bench_database("bench_checksum") as settings:
        result = run(settings, args.rows, args.repeat)
    print(json.dumps(result), flush=True)
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
