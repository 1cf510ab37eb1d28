"""Staging load and composite-key merge against a real MariaDB server."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pytest
import yaml

from migration_assets.devstack.seed import seed
from migration_assets.mysql.catalog import SchemaConflictError, primary_key, table_columns
from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets.parquet_store import partition_schema, read_manifest
from migration_assets.resources import MySQLResource
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import assets_named

UTC = dt.UTC
DAY, OTHER = dt.date(2024, 3, 1), dt.date(2024, 3, 2)


def orders_spec(**mysql_overrides):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    data["mysql"].update(mysql_overrides)
    return parse_spec(data)


def row(customer, order, second=0, tier="gold", change="put", day=DAY, **extra):
    values = {
        "customer_id": customer,
        "order_id": order,
        "created_at": dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(seconds=second),
        "amount": Decimal("12.3400"),
        "loyalty_tier": tier,
        "attrs": '{"k":[1,"x"]}',
        "_change": change,
    }
    values.update(extra)
    return values


def day_table(spec, rows):
    table = pa.Table.from_pylist(rows, schema=partition_schema(spec))
    return table.sort_by([(k, "ascending") for k in spec.mysql.key])


def fetch(settings, sql, params=()):
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def target_rows(settings, spec):
    names = ", ".join(f"`{c.column}`" for c in spec.columns)
    rows = fetch(settings, f"SELECT {names} FROM `{spec.mysql.target_table}` ORDER BY 1, 2, 3")
    return [tuple(r) for r in rows]


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


def _staged_day(spec):
    return day_table(
        spec,
        [
            row(1, 1, 10, tier="platinum"),  # matches an existing row: updated
            row(1, 2, 20, tier="silver"),  # new
            row(2, 1, 30, change="delete"),  # matches: deleted / nulled
            row(3, 3, 40, change="delete"),  # matches nothing
            row(4, 4, 50, tier="new"),
        ],
    )


def _existing(mysql_db, spec):
    with connection(mysql_db) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        cur.executemany(
            "INSERT INTO orders (customer_id, order_id, created_at, amount, loyalty_tier, attrs)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (1, 1, dt.datetime(2024, 3, 1, 0, 0, 10), Decimal("99.0000"), "bronze", None),
                (2, 1, dt.datetime(2024, 3, 1, 0, 0, 30), Decimal("5.0000"), "gold", None),
                (8, 8, dt.datetime(2024, 3, 1, 0, 0, 50), Decimal("1.0000"), "keep", None),
            ],
        )
        conn.commit()
        load_day(conn, spec, DAY, _staged_day(spec))


def _on(mysql_db, connections):
    """merge_day's / merged_day's arguments for `connections` connections at once."""
    return {"connect": lambda: connection(mysql_db), "connections": connections}


@pytest.mark.parametrize("partitioning", ["day", "none"])
@pytest.mark.parametrize("connections", [1, 2, 3])
def test_upsert_merge_with_deletes_is_idempotent(mysql_db, connections, partitioning):
    spec = orders_spec(target_partitioning=partitioning)  # upsert, delete_row
    _existing(mysql_db, spec)
    with connection(mysql_db) as conn:
        result = merge_day(conn, spec, DAY, chunk_rows=2, **_on(mysql_db, connections))
    assert (result.inserted, result.updated, result.deleted, result.chunks) == (2, 1, 1, 3)
    rows = target_rows(mysql_db, spec)
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        (1, 1, Decimal("99.0000"), "platinum"),  # only update_columns change on a match
        (1, 2, Decimal("12.3400"), "silver"),
        (4, 4, Decimal("12.3400"), "new"),
        (8, 8, Decimal("1.0000"), "keep"),
    ]
    with connection(mysql_db) as conn:
        again = merge_day(conn, spec, DAY, chunk_rows=2)
    assert target_rows(mysql_db, spec) == rows
    assert (again.inserted, again.updated, again.deleted) == (0, 3, 0)


@pytest.mark.parametrize("partitioning", ["day", "none"])
@pytest.mark.parametrize("connections", [1, 2])
def test_a_day_new_to_the_target_counts_every_put_as_inserted(mysql_db, connections, partitioning):
    """No target row of the day and the event time in the key: nothing can match, so the
    chunks skip counting matches and run on `connections` connections; a row of the day in
    the target turns both off (upserts of existing rows on two connections deadlock). The
    day's partition, or else the event-time index, tells whether the day is new."""
    spec = orders_spec(target_partitioning=partitioning)
    opened = []

    def connect():
        opened.append(1)
        return connection(mysql_db)

    with connection(mysql_db) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        cur.execute(  # the day before: not of DAY, so DAY is still new to the target
            "INSERT INTO orders (customer_id, order_id, created_at, loyalty_tier)"
            " VALUES (1, 1, '2024-02-29 23:59:59', 'yesterday')"
        )
        conn.commit()
        load_day(conn, spec, DAY, _staged_day(spec))
        on = {"connect": connect, "connections": connections}
        fresh = merge_day(conn, spec, DAY, chunk_rows=1, **on)
        extra_connections = len(opened)
        again = merge_day(conn, spec, DAY, chunk_rows=1, **on)
    assert extra_connections == connections - 1 and fresh.connections == connections
    assert len(opened) == extra_connections and again.connections == 1  # the re-merge: one
    assert (fresh.inserted, fresh.updated, fresh.deleted) == (3, 0, 0)
    assert (again.inserted, again.updated) == (0, 3)
    assert len(target_rows(mysql_db, spec)) == 4


