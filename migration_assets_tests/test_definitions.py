"""The code location loads, and `dynamodb_export` materializes against the real local stack."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from migration_assets.definitions import defs
from migration_assets.devstack.seed import seed
from migration_assets.dynamodb.layout import CorruptExportError
from migration_assets.parquet.coverage_store import load_coverage
from migration_assets_tests.helpers import assets_named

DAYS = [dt.date(2023, 1, 1), dt.date(2023, 1, 2)]


def export_asset(spec):
    return assets_named(spec, "dynamodb_export")


def test_module_defs_have_contract_keys_and_daily_utc_partitions():
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert "dynamodb_export" in keys
    assert keys <= {
        "dynamodb_export",
        "parquet_partitions",
        "aurora_temp_table",
        "target_table",
        "bigint_table_copy",
        "migration_proof",  # unpartitioned: the report over every day
    }
    partitions = defs.resolve_assets_def("dynamodb_export").partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.timezone == "UTC"
    assert partitions.get_first_partition_key() == "2023-01-01"
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert partitions.get_last_partition_key() == today  # live days are addressable
    assert set(defs.resources) >= {"s3", "dynamodb", "mysql"}


def test_one_spec_keeps_every_name_of_today(tmp_path, monkeypatch):
    """The contract with one spec (`MIGRATION_SPEC` a file, or unset): the names exactly as
    before several migrations existed, none prefixed, the groups by domain."""
    from migration_assets.definitions import build_defs
    from migration_assets.spec import EXAMPLE_SPEC

    names = {
        "assets": {
            "dynamodb_export",
            "parquet_partitions",
            "aurora_temp_table",
            "target_table",
            "bigint_table_copy",
            "migration_proof",
        },
        "checks": {
            "parquet_partitions:per_second_count_parity",
            "aurora_temp_table:per_second_count_parity",
            "aurora_temp_table:json_text_parity",
            "aurora_temp_table:bigint_id_schema",
            "target_table:per_second_count_parity",
            "target_table:per_second_checksum_parity",
            "target_table:bigint_id_schema",
            "bigint_table_copy:per_second_count_parity",
            "bigint_table_copy:per_second_checksum_parity",
            "bigint_table_copy:bigint_id_schema",
        },
        "jobs": {
            "clean_staging",
            "bigint_copy_catch_up",
            "bigint_cutover",
            "bigint_change_capture",
        },
        "sensors": {"dynamodb_export_sensor", "migration_proof_sensor"},
        "schedules": {"live_days_schedule", "bigint_change_capture_schedule"},
        "groups": {"dynamodb", "aurora", "proof"},
    }
    for setting in (None, str(EXAMPLE_SPEC)):
        if setting is None:
            monkeypatch.delenv("MIGRATION_SPEC", raising=False)
        else:
            monkeypatch.setenv("MIGRATION_SPEC", setting)
        built = build_defs()
        graph = built.resolve_asset_graph()
        assert {
            "assets": {k.to_user_string() for k in graph.get_all_asset_keys()},
            "checks": {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys},
            "jobs": {j.name for j in built.resolve_all_job_defs() if not j.name.startswith("__")},
            "sensors": {s.name for s in built.sensors},
            "schedules": {s.name for s in built.schedules},
            "groups": {graph.get(k).group_name for k in graph.get_all_asset_keys()},
        } == names


def test_workspace_yaml_loads_the_code_location(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(repo_root / "dagster_home")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "migration_assets" in result.stdout + result.stderr


def test_dynamodb_export_records_the_covering_exports(spec, resources, s3_client, dynamodb_client):
    report = seed(
        spec, s3=s3_client, dynamodb=dynamodb_client, mysql=None, days=DAYS, items_per_day=300
    )
    result = dg.materialize(export_asset(spec), partition_key="2023-01-02", resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("dynamodb_export")[0].metadata
    assert meta["full_export_id"].value == report.full_export_id
    assert meta["incremental_export_ids"].value == report.incremental_export_ids
    assert meta["day_complete"].value is True
    assert meta["full_export_items"].value == 600
    assert sorted(meta["exports_verified_now"].value) == sorted(
        [report.full_export_id, *report.incremental_export_ids]
    )
    recorded = load_coverage(s3_client, spec, "2023-01-02")
    assert recorded is not None and recorded.export_ids[0] == report.full_export_id

    again = dg.materialize(export_asset(spec), partition_key="2023-01-01", resources=resources)
    assert (
        again.asset_materializations_for_node("dynamodb_export")[0]
        .metadata["exports_verified_now"]
        .value
        == []
    )  # verified once per export, not once per day


def test_dynamodb_export_refuses_a_corrupt_export_naming_the_file(
    spec, resources, s3_client, dynamodb_client
):
    seed(spec, s3=s3_client, dynamodb=dynamodb_client, mysql=None, days=DAYS, items_per_day=50)
    listing = s3_client.list_objects_v2(Bucket=spec.s3.bucket, Prefix=spec.s3.export_prefix)
    victim = next(
        o["Key"]
        for o in listing["Contents"]
        if o["Key"].endswith(".json.gz") and o["Size"] > 20 and "/AWSDynamoDB/data/" not in o["Key"]
    )
    s3_client.put_object(
        Bucket=spec.s3.bucket, Key=victim, Body=b"not the bytes the manifest hashed"
    )
    with pytest.raises(CorruptExportError, match=victim.split("/")[-1]):
        dg.materialize(export_asset(spec), partition_key="2023-01-01", resources=resources)
    assert load_coverage(s3_client, spec, "2023-01-01") is None  # nothing recorded for the day


def test_a_day_without_exports_fails_clearly(spec, resources, s3_client):
    s3_client.put_object(Bucket=spec.s3.bucket, Key="unrelated", Body=b"")
    result = dg.materialize(
        export_asset(spec), partition_key="2023-01-01", resources=resources, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no completed full export" in json.dumps(failure.event_specific_data.error.to_string())


def test_days_per_run_comes_from_the_environment(monkeypatch):
    from migration_assets.defs.partitions import days_per_run

    monkeypatch.setenv("MIGRATION_DAYS_PER_RUN", "7")
    assert days_per_run() == 7
    monkeypatch.setenv("MIGRATION_DAYS_PER_RUN", "0")
    with pytest.raises(ValueError, match="between 1 and 366"):
        days_per_run()
    monkeypatch.setenv("MIGRATION_DAYS_PER_RUN", "thirty")
    with pytest.raises(ValueError, match="not a whole number"):
        days_per_run()
    monkeypatch.delenv("MIGRATION_DAYS_PER_RUN")
    assert days_per_run() == 30
    policy = defs.resolve_assets_def("parquet_partitions").backfill_policy
    assert policy.max_partitions_per_run == 30


def test_every_asset_shares_one_backfill_policy():
    """A run takes the smallest batch of its assets: one asset without the policy would turn
    a whole-graph backfill into one run per day."""
    import warnings

    from migration_assets.defs.partitions import DAYS_PER_RUN

    policies = {  # of the partitioned ones (migration_proof is one report over every day)
        key.to_user_string(): defs.resolve_assets_def(key).backfill_policy
        for key in defs.resolve_all_asset_keys()
        if defs.resolve_assets_def(key).partitions_def is not None
    }
    assert set(policies) >= {"dynamodb_export", "bigint_table_copy", "target_table"}
    assert set(policies.values()) == {dg.BackfillPolicy.multi_run(DAYS_PER_RUN)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = defs.resolve_implicit_global_asset_job_def()
    assert not [w for w in caught if "varying BackfillPolicies" in str(w.message)]
    assert job.backfill_policy == dg.BackfillPolicy.multi_run(DAYS_PER_RUN)
