"""Benchmark: binlog change capture (issue 23) on the throwaway MariaDB (binlog ROW/FULL).

Measured in one run on one server, for a legacy day of `--rows` rows (plus neighbours):
  - the applier's rate: `--events` row changes (updates of whole rows in transactions of 1,000,
    and deletes) applied by one drain, in row events per second (goal >= 20,000/s);
  - the day copied while a writer changes `--change-share` of its rows (single-row updates,
    each committed, spread over the time the copy alone takes), until the new table is exact
    (the copy, then the drain of what the writer did), against the same copy alone (no
    writer, same capture settings): goal >= 0.7x. Both end states are compared with the
    legacy day by a checksum of every column.
MySQL: `MIGRATION_MYSQL_URL` when set (a database `bench_capture` is created), else a
throwaway MariaDB started with the binlog on.

    .venv/bin/python -m bench.change_capture --rows 1000000 --events 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import threading
import time
from pathlib import Path

import yaml

from bench.bigint_copy import COLUMNS, DAY, seed_legacy_day
from bench.common import bench_database, write_json
from migration_assets.mysql.apply import ChangeApplier, replication_settings
from migration_assets.mysql.binlog import RowChange, read_changes
from migration_assets.mysql.connection import MySQLSettings, connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.legacy import copy_day
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

BOOKKEEPING = ("orders", "orders_copied_days", "orders_tombstones", "orders_copy_tail")
CAPTURE = ("orders_capture", "orders_changed_days")


def fresh(settings: MySQLSettings, spec) -> None:
    with connection(settings) as conn, conn.cursor() as cur:
        for table in (*BOOKKEEPING, *CAPTURE):
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        conn.commit()
        ensure_tables(conn, spec)


def checksum(settings: MySQLSettings, table: str) -> tuple:
    """Rows and a sum of CRC32s over every legacy column of the day (order-free)."""
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', {COLUMNS}))) FROM {table}"
            " WHERE created_at >= %s AND created_at < %s AND id <= 2147483647",
            (DAY, DAY + dt.timedelta(days=1)),
        )
        return tuple(cur.fetchone())


def drain(settings: MySQLSettings, spec, decoders: int | None = None):
    with ChangeApplier(settings, spec, decoders=decoders) as applier:
        return applier.drain()


def read_only(settings: MySQLSettings, spec) -> float:
    """The binlog reader alone (mysql-replication's decoding), row events per second."""
    with ChangeApplier(settings, spec) as applier:
        state = applier.state()
        started, count = time.monotonic(), 0
        for item in read_changes(
            replication_settings(settings),
            settings.database,
            spec,
            applier.columns,
            state.applied,
            names_in_events=applier.names_in_events,
            unsigned_bits=applier.unsigned,
        ):
            count += isinstance(item, RowChange)
        return count / (time.monotonic() - started)


def applier_rate(settings: MySQLSettings, spec, day_rows: int, events: int) -> dict:
    fresh(settings, spec)
    copy_day(lambda: connection(settings), spec, DAY)
    drain(settings, spec)  # past the copy's own writes: the backlog is the changes alone
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT file, pos FROM orders_capture")
        before_changes = cur.fetchone()
    deletes = events // 10
    updates = events - deletes
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT MIN(id) FROM table01 WHERE created_at >= %s", (DAY,))
        first = int(cur.fetchone()[0])
        for start in range(first, first + updates, 1_000):
            cur.execute(
                "UPDATE table01 SET amount = amount + 1, attrs = JSON_SET(attrs, '$.n', 9)"
                " WHERE id >= %s AND id < %s",
                (start, min(start + 1_000, first + updates)),
            )
            conn.commit()
        top = first + updates
        for start in range(top, top + deletes, 1_000):
            cur.execute(
                "DELETE FROM table01 WHERE id >= %s AND id < %s",
                (start, min(start + 1_000, top + deletes)),
            )
            conn.commit()
    read = read_only(settings, spec)
    result: dict = {"reader_only_row_events_per_s": round(read)}
    for decoders in (0, 1, 2):  # the same stretch replayed: it converges
        with connection(settings) as conn, conn.cursor() as cur:
            cur.execute("UPDATE orders_capture SET file = %s, pos = %s", before_changes)
            conn.commit()
        drained = drain(settings, spec, decoders)
        exact = checksum(settings, "orders") == checksum(settings, "table01")
        result[f"decoder_processes_{decoders}"] = {
            "row_events": drained.row_events,
            "transactions": drained.transactions,
            "seconds": round(drained.seconds, 2),
            "row_events_per_s": round(drained.events_per_second),
            "exact_after": exact,
        }
    return result


class Writer(threading.Thread):
    def __init__(self, settings: MySQLSettings, ids: list[int], seconds: float):
        super().__init__(daemon=True)
        self.settings, self.ids, self.seconds = settings, ids, seconds
        self.done_at = 0.0

    def run(self) -> None:
        started = time.monotonic()
        with connection(self.settings) as conn, conn.cursor() as cur:
            for index, row_id in enumerate(self.ids):
                cur.execute("UPDATE table01 SET amount = amount - 1 WHERE id = %s", (row_id,))
                conn.commit()
                ahead = started + self.seconds * (index + 1) / len(self.ids) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        self.done_at = time.monotonic()


def copy_under_writes(settings: MySQLSettings, spec, share: float, repeat: int) -> dict:
    runs: dict[str, list[float]] = {
        "alone": [],
        "with_writer": [],
        "copy_day_with_writer": [],
        "drain_after": [],
        "writer": [],  # how long the writer took (paced to the copy alone, or slower)
    }
    exact = []
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM table01 WHERE created_at >= %s AND created_at < %s",
            (DAY, DAY + dt.timedelta(days=1)),
        )
        day_ids = [row[0] for row in cur.fetchall()]
    for attempt in range(repeat):
        fresh(settings, spec)
        started = time.monotonic()
        copy_day(lambda: connection(settings), spec, DAY)
        drain(settings, spec)
        alone = time.monotonic() - started
        runs["alone"].append(alone)
        fresh(settings, spec)
        ids = random.Random(attempt).sample(day_ids, int(len(day_ids) * share))
        writer = Writer(settings, ids, seconds=alone * 0.9)
        started = time.monotonic()
        writer.start()
        copy_day(lambda: connection(settings), spec, DAY)
        runs["copy_day_with_writer"].append(time.monotonic() - started)
        writer.join()
        runs["writer"].append(writer.done_at - started)
        drained_from = time.monotonic()
        drain(settings, spec)
        finished = time.monotonic()
        runs["with_writer"].append(finished - started)
        runs["drain_after"].append(finished - drained_from)
        exact.append(checksum(settings, "orders") == checksum(settings, "table01"))
    median = sorted(runs["alone"])[len(runs["alone"]) // 2]
    with_writer = sorted(runs["with_writer"])[len(runs["with_writer"]) // 2]
    copy_only = sorted(runs["copy_day_with_writer"])[len(runs["copy_day_with_writer"]) // 2]
    return {
        "changed_rows": int(len(day_ids) * share),
        "ratio_alone_over_copy_day_with_writer": round(median / copy_only, 2),
        "seconds": {k: [round(v, 2) for v in vs] for k, vs in runs.items()},
        "ratio_alone_over_with_writer": round(median / with_writer, 2),
        "exact_after_every_run": all(exact),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--change-share", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="copy,applier", help="copy, applier or both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    spec = parse_spec(yaml.safe_load(EXAMPLE_SPEC.read_text()))
    with bench_database("bench_capture") as settings:
        day_rows = seed_legacy_day(settings, spec, args.rows)
        result: dict = {"day_rows": day_rows}
        if "copy" in args.parts:
            result["copy_while_writing"] = copy_under_writes(
                settings, spec, args.change_share, args.repeat
            )
        if "applier" in args.parts:
            result["applier"] = applier_rate(settings, spec, day_rows, args.events)
    print(json.dumps(result), flush=True)
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
