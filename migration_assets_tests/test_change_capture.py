"""Change capture from the binlog, against the session's real MariaDB (binlog on, ROW, FULL
row image and metadata): the legacy table's updates and deletes after its days were copied
reach the new table, through a live writer, a SIGKILLed applier, a purged binlog, a DDL and
each server setting that would lose a change."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from migration_assets.defs.bigint_copy.assets import build_legacy_jobs
from migration_assets.defs.resources import MySQLResource
from migration_assets.devstack.mysql_server import start_throwaway_mysql
from migration_assets.devstack.processes import stop_pid
from migration_assets.mysql.apply import ChangeApplier, changed_days
from migration_assets.mysql.binlog import CaptureRefused
from migration_assets.mysql.catalog import SchemaConflictError, table_columns
from migration_assets.mysql.connection import connection, ensure_database
from migration_assets.mysql.cutover import CutoverRefused, cutover, verify_day
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.legacy import copy_day, legacy_key
from migration_assets.spec import SpecError
from migration_assets_tests.helpers import (
    INT_MAX,
    LEGACY_COLUMNS,
    assets_named,
    connector,
    execute,
    legacy_spec,
)
from migration_assets_tests.helpers import fetch as rows

START = dt.date(2024, 2, 28)
DAYS = [START + dt.timedelta(days=i) for i in range(4)]  # 02-28 .. 03-02
LEGACY_DDL = (
    "CREATE TABLE table01 (id INT(11) NOT NULL AUTO_INCREMENT,"
    " customer_id INT(11) NOT NULL, order_id INT(11) NOT NULL,"
    " created_at DATETIME NOT NULL, amount DECIMAL(18,4), attrs JSON,"
    " PRIMARY KEY (id), KEY by_time (created_at))"
)


def seed(settings, per_day=60):
    """A legacy table over DAYS, with rows at both edges of every day."""
    execute(settings, LEGACY_DDL)
    values, next_id = [], 1
    for day in DAYS:
        midnight = dt.datetime.combine(day, dt.time())
        moments = [midnight, midnight + dt.timedelta(seconds=86399)]
        moments += [midnight + dt.timedelta(seconds=600 * i + 7) for i in range(per_day - 2)]
        for moment in moments:
            values.append((next_id, next_id % 13, next_id, moment, Decimal(next_id) / 4, None))
            next_id += 1
    with connection(settings) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO table01 ({LEGACY_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s)", values
        )
        conn.commit()
    return next_id


@pytest.fixture
def legacy(mysql_db):
    seed(mysql_db)
    spec = legacy_spec(start=START.isoformat())
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
    return mysql_db, spec


def copied(settings, table="orders", where="TRUE"):
    return rows(
        settings,
        f"SELECT {LEGACY_COLUMNS} FROM {table} WHERE id <= {INT_MAX} AND {where} ORDER BY id",
    )


def copy_all(settings, spec, **kwargs):
    for day in DAYS:
        copy_day(connector(settings), spec, day, **kwargs)


def drain(settings, spec, decoders=None, **kwargs):
    with ChangeApplier(settings, spec, decoders=decoders) as applier:
        return applier.drain(**kwargs)


def verify_every_day(settings, spec):
    with connection(settings) as conn:
        key = legacy_key(conn, spec)
        for day in DAYS:
            verify_day(conn, spec, day, key)


@pytest.mark.parametrize("decoders", [0, 1, 2])  # decoded here / in 1 or 2 processes
def test_changes_after_the_copy_reach_the_new_table_and_a_replay_converges(legacy, decoders):
    settings, spec = legacy
    copy_all(settings, spec)
    # what the merge wrote: a DynamoDB column on row 10, and row 20 deleted on purpose
    execute(settings, "UPDATE orders SET loyalty_tier = 'gold' WHERE id = 10")
    execute(settings, "DELETE FROM orders WHERE id = 20")
    execute(settings, "INSERT INTO orders_tombstones VALUES (20, '2024-02-28 02:50:07', NOW())")
    statements = [
        "UPDATE table01 SET amount = 42, attrs = '{\"b\": 2}' WHERE id = 1",
        "UPDATE table01 SET amount = amount + 1 WHERE id = 10",  # keeps loyalty_tier
        "UPDATE table01 SET amount = 7 WHERE id = 20",  # tombstoned: stays deleted
        "UPDATE table01 SET created_at = '2024-03-01 23:59:59' WHERE id = 2",  # day edge moves
        "UPDATE table01 SET created_at = '2024-02-29 00:00:00' WHERE id = 121",  # moves back
        "UPDATE table01 SET id = 5000 WHERE id = 30",  # the key itself changes
        "DELETE FROM table01 WHERE id IN (60, 61)",  # the last second of a day, and the next
        "INSERT INTO table01 VALUES (6000, 1, 1, '2024-03-02 00:00:00', 1, NULL)",
    ]
    for sql in statements:
        execute(settings, sql)
    with connection(settings) as conn, conn.cursor() as cur:  # one transaction, many rows
        cur.execute("UPDATE table01 SET customer_id = customer_id + 1 WHERE id BETWEEN 150 AND 170")
        cur.execute("DELETE FROM table01 WHERE id BETWEEN 171 AND 175")
        conn.commit()
    # small batches: a transaction in pieces
    drained = drain(settings, spec, decoders, batch_rows=7)
    assert drained.row_events == len(statements) + 1 + 21 + 5 and drained.caught_up
    assert drained.changed_days == DAYS
    legacy_rows = [r for r in copied(settings, "table01") if r[0] != 20]
    assert list(copied(settings)) == legacy_rows  # row by row, column by column
    assert rows(settings, "SELECT loyalty_tier FROM orders WHERE id = 10") == (("gold",),)
    assert rows(settings, "SELECT COUNT(*) FROM orders WHERE id IN (20, 30)") == ((0,),)
    verify_every_day(settings, spec)  # both days of each moved row still add up
    # replaying the whole stretch again (the position back at the start) converges
    execute(settings, "UPDATE orders_capture SET file = start_file, pos = start_pos")
    again = drain(settings, spec, decoders)
    assert again.row_events == drained.row_events
    assert list(copied(settings)) == legacy_rows
    with connection(settings) as conn:
        assert changed_days(conn, spec) == DAYS


class Writer(threading.Thread):
    """The live application: inserts, updates of values, updates moving a row to another
    day (day edges included) and deletes, one committed statement at a time."""

    def __init__(self, settings, first_id):
        super().__init__(daemon=True)
        self.settings, self.next_id, self.stop = settings, first_id, threading.Event()
        self.statements, self.failure = 0, None
        self.random = random.Random(23)

    def run(self):
        try:
            with connection(self.settings) as conn, conn.cursor() as cur:
                while not self.stop.is_set():
                    self.once(cur)
                    conn.commit()
                    self.statements += 1
        except Exception as exc:  # reported by the test
            self.failure = exc

    def once(self, cur):
        r = self.random
        victim = r.randrange(1, self.next_id)
        day = r.choice(DAYS)
        edge = dt.datetime.combine(day, dt.time()) + dt.timedelta(
            seconds=r.choice([0, 1, 86398, 86399, r.randrange(86400)])
        )
        kind = r.random()
        if kind < 0.25:
            cur.execute(
                f"INSERT INTO table01 ({LEGACY_COLUMNS}) VALUES (%s, 3, %s, %s, 1.5, '[1]')",
                (self.next_id, self.next_id, edge),  # order ids stay unique (the merge key)
            )
            self.next_id += 1
        elif kind < 0.55:
            cur.execute(
                "UPDATE table01 SET amount = %s, attrs = %s WHERE id = %s",
                (r.randrange(10**6), f'{{"v": {r.randrange(100)}}}', victim),
            )
        elif kind < 0.8:
            cur.execute("UPDATE table01 SET created_at = %s WHERE id = %s", (edge, victim))
        else:
            cur.execute("DELETE FROM table01 WHERE id = %s", (victim,))


@pytest.mark.slow
def test_a_live_writer_through_copy_catch_up_and_cutover_loses_nothing(legacy):
    settings, spec = legacy
    writer = Writer(settings, first_id=1000)
    writer.start()
    try:
        for day in DAYS:  # copied while the application writes, chunk by chunk
            copy_day(connector(settings), spec, day, chunk_rows=9, connections=2)
            drain(settings, spec)  # the schedule's drains, between the copies
        time.sleep(0.5)
        drain(settings, spec)  # a catch-up
        locked: dict[str, int] = {}

        def while_locked():  # the application keeps writing up to the lock
            locked["statements"] = writer.statements
            writer.stop.set()

        done = cutover(
            connector(settings),
            spec,
            verify_days=1,
            today=DAYS[-1],
            while_locked=while_locked,
        )
    finally:
        writer.stop.set()
        writer.join(timeout=60)
    assert writer.failure is None, writer.failure
    assert locked["statements"] > 50
    assert set(done.verified_days) == {d.isoformat() for d in DAYS}  # every changed day
    # the statement the writer had waiting at the lock went to the new table after the
    # swap: leave out the rows it may have touched (at most one), compare everything else
    new, old = copied(settings, "table01"), copied(settings, "table01_old")
    late = writer.statements - locked["statements"]
    assert late <= 1
    differing = {r[0] for r in set(new) ^ set(old)}
    assert len(differing) <= late, sorted(differing)
    assert len(old) > 100


_KILLED_APPLIER = """
import sys, time
from migration_assets.mysql import apply
from migration_assets.mysql.connection import parse_mysql_url
from migration_assets_tests.helpers import legacy_spec

