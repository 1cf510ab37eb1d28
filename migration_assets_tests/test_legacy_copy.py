"""The INT(11) -> BIGINT copy, its tail and the cutover against a real MariaDB."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from migration_assets.mysql.catalog import SchemaConflictError, primary_key, table_columns
from migration_assets.mysql.connection import connection
from migration_assets.mysql.cutover import CutoverRefused, cutover
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.legacy import catch_up, copy_day, legacy_key
from migration_assets.mysql.seconds import copied_second_counts, legacy_second_counts
from migration_assets_tests.helpers import INT_MAX, LEGACY_COLUMNS, connector, execute, legacy_spec
from migration_assets_tests.helpers import fetch as rows

DAY = dt.date(2024, 3, 1)


def wait_for(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


EDGE_ROWS = [
    (1, INT_MAX, 1, "2024-03-01 00:00:00", Decimal("1.5000"), '{"a": 1}'),  # first second
    (2, 7, 2, "2024-03-01 23:59:59", None, None),  # last second, NULLs
    (3, 7, 3, "2024-02-29 23:59:59", Decimal("2.0000"), None),  # the day before
    (4, 7, 4, "2024-03-02 00:00:00", Decimal("2.0000"), None),  # the day after
    (5, 9, 5, "2024-03-01 12:00:00", Decimal("-3.0000"), "[]"),
    (INT_MAX, 8, 6, "2024-03-01 12:00:00", Decimal("3.0000"), None),  # the largest INT id
]


@pytest.fixture
def legacy_table(mysql_db):
    """A legacy table like the field's: signed INT(11) ids, INT customer and order ids."""
    execute(
        mysql_db,
        "CREATE TABLE table01 (id INT(11) NOT NULL AUTO_INCREMENT,"
        " customer_id INT(11) NOT NULL, order_id INT(11) NOT NULL,"
        " created_at DATETIME NOT NULL, amount DECIMAL(18,4), attrs JSON,"
        " PRIMARY KEY (id), KEY by_time (created_at))",
    )
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO table01 ({LEGACY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)", EDGE_ROWS
        )
        conn.commit()
    return mysql_db


def make_room_for_new_ids(settings):
    """The live tests' application inserts with AUTO_INCREMENT: drop the max-id row."""
    execute(settings, f"DELETE FROM table01 WHERE id = {INT_MAX}")
    execute(settings, "ALTER TABLE table01 AUTO_INCREMENT = 1")  # back to MAX(id) + 1


def same_rows(settings, where="TRUE"):
    """The legacy rows and the new table's copied rows, side by side."""
    legacy = rows(settings, f"SELECT {LEGACY_COLUMNS} FROM table01 WHERE {where} ORDER BY id")
    copied = rows(
        settings,
        f"SELECT {LEGACY_COLUMNS} FROM orders WHERE id <= {INT_MAX} AND {where} ORDER BY id",
    )
    return legacy, copied


def test_the_new_table_widens_ids_adds_merged_columns_and_numbers_new_rows_above_int(
    legacy_table,
):
    spec = legacy_spec()
    with connection(legacy_table) as conn:
        ensure_tables(conn, spec)
        columns = table_columns(conn, "orders")
        assert primary_key(conn, "orders") == ["id"]
        assert legacy_key(conn, spec).limit == INT_MAX
    assert {n: columns[n].data_type for n in ("id", "customer_id", "order_id")} == dict.fromkeys(
        ("id", "customer_id", "order_id"), "bigint"
    )
    assert columns["id"].auto_increment
    assert columns["loyalty_tier"].nullable  # the merged DynamoDB attribute, added
    unique = rows(legacy_table, "SHOW INDEX FROM orders WHERE Key_name = 'merge_key'")
    assert [r[4] for r in unique] == ["customer_id", "order_id", "created_at"]
    execute(
        legacy_table,
        "INSERT INTO orders (customer_id, order_id, created_at) VALUES (1, 1, '2024-03-01')",
    )
    assert rows(legacy_table, "SELECT id FROM orders")[0][0] == INT_MAX + 1  # never a legacy id


