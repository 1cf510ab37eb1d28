"""Benchmark: a generated day of DynamoDB items through every asset, with every check (issue 9).

`make bench` runs it. On the local stack (a moto server and a throwaway MariaDB, or
`MIGRATION_MYSQL_URL`), in one invocation:
  1. one day of `--items` items, written as a full export plus two incremental exports in the
     exact AWS layout, goes through `dynamodb_export -> parquet_partitions ->
     aurora_temp_table -> target_table` and all their checks in ONE real Dagster run (a
     separate process, a persistent instance, the shipped dagster.yaml). Each stage's time
     is its asset step plus its check steps, from the run's event log; its peak memory is
     the process's resident set sampled every 20 ms during those steps;
  2. the machine's limits, measured right after on the same data and server: pyarrow's JSON
     reader on the day's decompressed export lines, a bare `LOAD DATA LOCAL INFILE` of the
     day's key-sorted TSV into an identical staging table, a bare `INSERT ... SELECT ... ON
     DUPLICATE KEY UPDATE` of the staged day into an empty copy of the target; and the naive
     way (a Python `json.loads` loop; pymysql `executemany` row inserts), on a sample;
  3. several days at once, on their own export, database and instance, after the export's
     first day ran alone and split it by day (a backfill's steady state): `--concurrent-days`
     one-day runs started together (as sensor-launched runs), then `--range-runs` runs of
     `--days-per-run` days each (range runs, as the shipped `BackfillPolicy.multi_run`
     backfill launches them; the shipped instance runs 2 at a time);
  4. a new day's merge and merge checks as the target grows, `--growth-days` days in turn
     (`target_growth.run`), and the projection again with the grown target's MySQL cost;
  5. the INT -> BIGINT copy of a legacy day with its parity check (`bigint_copy.run`).
Writes `bench/results/latest.json` and appends a dated summary to `bench/RESULTS.md`.

    .venv/bin/python -m bench.e2e --items 1000000 --concurrent-days 2 --range-runs 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from migration_assets.aws import aws_client, retry_config
from migration_assets.devstack.seed import seed
from migration_assets.devstack.stack import StackState, start_stack, stop_stack
from migration_assets.identifiers import quote_identifier as q
from migration_assets.identifiers import quote_identifiers
from migration_assets.mysql.connection import MySQLSettings, connection, ensure_database
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.spec import EXAMPLE_SPEC, MigrationSpec, parse_spec

from .common import REPO, server_cpu_seconds, timed

DAY = dt.date(2025, 6, 1)
ASSETS = ("dynamodb_export", "parquet_partitions", "aurora_temp_table", "target_table")
NAIVE_SAMPLE = 100_000


def _say(message: str) -> None:
    print(f"[bench_e2e {dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def spec_data(name: str, first: dt.date, days: int) -> dict[str, Any]:
    """The example spec (its DynamoDB path) on a bucket, table and prefix of its own."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    data["partitions"] = {
        "start": first.isoformat(),
        "end": (first + dt.timedelta(days)).isoformat(),
    }
    data["dynamodb"]["table"] = f"orders_{name}"
    data["s3"]["bucket"] = f"bench-e2e-{name}"
    return data


# --- the run, in a child process ------------------------------------------------------------


