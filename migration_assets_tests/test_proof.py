"""The migration's proof: the per-day table built from plain inputs (`quality/proof.py`),
then over a three-year backfill in a real Dagster instance, broken by hand afterwards."""

from __future__ import annotations

import csv
import datetime as dt
import io

import dagster as dg
import yaml

from migration_assets.definitions import build_assets
from migration_assets.defs.partitions import daily_partitions
from migration_assets.defs.proof.assets import build_migration_proof
from migration_assets.defs.proof.sensors import build_proof_sensor
from migration_assets.devstack.seed import seed
from migration_assets.mysql.connection import connection
from migration_assets.quality import proof
from migration_assets.quality.proof import FAILED, MISSING, PASSED, STALE, Hop, Totals, Verdict
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import UTC, fetch

HOPS = [Hop("export"), Hop("parquet", ("count", "schema")), Hop("target", ("count",))]
DAYS = ["2023-01-01", "2023-01-02", "2023-01-03", "2023-01-04"]


def ok(current: bool = True) -> Verdict:
    return Verdict(True, current)


def test_a_hop_is_missing_stale_failed_or_passed():
    assert proof.hop_status(False, [ok()]) == MISSING
    assert proof.hop_status(True, []) == PASSED  # a hop without checks: materialized
    assert proof.hop_status(True, [ok(), ok()]) == PASSED
    assert proof.hop_status(True, [ok(), None]) == STALE  # never evaluated
    assert proof.hop_status(True, [ok(), ok(current=False)]) == STALE  # re-materialized since
    assert proof.hop_status(True, [Verdict(None, True)]) == STALE  # planned, never finished
    assert proof.hop_status(True, [ok(), Verdict(False, True)]) == FAILED
    assert proof.hop_status(True, [Verdict(False, False)]) == STALE  # judged an older one
    assert proof.hop_status(True, [None, Verdict(False, True)]) == FAILED  # a current failure


def table() -> proof.Proof:
    """Day 1 passes; day 2 lost a row at the target; day 3 was never converted; day 4's
    Parquet was converted again after its checks."""
    failed = Verdict(
        False,
        True,
        {
            "expected_rows": 5,
            "observed_rows": 4,
            "first_mismatches": [{"second": "2023-01-02T00:00:07Z", "expected": 2, "observed": 1}],
        },
        "staging -> target: 1 row(s) missing and 0 extra; 1 of 5 seconds differ.",
    )
    verdicts = {
        ("parquet", "count"): {d: ok(d != "2023-01-04") for d in DAYS if d != "2023-01-03"},
        ("parquet", "schema"): {d: ok() for d in DAYS if d != "2023-01-03"},
        ("target", "count"): {"2023-01-01": ok(), "2023-01-02": failed, "2023-01-04": ok()},
    }
    materialized = {
        "export": set(DAYS),
        "parquet": {"2023-01-01", "2023-01-02", "2023-01-04"},
        "target": {"2023-01-01", "2023-01-02", "2023-01-04"},
    }
    rows = {
        "export_items": {"2023-01-01": 5, "2023-01-02": 5, "2023-01-04": 5},
        "target_rows": {"2023-01-01": 5, "2023-01-02": 4, "2023-01-04": 5},
    }
    return proof.build_proof(
        DAYS, HOPS, materialized, verdicts, rows, Totals(15, 15, 0, ("full",)), "count"
    )


def test_the_table_names_the_failed_day_its_hop_and_seconds():
    built = table()
    assert [d.status for d in built.days] == [
        {"export": PASSED, "parquet": PASSED, "target": PASSED},
        {"export": PASSED, "parquet": PASSED, "target": FAILED},
        {"export": PASSED, "parquet": MISSING, "target": MISSING},
        {"export": PASSED, "parquet": STALE, "target": PASSED},
    ]
    (failed,) = built.failed_days()
    assert (failed.day, failed.lost_at, failed.lost_rows) == ("2023-01-02", "target", 1)
    assert failed.seconds == ["2023-01-02T00:00:07Z"] and "1 row(s) missing" in failed.why
    assert built.counts()["parquet"] == {PASSED: 2, FAILED: 0, STALE: 1, MISSING: 1}
    assert built.totals["total_export_items"] == 15 and built.totals["export_items_match"]
    assert not built.complete()
    numbers = proof.numbers(built)
    assert numbers["days_failed"] == 1 and numbers["days_missing"] == 1
    assert numbers["days_stale"] == 1 and numbers["days_passed"] == 1
    assert numbers["target_days_failed"] == 1 and numbers["complete"] is False


