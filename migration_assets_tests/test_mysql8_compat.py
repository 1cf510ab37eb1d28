"""Parsers of server output against MySQL 8.0 / 5.7 forms (fixtures/mysql8/, see its README)
and MariaDB's, and the live MariaDB form next to them."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import pymysql
import pytest
import yaml

from migration_assets.days import mismatched_seconds
from migration_assets.mysql.catalog import (
    ColumnInfo,
    SchemaConflictError,
    group_index_rows,
    table_columns,
)
from migration_assets.mysql.columns import column_type
from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import (
    _type_problem,
    ensure_tables,
    target_table_ddl,
    temp_table_ddl,
    unmatched_table_ddl,
)
from migration_assets.mysql.legacy import _INT_TYPE
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets.mysql.partitioning import (
    layout_from_create_table,
    layout_from_partitions,
    read_partitions,
)
from migration_assets.mysql.seconds import (
    merged_day,
    staged_json_checksums,
)
from migration_assets.parquet.counts import parquet_json_checksums
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import DAY, day_table, orders_spec, row

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


# --------------------------------------------------------------------------- JSON fidelity

# what MySQL's JSON type would change: a number past 64 bits (stored as a double), keys out
# of order, a duplicate key (the last one kept), and spacing
RAW_JSON = '{"z": 1, "big": 12345678901234567890123456789012345678, "a": [1.50, "x"], "z": 2}'
NORMALISED = '{"a": [1.5, "x"], "z": 2, "big": 1.2345678901234568e37}'


def test_json_columns_are_checked_text_in_every_table_the_project_creates():
    spec = orders_spec()
    for ddl in (temp_table_ddl(spec), target_table_ddl(spec), unmatched_table_ddl(spec)):
        assert (
            "`attrs` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin CHECK (JSON_VALID(`attrs`))"
            in ddl
        )
        assert " JSON" not in ddl
        assert "`loyalty_tier` VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" in ddl


def test_a_native_json_target_column_is_refused_with_the_fix():
    spec = orders_spec()
    attrs = next(c for c in spec.columns if c.column == "attrs")
    native = ColumnInfo("attrs", "json", "json", True)
    problem = _type_problem(attrs, native, spec)
    assert problem is not None and "normalises" in problem and "MODIFY `attrs` LONGTEXT" in problem
    assert _type_problem(attrs, native, spec, native_json=True) is None  # a legacy column
    assert _type_problem(attrs, ColumnInfo("attrs", "longtext", "longtext", True), spec) is None


def test_json_text_arrives_unchanged_and_a_changed_value_fails(mysql_db):
    spec = orders_spec(update_columns=["loyalty_tier", "attrs"])
    table = day_table(spec, [row(1, 1, 5, attrs=RAW_JSON), row(2, 2, 5), row(3, 3, 9, attrs=None)])
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        load_day(conn, spec, DAY, table)
        merge_day(conn, spec, DAY)
        with conn.cursor() as cur:
            cur.execute("SELECT attrs FROM orders WHERE order_id = 1")
            assert cur.fetchone()[0] == RAW_JSON  # byte for byte: 38 digits, order, duplicate
            with pytest.raises(pymysql.err.OperationalError):  # CHECK (JSON_VALID(...))
                cur.execute("UPDATE orders SET attrs = 'not json' WHERE order_id = 2")
        conn.rollback()
        expected = parquet_json_checksums(table, spec)
        assert staged_json_checksums(conn, spec, DAY) == expected
        facts = merged_day(conn, spec, DAY)
        assert facts.staged_checksums == facts.target_checksums
        # what a JSON column would have stored: the staged text no longer matches Parquet
        with conn.cursor() as cur:
            cur.execute("UPDATE orders_stage SET attrs = %s WHERE order_id = 1", (NORMALISED,))
            conn.commit()
        changed = staged_json_checksums(conn, spec, DAY)
        second = int(dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp()) + 5
        assert mismatched_seconds(expected, changed) == [second]
        # and in the target: the merged columns' checksum differs from the staged one
        with conn.cursor() as cur:
            cur.execute("UPDATE orders_stage SET attrs = %s WHERE order_id = 1", (RAW_JSON,))
            cur.execute("UPDATE orders SET attrs = %s WHERE order_id = 1", (NORMALISED,))
            conn.commit()
        facts = merged_day(conn, spec, DAY)
        assert facts.staged_checksums != facts.target_checksums


# --------------------------------------------------------------------------- collations


def _string_key_spec():
    """The example spec keyed by a string column (loyalty_tier) and the event time."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    for column in data["columns"]:
        if column["column"] == "loyalty_tier":
            column["nullable"] = False
    data["mysql"].update(key=["customer_id", "loyalty_tier", "created_at"], update_columns=[])
    return parse_spec(data)


