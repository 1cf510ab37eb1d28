"""Parsers of server output against MySQL 8.0 / 5.7 forms (fixtures/mysql8/, see its README)
and MariaDB's, and the live MariaDB form next to them."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from migration_assets.mysql.catalog import group_index_rows
from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.partitioning import (
    layout_from_create_table,
    layout_from_partitions,
    read_partitions,
)
from migration_assets_tests.test_aurora import orders_spec

FIXTURES = Path(__file__).parent / "fixtures" / "mysql8"
UNTIL = dt.date(2023, 1, 4)  # the fixtures' first day past the day partitions


def _tsv(name: str) -> list[tuple]:
    with open(FIXTURES / name, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [tuple(None if v == "NULL" else v for v in r) for r in rows[1:]]


@pytest.mark.parametrize("fixture", ["target_show_create_80.txt", "target_show_create_57.txt"])
def test_mysql_show_create_table_layouts_are_recognised(fixture):
    ddl = (FIXTURES / fixture).read_text()
    assert "COLUMNS(created_at)" in ddl  # no backticks, inside /*!50500 ... */
    assert layout_from_create_table(ddl, "created_at") == UNTIL
    assert layout_from_create_table(ddl, "order_id") is None  # partitioned by another column


def test_mysql_information_schema_partitions_are_recognised():
    rows = _tsv("target_partitions_80.tsv")
    assert layout_from_partitions(rows, "created_at") == UNTIL
    assert layout_from_partitions(rows[:-1], "created_at") is None  # no p_future: not ours
    hashed = [(name, "HASH", "`created_at`", None) for name, *_ in rows]
    assert layout_from_partitions(hashed, "created_at") is None


def test_layouts_not_made_here_are_left_alone():
    ddl = (FIXTURES / "target_show_create_80.txt").read_text()
    monthly = ddl.replace("('2023-01-02 00:00:00')", "('2023-01-02 12:00:00')")
    assert layout_from_create_table(monthly, "created_at") is None  # a bound not at midnight
    renamed = ddl.replace("p_future", "pmax")
    assert layout_from_create_table(renamed, "created_at") is None
    assert layout_from_create_table(ddl.split("/*!50500")[0], "created_at") is None


def test_mariadb_forms_are_recognised_from_both_sources(mysql_db):
    spec = orders_spec()
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        with conn.cursor() as cur:
            cur.execute("SHOW CREATE TABLE orders")
            ddl = cur.fetchone()[1]
        rows = read_partitions(conn, "orders")
    assert "COLUMNS(`created_at`)" in ddl  # MariaDB quotes the column
    until = layout_from_create_table(ddl, "created_at")
    assert until is not None and until > dt.date.today()
    assert layout_from_partitions(rows, "created_at") == until


def test_functional_index_parts_with_no_column_name_are_kept_apart():
    found = group_index_rows([(r[0], r[3]) for r in _tsv("statistics_functional_80.tsv")])
    assert found["PRIMARY"] == ["id"]
    assert found["by_day"][1] == "customer_id"
    assert found["by_day"][0] != "customer_id" and found["by_day"][0].startswith("(")
    # a unique key with an expression part never passes for a key on plain columns
    assert sorted(found["uniq_email"]) != ["email"]
