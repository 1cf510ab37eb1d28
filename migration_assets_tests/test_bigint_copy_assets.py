"""`bigint_table_copy`, its checks and the catch-up and cutover jobs, through Dagster."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import yaml

from migration_assets.definitions import build_assets
from migration_assets.defs.bigint_copy.assets import build_legacy_jobs
from migration_assets.devstack.seed import seed
from migration_assets.mysql.catalog import table_columns
from migration_assets.mysql.connection import connection
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import assets_named

INT_MAX = 2**31 - 1
DAYS = ["2023-01-01", "2023-01-02"]


def fetch(settings, sql, params=()):
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.fixture
def world(spec, resources, mysql_db, s3_client, dynamodb_client):
    """The seeded world (exports and the legacy table) for DAYS, and the resources."""
    report = seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=mysql_db,
        days=[dt.date.fromisoformat(d) for d in DAYS],
        items_per_day=600,
    )
    return report, resources


def evaluations(result):
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_the_whole_graph_copies_merges_and_proves_a_day(spec, mysql_db, world):
    report, resources = world
    day = DAYS[1]  # the day with incremental changes (updates, deletes, late inserts)
    result = dg.materialize(build_assets(spec), partition_key=day, resources=resources)
    assert result.success
    checks = evaluations(result)
    assert len(checks) == 10 and all(e.passed for e in checks.values())
    assert checks[("aurora_temp_table", "json_text_parity")].metadata["seconds_compared"].value
    parity = checks[("bigint_table_copy", "per_second_count_parity")]
    legacy_rows = fetch(
        mysql_db,
        "SELECT COUNT(*) FROM table01 WHERE created_at >= %s AND created_at < %s",
        (day, "2023-01-03"),
    )[0][0]
    assert parity.metadata["expected_rows"].value == legacy_rows > 0
    copy = result.asset_materializations_for_node("bigint_table_copy")[0].metadata
    assert copy["rows_copied"].value == legacy_rows
    # the max INT id survived, DynamoDB-only rows were numbered above every INT id
    ids = fetch(
        mysql_db,
        "SELECT MAX(id), SUM(id > %s), MAX(customer_id) FROM orders "
        "WHERE created_at >= %s AND created_at < %s",
        (INT_MAX, day, "2023-01-03"),
    )[0]
    assert ids[1] > 0 and ids[2] > INT_MAX  # ids only BIGINT can hold
    # the merge's deletes of legacy rows are tombstones: the copy's parity still holds
    tombstones = fetch(mysql_db, "SELECT COUNT(*) FROM orders_tombstones")[0][0]
    recheck = dg.materialize(
        build_assets(spec),
        selection=dg.AssetSelection.checks_for_assets("bigint_table_copy"),
        tags={"dagster/partition": day},
        resources=resources,
    )
    assert recheck.success and all(e.passed for e in evaluations(recheck).values())
    assert tombstones > 0  # the seed deletes items that the legacy table holds too


def test_the_copy_parity_catches_a_lost_row_and_the_schema_check_an_int_target(
    spec, mysql_db, world
):
    _, resources = world
    copy = assets_named(spec, "bigint_table_copy", with_checks=True)
    assert dg.materialize(copy, partition_key=DAYS[0], resources=resources).success
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE created_at >= %s ORDER BY id LIMIT 1", (DAYS[0],))
        conn.commit()
    recheck = dg.materialize(
        copy,
        selection=dg.AssetSelection.checks_for_assets("bigint_table_copy"),
        tags={"dagster/partition": DAYS[0]},
        resources=resources,
        raise_on_error=False,
    )
    parity = evaluations(recheck)[("bigint_table_copy", "per_second_count_parity")]
    assert not parity.passed and parity.metadata["mismatched_seconds"].value == 1
    with connection(mysql_db) as conn, conn.cursor() as cur:  # a target made with INT ids
        cur.execute("DROP TABLE orders")
        cur.execute(
            "CREATE TABLE orders (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            " customer_id BIGINT NOT NULL, order_id BIGINT NOT NULL, created_at DATETIME NOT"
            " NULL, amount DECIMAL(18,4), attrs JSON, loyalty_tier VARCHAR(32),"
            " UNIQUE KEY merge_key (customer_id, order_id, created_at))"
        )
    failed = dg.materialize(copy, partition_key=DAYS[0], resources=resources, raise_on_error=False)
    assert not failed.success  # the blocking check fails the run
    schema = evaluations(failed)[("bigint_table_copy", "bigint_id_schema")]
    assert not schema.passed and schema.metadata["not_bigint"].value == {"id": "int"}


@pytest.mark.parametrize("change_capture", ["binlog", "none"])
def test_catch_up_and_cutover_jobs(spec, mysql_db, world, change_capture):
    _, resources = world
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"], data["dynamodb"]["table"] = spec.s3.bucket, spec.dynamodb.table
    data["partitions"]["end"] = "2023-01-03"  # a bounded migration: its last day is verified
    data["legacy_copy"]["change_capture"] = change_capture
    bounded = parse_spec(data)
    copy = assets_named(bounded, "bigint_table_copy", with_checks=True)
    assert dg.materialize(
        copy,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": DAYS[0],
            "dagster/asset_partition_range_end": DAYS[1],
        },
    ).success
    with connection(mysql_db) as conn, conn.cursor() as cur:  # the application writes on
        cur.execute(
            "INSERT INTO table01 (id, customer_id, order_id, created_at, amount)"
            " SELECT MAX(id) + 1, 1, 1, '2023-01-02 10:00:00', 1 FROM table01"
        )
        conn.commit()
    catch_up, cutover, *capture = build_legacy_jobs(bounded)
    assert [job.name for job in capture] == (
        ["bigint_change_capture"] if change_capture == "binlog" else []
    )
    tail = catch_up.execute_in_process(resources={"mysql": resources["mysql"]})
    assert tail.success
    (output,) = [e for e in tail.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    if change_capture == "binlog":  # the insert came from the binlog, with the day it changed
        assert metadata["row_events_applied"].value == 1 and metadata["caught_up"].value
        assert metadata["days_changed_this_run"].value == ["2023-01-02"]
        assert metadata["days_changed_since_copy"].value == ["2023-01-02"]
        assert metadata["lag_events"].value == 0
    else:
        assert metadata["new_rows_copied"].value == 1 and metadata["rows_behind"].value == 0
    refused = cutover.execute_in_process(
        run_config={"ops": {"swap_in_bigint_table": {"config": {"confirm_table": "orders"}}}},
        resources={"mysql": resources["mysql"]},
        raise_on_error=False,
    )
    assert not refused.success  # the confirmation must name the legacy table
    done = cutover.execute_in_process(
        run_config={
            "ops": {
                "swap_in_bigint_table": {"config": {"confirm_table": "table01", "verify_days": 1}}
            }
        },
        resources={"mysql": resources["mysql"]},
    )
    assert done.success
    with connection(mysql_db) as conn:
        assert table_columns(conn, "table01")["id"].data_type == "bigint"
        assert table_columns(conn, "table01_old")["id"].data_type == "int"
    assert (
        fetch(mysql_db, "SELECT COUNT(*) FROM table01")[0][0]
        == fetch(mysql_db, "SELECT COUNT(*) FROM table01_old")[0][0]
    )