@pytest.mark.parametrize("chunk_rows, connections", [(2, 3), (200_000, 1)])
def test_a_day_is_copied_exactly_and_a_rerun_changes_nothing(legacy_table, chunk_rows, connections):
    spec = legacy_spec()
    with connection(legacy_table) as conn:
        ensure_tables(conn, spec)
    first = copy_day(
        connector(legacy_table), spec, DAY, chunk_rows=chunk_rows, connections=connections
    )
    execute(legacy_table, "UPDATE orders SET loyalty_tier = 'merged' WHERE id = 1")  # a merge
    again = copy_day(connector(legacy_table), spec, DAY, chunk_rows=chunk_rows)
    assert first.rows == again.rows == 4
    assert first.chunks == (3 if chunk_rows == 2 else 1)  # 00:00, 12:00 (x2), 23:59:59
    legacy, copied = same_rows(
        legacy_table, "created_at >= '2024-03-01' AND created_at < '2024-03-02'"
    )
    assert copied == legacy and len(copied) == 4  # day edges in, neighbours out, NULLs kept
    assert rows(legacy_table, "SELECT COUNT(*) FROM orders")[0][0] == 4
    assert rows(legacy_table, "SELECT loyalty_tier FROM orders WHERE id = 1")[0][0] == "merged"
    with connection(legacy_table) as conn:
        key = legacy_key(conn, spec)
        assert copied_second_counts(conn, spec, DAY, key) == legacy_second_counts(conn, spec, DAY)


def test_rows_inserted_during_the_copy_are_caught_up_exactly(legacy_table):
    spec = legacy_spec()
    make_room_for_new_ids(legacy_table)
    with connection(legacy_table) as conn:
        ensure_tables(conn, spec)
    with connection(legacy_table) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO table01 ({LEGACY_COLUMNS}) VALUES (%s, %s, %s, %s, NULL, NULL)",
            [
                (100 + i, 1, 100 + i, f"2024-03-01 10:{i // 60:02d}:{i % 60:02d}")
                for i in range(600)
            ],
        )
        conn.commit()
    stop = threading.Event()
    written: list[int] = []

    def application():  # the live application keeps inserting rows of that day and the next
        with connection(legacy_table) as conn, conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(
                    "INSERT INTO table01 (customer_id, order_id, created_at) VALUES (2, %s, %s)",
                    (
                        len(written),
                        "2024-03-01 18:00:00" if len(written) % 2 else "2024-03-02 01:00:00",
                    ),
                )
                conn.commit()
                written.append(cur.lastrowid)

    writer = threading.Thread(target=application)
    writer.start()
    try:
        wait_for(lambda: len(written) >= 5)
        copy_day(connector(legacy_table), spec, DAY, chunk_rows=50, connections=2)
        wait_for(lambda: len(written) >= 40)  # rows that arrived after the day was copied
    finally:
        stop.set()
        writer.join()
    with connection(legacy_table) as conn:
        tail = catch_up(conn, spec, chunk_rows=7)
    assert tail.new_rows > 0 and tail.rows_behind == 0 and tail.lag_seconds == 0
    assert tail.copied_through == max(written)
    legacy, copied = same_rows(
        legacy_table, "created_at >= '2024-03-01' AND created_at < '2024-03-02'"
    )
    assert copied == legacy
    with connection(legacy_table) as conn:
        assert catch_up(conn, spec).new_rows == 0  # nothing new