@pytest.mark.parametrize("connections", [1, 2])
def test_update_only_keeps_unmatched_rows_and_nulls_deleted_columns(mysql_db, connections):
    spec = orders_spec(mode="update_only", on_delete="null_columns")
    _existing(mysql_db, spec)
    with connection(mysql_db) as conn:
        result = merge_day(conn, spec, DAY, chunk_rows=1, **_on(mysql_db, connections))
        again = merge_day(conn, spec, DAY, chunk_rows=1, **_on(mysql_db, connections))
    assert (result.inserted, result.updated, result.unmatched, result.deleted) == (0, 1, 2, 1)
    assert again.unmatched == 2  # recorded once per day, not once per run
    rows = {(r[0], r[1]): r[4] for r in target_rows(mysql_db, spec)}
    assert rows == {(1, 1): "platinum", (2, 1): None, (8, 8): "keep"}
    kept = fetch(mysql_db, "SELECT customer_id, order_id FROM orders_stage_unmatched ORDER BY 1")
    assert kept == ((1, 2), (4, 4))


def test_ignore_deletes_counts_them(mysql_db):
    spec = orders_spec(on_delete="ignore")
    _existing(mysql_db, spec)
    with connection(mysql_db) as conn:
        result = merge_day(conn, spec, DAY)
    assert result.deletes_ignored == 2 and result.deleted == 0
    assert (2, 1) in {(r[0], r[1]) for r in target_rows(mysql_db, spec)}


def test_a_merge_interrupted_between_chunks_finishes_on_rerun(mysql_db):
    spec = orders_spec()
    _existing(mysql_db, spec)

    def crash(chunk):
        if chunk == 1:
            raise RuntimeError("injected crash after the first chunk")

    with connection(mysql_db) as conn, pytest.raises(RuntimeError, match="injected"):
        merge_day(conn, spec, DAY, chunk_rows=2, after_chunk=crash)
    half = target_rows(mysql_db, spec)
    with connection(mysql_db) as conn:
        merge_day(conn, spec, DAY, chunk_rows=2)
    finished = target_rows(mysql_db, spec)
    assert half != finished
    assert [(r[0], r[1], r[4]) for r in finished] == [
        (1, 1, "platinum"),
        (1, 2, "silver"),
        (4, 4, "new"),
        (8, 8, "keep"),
    ]


PIPELINE = ("dynamodb_export", "parquet_partitions", "aurora_temp_table", "target_table")


