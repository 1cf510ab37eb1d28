"""Resources against the real moto server and a real MySQL server."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from migration_assets.defs.resources import (
    DynamoDBResource,
    MySQLResource,
    SharedS3Resource,
    connections_from_env,
    default_resources,
)
from migration_assets.mysql.connection import (
    MySQLConnectError,
    MySQLUrlError,
    connection,
    parse_mysql_url,
)


def test_s3_resource_honours_aws_endpoint_url(stack, bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint_url)
    client = S3Resource(max_attempts=3).get_client()
    client.put_object(Bucket=bucket, Key="probe.txt", Body=b"hello")
    assert client.get_object(Bucket=bucket, Key="probe.txt")["Body"].read() == b"hello"
    assert client.meta.endpoint_url == stack.aws_endpoint_url


def test_shared_s3_resource_builds_one_client_per_process_and_settings(stack, bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint_url)
    first = SharedS3Resource(max_attempts=3).get_client()
    assert SharedS3Resource(max_attempts=3).get_client() is first  # same settings: reused
    assert SharedS3Resource(max_attempts=4).get_client() is not first
    first.put_object(Bucket=bucket, Key="probe.txt", Body=b"shared")
    assert first.get_object(Bucket=bucket, Key="probe.txt")["Body"].read() == b"shared"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the environment changed
    moved = SharedS3Resource(max_attempts=3).get_client()
    assert moved is not first and moved.meta.endpoint_url == "http://127.0.0.1:9"


def test_mysql_connections_per_step_come_from_the_environment():
    assert connections_from_env({}) == 2
    assert connections_from_env({"MIGRATION_MYSQL_CONNECTIONS_PER_STEP": "1"}) == 1
    for bad in ("0", "17", "two", "-1", ""):
        with pytest.raises(ValueError, match="MIGRATION_MYSQL_CONNECTIONS_PER_STEP"):
            connections_from_env({"MIGRATION_MYSQL_CONNECTIONS_PER_STEP": bad})


def test_dynamodb_resource_reaches_moto_with_explicit_retries(stack, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint_url)
    resource = DynamoDBResource(max_attempts=7, retry_mode="adaptive")
    client = resource.get_client()
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    name = f"probe_{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    assert client.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"


def test_mysql_resource_session_is_utc_with_local_infile(mysql_db, tmp_path):
    resource = MySQLResource(url=mysql_db.url)
    with resource.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@session.time_zone, @@autocommit")
        assert cur.fetchone() == ("+00:00", 0)
        cur.execute("CREATE TABLE t (a INT, b VARCHAR(10))")
        data = tmp_path / "rows.tsv"
        data.write_text("1\tx\n2\ty\n")
        cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE t")
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone() == (2,)
    assert conn.open is False  # closed after the block


def test_mysql_connection_closes_and_rolls_back_on_error(mysql_db):
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (a INT) ENGINE=InnoDB")
    with pytest.raises(RuntimeError), connection(mysql_db) as conn:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert conn.open is False
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone() == (0,)


def test_wrong_password_error_never_shows_the_password(mysql_db):
    secret = "S3cr3t-Pa55word-xyz"
    user = f"probe_{uuid.uuid4().hex[:8]}"
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, uuid.uuid4().hex))
    url = f"mysql://{user}:{secret}@{mysql_db.host}:{mysql_db.port}/{mysql_db.database}"
    try:
        with pytest.raises(MySQLConnectError) as excinfo, MySQLResource(url=url).connect():
            pass
    finally:
        with connection(mysql_db) as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (user,))
    message = str(excinfo.value)
    assert excinfo.value.code == 1045
    assert secret not in message and secret not in repr(excinfo.value)
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__
    assert f"mysql://{user}:***@" in message


def test_mysql_url_parsing_and_redaction():
    settings = parse_mysql_url("mysql://app%40ops:p%3Ass%2Fw@db.example:3307/orders_db")
    assert (settings.user, settings.password, settings.host, settings.port, settings.database) == (
        "app@ops",
        "p:ss/w",
        "db.example",
        3307,
        "orders_db",
    )
    assert "p:ss/w" not in repr(settings) and "p:ss/w" not in str(settings)
    assert parse_mysql_url(settings.url) == settings
    for bad, fragment in [
        ("postgres://x@h/db", "must start with mysql://"),
        ("mysql:///db", "has no host"),
        ("mysql://u:pw@h/db;drop", "database name"),
    ]:
        with pytest.raises(MySQLUrlError, match=fragment) as excinfo:
            parse_mysql_url(bad)
        assert ":pw@" not in str(excinfo.value)


def test_default_resources_read_the_environment_at_run_time(mysql_db, monkeypatch):
    resources = default_resources()
    assert set(resources) == {"s3", "dynamodb", "mysql"}
    assert isinstance(resources["s3"], SharedS3Resource)
    assert isinstance(resources["mysql"].url, dg.EnvVar)  # never a literal in config or the UI
    monkeypatch.setenv("MIGRATION_MYSQL_URL", mysql_db.url)
    with (
        dg.build_resources({"mysql": resources["mysql"]}) as built,
        built.mysql.connect() as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (mysql_db.database,)


def test_ambiguous_urls_are_refused_without_echoing_parts():
    for url in (
        "mysql://app:1234/hunter2@db:3306/orders",
        "mysql://app:p@ss#word@db/orders",
        "mysql://app:pw?x@db/orders",
    ):
        with pytest.raises(MySQLUrlError, match="URL-encode") as excinfo:
            parse_mysql_url(url)
        assert not any(part in str(excinfo.value) for part in ("hunter2", "ss#word", "pw?x", "app"))


def test_mysql_resource_repr_is_redacted():
    resource = MySQLResource(url="mysql://app:TOPSECRET@db:3306/orders")
    assert "TOPSECRET" not in repr(resource) and "TOPSECRET" not in str(resource)
    assert "mysql://app:***@db:3306/orders" in repr(resource)


def test_tls_settings_come_from_the_url_query(tmp_path):
    ca = tmp_path / "global-bundle.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = parse_mysql_url(
        f"mysql://app:s3cret@db.example:3306/orders?ssl_ca={ca}&ssl_verify_identity=true"
    )
    assert (settings.ssl_ca, settings.ssl_verify_identity) == (str(ca), True)
    assert parse_mysql_url(settings.url) == settings  # child processes get the same TLS
    assert settings.redacted_url.startswith("mysql://app:***@db.example:3306/orders?ssl_ca=")
    assert "s3cret" not in settings.redacted_url and "s3cret" not in repr(settings)
    plain = parse_mysql_url("mysql://app@db/orders")
    assert (plain.ssl_ca, plain.ssl_verify_identity) == (None, False)
    for query, fragment in [
        ("ssl_ca=/nonexistent/ca.pem", "ssl_ca: no file"),
        ("ssl_verify_identity=maybe", "must be true or false"),
        ("sslmode=require", "unknown option 'sslmode'"),
    ]:
        with pytest.raises(MySQLUrlError, match=fragment) as excinfo:
            parse_mysql_url(f"mysql://app:s3cret@db/orders?{query}")
        assert "s3cret" not in str(excinfo.value)