def test_two_days_copy_concurrently(legacy_table):
    spec = legacy_spec()
    with connection(legacy_table) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        cur.executemany(
            f"INSERT INTO table01 ({LEGACY_COLUMNS}) VALUES (%s, 3, %s, %s, NULL, NULL)",
            [(1000 + i, i, f"2024-03-0{2 + i % 2} {i % 24:02d}:00:00") for i in range(2000)],
        )
        conn.commit()
    days = [dt.date(2024, 3, 2), dt.date(2024, 3, 3)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(
            pool.map(lambda d: copy_day(connector(legacy_table), spec, d, chunk_rows=100), days)
        )
    assert [d.rows for d in done] == [1001, 1000]  # the day after EDGE_ROWS' day has row 4
    legacy, copied = same_rows(
        legacy_table, "created_at >= '2024-03-02' AND created_at < '2024-03-04'"
    )
    assert copied == legacy and len(copied) == 2001


def test_a_row_the_merge_deleted_stays_deleted_and_parity_holds(legacy_table):
    from migration_assets.mysql.merge import merge_day

    spec = legacy_spec()
    with connection(legacy_table) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        copy_day(connector(legacy_table), spec, DAY)
        cur.execute(  # DynamoDB deleted the item of row 5: staged as a delete of the day
            "INSERT INTO orders_stage (_day, _seq, _change, customer_id, order_id, created_at)"
            " VALUES (%s, 1, 'delete', 9, 5, '2024-03-01 12:00:00')",
            (DAY,),
        )
        conn.commit()
        assert merge_day(conn, spec, DAY).deleted == 1
    copy_day(connector(legacy_table), spec, DAY)  # a re-copy does not bring it back
    assert rows(legacy_table, "SELECT COUNT(*) FROM orders WHERE id = 5")[0][0] == 0
    with connection(legacy_table) as conn:
        key = legacy_key(conn, spec)
        assert copied_second_counts(conn, spec, DAY, key) == legacy_second_counts(conn, spec, DAY)


def test_a_missing_bigint_column_or_a_wide_key_is_refused(legacy_table):
    spec = legacy_spec(bigint_columns=["id", "customer_id", "order_id", "no_such_column"])
    with connection(legacy_table) as conn, pytest.raises(SchemaConflictError, match="no_such"):
        ensure_tables(conn, spec)
    spec = legacy_spec(bigint_columns=["customer_id", "order_id"])  # the key must be widened too
    with connection(legacy_table) as conn, pytest.raises(SchemaConflictError, match="INT-family"):
        ensure_tables(conn, spec)


TODAY = dt.date(2024, 3, 4)  # the cutover's "today": the tests' days end here


def _copied_world(settings, target="orders", change_capture="binlog"):
    """Every day from the first legacy row to TODAY copied, TODAY with 48 more rows."""
    spec = legacy_spec(start="2024-02-29", target=target, change_capture=change_capture)
    make_room_for_new_ids(settings)
    today = TODAY
    with connection(settings) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO table01 ({LEGACY_COLUMNS}) VALUES (%s, 4, %s, %s, NULL, NULL)",
            [(200 + i, i, dt.datetime.combine(today, dt.time(i % 24))) for i in range(48)],
        )
        conn.commit()
        ensure_tables(conn, spec)
    for offset in range((today - spec.partitions.start).days + 1):
        copy_day(
            connector(settings), spec, spec.partitions.start + dt.timedelta(offset), chunk_rows=10
        )
    return spec, today


def test_cutover_swaps_atomically_and_keeps_the_old_table(legacy_table):
    spec, today = _copied_world(legacy_table)
    execute(  # a late row: copied by the final catch-up
        legacy_table,
        "INSERT INTO table01 (customer_id, order_id, created_at) VALUES (5, 1, %s)",
        (dt.datetime.combine(today, dt.time(12)),),
    )
    legacy_before = rows(legacy_table, f"SELECT {LEGACY_COLUMNS} FROM table01 ORDER BY id")
    done = cutover(connector(legacy_table), spec, verify_days=2, today=today)
    assert done.old_table == "table01_old" and done.verified_days == [
        today.isoformat(),
        (today - dt.timedelta(days=1)).isoformat(),
    ]
    assert done.caught_up_rows == 1 and done.final_rows == 0
    with connection(legacy_table) as conn:
        assert table_columns(conn, "table01")["id"].data_type == "bigint"  # the new table
        assert table_columns(conn, "table01_old")["id"].data_type == "int"  # kept
        assert "loyalty_tier" in table_columns(conn, "table01")
        assert not table_columns(conn, "orders")
    assert (
        rows(legacy_table, f"SELECT {LEGACY_COLUMNS} FROM table01_old ORDER BY id") == legacy_before
    )
    copied = rows(
        legacy_table,
        f"SELECT {LEGACY_COLUMNS} FROM table01 WHERE created_at >= %s ORDER BY id",
        (dt.datetime.combine(today, dt.time()),),
    )
    assert list(copied) == [
        r for r in legacy_before if r[3] >= dt.datetime.combine(today, dt.time())
    ]
    # afterwards the copy refuses to run: the spec must now name the swapped table
    with connection(legacy_table) as conn, pytest.raises(SchemaConflictError, match="cutover"):
        ensure_tables(conn, spec)


