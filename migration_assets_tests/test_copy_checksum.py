"""`bigint_table_copy`'s `per_second_checksum_parity` and the cutover it gates, against a real
MariaDB: a value changed after the copy is named with both sides' values; tombstones and the
widened ids are not differences."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import yaml

from migration_assets.defs.bigint_copy.assets import build_legacy_jobs
from migration_assets.mysql.catalog import table_columns
from migration_assets.mysql.connection import connection
from migration_assets.mysql.copy_checksum import compared_columns, day_checksums, drill_down
from migration_assets.mysql.cutover import CutoverRefused, cutover, verify_day
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.legacy import copy_day, legacy_key
from migration_assets.mysql.merge import merge_day
from migration_assets.mysql.seconds import row_hash
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import INT_MAX, assets_named, execute, fetch

DAY, NEXT = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
COLUMNS = "id, customer_id, order_id, created_at, amount, attrs, note"
CHECKS = [
    dg.AssetCheckKey(dg.AssetKey("bigint_table_copy"), "per_second_checksum_parity"),
    dg.AssetCheckKey(dg.AssetKey("bigint_table_copy"), "per_second_count_parity"),
]


def legacy_spec(end: str | None = None, **legacy_copy):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["partitions"]["start"] = DAY.isoformat()
    data["legacy_copy"].update(legacy_copy)
    if end:
        data["partitions"]["end"] = end
    return parse_spec(data)


@pytest.fixture
def legacy(mysql_db):
    """A legacy table of two days, 40 rows each (a few per second), with INT ids near the
    INT limit, negative ones, NULLs, JSON and a note column the spec does not know."""
    execute(
        mysql_db,
        "CREATE TABLE table01 (id INT(11) NOT NULL AUTO_INCREMENT,"
        " customer_id INT(11) NOT NULL, order_id INT(11) NOT NULL,"
        " created_at DATETIME NOT NULL, amount DECIMAL(18,4), attrs JSON, note VARCHAR(64),"
        " PRIMARY KEY (id), KEY by_time (created_at))",
    )
    values = []
    for day in (DAY, NEXT):
        for i in range(40):
            n = len(values) + 1
            values.append(
                (
                    INT_MAX - 100 + n if i == 39 and day == DAY else n,  # NEXT: dense ids
                    INT_MAX - n if i % 3 == 0 else -n,
                    n,
                    dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=(i // 3) * 600),
                    None if i % 5 == 0 else f"{n}.{n % 100:02d}",
                    None if i % 4 else f'{{"n": {n}}}',
                    None if i % 2 else f"note {n}, 'quoted'",
                )
            )
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO table01 ({COLUMNS}) VALUES ({', '.join(['%s'] * 7)})", values)
        conn.commit()
    return mysql_db


def copy(settings, spec, *days):
    with connection(settings) as conn:
        ensure_tables(conn, spec)
    for day in days:
        copy_day(lambda: connection(settings), spec, day, chunk_rows=7, connections=2)


def change_three_values(settings) -> dict[int, tuple[str, str, str]]:
    """An amount, a note and a customer id of three copied rows of DAY changed by hand:
    {id: (column, legacy value, new value)}."""
    ids = [
        r[0]
        for r in fetch(
            settings,
            "SELECT id FROM orders WHERE note IS NOT NULL "
            "AND amount IS NOT NULL AND created_at < %s ORDER BY id",
            (NEXT,),
        )
    ]
    a, b, c = ids[1], ids[3], ids[5]
    before = {
        r[0]: r[1:]
        for r in fetch(
            settings,
            "SELECT id, amount, note, customer_id FROM orders WHERE id IN (%s, %s, %s)",
            (a, b, c),
        )
    }
    execute(settings, "UPDATE orders SET amount = amount + 1 WHERE id = %s", (a,))
    execute(settings, "UPDATE orders SET note = 'changed' WHERE id = %s", (b,))
    execute(settings, "UPDATE orders SET customer_id = customer_id + 7 WHERE id = %s", (c,))
    return {
        a: ("amount", str(before[a][0]), str(before[a][0] + 1)),
        b: ("note", before[b][1], "changed"),
        c: ("customer_id", str(before[c][2]), str(before[c][2] + 7)),
    }


def check_results(spec, resources, day):
    """The two copy checks executed alone for one day."""
    result = dg.materialize(
        assets_named(spec, "bigint_table_copy", with_checks=True),
        selection=dg.AssetSelection.checks(*CHECKS),
        tags={"dagster/partition": day.isoformat()},
        resources=resources,
        raise_on_error=False,
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_changed_value_fails_the_checksum_naming_keys_and_both_values(legacy, resources):
    spec = legacy_spec()
    copied = dg.materialize(
        assets_named(spec, "bigint_table_copy", with_checks=True),
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": DAY.isoformat(),
            "dagster/asset_partition_range_end": NEXT.isoformat(),
        },
    )
    assert copied.success
    evaluations = copied.get_asset_check_evaluations()
    checksums = [e for e in evaluations if e.check_name == "per_second_checksum_parity"]
    assert len(checksums) == 3 and all(e.passed for e in checksums)  # per day and the run
    changed = change_three_values(legacy)
    failed = check_results(spec, resources, DAY)
    checksum, count = failed["per_second_checksum_parity"], failed["per_second_count_parity"]
    assert count.passed and not checksum.passed  # counts cannot see a changed value
    assert checksum.metadata["mismatched_seconds"].value == 3
    assert checksum.metadata["rows_compared"].value == 40
    assert "note" in checksum.metadata["columns_compared"].value
    keys = checksum.metadata["differing_keys"].value
    assert {int(k["key"]["id"]): (*k["legacy"].items(), *k["new"].items()) for k in keys} == {
        i: ((column, old), (column, new)) for i, (column, old, new) in changed.items()
    }
    assert {k["difference"] for k in keys} == {"changed"}
    assert "3 changed" in checksum.description and "differing_keys" in checksum.description
    untouched = check_results(spec, resources, NEXT)
    assert all(e.passed for e in untouched.values()) and len(untouched) == 2


def test_a_lost_row_fails_the_count_naming_its_key_and_a_changed_one_does_not(legacy, resources):
    """The count check counts rows: one lost fails it with its key named; one changed is
    the checksum's alone (both name their keys)."""
    spec = legacy_spec()
    copy(legacy, spec, DAY)
    execute(legacy, "DELETE FROM orders WHERE id = 2")
    execute(legacy, "UPDATE orders SET note = 'changed' WHERE id = 6")
    found = check_results(spec, resources, DAY)
    count, checksum = found["per_second_count_parity"], found["per_second_checksum_parity"]
    assert not count.passed and count.metadata["mismatched_seconds"].value == 1
    (lost,) = count.metadata["differing_keys"].value
    assert (lost["key"], lost["difference"], lost["new"]) == ({"id": "2"}, "missing", {})
    assert count.description.startswith("table01 -> orders: 1 row(s) missing and 0 extra")
    keys = {k["key"]["id"]: k for k in checksum.metadata["differing_keys"].value}
    assert {i: k["difference"] for i, k in keys.items()} == {"2": "missing", "6": "changed"}
    assert keys["6"]["new"] == {"note": "changed"} and keys["6"]["legacy"]["note"] != "changed"
    assert "1 changed, 1 missing" in checksum.description


