"""The INT(11) -> BIGINT copy core against a real MariaDB (the asset comes with issue 6)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import yaml

from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import SchemaConflictError, primary_key, table_columns
from migration_assets.mysql.legacy import copy_day, copy_target_ddl
from migration_assets.spec import EXAMPLE_SPEC, parse_spec

DAY = dt.date(2024, 3, 1)
INT_MAX = 2**31 - 1


def legacy_spec():
    return parse_spec(yaml.safe_load(EXAMPLE_SPEC.read_text()))


def rows(settings, sql):
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


@pytest.fixture
def legacy_table(mysql_db):
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE table01 (id INT(11) UNSIGNED NOT NULL AUTO_INCREMENT,"
            " customer_id INT(11) NOT NULL, order_id INT(11) NOT NULL,"
            " created_at DATETIME NOT NULL, amount DECIMAL(18,4), attrs JSON,"
            " PRIMARY KEY (id), KEY by_time (created_at))"
        )
        cur.executemany(
            "INSERT INTO table01 (id, customer_id, order_id, created_at, amount, attrs)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (1, INT_MAX, 1, "2024-03-01 00:00:00", Decimal("1.5000"), '{"a": 1}'),
                (2, 7, 2, "2024-03-01 23:59:59", None, None),
                (3, 7, 3, "2024-02-29 23:59:59", Decimal("2.0000"), None),  # the day before
                (2**32 - 1, 8, 4, "2024-03-01 12:00:00", Decimal("3.0000"), None),  # > 2^31
            ],
        )
        conn.commit()
    return mysql_db


def test_the_new_table_widens_ids_and_adds_the_merged_columns(legacy_table):
    spec = legacy_spec()
    with connection(legacy_table) as conn, conn.cursor() as cur:
        cur.execute(copy_target_ddl(conn, spec))
        columns = table_columns(conn, "orders")
        assert primary_key(conn, "orders") == ["id"]
    assert (
        columns["id"].column_type.startswith("bigint") and "unsigned" in columns["id"].column_type
    )
    assert columns["customer_id"].data_type == "bigint"
    assert columns["order_id"].data_type == "bigint"
    assert columns["loyalty_tier"].nullable  # the merged DynamoDB attribute, added
    unique = rows(legacy_table, "SHOW INDEX FROM orders WHERE Key_name = 'merge_key'")
    assert [r[4] for r in unique] == ["customer_id", "order_id", "created_at"]


def test_a_day_is_copied_exactly_and_a_rerun_changes_nothing(legacy_table):
    spec = legacy_spec()
    with connection(legacy_table) as conn, conn.cursor() as cur:
        cur.execute(copy_target_ddl(conn, spec))
        first = copy_day(conn, spec, DAY, chunk_rows=2)
        cur.execute("UPDATE orders SET loyalty_tier = 'merged' WHERE id = 1")  # target_table
        conn.commit()
        again = copy_day(conn, spec, DAY, chunk_rows=2)
    assert first.rows == again.rows == 3
    copied = rows(
        legacy_table,
        "SELECT id, customer_id, created_at, amount, loyalty_tier FROM orders ORDER BY id",
    )
    assert [(r[0], r[1]) for r in copied] == [(1, INT_MAX), (2, 7), (2**32 - 1, 8)]
    assert copied[1][3] is None  # NULLs survive
    assert copied[0][4] == "merged"  # the copy never overwrites merged columns


def test_a_missing_bigint_column_is_refused(legacy_table):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["legacy_copy"]["bigint_columns"] = ["id", "no_such_column"]
    spec = parse_spec(data)
    with connection(legacy_table) as conn, pytest.raises(SchemaConflictError, match="no_such"):
        copy_target_ddl(conn, spec)