@pytest.fixture
def pipeline(spec, resources, mysql_db, s3_client, dynamodb_client):
    """Seed days into the test's bucket; return (resources, assets and checks of the chain)."""

    def make(days: list[str], items_per_day: int, spec=spec):
        seed(
            spec,
            s3=s3_client,
            dynamodb=dynamodb_client,
            mysql=mysql_db,  # the legacy table: the target derives from it
            days=[dt.date.fromisoformat(d) for d in days],
            items_per_day=items_per_day,
        )
        return resources, assets_named(spec, *PIPELINE, with_checks=True)

    return make


def test_assets_from_export_to_target(spec, mysql_db, s3_client, pipeline):
    resources, assets = pipeline(["2023-01-01"], 400)
    result = dg.materialize(assets, partition_key="2023-01-01", resources=resources)
    assert result.success
    manifest = read_manifest(s3_client, spec, dt.date(2023, 1, 1))
    staged = result.asset_materializations_for_node("aurora_temp_table")[0].metadata
    merged = result.asset_materializations_for_node("target_table")[0].metadata
    assert staged["rows_loaded"].value == manifest.rows + manifest.deletes
    assert staged["method"].value == "local_infile"
    assert merged["inserted"].value == manifest.rows
    assert merged["connections"].value == 1  # one chunk of 400 rows needs no second one
    assert merged["target_partition"].value.startswith("none")  # legacy_copy's own layout
    count = fetch(mysql_db, "SELECT COUNT(*) FROM orders")[0][0]
    assert count == manifest.rows
    evaluations = result.get_asset_check_evaluations()
    assert sorted((e.asset_key.to_user_string(), e.check_name, e.passed) for e in evaluations) == [
        ("aurora_temp_table", "bigint_id_schema", True),
        ("aurora_temp_table", "json_text_parity", True),
        ("aurora_temp_table", "per_second_count_parity", True),
        ("parquet_partitions", "per_second_count_parity", True),
        ("target_table", "bigint_id_schema", True),
        ("target_table", "per_second_checksum_parity", True),
        ("target_table", "per_second_count_parity", True),
    ]
    parity = next(
        e
        for e in evaluations
        if e.asset_key.path == ["target_table"] and e.check_name == "per_second_count_parity"
    )
    assert parity.metadata["observed_rows"].value == manifest.rows

    # a row goes missing from the target: re-verify the day with the check alone
    lost = fetch(mysql_db, "SELECT customer_id, order_id, created_at FROM orders LIMIT 1")[0]
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM orders WHERE customer_id = %s AND order_id = %s AND created_at = %s", lost
        )
        conn.commit()
    recheck = dg.materialize(
        assets,
        selection=dg.AssetSelection.checks_for_assets("target_table"),
        tags={"dagster/partition": "2023-01-01"},
        resources=resources,
        raise_on_error=False,
    )
    (failed,) = [
        e
        for e in recheck.get_asset_check_evaluations()
        if e.check_name == "per_second_count_parity"
    ]
    assert not failed.passed
    assert failed.metadata["mismatched_seconds"].value == 1
    (mismatch,) = failed.metadata["first_mismatches"].value
    second = lost[2].replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert mismatch["second"] == second and mismatch["expected"] == mismatch["observed"] + 1
    (checksum,) = [
        e
        for e in recheck.get_asset_check_evaluations()
        if e.check_name == "per_second_checksum_parity"
    ]
    assert not checksum.passed
    (drill,) = checksum.metadata["differing_keys_of_first_second"].value
    assert drill["missing_in_target"] and drill["key"]["order_id"] == str(lost[1])


