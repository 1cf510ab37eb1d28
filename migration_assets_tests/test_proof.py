"""The migration's proof: the per-day table built from plain inputs (`quality/proof.py`),
then over a three-year backfill in a real Dagster instance, broken by hand afterwards."""

from __future__ import annotations

import csv
import datetime as dt
import io

import dagster as dg
import pytest
import yaml

from migration_assets.defs.partitions import daily_partitions
from migration_assets.defs.proof.assets import build_migration_proof
from migration_assets.defs.proof.sensors import build_proof_sensor
from migration_assets.definitions import build_assets
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
