"""The chain from an export to the target through real Dagster runs, and the checks that
prove each day: a row added, a value changed, an INT id, a range run, a failed blocking check."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import yaml

from migration_assets.defs.resources import MySQLResource
from migration_assets.devstack.seed import seed
from migration_assets.mysql.connection import connection
from migration_assets.parquet.store import read_manifest
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import (
    UTC,
    assets_named,
    fetch,
)

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

    # a row goes missing from the target and another's value changes, in other seconds:
    # re-verify the day with its checks alone
    lost, changed = fetch(
        mysql_db,
        "SELECT customer_id, order_id, created_at FROM orders WHERE loyalty_tier IS NOT NULL "
        "ORDER BY created_at LIMIT 2",
    )
    assert lost[2] != changed[2]
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM orders WHERE customer_id = %s AND order_id = %s AND created_at = %s", lost
        )
        cur.execute(
            "UPDATE orders SET loyalty_tier = 'tampered' "
            "WHERE customer_id = %s AND order_id = %s AND created_at = %s",
            changed,
        )
        conn.commit()
    recheck = dg.materialize(
        assets,
        selection=dg.AssetSelection.checks_for_assets("target_table"),
        tags={"dagster/partition": "2023-01-01"},
        resources=resources,
        raise_on_error=False,
    )
    found = {e.check_name: e for e in recheck.get_asset_check_evaluations()}
    failed = found["per_second_count_parity"]  # rows counted: the changed row is there
    assert not failed.passed and failed.metadata["compared_by"].value == "join"
    assert failed.metadata["observed_rows"].value == manifest.rows - 1
    assert failed.metadata["mismatched_seconds"].value == 1
    (mismatch,) = failed.metadata["first_mismatches"].value
    second = lost[2].replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert mismatch["second"] == second and mismatch["expected"] == mismatch["observed"] + 1
    (named,) = failed.metadata["differing_keys"].value
    assert named["difference"] == "missing" and named["key"]["order_id"] == str(lost[1])
    assert failed.description.startswith("staging -> target: 1 row(s) missing and 0 extra")
    assert second in failed.description
    checksum = found["per_second_checksum_parity"]  # names both keys, each in its second
    assert not checksum.passed and checksum.metadata["mismatched_seconds"].value == 2
    drill = {k["difference"]: k for k in checksum.metadata["differing_keys"].value}
    assert set(drill) == {"missing", "changed"}
    assert drill["missing"]["key"]["order_id"] == str(lost[1])
    assert drill["missing"]["second"] == second and drill["missing"]["target"] == {}
    assert drill["changed"]["key"]["order_id"] == str(changed[1])
    assert drill["changed"]["target"] == {"loyalty_tier": "tampered"}
    assert drill["changed"]["staged"]["loyalty_tier"] not in (None, "tampered")
    assert "1 changed, 1 missing" in checksum.description
    assert "at most 100 keys" in checksum.metadata["differing_keys_bound"].value


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
    (intruder,) = checksum.metadata["differing_keys"].value
    assert intruder["difference"] == "extra" and intruder["second"] == "2023-01-01T12:00:00Z"
    assert parity.metadata["differing_keys"].value == [intruder]
    assert parity.description.startswith("staging -> target: 0 row(s) missing and 1 extra")
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
    (drill,) = checksum.metadata["differing_keys"].value
    assert drill["key"]["order_id"] == str(changed[1]) and drill["difference"] == "changed"
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
        | {
            (asset, "per_second_checksum_parity", day): True
            for asset in ("target_table", "bigint_table_copy")
            for day in days
        }
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