class _RssSampler(threading.Thread):
    """The process's resident set every `interval` seconds (Linux /proc)."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.interval = interval
        self.stopped = threading.Event()
        self.page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        with open("/proc/self/statm") as statm:
            while not self.stopped.is_set():
                statm.seek(0)
                self.samples.append((time.time(), int(statm.read().split()[1]) * self.page))
                time.sleep(self.interval)

    def peak(self, start: float, end: float) -> int:
        return max((rss for t, rss in self.samples if start <= t <= end), default=0)


def _own_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(spec_path: Path, day: str, last: str | None, out: Path) -> None:
    """Materialize the DynamoDB path with its checks for `day` (one run) and report steps;
    with `last`, the days `day..last` in one range run, as a backfill's runs are."""
    import dagster as dg

    from migration_assets.definitions import build_assets
    from migration_assets.defs.resources import default_resources
    from migration_assets.spec import load_spec

    spec = load_spec(spec_path)
    definitions = build_assets(spec)  # the spec has no legacy_copy: the DynamoDB path only
    instance = dg.DagsterInstance.get()
    sampler = _RssSampler()
    sampler.start()
    time.sleep(0.1)
    baseline = sampler.samples[-1][1]
    cpu_before = _own_cpu_seconds()
    started = time.time()
    if last is None or last == day:
        which: dict[str, Any] = {"partition_key": day}
    else:  # the tags a multi_run backfill gives its runs (materialize has no range argument)
        which = {
            "tags": {
                "dagster/asset_partition_range_start": day,
                "dagster/asset_partition_range_end": last,
            }
        }
    result = dg.materialize(
        definitions,
        resources=default_resources(),
        instance=instance,
        raise_on_error=False,
        **which,
    )
    finished = time.time()
    cpu = _own_cpu_seconds() - cpu_before
    sampler.stopped.set()
    steps: dict[str, dict[str, float]] = {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        step = steps.setdefault(event.step_key, {})
        if event.event_type_value == "STEP_START":
            step["start"] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = entry.timestamp
            step["ok"] = event.event_type_value == "STEP_SUCCESS"
    checks = [
        {"check": e.check_name, "asset": e.asset_key.path[-1], "passed": e.passed}
        for e in result.get_asset_check_evaluations()
    ]
    for step in steps.values():
        if "start" in step and "end" in step:
            step["peak_rss"] = sampler.peak(step["start"], step["end"])
    out.write_text(
        json.dumps(
            {
                "success": result.success,
                "started": started,
                "finished": finished,
                "cpu_seconds": cpu,
                "rss_baseline": baseline,
                "steps": steps,
                "checks": checks,
            }
        )
    )


def run_child(
    stack: StackState,
    spec_path: Path,
    day: str,
    database: str,
    home: Path,
    work: Path,
    last: str | None = None,
    *,
    tree: Path = REPO,
    settings: dict[str, str] | None = None,
) -> subprocess.Popen:
    """The day (or `day..last`) in a child process with `tree`'s code (a checkout of this
    repository; `bench.ab` passes another) and extra environment `settings`."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(tree / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    out = work / f"child-{day}.json"
    env = {
        **os.environ,
        **stack.environment(),
        "MIGRATION_MYSQL_URL": stack.mysql.with_database(database).url,
        "MIGRATION_SPEC": str(spec_path),
        "DAGSTER_HOME": str(home),
        **(settings or {}),
    }
    log_path = work / f"child-{day}.log"
    if (tree / "bench" / "e2e.py").exists():
        command = [sys.executable, "-m", "bench.e2e"]
    else:  # a checkout from before bench/ was a package
        command = [sys.executable, str(tree / "bench" / "bench_e2e.py")]
    command += ["--child", str(spec_path), "--out", str(out)]
    command += ["--day", day, *(["--last", last] if last else [])]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        cwd=tree,
    )
    process.out_path = out  # type: ignore[attr-defined]
    process.log_path = log_path  # type: ignore[attr-defined]
    return process


def finish_child(process: subprocess.Popen) -> dict[str, Any]:
    code = process.wait()
    out: Path = process.out_path  # type: ignore[attr-defined]
    if code != 0 or not out.exists():
        log = process.log_path.read_text()[-4000:]  # type: ignore[attr-defined]
        raise RuntimeError(f"benchmark run failed (exit {code}):\n{log}")
    report = json.loads(out.read_text())
    if not report["success"] or not all(c["passed"] for c in report["checks"]):
        raise RuntimeError(f"the run or a check failed: {report['checks']}")
    return report


def stages(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per asset: seconds of its step and its check steps, and the peak RSS among them."""
    out: dict[str, dict[str, float]] = {}
    for key, step in report["steps"].items():
        asset = max((a for a in ASSETS if key.startswith(a)), key=len)
        stage = out.setdefault(asset, {"seconds": 0.0, "check_seconds": 0.0, "peak_rss": 0})
        seconds = step["end"] - step["start"]
        stage["seconds"] += seconds
        if key != asset:
            stage["check_seconds"] += seconds
        stage["peak_rss"] = max(stage["peak_rss"], step.get("peak_rss", 0))
    return out


# --- the machine's limits and the naive way, in this process -------------------------------


def export_lines(s3: Any, spec: MigrationSpec, export_id: str) -> list[bytes]:
    """The decompressed data files of a full export (what its JSON parse has to read)."""
    from migration_assets.dynamodb.layout import files_manifest_key

    manifest = s3.get_object(
        Bucket=spec.s3.bucket, Key=files_manifest_key(spec.s3.export_prefix, export_id)
    )["Body"].read()
    blobs = []
    for line in manifest.splitlines():
        key = json.loads(line)["dataFileS3Key"]
        blobs.append(gzip.decompress(s3.get_object(Bucket=spec.s3.bucket, Key=key)["Body"].read()))
    return blobs


def json_limits(blobs: list[bytes]) -> dict[str, float]:
    import pyarrow.json as pj

    rows = sum(b.count(b"\n") for b in blobs)
    blobs = [b for b in blobs if b]  # an export's data file may hold no items
    arrow_s = timed(lambda: [pj.read_json(io.BytesIO(b)) for b in blobs])
    sample = blobs[0].splitlines()[:NAIVE_SAMPLE]
    naive_s = timed(lambda: [json.loads(line) for line in sample])
    return {
        "rows": rows,
        "pyarrow_json_rows_per_s": rows / arrow_s,
        "naive_json_loads_rows_per_s": len(sample) / naive_s,
    }


def mysql_limits(s3: Any, spec: MigrationSpec, settings: MySQLSettings, day: dt.date) -> dict:
    """Bare LOAD DATA and INSERT ... SELECT of the same day, and executemany on a sample."""
    from migration_assets.mysql.load import _load_columns, tsv_chunks
    from migration_assets.parquet.store import read_partition

    table = read_partition(s3, spec, day)
    table = table.sort_by([(k, "ascending") for k in spec.mysql.key])
    columns = [c.column for c in spec.columns]
    names, sets = _load_columns(spec)
    stage, target = q(spec.mysql.temp_table), q(spec.mysql.target_table)
    handle, tsv = tempfile.mkstemp(suffix=".tsv")
    with os.fdopen(handle, "wb") as sink:
        for chunk in tsv_chunks(table, spec):
            sink.write(chunk)
    updates = ", ".join(f"{q(c)} = VALUES({q(c)})" for c in columns if c not in spec.mysql.key)
    try:
        with connection(settings) as conn, conn.cursor() as cur:
            for bare, like in (("bare_stage", stage), ("bare_target", target)):
                cur.execute(f"DROP TABLE IF EXISTS {bare}")
                cur.execute(f"CREATE TABLE {bare} LIKE {like}")
            load_sql = (
                f"LOAD DATA LOCAL INFILE %s INTO TABLE bare_stage FIELDS TERMINATED BY '\\t' "
                f"ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({names}) SET {sets}"
            )
            loads = []  # the median of 3: this limit is also the goals' yardstick (`goals`)
            for _ in range(3):
                cur.execute("TRUNCATE TABLE bare_stage")
                loads.append(timed(lambda: (cur.execute(load_sql, (tsv, day)), conn.commit())))
            load_s = statistics.median(loads)
            merge_sql = (
                f"INSERT INTO bare_target ({quote_identifiers(columns)}) SELECT "
                f"{quote_identifiers(columns)} FROM bare_stage WHERE `_day` = %s AND "
                f"`_change` = 'put' ON DUPLICATE KEY UPDATE {updates}"
            )
            merge_s = timed(lambda: (cur.execute(merge_sql, (day,)), conn.commit()))
            rows = table.num_rows
            cur.execute("TRUNCATE TABLE bare_target")
            sample = table.slice(0, min(rows, NAIVE_SAMPLE)).to_pylist()
            values = [tuple(r[c] for c in columns) for r in sample]
            insert_sql = (
                f"INSERT INTO bare_target ({quote_identifiers(columns)}) VALUES "
                f"({', '.join(['%s'] * len(columns))}) ON DUPLICATE KEY UPDATE {updates}"
            )
            naive_s = timed(lambda: (cur.executemany(insert_sql, values), conn.commit()))
            for bare in ("bare_stage", "bare_target"):
                cur.execute(f"DROP TABLE {bare}")
    finally:
        os.unlink(tsv)
    return {
        "rows": rows,
        "bare_load_data_rows_per_s": rows / load_s,
        "bare_insert_select_rows_per_s": rows / merge_s,
        "naive_executemany_rows_per_s": len(values) / naive_s,
    }


# --- the benchmark ---------------------------------------------------------------------------


def seed_world(
    work: Path, name: str, days: list[dt.date], items: int
) -> tuple[MigrationSpec, Path, Any]:
    data = spec_data(name, days[0], len(days))
    spec, path = parse_spec(data), work / f"spec-{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    clock = time.monotonic()
    report = seed(
        spec,
        s3=aws_client("s3", config=retry_config(5)),
        dynamodb=aws_client("dynamodb", config=retry_config(5)),
        mysql=None,
        days=days,
        items_per_day=items,
    )
    _say(f"seeded {name}: {len(days)} day(s) x {items:,} items in {time.monotonic() - clock:.0f} s")
    return spec, path, report


def target_rows(settings: MySQLSettings, spec: MigrationSpec) -> int:
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {q(spec.mysql.target_table)}")
        return int(cur.fetchone()[0])


def one_day(stack: StackState, work: Path, items: int) -> dict[str, Any]:
    """One day through every asset and check in one run, then the limits on the same data."""
    spec, path, seeded = seed_world(work, "one", [DAY], items)
    settings = stack.mysql.with_database("bench_e2e_one")
    ensure_database(settings)
    db_before, moto_before = (server_cpu_seconds(p) for p in (stack.mysql_pid, stack.moto_pid))
    launched = time.time()
    report = finish_child(
        run_child(stack, path, DAY.isoformat(), settings.database, work / "home-one", work)
    )
    process_wall = time.time() - launched
    db_cpu = (server_cpu_seconds(stack.mysql_pid) or 0) - (db_before or 0)
    moto_cpu = (server_cpu_seconds(stack.moto_pid) or 0) - (moto_before or 0)
    rows = target_rows(settings, spec)
    _say(f"one day: {rows:,} rows in {report['finished'] - report['started']:.1f} s (run)")
    for key, step in sorted(report["steps"].items(), key=lambda kv: kv[1].get("start", 0)):
        _say(f"  {key}: {step.get('end', 0) - step.get('start', 0):.2f} s")
    s3 = aws_client("s3", config=retry_config(5))
    blobs = export_lines(s3, spec, seeded.full_export_id)
    json_side = json_limits(blobs)
    del blobs
    mysql_side = mysql_limits(s3, spec, settings, DAY)
    return {
        "rows": rows,
        "export_items": seeded.full_export_items,
        "incremental_changes": seeded.incremental_changes,
        "run_seconds": report["finished"] - report["started"],
        "process_seconds": process_wall,
        "worker_cpu_seconds": report["cpu_seconds"],
        "mysql_cpu_seconds": db_cpu if stack.mysql_pid else None,
        "s3_emulator_cpu_seconds": moto_cpu,
        "rss_baseline_bytes": report["rss_baseline"],
        "stages": stages(report),
        "checks": report["checks"],
        "limits": {**json_side, **mysql_side},
    }


def _runs_together(
    stack: StackState,
    world: tuple[MigrationSpec, Path, Path],
    work: Path,
    ranges: list[tuple[dt.date, dt.date]],
    database: str,
) -> dict[str, Any]:
    """One run per (first, last) range of days, all started together, into a database of
    their own (an empty target, whatever ran before); rows, rates, CPU."""
    spec, path, home = world
    settings = stack.mysql.with_database(database)
    ensure_database(settings)
    with connection(settings) as conn:
        ensure_tables(conn, spec)  # as the runs' first steps do; then the rows there before
    before = target_rows(settings, spec)
    db_before = server_cpu_seconds(stack.mysql_pid)
    launched = time.time()
    processes = [
        run_child(stack, path, a.isoformat(), settings.database, home, work, last=b.isoformat())
        for a, b in ranges
    ]
    reports = [finish_child(p) for p in processes]
    process_wall = time.time() - launched
    db_cpu = (server_cpu_seconds(stack.mysql_pid) or 0) - (db_before or 0)
    rows = target_rows(settings, spec) - before
    run_wall = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    return {
        "runs": len(ranges),
        "days": sum((b - a).days + 1 for a, b in ranges),
        "rows": rows,
        "run_seconds": run_wall,
        "process_seconds": process_wall,
        "rows_per_second": rows / run_wall,
        "rows_per_second_with_process_start": rows / process_wall,
        "per_run_seconds": [round(r["finished"] - r["started"], 1) for r in reports],
        "worker_cpu_seconds": sum(r["cpu_seconds"] for r in reports),
        "mysql_cpu_seconds": db_cpu if stack.mysql_pid else None,
        "checks_passed": sum(c["passed"] for r in reports for c in r["checks"]),
        "checks": sum(len(r["checks"]) for r in reports),
    }


def concurrent_days(
    stack: StackState, work: Path, days: int, runs: int, days_per_run: int, items: int
) -> dict[str, Any]:
    """Several days at once, on one full export whose first day ran before them alone (that
    run split the export by day, as the first run of a backfill does):
    `days` runs of one day each (as sensor-launched runs), then `runs` range runs of
    `days_per_run` days each (as the shipped `BackfillPolicy.multi_run` backfill's runs),
    each group started together into a database of its own, so both merge into an empty
    target (`target_growth` measures what a grown target costs)."""
    first = DAY + dt.timedelta(days=10)
    dates = [first + dt.timedelta(days=n) for n in range(1 + days + runs * days_per_run)]
    spec, path, _ = seed_world(work, "many", dates, items)
    settings = stack.mysql.with_database("bench_e2e_many")
    ensure_database(settings)
    home = work / "home-many"
    splitter = finish_child(
        run_child(stack, path, dates[0].isoformat(), settings.database, home, work)
    )
    warm_up = splitter["finished"] - splitter["started"]
    _say(f"first day alone (it splits the export): {warm_up:.1f} s")
    world = (spec, path, home)
    out: dict[str, Any] = {"first_day_alone_splitting_seconds": warm_up}
    if days:
        single = [(d, d) for d in dates[1 : 1 + days]]
        out["one_day_runs"] = _runs_together(stack, world, work, single, "bench_e2e_days")
        _say(f"{days} one-day runs at once: {out['one_day_runs']['rows_per_second']:,.0f} rows/s")
    if runs:
        rest = dates[1 + days :]
        ranges = [(rest[n], rest[n + days_per_run - 1]) for n in range(0, len(rest), days_per_run)]
        out["range_runs"] = _runs_together(stack, world, work, ranges, "bench_e2e_ranges")
        _say(
            f"{runs} range runs of {days_per_run} days at once: "
            f"{out['range_runs']['rows_per_second']:,.0f} rows/s"
        )
    return out


def target_growth(stack: StackState, days: int, rows: int, partitioning: str) -> dict[str, Any]:
    from . import target_growth

    settings = stack.mysql.with_database("bench_growth")
    ensure_database(settings)
    _say(
        f"target growth ({partitioning} partitioning): {days} new days of {rows:,} rows "
        "merged and checked in turn"
    )
    return target_growth.run(
        settings, stack.mysql_pid, days, rows, connections=2, partitioning=partitioning
    )


def bigint_copy(stack: StackState, rows: int, repeat: int) -> dict[str, Any]:
    from migration_assets.mysql.legacy import DEFAULT_COPY_CHUNK_ROWS

    from . import bigint_copy as copy

    settings = stack.mysql.with_database("bench_e2e_copy")
    ensure_database(settings)
    return copy.run(settings, rows, repeat, DEFAULT_COPY_CHUNK_ROWS)


# --- the report ------------------------------------------------------------------------------

LIMIT_OF = {
    "parquet_partitions": (
        "pyarrow JSON parse",
        "pyarrow_json_rows_per_s",
        "naive_json_loads_rows_per_s",
    ),
    "aurora_temp_table": (
        "bare LOAD DATA",
        "bare_load_data_rows_per_s",
        "naive_executemany_rows_per_s",
    ),
    "target_table": (
        "bare INSERT ... SELECT",
        "bare_insert_select_rows_per_s",
        "naive_executemany_rows_per_s",
    ),
}


def _serial(*rates: float) -> float:
    """Rows/s of operations run one after the other on the same rows."""
    return 1 / sum(1 / r for r in rates)


def stage_rows(day: dict[str, Any]) -> list[dict[str, Any]]:
    rows, limits = day["rows"], day["limits"]
    out = []
    for asset in ASSETS:
        stage = day["stages"][asset]
        rate = rows / stage["seconds"]
        limit_name, limit_key, naive_key = LIMIT_OF.get(asset, (None, None, None))
        limit = limits[limit_key] if limit_key else None
        naive = limits[naive_key] if naive_key else None
        out.append(
            {
                "stage": asset,
                "seconds": round(stage["seconds"], 2),
                "check_seconds": round(stage["check_seconds"], 2),
                "rows_per_s": round(rate),
                "limit": limit_name,
                "limit_rows_per_s": round(limit) if limit else None,
                "ratio_to_limit": round(rate / limit, 2) if limit else None,
                "naive_rows_per_s": round(naive) if naive else None,
                "ratio_to_naive": round(rate / naive, 1) if naive else None,
                "peak_rss_mb": round(stage["peak_rss"] / 2**20),
            }
        )
    path_rate = rows / day["run_seconds"]
    limit = _serial(*(limits[LIMIT_OF[a][1]] for a in LIMIT_OF))
    naive = _serial(limits["naive_json_loads_rows_per_s"], limits["naive_executemany_rows_per_s"])
    out.append(
        {
            "stage": "whole path (one run)",
            "seconds": round(day["run_seconds"], 2),
            "check_seconds": round(sum(s["check_seconds"] for s in day["stages"].values()), 2),
            "rows_per_s": round(path_rate),
            "limit": "the three limits in series",
            "limit_rows_per_s": round(limit),
            "ratio_to_limit": round(path_rate / limit, 2),
            "naive_rows_per_s": round(naive),
            "ratio_to_naive": round(path_rate / naive, 1),
            "peak_rss_mb": round(max(s["peak_rss"] for s in day["stages"].values()) / 2**20),
        }
    )
    return out


# Issue 9's goals hold for the machine its stage limits were measured on. This machine's speed
# varies by up to 2.6x within a day (bench/RESULTS.md), so a run's rates are scaled to that
# machine by the one limit whose statement and table never changed: a bare `LOAD DATA` of the
# sorted day into the staging table (the "about 247,000 rows/s"; 247,556 in the
# RESULTS.md run the goals were first scaled by). The limits in series are no yardstick since
# the target became partitioned by day: the bare `INSERT ... SELECT` into it runs 1.6x faster
# than into the old layout.
REFERENCE_BARE_LOAD_ROWS_PER_S = 247_556
GOALS: tuple[tuple[str, int, Any], ...] = (  # (goal, rows/s, the run's rate in the summary)
    (
        "one day through every asset and check",
        50_000,
        lambda s: s["one_day"]["rows"] / s["one_day"]["run_seconds"],
    ),
    (
        "several days at once: one-day runs",
        70_000,
        lambda s: s.get("concurrent", {}).get("one_day_runs", {}).get("rows_per_second"),
    ),
    (
        "several days at once: range runs",
        70_000,
        lambda s: s.get("concurrent", {}).get("range_runs", {}).get("rows_per_second"),
    ),
    (
        "BIGINT copy with its check, 1 connection",
        140_000,
        lambda s: s.get("bigint_copy", {}).get("ours_1_connection_with_check_rows_per_s"),
    ),
    (
        "BIGINT copy with its check, 2 connections",
        140_000,
        lambda s: s.get("bigint_copy", {}).get("ours_2_connections_with_check_rows_per_s"),
    ),
)


def goals(summary: dict[str, Any]) -> dict[str, Any]:
    """The run's rates against issue 9's goals, as measured and scaled to the issue's machine."""
    bare_load = summary["one_day"]["limits"]["bare_load_data_rows_per_s"]
    scale = REFERENCE_BARE_LOAD_ROWS_PER_S / bare_load
    rows = []
    for name, goal, rate_of in GOALS:
        rate = rate_of(summary)
        if rate:
            rows.append(
                {
                    "goal": name,
                    "goal_rows_per_s": goal,
                    "measured_rows_per_s": round(rate),
                    "scaled_rows_per_s": round(rate * scale),
                    "met_when_scaled": rate * scale >= goal,
                }
            )
    return {"bare_load_rows_per_s": round(bare_load), "scale": round(scale, 3), "goals": rows}


def projections(summary: dict[str, Any]) -> dict[str, Any]:
    from migration_assets.projection import Deployment, RowCosts, project

    day = summary["one_day"]
    rows = day["rows"]
    costs = RowCosts(day["worker_cpu_seconds"] / rows, (day["mysql_cpu_seconds"] or 0) / rows)
    total = 2_500_000_000
    together = summary.get("concurrent", {})
    shape = together.get("range_runs") or together.get("one_day_runs")  # a backfill's, if run
    measured = shape["rows_per_second"] if shape else rows / day["run_seconds"]
    copy = summary.get("bigint_copy", {}).get("ours_1_connection_with_check_rows_per_s")
    deployments = [
        Deployment("this machine (model check)", 2, 2, shared=True),
        Deployment("8 ECS runs x 2 vCPU, Aurora 16 vCPU writer, mysql pool 2 (shipped)", 16, 16),
        Deployment(
            "8 ECS runs x 2 vCPU, Aurora 16 vCPU writer at half a core's work per vCPU "
            "(assumed), mysql pool 8",
            16,
            16,
            db_statements=8,
            db_efficiency=0.5,
        ),
        Deployment(
            "16 ECS runs x 2 vCPU, Aurora 32 vCPU writer at half (assumed), mysql pool 16",
            32,
            32,
            db_statements=16,
            db_efficiency=0.5,
        ),
    ]
    out: dict[str, Any] = {
        "rows": total,
        "worker_cpu_us_per_row": round(costs.worker_cpu_s * 1e6, 2),
        "mysql_cpu_us_per_row": round(costs.db_cpu_s * 1e6, 2),
        "this_machine_measured": project(total, measured).describe(),
        "this_machine_bigint_copy": project(total, copy).describe() if copy else None,
        "deployments": [],
    }
    if costs.db_cpu_s > 0:
        out["deployments"] = _deployments(deployments, costs, total)
        grown = summary.get("target_growth")
        if grown and "merge_mysql_cpu_seconds" in grown["days"][0]:
            first, last = grown["days"][0], grown["days"][-1]
            extra = sum(
                last[f"{step}_mysql_cpu_seconds"] - first[f"{step}_mysql_cpu_seconds"]
                for step in ("merge", "check")
            )
            costs = RowCosts(costs.worker_cpu_s, costs.db_cpu_s + extra / grown["rows_per_day"])
            out["grown_target"] = {
                "target_rows": last["target_rows_before"],
                "mysql_cpu_us_per_row": round(costs.db_cpu_s * 1e6, 2),
                "deployments": _deployments(deployments, costs, total),
            }
    return out


def _deployments(deployments: list[Any], costs: Any, total: int) -> list[dict[str, Any]]:
    from migration_assets.projection import project

    out = []
    for deployment in deployments:
        rate = deployment.rows_per_second(costs)
        out.append(
            {
                "deployment": deployment.name,
                "rows_per_s": round(rate),
                "bound_by": deployment.bound(costs),
                "dynamodb_path": project(total, rate).describe(),
            }
        )
    return out


def markdown(summary: dict[str, Any]) -> str:
    day = summary["one_day"]
    lines = [
        f"## {summary['date'][:10]} — `make bench`: one day through every asset, with checks",
        "",
        f"Command: `{summary['command']}` ({summary['machine']}). One day of "
        f"{day['export_items']:,} exported items plus {day['incremental_changes']:,} incremental "
        f"changes, {day['rows']:,} rows merged; one run, {len(day['checks'])} checks, all "
        "passed. Seconds per stage are its asset step plus its check steps (event log); the "
        "limits and naive rates were measured right after, on the same data and server.",
        "",
        "| stage | s (checks) | rows/s | limit | limit rows/s | ratio | naive rows/s | × naive "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["stages"]:
        lines.append(
            f"| {r['stage']} | {r['seconds']} ({r['check_seconds']}) | {r['rows_per_s']:,} | "
            f"{r['limit'] or '—'} | {r['limit_rows_per_s'] or '—'} | "
            f"{r['ratio_to_limit'] or '—'} | "
            f"{r['naive_rows_per_s'] or '—'} | {r['ratio_to_naive'] or '—'} | {r['peak_rss_mb']} |"
        )
    lines.append("")
    lines.append(
        f"Worker CPU {day['worker_cpu_seconds']:.1f} s, MySQL server CPU "
        f"{day['mysql_cpu_seconds'] or 0:.1f} s, S3 emulator CPU "
        f"{day['s3_emulator_cpu_seconds'] or 0:.1f} s; RSS after imports "
        f"{day['rss_baseline_bytes'] / 2**20:.0f} MB; the run's process took "
        f"{day['process_seconds']:.1f} s with Python start-up and imports."
    )
    if "concurrent" in summary:
        c = summary["concurrent"]
        lines += [
            "",
            "Several days at once, on one export whose first day ran alone before them and split "
            f"it by day ({c['first_day_alone_splitting_seconds']:.1f} s), as in a backfill's "
            "steady state; each group into an empty target of its own:",
        ]
        for key, what in (
            ("one_day_runs", "one-day runs (as sensor-launched runs)"),
            ("range_runs", "range runs (as the shipped `multi_run` backfill's runs)"),
        ):
            if key in c:
                r = c[key]
                lines.append(
                    f"- {r['runs']} {what}, {r['days']} days: {r['rows']:,} rows in "
                    f"{r['run_seconds']:.1f} s = **{r['rows_per_second']:,.0f} rows/s** "
                    f"({r['rows_per_second_with_process_start']:,.0f} counting process start-up); "
                    f"runs took {r['per_run_seconds']} s; CPU per row: worker "
                    f"{r['worker_cpu_seconds'] / r['rows'] * 1e6:.2f} µs, MySQL "
                    f"{(r['mysql_cpu_seconds'] or 0) / r['rows'] * 1e6:.2f} µs; checks passed "
                    f"{r['checks_passed']}/{r['checks']}."
                )
    if "bigint_copy" in summary:
        b = summary["bigint_copy"]
        lines += [
            "",
            f"BIGINT copy of a {b['rows']:,}-row legacy day with its parity check: "
            f"**{b['ours_1_connection_with_check_rows_per_s']:,} rows/s** (1 connection), "
            f"{b['ours_2_connections_with_check_rows_per_s']:,} (2); bare `INSERT ... SELECT` "
            f"{b['limit_bare_insert_select_rows_per_s']:,} (ratios {b['ratio_1_connection']}, "
            f"{b['ratio_2_connections']}).",
        ]
    p = summary["projection"]
    lines += [
        "",
        f"Projection for {p['rows']:,} rows (CPU per row measured above: worker "
        f"{p['worker_cpu_us_per_row']} µs, MySQL {p['mysql_cpu_us_per_row']} µs, one day's run): "
        f"this machine at the measured rate of several days at once, {p['this_machine_measured']}"
        + (
            f"; the BIGINT copy, {p['this_machine_bigint_copy']}"
            if p["this_machine_bigint_copy"]
            else ""
        )
        + ".",
    ]
    lines += _deployment_lines(p["deployments"])
    g = summary["goals"]
    lines += [
        "",
        f"Issue 9's goals, scaled to the issue's machine by the bare `LOAD DATA` into the staging "
        f"table ({REFERENCE_BARE_LOAD_ROWS_PER_S:,} rows/s there, {g['bare_load_rows_per_s']:,} "
        f"in this run: x{g['scale']}):",
        "",
        "| goal | rows/s goal | measured | scaled | met |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['goal']} | {r['goal_rows_per_s']:,} | {r['measured_rows_per_s']:,} | "
        f"{r['scaled_rows_per_s']:,} | {'yes' if r['met_when_scaled'] else 'no'} |"
        for r in g["goals"]
    ]
    for name in ("target_growth", "target_growth_unpartitioned"):
        if name not in summary:
            continue
        g = summary[name]
        layout = {"day": "partitioned by day (shipped)", "none": "unpartitioned, event-time index"}
        lines += [
            "",
            f"Target growth (`python -m bench.target_growth --partitioning "
            f"{g.get('partitioning', 'none')}`: target {layout[g.get('partitioning', 'none')]}, "
            f"{g['rows_per_day']:,} rows per new day, "
            f"{g['connections']} connections, buffer pool {g['buffer_pool_mb']} MB): the day's "
            "merge and its merge checks as the target grows:",
            "",
            "| target rows before | merge s | merge MySQL CPU s | checks s | checks MySQL CPU s "
            "| target MB after |",
            "|---|---|---|---|---|---|",
        ]
        for d in g["days"]:
            lines.append(
                f"| {d['target_rows_before']:,} | {d['merge_seconds']} | "
                f"{d.get('merge_mysql_cpu_seconds', '—')} | {d['check_seconds']} | "
                f"{d.get('check_mysql_cpu_seconds', '—')} | {d['target_mb_after']} |"
            )
    if "grown_target" in p:
        t = p["grown_target"]
        lines += [
            "",
            f"The projection again with the MySQL CPU per row of a day merged into a target of "
            f"{t['target_rows']:,} rows partitioned by day ({t['mysql_cpu_us_per_row']} µs: the "
            "one-day run's, plus the growth in the merge's and the checks' CPU; each new day "
            "meets an empty partition, but targets beyond that size were not measured):",
        ]
        lines += _deployment_lines(t["deployments"])
    return "\n".join(lines) + "\n"


def _deployment_lines(deployments: list[dict[str, Any]]) -> list[str]:
    return [
        f"- {d['deployment']}: {d['rows_per_s']:,} rows/s, bound by {d['bound_by']}: "
        f"{d['dynamodb_path']}"
        for d in deployments
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument(
        "--concurrent-days", type=int, default=2, help="one-day runs at once (0 skips)"
    )
    parser.add_argument("--range-runs", type=int, default=2, help="range runs at once (0 skips)")
    parser.add_argument("--days-per-run", type=int, default=2, help="days per range run")
    parser.add_argument("--growth-days", type=int, default=8, help="0 skips")
    parser.add_argument("--copy-rows", type=int, default=1_000_000, help="0 skips")
    parser.add_argument("--copy-repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "latest.json")
    parser.add_argument("--results-md", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--keep-work", action="store_true", help="keep run logs and instances")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    parser.add_argument("--last", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.days_per_run < 1:
        parser.error("--days-per-run must be at least 1")
    if args.child:
        child(args.child, args.day, args.last, args.out)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    stack = start_stack(work / "stack", database="bench_e2e")
    try:
        os.environ.update(stack.environment())
        summary: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python -m bench.e2e", *sys.argv[1:]]),
            "machine": f"{os.cpu_count()} cores, MariaDB "
            + ("(MIGRATION_MYSQL_URL)" if stack.mysql_pid is None else "throwaway 10.11"),
            "one_day": one_day(stack, work, args.items),
        }
        summary["stages"] = stage_rows(summary["one_day"])
        if args.concurrent_days or args.range_runs:
            summary["concurrent"] = concurrent_days(
                stack, work, args.concurrent_days, args.range_runs, args.days_per_run, args.items
            )
        if args.growth_days:  # the shipped layout, then the unpartitioned one as the baseline
            summary["target_growth"] = target_growth(stack, args.growth_days, args.items, "day")
            summary["target_growth_unpartitioned"] = target_growth(
                stack, args.growth_days, args.items, "none"
            )
        if args.copy_rows:
            summary["bigint_copy"] = bigint_copy(stack, args.copy_rows, args.copy_repeat)
        summary["projection"] = projections(summary)
        summary["goals"] = goals(summary)
    finally:
        stop_stack(stack)
        if args.keep_work:
            _say(f"run logs and instances kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = markdown(summary)
    print(text, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if not args.no_append:
        with args.results_md.open("a") as results:
            results.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