def test_the_widened_values_hash_alike_and_a_lost_or_added_row_is_a_difference(legacy):
    spec = legacy_spec()
    copy(legacy, spec, DAY, NEXT)
    with connection(legacy) as conn:
        assert table_columns(conn, "table01")["customer_id"].data_type == "int"
        assert table_columns(conn, "orders")["customer_id"].data_type == "bigint"
        columns = compared_columns(conn, spec)
        assert columns == ("id", "customer_id", "order_id", "created_at", "amount", "attrs", "note")
    quoted = fetch(  # every widened value QUOTEs, and every row hashes, the same on both sides
        legacy,
        f"SELECT SUM(QUOTE(l.id) = QUOTE(t.id) AND QUOTE(l.customer_id) = QUOTE(t.customer_id)"
        f" AND QUOTE(l.order_id) = QUOTE(t.order_id)), SUM({row_hash('l', columns)} = "
        f"{row_hash('t', columns)}), COUNT(*), MAX(l.id), MIN(l.customer_id)"
        " FROM table01 l JOIN orders t ON t.id = l.id",
    )[0]
    assert quoted[:3] == (80, 80, 80) and quoted[3] > INT_MAX - 100 and quoted[4] < 0
    # same-length notes swapped between two rows of one second: a XOR of CRC32s cannot see it
    execute(
        legacy,
        "UPDATE orders SET note = IF(id = 1, %s, %s) WHERE id IN (1, 3)",
        ("note 3, 'quoted'", "note 1, 'quoted'"),
    )
    with connection(legacy) as conn:
        key = legacy_key(conn, spec)
        seconds = day_checksums(conn, spec, DAY, key).differing_seconds()
        swapped = drill_down(conn, spec, DAY, seconds, key)
    assert [(k["key"]["id"], k["legacy"], k["new"]) for k in swapped] == [
        ("1", {"note": "note 1, 'quoted'"}, {"note": "note 3, 'quoted'"}),
        ("3", {"note": "note 3, 'quoted'"}, {"note": "note 1, 'quoted'"}),
    ]
    copy(legacy, spec, DAY)  # re-copied: the same again
    execute(legacy, "DELETE FROM orders WHERE id = 2")  # lost
    execute(  # a row in the legacy range the legacy table never held
        legacy,
        f"INSERT INTO orders ({COLUMNS}) SELECT 1000, customer_id, 1000, created_at, amount,"
        " attrs, note FROM orders WHERE id = 5",
    )
    with connection(legacy) as conn:
        key = legacy_key(conn, spec)
        sums = day_checksums(conn, spec, DAY, key)
        seconds = sums.differing_seconds()
        found = drill_down(conn, spec, DAY, seconds, key)
    assert len(seconds) == 2
    assert {(k["key"]["id"], k["difference"]) for k in found} == {
        ("2", "missing"),
        ("1000", "extra"),
    }


