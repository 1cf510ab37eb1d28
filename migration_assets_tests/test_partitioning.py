"""A target partitioned by day of event time, against a real MariaDB server."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace

import pytest

from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables, target_table_ddl
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets.mysql.partitioning import (
    AHEAD_DAYS,
    covered_until,
    ensure_day_partition,
    partition_name,
)
from migration_assets.mysql.seconds import merged_day
from migration_assets.spec import PartitionsSpec
from migration_assets_tests.helpers import day_table, fetch, orders_spec, row, target_rows

START = dt.date(2023, 1, 1)  # the example spec's partitions.start


def partitions(settings) -> dict[str, int]:
    """Partition name -> its rows, in order (exact: counted per partition)."""
    names = [
        name
        for (name,) in fetch(
            settings,
            "SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA ="
            " DATABASE() AND TABLE_NAME = 'orders' ORDER BY PARTITION_ORDINAL_POSITION",
        )
    ]
    return {
        name: fetch(settings, f"SELECT COUNT(*) FROM orders PARTITION (`{name}`)")[0][0]
        for name in names
    }


def test_a_new_target_has_a_partition_per_day_up_to_a_month_ahead():
    spec = orders_spec()
    ddl = target_table_ddl(spec, today=dt.date(2024, 3, 10))
    assert "PARTITION BY RANGE COLUMNS(`created_at`)" in ddl
    assert "KEY `by_created_at`" not in ddl  # the day's partition stands in for the index
    days = (dt.date(2024, 3, 10) + dt.timedelta(days=AHEAD_DAYS) - START).days + 1
    assert ddl.count("PARTITION d") == days
    assert "PARTITION p_before VALUES LESS THAN ('2023-01-01 00:00:00')" in ddl
    assert "PARTITION d20240410 VALUES LESS THAN ('2024-04-11 00:00:00')" in ddl
    assert ddl.rstrip().endswith("PARTITION p_future VALUES LESS THAN (MAXVALUE)\n)")
    ended = replace(orders_spec(), partitions=PartitionsSpec(START, dt.date(2023, 2, 1)))
    assert target_table_ddl(ended, today=dt.date(2024, 3, 10)).count("PARTITION d") == 31


def test_each_day_lands_in_its_own_partition(mysql_db):
    spec = orders_spec()
    day, other = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        load_day(conn, spec, day, day_table(spec, [row(1, 1, 5), row(2, 2, 86_399)]))
        load_day(conn, spec, other, day_table(spec, [row(3, 3, 0, day=other)]))
        merge_day(conn, spec, day)
        merge_day(conn, spec, other)
    counts = partitions(mysql_db)
    assert counts[partition_name(day)] == 2 and counts[partition_name(other)] == 1
    assert sum(counts.values()) == 3 and counts["p_before"] == counts["p_future"] == 0


def test_a_day_past_the_partitions_gets_its_own_before_its_merge(mysql_db):
    """A live table outgrows the month made ahead: the merge splits p_future first, so the
    day still meets a partition of its own; the checks count it the same either way."""
    spec = orders_spec()
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        until = covered_until(conn, spec, fresh=True)
        assert until == dt.datetime.now(dt.UTC).date() + dt.timedelta(days=AHEAD_DAYS + 1)
        late = until + dt.timedelta(days=3)
        with conn.cursor() as cur:  # a row already in p_future (written by hand) moves along
            cur.execute(
                "INSERT INTO orders (customer_id, order_id, created_at) VALUES (9, 9, %s)",
                (dt.datetime.combine(until, dt.time(1)),),
            )
        conn.commit()
        load_day(conn, spec, late, day_table(spec, [row(1, 1, 7, day=late)]))
        result = merge_day(conn, spec, late)
        check = merged_day(conn, spec, late)
        assert ensure_day_partition(conn, spec, late) == []  # nothing more to add
    assert result.inserted == 1 and sum(check.merged.values()) == 1
    assert result.partition == partition_name(late) and result.partitions_added == AHEAD_DAYS + 4
    counts = partitions(mysql_db)
    assert counts[partition_name(late)] == 1 and counts[partition_name(until)] == 1
    assert counts["p_future"] == 0
    last = late + dt.timedelta(days=AHEAD_DAYS)
    assert list(counts)[-2:] == [partition_name(last), "p_future"]
    assert len(target_rows(mysql_db, spec)) == 2


def test_two_runs_splitting_at_once_add_the_partitions_once(mysql_db):
    spec = orders_spec()
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        late = covered_until(conn, spec, fresh=True) + dt.timedelta(days=1)
    added, errors = [], []

    def split():
        try:
            with connection(mysql_db) as conn:
                added.append(ensure_day_partition(conn, spec, late))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=split) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(len(a) for a in added) == [0, AHEAD_DAYS + 2]  # one split, one no-op


def test_an_unpartitioned_target_made_before_is_merged_as_it_is(mysql_db):
    """An existing target of the old layout is never altered: the merge and its checks
    work on it (its event-time index tells a new day), and no partition is added."""
    old, spec = orders_spec(target_partitioning="none"), orders_spec()
    day = dt.date(2024, 3, 1)
    with connection(mysql_db) as conn:
        ensure_tables(conn, old)
        load_day(conn, spec, day, day_table(spec, [row(1, 1, 5)]))
        result = merge_day(conn, spec, day)
        assert covered_until(conn, spec, fresh=True) is None
        assert ensure_day_partition(conn, spec, dt.date(2030, 1, 1)) == []
    assert result.inserted == 1 and result.partition is None and result.partitions_added == 0
    assert (
        fetch(
            mysql_db,
            "SELECT COUNT(*) FROM information_schema.PARTITIONS WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders' AND "
            "PARTITION_NAME IS NOT NULL",
        )[0][0]
        == 0
    )


@pytest.mark.parametrize("partitioning", ["day", "none"])
def test_a_day_before_the_start_is_merged_and_counted(mysql_db, partitioning):
    """Rows before partitions.start (a bad-record edge the exports may hold) go to p_before."""
    spec = orders_spec(target_partitioning=partitioning)
    early = START - dt.timedelta(days=1)
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        load_day(conn, spec, early, day_table(spec, [row(1, 1, 5, day=early)]))
        merge_day(conn, spec, early)
        assert sum(merged_day(conn, spec, early).merged.values()) == 1
    assert len(target_rows(mysql_db, spec)) == 1


def test_the_split_waits_for_a_long_transaction_only_up_to_its_bound(mysql_db, monkeypatch):
    """A transaction holding the target's metadata lock makes the split fail after
    `SPLIT_LOCK_WAIT_S` (1 s here) instead of waiting the server's default year with every
    later statement on the table queued behind it; the session's own setting comes back."""
    import time

    import pymysql

    from migration_assets.mysql import partitioning

    monkeypatch.setattr(partitioning, "SPLIT_LOCK_WAIT_S", 1)
    spec = orders_spec()
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        late = covered_until(conn, spec, fresh=True) + dt.timedelta(days=1)
    with connection(mysql_db) as holder, holder.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute("SELECT COUNT(*) FROM orders")  # holds a shared metadata lock until commit
        with connection(mysql_db) as conn, conn.cursor() as own:
            own.execute("SELECT @@SESSION.lock_wait_timeout")  # MySQL: a year; MariaDB: a day
            (default,) = own.fetchone()
            started = time.monotonic()
            with pytest.raises(pymysql.err.OperationalError) as excinfo:
                ensure_day_partition(conn, spec, late)
            assert excinfo.value.args[0] == 1205 and time.monotonic() - started < 30
            own.execute("SELECT @@SESSION.lock_wait_timeout")
            assert own.fetchone()[0] == default >= 86400
        holder.rollback()
    with connection(mysql_db) as conn:
        assert ensure_day_partition(conn, spec, late)  # once the transaction is gone