@pytest.mark.parametrize("target", ["orders", "zz_orders"])  # sorting before / after table01
def test_writes_waiting_on_the_cutover_land_in_the_new_table(legacy_table, target):
    spec, today = _copied_world(legacy_table, target)
    landed: list[int] = []
    application_sql = [
        (
            "INSERT INTO table01 (customer_id, order_id, created_at) VALUES (6, 1, %s)",
            (dt.datetime.combine(today, dt.time(13)),),
        ),
        ("UPDATE table01 SET amount = 99 WHERE id = 1", ()),
        ("DELETE FROM table01 WHERE id = 2", ()),
    ]

    def application(sql, params):
        with connection(legacy_table) as app, app.cursor() as cur:
            cur.execute(sql, params)
            app.commit()
            landed.append(cur.lastrowid)

    writers = [
        threading.Thread(target=application, args=statement) for statement in application_sql
    ]

    def application_writes_while_locked():
        for writer in writers:
            writer.start()
        wait_for(  # the application's statements are queued behind the cutover's lock
            lambda: (
                rows(
                    legacy_table,
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                    " WHERE STATE LIKE 'Waiting%%' AND (INFO LIKE 'INSERT INTO table01%%'"
                    " OR INFO LIKE 'UPDATE table01%%' OR INFO LIKE 'DELETE FROM table01%%')",
                )[0][0]
                == 3
            )
        )

    done = cutover(
        connector(legacy_table), spec, today=today, while_locked=application_writes_while_locked
    )
    for writer in writers:
        writer.join()
    # all three reached the new table: the insert numbered by it, the update and delete in it
    assert rows(legacy_table, "SELECT id FROM table01 WHERE customer_id = 6") == ((INT_MAX + 1,),)
    assert rows(legacy_table, "SELECT amount FROM table01 WHERE id = 1")[0][0] == 99
    assert rows(legacy_table, "SELECT COUNT(*) FROM table01 WHERE id = 2")[0][0] == 0
    # and none reached the old one, which is the legacy table as it was at the swap
    assert rows(legacy_table, "SELECT COUNT(*) FROM table01_old WHERE customer_id = 6")[0][0] == 0
    assert rows(legacy_table, "SELECT amount FROM table01_old WHERE id = 1")[0][0] != 99
    assert rows(legacy_table, "SELECT COUNT(*) FROM table01_old WHERE id = 2")[0][0] == 1
    assert done.rows_after_swap == 0 and done.locked_seconds < 10


def test_cutover_is_refused_when_parity_fails_and_nothing_is_renamed(legacy_table):
    # without change capture (an append-only table's tail), a delete after the copy is seen
    # by the counts only (test_change_capture.py: with capture it is applied)
    spec, today = _copied_world(legacy_table, change_capture="none")
    execute(legacy_table, "DELETE FROM table01 WHERE id = 201")  # deleted after its copy
    with pytest.raises(CutoverRefused, match="seconds differ"):
        cutover(connector(legacy_table), spec, today=today)
    assert copy_day(connector(legacy_table), spec, today).orphans_deleted == 1  # a re-copy
    assert rows(legacy_table, "SELECT COUNT(*) FROM orders WHERE id = 201")[0][0] == 0
    execute(legacy_table, "DELETE FROM orders_copied_days WHERE day = '2024-03-02'")
    with pytest.raises(CutoverRefused, match="1 days were never copied .first: 2024-03-02"):
        cutover(connector(legacy_table), spec, today=today)
    execute(legacy_table, "INSERT INTO orders_copied_days VALUES ('2024-03-02', NOW(), 1, 1)")
    later = legacy_spec(start="2024-03-01", change_capture="none")  # row 3 would be left
    with pytest.raises(CutoverRefused, match="1 legacy rows are older than partitions.start"):
        cutover(connector(legacy_table), later, today=today)
    with connection(legacy_table) as conn:
        assert table_columns(conn, "table01")["id"].data_type == "int"
        assert table_columns(conn, "orders") and not table_columns(conn, "table01_old")


