"""The suite's MySQL 8.0 mode on MariaDB: a throwaway server of this module's own, started
with MySQL 8.0's default sql_mode and MySQL 5.7's 4 MiB max_allowed_packet, a legacy table
made on 5.6 (utf8mb4_unicode_ci, zero-date defaults, zero dates), LOCAL INFILE switched off
where the test is about the fallback. What it cannot show (MySQL's own parser, JSON type and
collations) is covered by the fixtures of MySQL output and the dialect lint."""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from migration_assets.devstack.mysql_server import start_throwaway_mysql
from migration_assets.devstack.processes import stop_pid
from migration_assets.mysql.apply import ChangeApplier
from migration_assets.mysql.connection import (
    MySQLConnectError,
    connection,
    ensure_database,
    parse_mysql_url,
)
from migration_assets.mysql.copy_checksum import day_checksums
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.legacy import catch_up, copy_day, legacy_key
from migration_assets.mysql.load import clean_days, load_day
from migration_assets.mysql.merge import merge_day
from migration_assets.mysql.seconds import (
    _grouped_rows,
    copied_second_counts,
    differing_keys,
    legacy_second_counts,
    merged_day,
    merged_second_counts,
    staged_json_checksums,
    staged_second_counts,
    unstaged_rows,
)
from migration_assets.parquet.counts import parquet_json_checksums
from migration_assets_tests.helpers import DAY, day_table, legacy_spec, orders_spec, row
from migration_assets_tests.sql_dialect import lint

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

TEST = "/* test */"  # marks the statements the tests send themselves (the lint skips them)
pytestmark = pytest.mark.mysql8