def test_a_row_the_merge_tombstoned_is_not_a_difference(legacy):
    spec = legacy_spec()
    copy(legacy, spec, DAY)
    gone = fetch(legacy, "SELECT customer_id, order_id, created_at FROM table01 WHERE id = 4")[0]
    with connection(legacy) as conn, conn.cursor() as cur:
        cur.execute(  # DynamoDB deleted the item of row 4: staged as a delete of the day
            "INSERT INTO orders_stage (_day, _seq, _change, customer_id, order_id, created_at)"
            " VALUES (%s, 1, 'delete', %s, %s, %s)",
            (DAY, *gone),
        )
        conn.commit()
        assert merge_day(conn, spec, DAY).deleted == 1
        key = legacy_key(conn, spec)
        sums = day_checksums(
            conn, spec, DAY, key, connect=lambda: connection(legacy), connections=3
        )
        assert sums.differing_seconds() == []
        assert sum(sums.legacy_rows.values()) == 39  # the tombstoned row is taken off
        verify_day(conn, spec, DAY, key)  # the cutover's verification agrees
    execute(  # the tombstoned row back in the new table: now it is a difference
        legacy,
        f"INSERT INTO orders ({COLUMNS}) SELECT {COLUMNS} FROM table01 WHERE id = 4",
    )
    with connection(legacy) as conn:
        sums = day_checksums(conn, spec, DAY, legacy_key(conn, spec))
        assert len(sums.differing_seconds()) == 1


@pytest.mark.parametrize(
    "capture, refusal",
    [
        # without capture, the unlocked pass over every copied day refuses
        ("none", "1 days differ: 2024-03-01 (first second 2024-03-01T"),
        # with capture, a day still differing after the unlocked passes refuses under the lock
        ("binlog", "2024-03-01: the values of 3 seconds differ between 'table01' and 'orders'"),
    ],
)
def test_the_cutover_refuses_a_day_whose_values_differ_then_succeeds_after_a_recopy(
    legacy, resources, capture, refusal
):
    # the last day, NEXT + 1, is verified under the lock
    spec = legacy_spec(end="2024-03-04", change_capture=capture)
    last = dt.date(2024, 3, 3)
    execute(
        legacy,
        "INSERT INTO table01 (customer_id, order_id, created_at) VALUES (1, 1, '2024-03-03 08:00')",
    )
    copy(legacy, spec, DAY, NEXT, last)
    changed = change_three_values(legacy)
    (cutover_job,) = [j for j in build_legacy_jobs(spec) if j.name == "bigint_cutover"]
    config = {"confirm_table": "table01", "verify_days": 1}
    refused = cutover_job.execute_in_process(
        run_config={"ops": {"swap_in_bigint_table": {"config": config}}},
        resources={"mysql": resources["mysql"]},
        raise_on_error=False,
    )
    assert not refused.success
    (failure,) = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.event_specific_data.user_failure_data
    first = min(changed)
    assert (
        error.description.startswith(refusal)
        and "re-materialize bigint_table_copy for " in error.description
        and error.description.endswith("; nothing renamed")
    )
    (day,) = error.metadata["differing_days"].value
    assert day["day"] == "2024-03-01" and day["differing_seconds"] == 3
    assert int(day["first_key"]["key"]["id"]) == first and day["first_key"]["legacy"]
    with connection(legacy) as conn:  # nothing renamed
        assert table_columns(conn, "table01")["id"].data_type == "int"
        assert table_columns(conn, "orders") and not table_columns(conn, "table01_old")
    recopied = dg.materialize(  # bigint_table_copy re-materialized for the day, checks green
        assets_named(spec, "bigint_table_copy", with_checks=True),
        partition_key=DAY.isoformat(),
        resources=resources,
    )
    assert recopied.success and all(e.passed for e in recopied.get_asset_check_evaluations())
    done = cutover(lambda: connection(legacy), spec, verify_days=1)
    assert done.checksummed_days == 2 and done.verified_days == ["2024-03-03"]
    with connection(legacy) as conn:
        assert table_columns(conn, "table01")["id"].data_type == "bigint"
    new = fetch(legacy, f"SELECT {COLUMNS} FROM table01 WHERE id <= {INT_MAX} ORDER BY id")
    assert new == fetch(legacy, f"SELECT {COLUMNS} FROM table01_old ORDER BY id")


def test_a_value_changed_on_a_day_verified_under_the_lock_refuses(legacy):
    spec = legacy_spec(end="2024-03-03")
    copy(legacy, spec, DAY, NEXT)
    execute(legacy, "UPDATE orders SET note = 'late edit' WHERE id = 45")  # on NEXT
    with pytest.raises(
        CutoverRefused,
        match=r"2024-03-02: the values of 1 seconds differ .*"
        r"key id=45\); re-materialize bigint_table_copy for it; nothing renamed",
    ):
        cutover(lambda: connection(legacy), spec, verify_days=1)
    with connection(legacy) as conn:
        assert table_columns(conn, "table01")["id"].data_type == "int"
        assert not table_columns(conn, "table01_old")