def test_count_parity_catches_a_row_added_to_the_target(spec, mysql_db, pipeline):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")  # then every target row of the day must come from staging
    data["s3"]["bucket"], data["dynamodb"]["table"] = spec.s3.bucket, spec.dynamodb.table
    plain = parse_spec(data)
    resources, assets = pipeline(["2023-01-01"], 100, spec=plain)
    first = dg.materialize(assets, partition_key="2023-01-01", resources=resources)
    assert first.success
    merged = first.asset_materializations_for_node("target_table")[0].metadata
    assert merged["target_partition"].value == "d20230101"  # the day's own, the intruder's too
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO orders (customer_id, order_id, created_at, loyalty_tier) "
            "VALUES (1, 999999999, '2023-01-01 12:00:00', 'intruder')"
        )
        conn.commit()
    recheck = dg.materialize(
        assets,
        selection=dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey("target_table"), "per_second_count_parity"),
            dg.AssetCheckKey(dg.AssetKey("target_table"), "per_second_checksum_parity"),
        ),
        tags={"dagster/partition": "2023-01-01"},
        resources=resources,
        raise_on_error=False,
    )
    found = {e.check_name: e for e in recheck.get_asset_check_evaluations()}
    parity, checksum = found["per_second_count_parity"], found["per_second_checksum_parity"]
    assert not parity.passed and parity.metadata["compared_by"].value == "scans"
    (mismatch,) = parity.metadata["first_mismatches"].value
    assert mismatch["second"] == "2023-01-01T12:00:00Z"
    assert mismatch["observed"] == mismatch["expected"] + 1
    assert not checksum.passed  # and its drill-down names the row no staged put accounts for
    (intruder,) = checksum.metadata["differing_keys_of_first_second"].value
    assert intruder["not_staged"] and not intruder["missing_in_target"]
    assert intruder["key"]["order_id"] == "999999999"
    assert intruder["target"] == {"loyalty_tier": "intruder"}


def test_checksum_parity_catches_a_changed_value(mysql_db, pipeline):
    resources, assets = pipeline(["2023-01-01"], 100)
    assert dg.materialize(assets, partition_key="2023-01-01", resources=resources).success
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT customer_id, order_id FROM orders WHERE loyalty_tier IS NOT NULL "
            "ORDER BY created_at LIMIT 1"
        )
        changed = cur.fetchone()
        cur.execute(
            "UPDATE orders SET loyalty_tier = 'tampered' WHERE customer_id = %s AND order_id = %s",
            changed,
        )
        conn.commit()
    recheck = dg.materialize(
        assets,
        selection=dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey("target_table"), "per_second_checksum_parity")
        ),
        tags={"dagster/partition": "2023-01-01"},
        resources=resources,
        raise_on_error=False,
    )
    (checksum,) = recheck.get_asset_check_evaluations()
    assert not checksum.passed and checksum.metadata["mismatched_seconds"].value == 1
    assert checksum.metadata["compared_by"].value == "join"  # legacy rows share the target
    (drill,) = checksum.metadata["differing_keys_of_first_second"].value
    assert drill["key"]["order_id"] == str(changed[1]) and not drill["missing_in_target"]
    assert drill["target"] == {"loyalty_tier": "tampered"}
    assert drill["staged"]["loyalty_tier"] != "tampered"


def test_json_text_parity_catches_staged_json_text_changed(mysql_db, pipeline):
    """Staged json text rewritten the way MySQL's JSON type would store it (keys re-sorted,
    spacing): the counts still agree, the json text check fails; the count check alone
    (a subset) still runs and passes."""
    resources, assets = pipeline(["2023-01-01"], 60)
    assert dg.materialize(assets, partition_key="2023-01-01", resources=resources).success
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE orders_stage SET attrs = JSON_OBJECT('normalised', 1) "
            "WHERE attrs IS NOT NULL AND _change = 'put' ORDER BY _seq LIMIT 1"
        )
        assert cur.rowcount == 1
        conn.commit()
    keys = {
        name: dg.AssetCheckKey(dg.AssetKey("aurora_temp_table"), name)
        for name in ("per_second_count_parity", "json_text_parity")
    }
    both = dg.materialize(
        assets,
        selection=dg.AssetSelection.checks(*keys.values()),
        tags={"dagster/partition": "2023-01-01"},
        resources=resources,
        raise_on_error=False,
    )
    found = {e.check_name: e for e in both.get_asset_check_evaluations()}
    assert found["per_second_count_parity"].passed
    text = found["json_text_parity"]
    assert not text.passed and text.metadata["mismatched_seconds"].value == 1
    alone = dg.materialize(
        assets,
        selection=dg.AssetSelection.checks(keys["per_second_count_parity"]),
        tags={"dagster/partition": "2023-01-01"},
        resources=resources,
    )
    assert [e.check_name for e in alone.get_asset_check_evaluations()] == [
        "per_second_count_parity"
    ]