def test_the_totals_against_the_manifests_and_the_legacy_table():
    rows = {"export_items": {"d": 10}, "legacy_rows": {"d": 7}, "copied_rows": {"d": 6}}
    found = proof.compare_totals(rows, Totals(9, 9, 0, ("full",), legacy_rows=7))
    assert not found["export_items_match"] and found["legacy_rows_match"]
    assert not found["copied_rows_match"]
    # with incrementals: within their changes of the full export's count
    assert proof.compare_totals(rows, Totals(12, 9, 3, ("f", "i")))["export_items_match"]
    assert not proof.compare_totals(rows, Totals(7, 5, 2, ("f", "i")))["export_items_match"]


def test_the_csv_the_summary_and_the_chart():
    built = table()
    lines = list(csv.DictReader(io.StringIO(proof.to_csv(built).decode())))
    assert [line["day"] for line in lines] == DAYS
    assert lines[1]["lost_at"] == "target" and lines[1]["seconds"] == "2023-01-02T00:00:07Z"
    assert lines[2]["parquet_status"] == MISSING and lines[2]["export_items"] == ""
    summary = proof.to_markdown(built, {"csv": "s3://b/p/_proof/days.csv"})
    assert "NOT complete" in summary and "| 2023-01-02 | target | 1 | 2023-01-02T00:00:07Z |" in (
        summary
    )
    assert "| parquet | 2 | 0 | 1 | 1 |" in summary and "[csv](s3://b/p/_proof/days.csv)" in summary
    png = proof.chart_png(built, "rows per day")
    assert png.startswith(b"\x89PNG") and len(png) > 5_000


FIRST, END = dt.date(2023, 1, 1), dt.date(2026, 1, 1)  # 1,096 days
RANGES = (  # backfilled: the first days, and a few in the middle
    (dt.date(2023, 1, 1), dt.date(2023, 1, 2)),
    (dt.date(2024, 3, 1), dt.date(2024, 3, 4)),
)
NEVER, BROKEN, AGAIN = dt.date(2024, 2, 29), dt.date(2024, 3, 2), dt.date(2024, 3, 3)