def test_string_keys_are_binary_so_case_and_accents_stay_distinct(mysql_db):
    spec = _string_key_spec()
    tiers = ["gold", "Gold", "göld"]  # equal under utf8mb4_0900_ai_ci (and general_ci)
    table = day_table(spec, [row(1, n, 1, tier=t) for n, t in enumerate(tiers)])
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        load_day(conn, spec, DAY, table)
        assert merge_day(conn, spec, DAY).inserted == 3
        with conn.cursor() as cur:
            cur.execute("SELECT loyalty_tier FROM orders ORDER BY loyalty_tier")
            assert sorted(r[0] for r in cur.fetchall()) == sorted(tiers)
        facts = merged_day(conn, spec, DAY)
        assert facts.staged == facts.merged and facts.staged_checksums == facts.target_checksums


def test_a_key_collation_mismatch_is_refused_before_anything_runs(mysql_db):
    spec = _string_key_spec()
    with connection(mysql_db) as conn:
        with conn.cursor() as cur:  # a target made elsewhere, its key in a _ci collation
            cur.execute(
                "CREATE TABLE orders (customer_id BIGINT NOT NULL, order_id BIGINT NOT NULL,"
                " created_at DATETIME NOT NULL, amount DECIMAL(18,4),"
                " loyalty_tier VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                " NOT NULL, attrs LONGTEXT,"
                " PRIMARY KEY (customer_id, loyalty_tier, created_at))"
            )
            cur.execute(temp_table_ddl(spec))  # a staging table made for a binary target
        with pytest.raises(SchemaConflictError) as excinfo:
            ensure_tables(conn, spec)
        message = str(excinfo.value)
        assert "'loyalty_tier'" in message
        assert "utf8mb4_bin in staging" in message and "utf8mb4_unicode_ci in target" in message
        assert table_columns(conn, "orders_stage_merges") == {}  # nothing was created
        with conn.cursor() as cur:  # as the message says: a new staging table follows the
            cur.execute("DROP TABLE orders_stage")  # target's key collation
        ensure_tables(conn, spec)
        assert table_columns(conn, "orders_stage")["loyalty_tier"].collation == (
            "utf8mb4_unicode_ci"
        )


def test_mysql8_legacy_column_lines_are_widened_and_json_becomes_text():
    """The per-line rewrites of `copy_target_ddl` on MySQL 8.0's forms: no display width,
    `int unsigned`, a native json column, a CHECK with a version comment."""
    ddl = (FIXTURES / "legacy_show_create_80.txt").read_text()
    lines = {line.strip().split(" ")[0]: line.strip().rstrip(",") for line in ddl.splitlines()}
    for name, widened in [
        ("id", "`id` bigint NOT NULL AUTO_INCREMENT"),
        ("customer_id", "`customer_id` bigint unsigned NOT NULL"),
    ]:
        assert re.sub(rf"^(`{name}` ){_INT_TYPE}", r"\1bigint", lines[f"`{name}`"]) == widened
    attrs = next(c for c in orders_spec().columns if c.column == "attrs")
    text = re.sub(r"^`attrs` json\b", f"`attrs` {column_type(attrs)}", lines["`attrs`"])
    assert text == "`attrs` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL"
    check = re.sub(r"^CONSTRAINT `[^`]+` CHECK", "CHECK", lines["CONSTRAINT"])
    assert check == "CHECK ((`customer_id` > 0)) /*!80016 NOT ENFORCED */"