def test_bigint_id_schema_fails_on_an_int_target(spec, stack, mysql_db):
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE orders (customer_id INT NOT NULL, order_id BIGINT NOT NULL,"
            " created_at DATETIME NOT NULL, PRIMARY KEY (customer_id, order_id, created_at))"
        )
    checks = [a for a in assets_named(spec, "target_table", with_checks=True)]
    result = dg.materialize(
        checks,
        selection=dg.AssetSelection.checks_for_assets("target_table"),
        tags={"dagster/partition": "2023-01-01"},
        resources={"mysql": MySQLResource(url=mysql_db.url)},
        raise_on_error=False,
    )
    schema = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "bigint_id_schema"
    )
    assert not schema.passed
    # with legacy_copy, the widened legacy id must be there too
    assert schema.metadata["not_bigint"].value == {"customer_id": "int", "id": "(missing)"}


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
    from migration_assets.assets.aurora import build_clean_staging_job

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


def test_a_range_run_records_each_days_check_results(
    spec, resources, mysql_db, s3_client, dynamodb_client
):
    days = ["2023-01-01", "2023-01-02"]
    seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=mysql_db,  # the legacy table: the target derives from it
        days=[dt.date.fromisoformat(d) for d in days],
        items_per_day=150,
    )
    instance = dg.DagsterInstance.ephemeral()
    graph = assets_named(  # the whole graph in one range run, as a backfill batch runs it
        spec, *PIPELINE, "bigint_table_copy", with_checks=True
    )
    result = dg.materialize(
        graph,
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[1],
        },
    )
    assert result.success
    for asset in (*PIPELINE, "bigint_table_copy"):  # each day's own figures on its event
        events = result.asset_materializations_for_node(asset)
        assert sorted(e.partition for e in events) == days
        assert all(e.metadata["run_days"].value == 2 for e in events)
    staged = {
        e.partition: e.metadata["rows_loaded"].value
        for e in result.asset_materializations_for_node("aurora_temp_table")
    }
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT _day, COUNT(*) FROM orders_stage GROUP BY _day ORDER BY _day")
        assert {str(day): count for day, count in cur.fetchall()} == staged
    per_day = {
        (e.asset_key.to_user_string(), e.check_name, e.partition): e.passed
        for e in result.get_asset_check_evaluations()
        if e.partition is not None
    }
    expected = (
        {
            (asset, check, day): True
            for asset in ("aurora_temp_table", "target_table", "bigint_table_copy")
            for check in ("per_second_count_parity", "bigint_id_schema")
            for day in days
        }
        | {("parquet_partitions", "per_second_count_parity", day): True for day in days}
        | {("target_table", "per_second_checksum_parity", day): True for day in days}
        | {("aurora_temp_table", "json_text_parity", day): True for day in days}
    )
    assert per_day == expected
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.partition == days[1])
    assert evaluation.target_materialization_data is not None  # tied to that day's materialization


def test_a_failed_blocking_check_stops_downstream_and_the_cli_exits_non_zero(
    spec, stack, mysql_db, s3_client, dynamodb_client, tmp_path, repo_root
):
    import os
    import subprocess
    import sys

    from migration_assets.mysql.ddl import temp_table_ddl

    seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=mysql_db,  # the legacy table: the target derives from it
        days=[dt.date(2023, 1, 1)],
        items_per_day=200,
    )  # every id fits INT at this size
    with connection(mysql_db) as conn, conn.cursor() as cur:  # a staging table with INT ids
        cur.execute(temp_table_ddl(spec).replace("`customer_id` BIGINT", "`customer_id` INT"))
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"], data["dynamodb"]["table"] = spec.s3.bucket, spec.dynamodb.table
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "MIGRATION_SPEC": str(spec_path),
        "MIGRATION_MYSQL_URL": mysql_db.url,
        "AWS_ENDPOINT_URL": stack.aws_endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DAGSTER_HOME": str(home),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "migration_assets.definitions",
            "--select",
            ",".join(PIPELINE),
            "--partition",
            "2023-01-01",
        ],
        cwd=tmp_path,  # not the repo: a stray .env there would override env
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0, output[-3000:]
    assert "bigint_id_schema" in output
    staged = fetch(mysql_db, "SELECT COUNT(*) FROM orders_stage")[0][0]
    assert staged >= 200, output[-4000:]  # staged (the day plus late inserts)...

    assert fetch(mysql_db, "SELECT COUNT(*) FROM orders")[0][0] == 0  # ...but never merged