commit = apply.ChangeApplier._commit
def slow_commit(self, *args):  # the rows of the batch are written, not yet committed
    print("batch", flush=True)
    time.sleep(0.3)
    commit(self, *args)
apply.ChangeApplier._commit = slow_commit
settings, spec = parse_mysql_url(sys.argv[1]), legacy_spec(start=sys.argv[2])
with apply.ChangeApplier(settings, spec, decoders=int(sys.argv[3])) as a:
    a.drain(batch_rows=40)
"""


@pytest.mark.slow
@pytest.mark.parametrize("reader", ["0", "2"])  # decoder processes
def test_an_applier_killed_mid_batch_resumes_exactly(legacy, repo_root: Path, reader):
    settings, spec = legacy
    copy_all(settings, spec)
    with connection(settings) as conn, conn.cursor() as cur:
        for i in range(1, 240):  # one transaction per change
            cur.execute(
                "UPDATE table01 SET amount = amount * 2, order_id = %s WHERE id = %s", (i, i)
            )
            if i % 3 == 0:
                cur.execute("DELETE FROM table01 WHERE id = %s", (i + 1,))
            conn.commit()
    applier = subprocess.Popen(
        [sys.executable, "-c", _KILLED_APPLIER, settings.url, START.isoformat(), reader],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(4):  # three batches committed, the fourth written and in flight
            assert applier.stdout.readline().strip() == "batch"
        time.sleep(0.1)
        os.kill(applier.pid, signal.SIGKILL)
        applier.wait(timeout=30)
    finally:
        if applier.poll() is None:
            applier.kill()
    total = 160 + 79  # the updates of rows not deleted before them, and the deletes
    state = rows(settings, "SELECT batches, row_events FROM orders_capture")[0]
    assert state[0] == 3 and 0 < state[1] < total  # the fourth batch was lost with the kill
    assert copied(settings) != copied(settings, "table01")  # not all there yet
    resumed = drain(settings, spec)
    assert resumed.row_events == total - state[1]  # exactly from the stored position
    assert copied(settings) == copied(settings, "table01")
    verify_every_day(settings, spec)


def test_a_purged_binlog_is_refused_and_nothing_is_lost(legacy):
    settings, spec = legacy
    copy_all(settings, spec)
    execute(settings, "UPDATE table01 SET amount = 1 WHERE id = 3")
    before = copied(settings)
    (stored,) = rows(settings, "SELECT file FROM orders_capture")[0]
    with connection(settings) as conn, conn.cursor() as cur:
        deadline = time.monotonic() + 30
        while stored in {r[0] for r in rows(settings, "SHOW BINARY LOGS")}:
            assert time.monotonic() < deadline, "the server kept the binlog"
            # MariaDB keeps a file until its binlog checkpoint has moved past it
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW MASTER STATUS")
            head = cur.fetchone()[0]
            cur.execute(f"PURGE BINARY LOGS TO '{head}'")
            time.sleep(0.2)
    with pytest.raises(CaptureRefused, match=r"was purged .*'binlog retention hours', N"):
        drain(settings, spec)
    with pytest.raises(CutoverRefused, match="was purged"):
        cutover(connector(settings), spec, verify_days=1, today=DAYS[-1])
    with pytest.raises(CaptureRefused, match="was purged"):  # the copy refuses too
        copy_day(connector(settings), spec, DAYS[0])
    assert copied(settings) == before  # nothing half-applied
    assert rows(settings, "SHOW TABLES LIKE 'table01_old'") == ()


@pytest.mark.parametrize("decoders", [0, 2])
def test_a_ddl_on_the_legacy_table_is_refused_after_the_changes_before_it(legacy, decoders):
    settings, spec = legacy
    copy_all(settings, spec)
    execute(settings, "UPDATE table01 SET amount = 5 WHERE id = 4")
    execute(settings, "ALTER TABLE table01 ADD COLUMN note VARCHAR(10)")
    execute(settings, "UPDATE table01 SET amount = 6 WHERE id = 5")
    with pytest.raises(CaptureRefused, match="DDL statement on the legacy table 'table01'"):
        drain(settings, spec, decoders)
    assert rows(settings, "SELECT amount FROM orders WHERE id IN (4, 5) ORDER BY id") == (
        (Decimal(5),),
        (Decimal("1.2500"),),
    )
    with pytest.raises(CaptureRefused, match="DDL"):  # and again: the position stays before it
        drain(settings, spec)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("binlog_format", "STATEMENT", "binlog_format is STATEMENT, not ROW"),
        ("binlog_format", "MIXED", "binlog_format is MIXED, not ROW"),
        ("binlog_row_image", "MINIMAL", "binlog_row_image is MINIMAL, not FULL"),
        ("binlog_row_metadata", "MINIMAL", "binlog_row_metadata is MINIMAL, not FULL"),
    ],
)
def test_a_server_setting_that_would_lose_changes_is_refused(legacy, variable, value, message):
    settings, spec = legacy
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT @@GLOBAL.{variable}")
        saved = cur.fetchone()[0]
        cur.execute(f"SET GLOBAL {variable} = '{value}'")
    try:
        with pytest.raises(CaptureRefused, match=message):
            copy_day(connector(settings), spec, DAYS[0])
        assert copied(settings) == ()  # refused before anything was read
    finally:
        with connection(settings) as conn, conn.cursor() as cur:
            cur.execute(f"SET GLOBAL {variable} = '{saved}'")
    copy_day(connector(settings), spec, DAYS[0])  # restored: it runs
    drain(settings, spec)


def test_a_user_without_replication_grants_is_refused(legacy):
    settings, spec = legacy
    user = f"nocap_{settings.database[-8:]}"
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'")
        cur.execute(f"GRANT ALL ON `{settings.database}`.* TO '{user}'@'127.0.0.1'")
    try:
        from dataclasses import replace

        limited = replace(settings, user=user, password="pw")
        with pytest.raises(CaptureRefused, match="lacks the REPLICATION SLAVE privilege"):
            copy_day(connector(limited), spec, DAYS[0])
        execute(settings, f"GRANT REPLICATION SLAVE ON *.* TO '{user}'@'127.0.0.1'")
        with pytest.raises(CaptureRefused, match="lacks the REPLICATION CLIENT privilege"):
            copy_day(connector(limited), spec, DAYS[0])
        execute(settings, f"GRANT REPLICATION CLIENT ON *.* TO '{user}'@'127.0.0.1'")
        copy_day(connector(limited), spec, DAYS[0])
        execute(limited, "DELETE FROM table01 WHERE id = 1")
        assert drain(limited, spec).row_events == 1
    finally:
        execute(settings, f"DROP USER '{user}'@'127.0.0.1'")


@pytest.mark.slow
def test_a_server_without_a_binlog_is_refused(tmp_path):
    server = start_throwaway_mysql(tmp_path / "no-binlog", binlog=False)
    try:
        settings = server.settings("nobinlog")
        ensure_database(settings)
        seed(settings, per_day=3)
        spec = legacy_spec(start=START.isoformat())
        with connection(settings) as conn:
            ensure_tables(conn, spec)
        with pytest.raises(CaptureRefused, match="binlog is off .*change_capture: none"):
            copy_day(connector(settings), spec, DAYS[0])
        none = legacy_spec(start=START.isoformat(), change_capture="none")
        assert copy_day(connector(settings), none, DAYS[0]).rows == 3  # append-only: allowed
    finally:
        stop_pid(server.pid, timeout_s=60)


def test_the_switch_is_validated_like_every_key():
    with pytest.raises(SpecError, match=r"legacy_copy.change_capture: must be one of binlog, none"):
        legacy_spec(change_capture="triggers")
    assert legacy_spec().legacy_copy.change_capture == "binlog"  # the default


def test_the_capture_job_reports_lag_and_changed_days_and_one_applier_runs_at_a_time(legacy):
    settings, spec = legacy
    copy_all(settings, spec)
    execute(settings, "UPDATE table01 SET amount = 3 WHERE id IN (1, 62)")  # two days
    *_, capture = build_legacy_jobs(spec)
    mysql = MySQLResource(url=settings.url)
    with ChangeApplier(settings, spec):  # another applier holds the lock: the run skips
        skipped = capture.execute_in_process(resources={"mysql": mysql})
    assert skipped.success and "another change applier" in str(_metadata(skipped)["skipped"])
    assert rows(settings, "SELECT amount FROM orders WHERE id = 1") != ((Decimal(3),),)
    ran = capture.execute_in_process(resources={"mysql": mysql})
    metadata = _metadata(ran)
    assert metadata["row_events_applied"].value == 2 and metadata["caught_up"].value
    assert metadata["days_changed_this_run"].value == [d.isoformat() for d in DAYS[:2]]
    assert metadata["days_changed_since_copy"].value == [d.isoformat() for d in DAYS[:2]]
    assert metadata["lag_events"].value == 0 and metadata["events_per_second"].value > 0
    assert str(metadata["applied_position"].value).startswith("binlog.")
    assert rows(settings, "SELECT amount FROM orders WHERE id = 1") == ((Decimal(3),),)


def _metadata(result):
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return output.event_specific_data.metadata


_KILLED_CUTOVER = """
import datetime as dt, sys, time
from migration_assets.mysql.connection import connection, parse_mysql_url
from migration_assets.mysql.cutover import cutover
from migration_assets_tests.helpers import legacy_spec

