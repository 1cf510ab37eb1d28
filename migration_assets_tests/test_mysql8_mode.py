"""The suite's MySQL 8.0 mode on MariaDB: a throwaway server of this module's own, started
with MySQL 8.0's default sql_mode and MySQL 5.7's 4 MiB max_allowed_packet, a legacy table
made on 5.6 (utf8mb4_unicode_ci, zero-date defaults, zero dates), LOCAL INFILE switched off
where the test is about the fallback. What it cannot show (MySQL's own parser, JSON type and
collations) is covered by the fixtures of MySQL output and the dialect lint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from migration_assets.devstack.mysql_server import start_throwaway_mysql
from migration_assets.devstack.processes import stop_pid
from migration_assets.mysql.connection import connection, ensure_database
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.legacy import copy_day, legacy_key
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets.quality.counts import (
    _grouped_rows,
    copied_second_counts,
    legacy_second_counts,
    merged_day,
    merged_second_counts,
    parquet_json_checksums,
    staged_json_checksums,
    staged_second_counts,
)
from migration_assets_tests.test_aurora import DAY, day_table, orders_spec, row
from migration_assets_tests.test_legacy_copy import legacy_spec

MYSQL8_SQL_MODE = (
    "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
)
SERVER_ARGS = (
    f"--sql-mode={MYSQL8_SQL_MODE}",
    "--max-allowed-packet=4M",  # MySQL 5.7's default (8.0: 64M)
    "--collation-server=utf8mb4_unicode_ci",  # a _ci default, as 8.0's utf8mb4_0900_ai_ci
    "--general-log=1",  # the dialect lint reads what was sent (test_sql_dialect.py)
    "--log-output=TABLE",
)

pytestmark = pytest.mark.mysql8


@pytest.fixture(scope="module")
def mysql8(tmp_path_factory):
    server = start_throwaway_mysql(tmp_path_factory.mktemp("mysql8"), extra_args=SERVER_ARGS)
    try:
        yield server
    finally:
        stop_pid(server.pid)


@pytest.fixture
def db8(mysql8) -> Iterator:
    settings = mysql8.settings(f"t8_{uuid.uuid4().hex[:12]}")
    ensure_database(settings)
    try:
        yield settings
    finally:
        with connection(settings, database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{settings.database}`")


def _one(settings, sql, params=()):
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def test_the_server_runs_with_mysql8_defaults(db8):
    mode, packet, infile = _one(
        db8, "SELECT @@SESSION.sql_mode, @@max_allowed_packet, @@GLOBAL.local_infile"
    )
    assert set(mode.split(",")) == set(MYSQL8_SQL_MODE.split(","))
    assert packet == 4 * 1024 * 1024 and infile == 1


def test_a_day_loads_merges_and_checks_under_mysql8_sql_mode(db8):
    spec = orders_spec()  # partitioned by day
    rows = [row(c, c, c % 50, attrs=f'{{"n": {c}, "big": {"9" * 38}}}') for c in range(1, 301)]
    rows += [row(7, 7, 3, change="delete"), row(8, 8, 4, tier=None, attrs=None)]
    table = day_table(spec, rows)
    with connection(db8) as conn:
        ensure_tables(conn, spec)
        for _ in range(2):  # the second run meets every row: the upsert's update path
            assert load_day(conn, spec, DAY, table).method == "local_infile"
            merge_day(conn, spec, DAY)
            facts = merged_day(conn, spec, DAY)
            assert facts.method == "scans"
            assert merged_second_counts(conn, spec, DAY, facts) == facts.staged
            assert facts.staged_checksums == facts.target_checksums
            assert sum(staged_second_counts(conn, spec, DAY).values()) == 301  # puts
            assert staged_json_checksums(conn, spec, DAY) == parquet_json_checksums(table, spec)
        with conn.cursor() as cur:
            cur.execute("SELECT attrs FROM orders WHERE order_id = 9")
            assert cur.fetchone()[0] == f'{{"n": 9, "big": {"9" * 38}}}'


def test_local_infile_off_falls_back_to_inserts_and_says_so(db8, caplog):
    spec = orders_spec()
    table = day_table(spec, [row(1, 1), row(2, 2, 1)])
    with connection(db8) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL local_infile = 0")  # MySQL 8.0's default
    try:
        with connection(db8) as conn:
            ensure_tables(conn, spec)
            loaded = load_day(conn, spec, DAY, table)
    finally:
        with connection(db8) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL local_infile = 1")
    assert loaded.method == "insert" and loaded.rows == 2
    assert loaded.fallback is not None and "local_infile=1" in loaded.fallback
    assert "parameter group" in loaded.fallback
    assert any("LOAD DATA LOCAL INFILE was refused" in r.getMessage() for r in caplog.records)
    assert _one(db8, "SELECT COUNT(*) FROM orders_stage")[0] == 2


def test_grouped_results_larger_than_max_allowed_packet_are_read_whole(db8):
    """600,000 groups of ~10 bytes: more than the 4 MiB a GROUP_CONCAT result can hold here
    (MariaDB's sequence engine makes the rows)."""
    with connection(db8) as conn:
        sql = "SELECT seq AS c0, MOD(seq, 7) AS c1 FROM seq_1_to_600000"
        rows = _grouped_rows(conn, sql, (), 2)
    assert rows.shape == (600_000, 2)
    assert rows[:, 0].sum() == 600_000 * 600_001 // 2
    assert (rows[:, 1] == rows[:, 0] % 7).all()


LEGACY_56 = (
    "CREATE TABLE table01 (id INT(11) NOT NULL AUTO_INCREMENT,"
    " customer_id INT(11) NOT NULL, order_id INT(11) NOT NULL,"
    " created_at DATETIME NOT NULL, amount DECIMAL(18,4), attrs LONGTEXT,"
    " note VARCHAR(40) DEFAULT NULL,"
    " updated_at DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00',"
    " seen TIMESTAMP NOT NULL DEFAULT '0000-00-00 00:00:00',"
    " PRIMARY KEY (id), KEY by_time (created_at))"
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
)


def test_a_56_table_with_zero_dates_is_copied_under_mysql8_sql_mode(db8):
    with connection(db8) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # as the table was made and filled on 5.6
        cur.execute(LEGACY_56)
        cur.executemany(
            "INSERT INTO table01 (id, customer_id, order_id, created_at, amount, note,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (1, 5, 1, "2024-03-01 00:00:01", Decimal("1.5"), "Straße", "0000-00-00"),
                (2, 5, 2, "2024-03-01 10:00:00", None, None, "2024-03-01 10:00:00"),
                (3, 6, 3, "2024-03-01 23:59:59", None, "x", "2024-00-00 00:00:00"),
            ],
        )
        conn.commit()
        cur.execute("SELECT @@SESSION.sql_mode")
    spec = legacy_spec()
    with connection(db8) as conn:  # a session with the server's MySQL 8 sql_mode
        ensure_tables(conn, spec)
        with conn.cursor() as cur:
            cur.execute("SELECT @@SESSION.sql_mode")
            assert "NO_ZERO_DATE" in cur.fetchone()[0]  # restored after the DDL
    result = copy_day(lambda: connection(db8), spec, DAY)
    assert result.rows == 3
    with connection(db8) as conn:
        key = legacy_key(conn, spec)
        assert copied_second_counts(conn, spec, DAY, key) == legacy_second_counts(conn, spec, DAY)
    copied = _one(
        db8,
        "SELECT CAST(updated_at AS CHAR), CAST(seen AS CHAR), note FROM orders WHERE id = 1",
    )
    assert copied == ("0000-00-00 00:00:00", "0000-00-00 00:00:00", "Straße")
    in_day = _one(db8, "SELECT CAST(updated_at AS CHAR) FROM orders WHERE id = 3")
    assert in_day == ("2024-00-00 00:00:00",)