def test_a_put_shadows_a_delete_of_the_same_key_in_one_day():
    from migration_assets.partition_builder import _partition_table

    spec = orders_spec()
    rows = day_table(spec, [row(1, 1, 5, tier="alive"), row(2, 2, 6)]).drop_columns(["_change"])
    deletes = day_table(spec, [row(1, 1, 5, tier="old", change="delete"), row(3, 3, 7)])
    table, rejects = _partition_table(spec, DAY, rows, deletes.drop_columns(["_change"]))
    kept = [(r["customer_id"], r["_change"], r["loyalty_tier"]) for r in table.to_pylist()]
    assert kept == [(1, "put", "alive"), (2, "put", "gold"), (3, "delete", "gold")]
    assert not rejects


def test_a_delete_never_removes_a_row_of_another_day(mysql_db):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    data["mysql"]["key"] = ["customer_id", "order_id"]  # the event time is not in the key
    spec = parse_spec(data)
    with connection(mysql_db) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        cur.execute(  # the item moved to OTHER and was merged there first
            "INSERT INTO orders (customer_id, order_id, created_at, loyalty_tier)"
            " VALUES (1, 1, '2024-03-02 08:00:00', 'moved')"
        )
        conn.commit()
        load_day(conn, spec, DAY, day_table(spec, [row(1, 1, 5, change="delete")]))
        result = merge_day(conn, spec, DAY)
    assert result.deleted == 0
    assert fetch(mysql_db, "SELECT loyalty_tier FROM orders") == (("moved",),)


@pytest.mark.parametrize("method", ["join", "auto"])
@pytest.mark.parametrize("connections", [1, 2, 3])
def test_merged_counts_see_rows_the_staged_puts_do_not_account_for(mysql_db, connections, method):
    """Before the merge: (1,1) matches with another tier, (2,1) is a delete whose row is still
    there, (8,8) no staged row has; (1,2) and (4,4) are not in the target yet. On several
    connections the join or the scans are cut into ranges: the same facts. The join counts a
    put held with other values as missing; the scans (`auto` here) count the target's rows
    of the day and leave values to the checksums: both see the deleted and the unstaged row."""
    from migration_assets.quality.counts import (
        merged_day,
        merged_second_counts,
        staged_second_counts,
    )

    spec = orders_spec()  # upsert + delete_row: every target row of the day must be staged
    _existing(mysql_db, spec)
    start = int(dt.datetime.combine(DAY, dt.time(), UTC).timestamp())
    with connection(mysql_db) as conn:
        staged = staged_second_counts(conn, spec, DAY)
        on = {**_on(mysql_db, connections), "method": method}
        found = merged_day(conn, spec, DAY, **on)
        before = merged_second_counts(conn, spec, DAY, found)
        merge_day(conn, spec, DAY)
        facts = merged_day(conn, spec, DAY, **on)
        after = merged_second_counts(conn, spec, DAY, facts)
        assert facts == merged_day(conn, spec, DAY, method=method)  # one connection
        assert staged_second_counts(conn, spec, DAY, **_on(mysql_db, connections)) == staged
    assert facts.method == found.method == ("scans" if method == "auto" else "join")
    assert facts.staged == staged  # the same pass also counts the staged puts
    held_elsewhere = {start + 10: 1} if method == "auto" else {}  # (1,1), still bronze
    assert before == {**held_elsewhere, start + 30: 1, start + 50: 1}
    assert before != found.staged and after != facts.staged
    assert after == {**staged, start + 50: staged[start + 50] + 1}  # (8,8) is still extra