settings = parse_mysql_url(sys.argv[1])

def while_locked():
    print("locked", flush=True)
    time.sleep(60)

cutover(lambda: connection(settings), legacy_spec(start=sys.argv[2]), verify_days=1,
        today=dt.date.fromisoformat(sys.argv[3]), while_locked=while_locked)
"""


@pytest.mark.slow
def test_a_cutover_killed_under_the_lock_leaves_the_legacy_table_and_a_rerun_finishes(
    legacy, repo_root: Path
):
    settings, spec = legacy
    copy_all(settings, spec)
    execute(settings, "UPDATE table01 SET amount = 11 WHERE id = 7")
    killed = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CUTOVER, settings.url, START.isoformat(), str(DAYS[-1])],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert killed.stdout.readline().strip() == "locked"  # drained, locked, not renamed
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
    finally:
        if killed.poll() is None:
            killed.kill()
    with connection(settings) as conn:  # the legacy table is still under its name, intact
        assert table_columns(conn, "table01")["id"].data_type == "int"
        assert table_columns(conn, "orders") and not table_columns(conn, "table01_old")
    execute(settings, "DELETE FROM table01 WHERE id = 8")  # the application goes on
    legacy_rows = copied(settings, "table01")
    done = cutover(connector(settings), spec, verify_days=1, today=DAYS[-1])
    assert done.old_table == "table01_old"
    assert copied(settings, "table01") == legacy_rows == copied(settings, "table01_old")
    with pytest.raises(SchemaConflictError, match="the cutover has happened"):
        cutover(connector(settings), spec, verify_days=1, today=DAYS[-1])  # once only


def test_bigint_table_copy_fails_saying_why_when_the_binlog_is_not_row(legacy):
    settings, spec = legacy
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL binlog_format = 'MIXED'")
    try:
        result = dg.materialize(
            assets_named(spec, "bigint_table_copy"),
            resources={"mysql": MySQLResource(url=settings.url)},
            partition_key=DAYS[0].isoformat(),
            raise_on_error=False,
        )
    finally:
        with connection(settings) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL binlog_format = 'ROW'")
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "binlog_format is MIXED, not ROW" in str(failure.event_specific_data.error)
    assert "DB cluster parameter group" in str(failure.event_specific_data.error)
    assert copied(settings) == ()
