"""The staging tables and the day's load against a real MariaDB server: DDL from the spec,
the load's atomic day swap, retries, the pipe writer, cleaning staged days."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from decimal import Decimal

import pytest

from migration_assets.defs.resources import MySQLResource
from migration_assets.mysql.catalog import SchemaConflictError, primary_key, table_columns
from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets_tests.helpers import (
    DAY,
    OTHER,
    UTC,
    day_table,
    fetch,
    orders_spec,
    row,
)


@pytest.mark.parametrize("partitioning", ["none", "day"])
def test_tables_follow_the_spec(mysql_db, partitioning):
    spec = orders_spec(target_partitioning=partitioning)
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        target = table_columns(conn, "orders")
        assert primary_key(conn, "orders") == ["customer_id", "order_id", "created_at"]
        assert primary_key(conn, "orders_stage") == ["_day", "_seq"]
    assert target["customer_id"].data_type == "bigint" and not target["customer_id"].nullable
    assert target["amount"].column_type == "decimal(18,4)"
    indexes = fetch(mysql_db, "SHOW INDEX FROM `orders` WHERE Column_name = 'created_at'")
    # unpartitioned: an index on the event time; by day, the day's partition answers instead
    assert any(index[2] != "PRIMARY" for index in indexes) == (partitioning == "none")


def test_a_conflicting_target_is_refused_and_left_alone(mysql_db):
    spec = orders_spec()
    legacy_shape = (
        "CREATE TABLE `orders` (`id` INT NOT NULL AUTO_INCREMENT, `customer_id` INT NOT NULL,"
        " `order_id` BIGINT NOT NULL, `created_at` DATETIME NOT NULL, `amount` DECIMAL(10,2),"
        " `loyalty_tier` VARCHAR(32), PRIMARY KEY (`id`))"
    )
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(legacy_shape)
        cur.execute("SHOW CREATE TABLE `orders`")
        before = cur.fetchone()[1]
        with pytest.raises(SchemaConflictError) as err:
            ensure_tables(conn, spec)
        cur.execute("SHOW CREATE TABLE `orders`")
        assert cur.fetchone()[1] == before  # never altered
    message = str(err.value)
    assert "'customer_id' is int" in message and "must be BIGINT" in message
    assert "'attrs' is missing" in message
    assert "decimal(10,2)" in message
    assert "no primary or unique key on the spec's mysql.key" in message
    assert "PRIMARY (id)" in message


@pytest.mark.parametrize("method", ["local_infile", "insert"])
def test_load_round_trips_and_replaces_exactly_one_day(mysql_db, method):
    spec = orders_spec()
    tricky = 'a\tb\nc\\d\re"f" é✓'  # fits varchar(32)
    first = day_table(
        spec,
        [
            row(2**63 - 1, 1, 86_399, tier=tricky, attrs='{"s":"a\\tb","n":1.50}'),
            row(1, 2, 0, tier=None, amount=None, attrs=None),
            row(1, 3, 5, change="delete"),
        ],
    )
    other = day_table(spec, [row(7, 7, 7, day=OTHER)])
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        assert load_day(conn, spec, OTHER, other, method).rows == 1
        result = load_day(conn, spec, DAY, first, method)
    assert result.method == method and result.rows == 3
    staged = fetch(
        mysql_db,
        "SELECT _seq, _change, customer_id, order_id, created_at, amount, loyalty_tier, attrs"
        " FROM orders_stage WHERE _day = %s ORDER BY _seq",
        (DAY,),
    )
    assert [r[:4] for r in staged] == [
        (1, "put", 1, 2),
        (2, "delete", 1, 3),
        (3, "put", 2**63 - 1, 1),
    ]
    assert staged[2][4] == dt.datetime(2024, 3, 1, 23, 59, 59)  # UTC wall clock
    assert staged[2][5] == Decimal("12.3400") and staged[2][6] == tricky
    assert json.loads(staged[2][7]) == {"s": "a\tb", "n": 1.5}
    assert staged[0][5] is None and staged[0][6] is None and staged[0][7] is None

    with connection(mysql_db) as conn:
        replaced = load_day(conn, spec, DAY, day_table(spec, [row(9, 9)]), method)
    assert replaced.deleted_before == 3
    assert fetch(mysql_db, "SELECT customer_id FROM orders_stage WHERE _day = %s", (DAY,)) == (
        (9,),
    )
    assert fetch(mysql_db, "SELECT COUNT(*) FROM orders_stage WHERE _day = %s", (OTHER,)) == ((1,),)


def test_two_days_load_concurrently(mysql_db):
    spec = orders_spec()
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
    tables = {
        day: day_table(spec, [row(c, c, c % 86_400, day=day) for c in range(1, 20_001)])
        for day in (DAY, OTHER)
    }
    errors = []

    def load(day):
        try:
            with connection(mysql_db) as conn:
                load_day(conn, spec, day, tables[day])
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(day,)) for day in tables]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    counts = fetch(mysql_db, "SELECT _day, COUNT(*) FROM orders_stage GROUP BY _day ORDER BY 1")
    assert counts == ((DAY, 20_000), (OTHER, 20_000))


def test_lock_wait_timeouts_are_retried_and_other_errors_are_not(mysql_db):
    from migration_assets.mysql.retry import with_retries

    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.execute("INSERT INTO t VALUES (1, 0)")
        conn.commit()
    holder = connection(mysql_db)
    blocker = holder.__enter__()
    with blocker.cursor() as cur:
        cur.execute("UPDATE t SET v = 1 WHERE id = 1")  # holds the row lock, uncommitted
    attempts = []

    def update():
        attempts.append(1)
        with connection(mysql_db) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
            cur.execute("UPDATE t SET v = 2 WHERE id = 1")
            conn.commit()

    def release(_pause):
        blocker.commit()  # the lock goes away while the work waits to retry

    with_retries(update, sleep=release, base_s=0.01)
    holder.__exit__(None, None, None)
    assert len(attempts) == 2
    assert fetch(mysql_db, "SELECT v FROM t") == ((2,),)

    def broken():
        attempts.append(1)
        with connection(mysql_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT * FROM no_such_table")

    attempts.clear()
    with pytest.raises(Exception, match="no_such_table"):
        with_retries(broken, sleep=lambda _: None)
    assert len(attempts) == 1  # not transient: no retry


def test_a_failed_load_statement_does_not_hang_the_pipe_writer(mysql_db):
    spec = orders_spec()
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        with conn.cursor() as cur:  # a column the loader names is gone: the server refuses
            cur.execute("ALTER TABLE orders_stage DROP COLUMN attrs")
        with pytest.raises(Exception, match="attrs"):
            load_day(conn, spec, DAY, day_table(spec, [row(1, 1)]), "local_infile")


def test_signals_hitting_the_pipe_writer_lose_no_byte(mysql_db):
    """A signal interrupting the writer's pipe write leaves a short write, which the writer
    must finish: before, a day loaded under a sampling profiler lost text mid-line."""
    import signal
    import time

    from migration_assets.mysql.load import FEED_THREAD

    spec = orders_spec()
    rows = [row(n, n, n % 86_400, attrs=json.dumps({"n": "x" * (n % 300)})) for n in range(60_000)]
    stop = threading.Event()

    def poke_the_writer():
        while not stop.is_set():
            for thread in threading.enumerate():
                if thread.name == FEED_THREAD and thread.ident:
                    with contextlib.suppress(ProcessLookupError):
                        signal.pthread_kill(thread.ident, signal.SIGUSR1)
            time.sleep(0.0005)

    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    poker = threading.Thread(target=poke_the_writer, daemon=True)
    poker.start()
    try:
        with connection(mysql_db) as conn:
            ensure_tables(conn, spec)
            loaded = load_day(conn, spec, DAY, day_table(spec, rows), "local_infile")
    finally:
        stop.set()
        poker.join()
        signal.signal(signal.SIGUSR1, previous)
    assert loaded.rows == 60_000
    stored = fetch(mysql_db, "SELECT SUM(LENGTH(attrs)), COUNT(*) FROM orders_stage")
    assert stored[0] == (sum(len(r["attrs"]) for r in rows), 60_000)


def test_clean_staging_job_drops_only_old_days(mysql_db):
    from migration_assets.defs.aurora.assets import build_clean_staging_job

    spec = orders_spec()
    recent = dt.datetime.now(UTC).date()
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        load_day(conn, spec, DAY, day_table(spec, [row(1, 1), row(2, 2)]))
        load_day(conn, spec, OTHER, day_table(spec, [row(4, 4, day=OTHER)]))  # not merged yet
        load_day(conn, spec, recent, day_table(spec, [row(3, 3, day=recent)]))
        for day in (DAY, recent):
            merge_day(conn, spec, day)
    job = build_clean_staging_job(spec)
    result = job.execute_in_process(resources={"mysql": MySQLResource(url=mysql_db.url)})
    assert result.success and result.output_for_node("clean_staging_days") == 2
    left = fetch(mysql_db, "SELECT _day FROM orders_stage ORDER BY _day")
    assert left == ((OTHER,), (recent,))  # the unmerged day survives, however old