def _certificate(subject: str, key, issuer=None, issuer_key=None, ip: str | None = None):
    """A PEM certificate for `subject` (self-signed unless `issuer` and its key are given)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
    )
    if ip is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(san, False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(path: Path, cert=None, key=None) -> str:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    return str(path)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> dict[str, str]:
    """A CA, a server certificate it signed for 127.0.0.1, and an unrelated CA."""
    root = tmp_path_factory.mktemp("tls")
    ca_key, server_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("test CA", ca_key)
    server = _certificate("mysql8 test server", server_key, ca, ca_key, ip="127.0.0.1")
    return {
        "ca": _pem(root / "ca.pem", ca),
        "cert": _pem(root / "server.pem", server),
        "key": _pem(root / "server-key.pem", key=server_key),
        "other_ca": _pem(root / "other-ca.pem", _certificate("other CA", other_key)),
    }


@pytest.fixture(scope="module")
def mysql8(tmp_path_factory, tls_files):
    tls = (
        f"--ssl-ca={tls_files['ca']}",
        f"--ssl-cert={tls_files['cert']}",
        f"--ssl-key={tls_files['key']}",
    )
    root = tmp_path_factory.mktemp("mysql8")
    server = start_throwaway_mysql(root, extra_args=(*SERVER_ARGS, *tls))
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
            cur.execute(f"{TEST} DROP DATABASE IF EXISTS `{settings.database}`")


def _one(settings, sql, params=()):
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"{TEST} {sql}", params)
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
        cur.execute(f"{TEST} SET GLOBAL local_infile = 0")  # MySQL 8.0's default
    try:
        with connection(db8) as conn:
            ensure_tables(conn, spec)
            loaded = load_day(conn, spec, DAY, table)
    finally:
        with connection(db8) as conn, conn.cursor() as cur:
            cur.execute(f"{TEST} SET GLOBAL local_infile = 1")
    assert loaded.method == "insert" and loaded.rows == 2
    assert loaded.fallback is not None and "local_infile=1" in loaded.fallback
    assert "parameter group" in loaded.fallback
    assert any("LOAD DATA LOCAL INFILE was refused" in r.getMessage() for r in caplog.records)
    assert _one(db8, "SELECT COUNT(*) FROM orders_stage")[0] == 2


def test_grouped_results_larger_than_max_allowed_packet_are_read_whole(db8):
    """600,000 groups of ~10 bytes: more than the 4 MiB a GROUP_CONCAT result can hold here
    (MariaDB's sequence engine makes the rows)."""
    with connection(db8) as conn:
        sql = f"{TEST} SELECT seq AS c0, MOD(seq, 7) AS c1 FROM seq_1_to_600000"
        rows = _grouped_rows(conn, sql, (), 2)
    assert rows.shape == (600_000, 2)
    assert rows[:, 0].sum() == 600_000 * 600_001 // 2
    assert (rows[:, 1] == rows[:, 0] % 7).all()


LEGACY_56 = (
    f"{TEST} CREATE TABLE table01 (id INT(11) NOT NULL AUTO_INCREMENT,"
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
        cur.execute(f"{TEST} SET SESSION sql_mode = ''")  # as the table was made on 5.6
        cur.execute(LEGACY_56)
        cur.executemany(
            f"{TEST} INSERT INTO table01 (id, customer_id, order_id, created_at, amount, note,"
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
    # the application changes rows after the copy, their zero dates untouched: the reader
    # decodes those as None; the applier writes the legacy row's dates back, not a NULL
    with connection(db8) as conn, conn.cursor() as cur:
        cur.execute(f"{TEST} SET SESSION sql_mode = ''")
        cur.execute(f"{TEST} UPDATE table01 SET note = 'after' WHERE id = 1")
        cur.execute(f"{TEST} UPDATE table01 SET amount = 9 WHERE id = 3")
        conn.commit()
    with ChangeApplier(db8, spec) as applier:
        assert applier.drain().row_events == 2
    after = "SELECT CAST(updated_at AS CHAR), CAST(seen AS CHAR), note, amount FROM orders WHERE id"
    assert _one(db8, f"{after} = 1") == (
        "0000-00-00 00:00:00",
        "0000-00-00 00:00:00",
        "after",
        Decimal("1.5000"),
    )
    assert _one(db8, f"{after} = 3")[0] == "2024-00-00 00:00:00"
    assert _one(db8, f"{after} = 3")[3] == Decimal("9.0000")
    with connection(db8) as conn:
        assert not day_checksums(conn, spec, DAY, legacy_key(conn, spec)).differing_seconds()


def _cipher(settings) -> str:
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"{TEST} SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return cur.fetchone()[1]


def test_tls_with_a_ca_file_verifies_the_server_and_its_name(db8, tls_files, mysql_db):
    url = f"{db8.url}?ssl_ca={tls_files['ca']}&ssl_verify_identity=true"
    verified = parse_mysql_url(url)
    assert (verified.ssl_ca, verified.ssl_verify_identity) == (tls_files["ca"], True)
    assert parse_mysql_url(verified.url) == verified and "ssl_ca=" in verified.redacted_url
    assert _cipher(verified)  # TLS, the certificate and 127.0.0.1 checked
    with pytest.raises(MySQLConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _cipher(replace(verified, ssl_ca=tls_files["other_ca"]))  # signed by another CA
    by_name = replace(verified, host="localhost")  # the certificate names 127.0.0.1 only
    with pytest.raises(MySQLConnectError, match="match|mismatch"):
        _cipher(by_name)
    assert _cipher(replace(by_name, ssl_verify_identity=False))  # the CA alone still checked
    # a server that offers no TLS (the session's) is refused, not used in clear
    with pytest.raises(MySQLConnectError, match="SSL is required"):
        _cipher(replace(mysql_db, ssl_ca=tls_files["ca"]))


def test_every_statement_sent_lints_clean_for_mysql8(db8):
    """The statements this module's runs sent (the general log, test statements excepted)
    plus a run of the remaining paths here: none holds what MySQL 8.0 rejects or
    deprecates (`sql_dialect.py`; that it finds such constructs: test_sql_dialect.py)."""
    today = dt.datetime.now(dt.UTC).date()
    with connection(db8) as conn:
        for mode in ("upsert", "update_only"):
            spec = orders_spec(mode=mode, temp_table=f"{mode}_stage", target_table=mode)
            ensure_tables(conn, spec)
            later = today + dt.timedelta(days=60)  # past the day partitions: a split first
            for day in (DAY, later):
                rows = [row(1, 1, 1, day=day), row(2, 2, 2, day=day), row(3, 3, 3, day=day)]
                load_day(conn, spec, day, day_table(spec, [*rows, row(3, 3, 4, change="delete")]))
                merge_day(conn, spec, day)
                facts = merged_day(conn, spec, day, method="join")
                merged_second_counts(conn, spec, day, facts)
                second = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) + 1
                differing_keys(conn, spec, day, [second])
                unstaged_rows(conn, spec, day, [second])
            clean_days(conn, spec, today + dt.timedelta(days=90))
        with conn.cursor() as cur:  # the BIGINT copy of a legacy table, its tail
            cur.execute(f"{TEST} SET SESSION sql_mode = ''")
            cur.execute(LEGACY_56)
            cur.execute(
                f"{TEST} INSERT INTO table01 (customer_id, order_id, created_at)"
                " VALUES (1, 1, '2024-03-01 00:00:01'), (2, 2, '2024-03-01 00:00:02')"
            )
            conn.commit()
    legacy = legacy_spec()
    with connection(db8) as conn:
        ensure_tables(conn, legacy)
        copy_day(lambda: connection(db8), legacy, DAY)
        catch_up(conn, legacy)
        legacy_second_counts(conn, legacy, DAY)
        copied_second_counts(conn, legacy, DAY, legacy_key(conn, legacy))
        with conn.cursor() as cur:
            cur.execute("SELECT argument FROM mysql.general_log WHERE command_type = 'Query'")
            sent = {
                a.decode("utf-8", "replace") if isinstance(a, bytes) else a
                for (a,) in cur.fetchall()
            }
    ours = sorted(s for s in sent if TEST not in s and "general_log" not in s)
    assert any("ON DUPLICATE KEY UPDATE" in s for s in ours)  # the upserts were recorded
    assert any("REORGANIZE PARTITION" in s for s in ours)
    assert any("INSERT INTO `orders` (`id`" in s for s in ours)  # the BIGINT copy's
    problems = [f"{found}: {s[:160]!r}" for s in ours if (found := lint(s))]
    assert not problems, "\n".join(problems)