def test_a_copy_that_dies_between_chunks_is_finished_by_running_it_again(legacy_table):
    spec = legacy_spec()
    with connection(legacy_table) as conn:
        ensure_tables(conn, spec)

    def dies_after_the_first_chunk(chunks: int) -> None:
        if chunks == 1:
            raise ConnectionError("the worker was killed")

    with pytest.raises(ConnectionError):
        copy_day(
            connector(legacy_table),
            spec,
            DAY,
            chunk_rows=2,
            connections=1,
            after_chunk=dies_after_the_first_chunk,
        )
    legacy, copied = same_rows(
        legacy_table, "created_at >= '2024-03-01' AND created_at < '2024-03-02'"
    )
    assert 0 < len(copied) < len(legacy)  # half done
    assert not rows(legacy_table, "SELECT * FROM orders_copied_days")  # and not recorded
    copy_day(connector(legacy_table), spec, DAY, chunk_rows=2)
    legacy, copied = same_rows(
        legacy_table, "created_at >= '2024-03-01' AND created_at < '2024-03-02'"
    )
    assert copied == legacy


def test_cutover_before_any_copy_is_refused(legacy_table):
    spec = legacy_spec(start="2024-02-29")
    with connection(legacy_table) as conn:
        ensure_tables(conn, spec)
    with pytest.raises(CutoverRefused, match="no day has been copied"):
        cutover(connector(legacy_table), spec, today=dt.date(2024, 3, 2), verify_days=3)
    assert rows(legacy_table, "SHOW TABLES LIKE 'table01_old'") == ()


def test_an_id_committed_after_a_larger_one_is_caught_up(legacy_table):
    spec, today = _copied_world(legacy_table)
    slow = connection(legacy_table)
    slow_conn = slow.__enter__()
    try:
        with slow_conn.cursor() as cur:  # a long application transaction takes an id...
            cur.execute(
                "INSERT INTO table01 (customer_id, order_id, created_at) VALUES (7, 1, %s)",
                (dt.datetime.combine(today, dt.time(9)),),
            )
            slow_id = cur.lastrowid
        execute(  # ...a quicker one commits a larger id...
            legacy_table,
            "INSERT INTO table01 (customer_id, order_id, created_at) VALUES (7, 2, %s)",
            (dt.datetime.combine(today, dt.time(10)),),
        )
        with connection(legacy_table) as conn:
            assert catch_up(conn, spec).copied_through == slow_id + 1
        slow_conn.commit()  # ...and the first commits after the catch-up passed its id
    finally:
        slow.__exit__(None, None, None)
    with connection(legacy_table) as conn:
        catch_up(conn, spec)  # the overlap below the mark takes it
    assert rows(legacy_table, "SELECT COUNT(*) FROM orders WHERE id = %s", (slow_id,))[0][0] == 1


def test_a_row_the_merge_inserted_first_takes_its_legacy_id(legacy_table):
    spec = legacy_spec()
    with connection(legacy_table) as conn:
        ensure_tables(conn, spec)
    execute(  # the DynamoDB merge inserted the item before the legacy row was copied
        legacy_table,
        "INSERT INTO orders (customer_id, order_id, created_at, loyalty_tier)"
        " VALUES (9, 5, '2024-03-01 12:00:00', 'gold')",
    )
    copy_day(connector(legacy_table), spec, DAY)
    assert rows(
        legacy_table, "SELECT id, loyalty_tier FROM orders WHERE customer_id = 9 AND order_id = 5"
    ) == ((5, "gold"),)  # the legacy id, and the merged column kept
    with connection(legacy_table) as conn:
        key = legacy_key(conn, spec)
        assert copied_second_counts(conn, spec, DAY, key) == legacy_second_counts(conn, spec, DAY)