def range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def test_the_proof_of_a_three_year_backfill_broken_by_hand(
    bucket, resources, mysql_db, s3_client, dynamodb_client
):
    """Three years of daily partitions, backfilled in two range runs of a few days of two
    items (a range run writes ~50 ms of Dagster events per asset and day here: all three
    years take minutes, `bench/proof.py` does that); then a target row of one day deleted
    and that day's target checks executed alone, and another day's Parquet converted again
    without its checks. Every other day was never materialized."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"], data["dynamodb"]["table"] = bucket, f"orders_{bucket[-8:]}"
    data["partitions"]["end"] = END.isoformat()
    spec = parse_spec(data)
    backfilled = [
        first + dt.timedelta(days=n)
        for first, last in RANGES
        for n in range((last - first).days + 1)
    ]
    seeded = seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=mysql_db,
        days=backfilled,
        items_per_day=2,
        incremental_windows=0,
    )
    graph = build_assets(spec)
    keys = [d.key for d in graph if not isinstance(d, dg.AssetChecksDefinition)]
    checks = [k for d in graph for k in d.check_keys]
    built = build_migration_proof(spec, daily_partitions(spec), keys, checks)
    instance = dg.DagsterInstance.ephemeral()
    for first, last in RANGES:
        run = dg.materialize(
            graph, resources=resources, instance=instance, tags=range_tags(first, last)
        )
        assert run.success
    lost = fetch(
        mysql_db,
        "SELECT customer_id, order_id, created_at FROM orders "
        "WHERE created_at >= %s AND created_at < %s LIMIT 1",
        (BROKEN, BROKEN + dt.timedelta(days=1)),
    )[0]
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM orders WHERE customer_id = %s AND order_id = %s AND created_at = %s", lost
        )
        conn.commit()
    target = next(k for k in keys if k.path[-1] == "target_table")
    recheck = dg.materialize(
        graph,
        selection=dg.AssetSelection.checks_for_assets(target),
        tags={"dagster/partition": BROKEN.isoformat()},
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not recheck.success
    parquet = next(k for k in keys if k.path[-1] == "parquet_partitions")
    again = dg.materialize(
        graph,
        selection=dg.AssetSelection.assets(parquet).without_checks(),
        partition_key=AGAIN.isoformat(),
        resources=resources,
        instance=instance,
    )
    assert again.success
    result = dg.materialize(
        [*graph, built],
        selection=dg.AssetSelection.assets(built.key),
        resources=resources,
        instance=instance,
    )
    (event,) = result.asset_materializations_for_node("migration_proof")
    meta = {name: value.value for name, value in event.metadata.items()}
    second = lost[2].replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"| {BROKEN} | target_table | 1 | {second} |" in meta["summary"]
    assert meta["days"] == 1_096 and meta["days_failed"] == 1 and not meta["complete"]
    assert meta["days_missing"] == 1_096 - len(backfilled) and meta["days_stale"] == 1
    assert meta["target_table_days_failed"] == 1
    assert meta["target_table_days_passed"] == len(backfilled) - 1
    assert meta["parquet_partitions_days_stale"] == 1
    assert meta["dynamodb_export_days_passed"] == len(backfilled)
    # the totals against what the export's manifest and the legacy table say
    assert meta["manifest_export_items"] == seeded.full_export_items == meta["total_export_items"]
    assert meta["export_items_match"] and meta["legacy_rows_match"]
    assert meta["total_parquet_rows"] == 2 * len(backfilled) == seeded.legacy_rows
    assert meta["total_target_rows"] == seeded.legacy_rows - 1 and not meta["copied_rows_match"]
    folder = f"{spec.s3.parquet_prefix}/_proof"
    assert meta["csv"] == f"s3://{bucket}/{folder}/days.csv"
    body = s3_client.get_object(Bucket=bucket, Key=f"{folder}/days.csv")["Body"].read()
    lines = {line["day"]: line for line in csv.DictReader(io.StringIO(body.decode()))}
    assert len(lines) == 1_096
    assert lines[NEVER.isoformat()]["parquet_partitions_status"] == MISSING
    assert lines[NEVER.isoformat()]["target_table_status"] == MISSING
    assert lines[AGAIN.isoformat()]["parquet_partitions_status"] == STALE
    assert lines[AGAIN.isoformat()]["aurora_temp_table_status"] == PASSED
    broken = lines[BROKEN.isoformat()]
    assert (broken["lost_at"], broken["lost_rows"], broken["seconds"]) == (
        "target_table",
        "1",
        second,
    )
    assert broken["target_rows"] == "1" and broken["export_items"] == "2"
    assert "1 row(s) missing" in broken["why"]
    png = s3_client.get_object(Bucket=bucket, Key=f"{folder}/rows_per_day.png")["Body"].read()
    assert png.startswith(b"\x89PNG")


def test_the_sensor_requests_one_proof_per_finished_backfill_of_the_assets():
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    target, other, proof_key = (dg.AssetKey(n) for n in ("target_table", "other", "proof"))
    sensor = build_proof_sensor(proof_key, [target])
    with dg.instance_for_test() as instance:

        def add(name, status, end, asset):
            instance.add_backfill(
                PartitionBackfill(
                    name,
                    status,
                    False,
                    {},
                    1.0,
                    asset_selection=[asset],
                    backfill_end_timestamp=end,
                )
            )

        def tick(cursor=None):
            result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
            return [r.run_key for r in result.run_requests], result.cursor

        add("old", BulkActionStatus.COMPLETED_SUCCESS, 50.0, target)
        add("done", BulkActionStatus.COMPLETED_SUCCESS, 100.0, target)
        add("running", BulkActionStatus.REQUESTED, None, target)
        add("elsewhere", BulkActionStatus.COMPLETED_SUCCESS, 150.0, other)
        keys, cursor = tick()  # first tick: the newest finished one only
        assert keys == ["after-backfill-done"]
        add("failed", BulkActionStatus.COMPLETED_FAILED, 200.0, target)
        add("canceled", BulkActionStatus.CANCELED, 300.0, target)
        keys, cursor = tick(cursor)
        assert keys == ["after-backfill-failed", "after-backfill-canceled"]
        assert tick(cursor) == ([], cursor)