@pytest.mark.parametrize("mode", ["upsert", "update_only"])
def test_checksums_compare_only_what_the_merge_promises(mysql_db, mode):
    """Before the merge (1,1) holds another tier; after it both sides agree; update_only
    leaves the unmatched puts (1,2), (4,4) to the count check."""
    from migration_assets.quality.counts import merged_day

    spec = orders_spec(mode=mode)
    _existing(mysql_db, spec)
    start = int(dt.datetime.combine(DAY, dt.time(), UTC).timestamp())
    with connection(mysql_db) as conn:
        before = merged_day(conn, spec, DAY, method="join")
        merge_day(conn, spec, DAY)
        after = merged_day(conn, spec, DAY, method="join")
    staged_before, target_before = before.staged_checksums, before.target_checksums
    staged_after, target_after = after.staged_checksums, after.target_checksums
    assert staged_before[start + 10] != target_before[start + 10]
    assert staged_after == target_after == staged_before
    matched = {start + 10} if mode == "update_only" else {start + 10, start + 20, start + 50}
    assert set(staged_after) == matched


def test_scanned_checksums_see_every_row_of_the_day(mysql_db):
    """Scans checksum the target's whole day: before the merge (1,1)'s other tier and the
    rows (2,1), (8,8) no put accounts for differ; after it, only the second of (8,8)."""
    from migration_assets.quality.counts import merged_day

    spec = orders_spec()
    _existing(mysql_db, spec)
    start = int(dt.datetime.combine(DAY, dt.time(), UTC).timestamp())
    with connection(mysql_db) as conn:
        before = merged_day(conn, spec, DAY)
        merge_day(conn, spec, DAY)
        after = merged_day(conn, spec, DAY)
        joined = merged_day(conn, spec, DAY, method="join")
    assert before.method == after.method == "scans"
    assert set(before.target_checksums) == {start + 10, start + 30, start + 50}
    assert before.staged_checksums == after.staged_checksums == joined.staged_checksums
    differing = {
        second
        for second in set(after.staged_checksums) | set(after.target_checksums)
        if after.staged_checksums.get(second) != after.target_checksums.get(second)
    }
    assert differing == {start + 50}  # (4,4) and (8,8) there, only (4,4) staged
    for second in (start + 10, start + 20):  # the join finds the same rows there
        assert after.target_checksums[second] == joined.target_checksums[second]


def test_a_staged_put_outside_its_day_is_compared_by_the_join(mysql_db):
    """A staged put outside its day (parquet_partitions quarantines such records, but a
    staging table loaded by other means may hold one): the target's day window would not
    hold it, so the comparison falls back to the join, which finds it."""
    from migration_assets.quality.counts import merged_day, merged_second_counts

    spec = orders_spec()
    early = dt.datetime.combine(DAY, dt.time(), UTC) - dt.timedelta(seconds=5)
    rows = [row(1, 1, 7), row(2, 2, 0, created_at=early)]
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        load_day(conn, spec, DAY, day_table(spec, rows))
        merge_day(conn, spec, DAY)
        facts = merged_day(conn, spec, DAY)
        observed = merged_second_counts(conn, spec, DAY, facts)
    assert facts.method == "join"
    assert observed == facts.staged and int(early.timestamp()) in facts.staged
    assert facts.staged_checksums == facts.target_checksums


def test_the_row_hash_tells_apart_rows_a_joined_text_would_confuse(mysql_db):
    """A value holding the separator, or a string reading like NULL, is not another row."""
    from migration_assets.quality.counts import _row_hash

    rows = [("a|b", "c"), ("a", "b|c"), ("\\N", "z"), (None, "z"), ("NULL", "z"), ("a,b", "c")]
    rows += [("a", "b,c"), ("'a'", None), ("a", None), ("", None), (None, None)]
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE pairs (n INT PRIMARY KEY, x VARCHAR(8), y VARCHAR(8))")
        cur.executemany(
            "INSERT INTO pairs VALUES (%s, %s, %s)", [(n, *r) for n, r in enumerate(rows)]
        )
        cur.execute(f"SELECT {_row_hash('t', ('x', 'y'))} FROM pairs t ORDER BY n")
        hashes = [h for (h,) in cur.fetchall()]
    assert len(set(hashes)) == len(rows)