def test_the_new_table_keeps_the_legacy_definition(mysql_db):
    execute(
        mysql_db,
        "CREATE TABLE table01 (id INT(11) UNSIGNED NOT NULL,"
        " customer_id INT(11) NOT NULL, order_id INT(11) NOT NULL,"
        " created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, amount DECIMAL(18,4),"
        " attrs JSON, status ENUM('paid','open') NOT NULL DEFAULT 'open',"
        " note VARCHAR(20) DEFAULT 'none', PRIMARY KEY (id), KEY by_status (status),"
        " KEY by_created (created_at)) DEFAULT CHARSET=latin1",
    )
    spec = legacy_spec()
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        ensure_tables(conn, spec)  # and it is accepted the next time (TIMESTAMP for datetime)
        columns = table_columns(conn, "orders")
        assert legacy_key(conn, spec).limit == 2**32 - 1
    created = rows(mysql_db, "SHOW CREATE TABLE orders")[0][1]
    assert "enum('paid','open') NOT NULL DEFAULT 'open'" in created  # literals as they were
    assert "DEFAULT 'none'" in created and "KEY `by_status` (`status`)" in created
    assert "DEFAULT CHARSET=latin1" in created  # the legacy table's charset
    assert "`by_time`" not in created  # the legacy time index is kept, not doubled
    assert columns["id"].column_type.startswith("bigint") and columns["id"].auto_increment
    assert (
        "utf8mb4"
        in rows(
            mysql_db,
            "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
            " DATABASE() AND TABLE_NAME = 'orders' AND COLUMN_NAME = 'loyalty_tier'",
        )[0][0]
    )  # the added DynamoDB text column holds Unicode
    execute(  # an application insert relying on the defaults still works after the cutover
        mysql_db, "INSERT INTO orders (customer_id, order_id) VALUES (1, 2)"
    )
    assert rows(mysql_db, "SELECT id, status, note FROM orders") == ((2**32, "open", "none"),)


def test_a_legacy_column_that_disagrees_with_the_spec_is_refused_before_anything_is_made(
    mysql_db,
):
    execute(
        mysql_db,
        "CREATE TABLE table01 (id INT NOT NULL PRIMARY KEY, customer_id INT NOT NULL,"
        " order_id INT NOT NULL, created_at DATETIME NOT NULL, amount DECIMAL(12,2))",
    )
    with connection(mysql_db) as conn, pytest.raises(SchemaConflictError) as refused:
        ensure_tables(conn, legacy_spec())
    assert "legacy table 'table01': column 'amount' is decimal(12,2)" in str(refused.value)
    assert rows(mysql_db, "SHOW TABLES LIKE 'orders'") == ()


def test_cutover_refuses_legacy_rows_no_partition_copies(legacy_table):
    spec, today = _copied_world(legacy_table)
    execute(
        legacy_table,
        "INSERT INTO table01 (customer_id, order_id, created_at) VALUES (8, 8, %s)",
        (dt.datetime.combine(today + dt.timedelta(days=3), dt.time()),),
    )
    with pytest.raises(CutoverRefused, match="1 legacy rows are dated after 2024-03-04"):
        cutover(connector(legacy_table), spec, today=today)


def test_a_counter_fallen_into_the_legacy_range_is_raised_before_the_merge(legacy_table):
    """MySQL 5.7 re-initialises an InnoDB counter to MAX(id)+1 at a restart: set by hand
    here (MariaDB persists it), the merge's new rows must still get ids above the range."""
    from migration_assets.mysql.merge import merge_day

    spec = legacy_spec()
    make_room_for_new_ids(legacy_table)
    with connection(legacy_table) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        copy_day(connector(legacy_table), spec, DAY)
        cur.execute("ALTER TABLE orders AUTO_INCREMENT = 6")  # what a 5.7 restart leaves
        cur.execute(  # a DynamoDB-only item of the day: the merge inserts it
            "INSERT INTO orders_stage (_day, _seq, _change, customer_id, order_id, created_at)"
            " VALUES (%s, 1, 'put', 77, 77, '2024-03-01 08:00:00')",
            (DAY,),
        )
        conn.commit()
        assert merge_day(conn, spec, DAY).inserted == 1
    assert rows(legacy_table, "SELECT id FROM orders WHERE order_id = 77")[0][0] == INT_MAX + 1
