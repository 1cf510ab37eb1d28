"""Several migrations in one code location: a folder of specs, `MigrationComponent`s and `dg`.

One spec keeps today's names (test_definitions.py); here a folder of two gets prefixed keys,
one `mysql` pool, both migrate exactly with every check green in one run, each sensor sees
only its own exports, conflicting specs are refused naming both files, and `dg` lists,
checks and scaffolds the components in a subprocess.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_aws.s3 import S3Resource

from migration_assets.defs.location import build_assets, build_code_location
from migration_assets.defs.naming import Naming
from migration_assets.devstack.seed import existing_target_summary, seed
from migration_assets.migrations import MigrationConflictError, Migrations, load_migrations
from migration_assets.mysql.connection import connection
from migration_assets.spec import EXAMPLE_SPEC, SpecError, parse_spec

SHIPMENTS = EXAMPLE_SPEC.parent / "shipments.yaml"
DAY = "2023-01-01"
STAGES = ("dynamodb_export", "parquet_partitions", "aurora_temp_table", "target_table")


def documents(bucket: str = "migration-data") -> tuple[dict, dict]:
    """The two example specs (orders with legacy_copy, shipments update_only) in `bucket`."""
    orders, shipments = (yaml.safe_load(p.read_text()) for p in (EXAMPLE_SPEC, SHIPMENTS))
    if bucket != "migration-data":  # a test's own bucket and DynamoDB tables
        for doc in (orders, shipments):
            doc["s3"]["bucket"] = bucket
            doc["dynamodb"]["table"] = f"{doc['dynamodb']['table']}_{bucket[-8:]}"
    return orders, shipments


def spec_folder(tmp_path: Path, *docs: dict) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    for doc in docs:
        (folder / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc))
    return folder


def test_a_folder_gives_each_migration_its_prefix_group_and_names_and_one_pool(tmp_path):
    migrations = load_migrations(spec_folder(tmp_path, *documents()))
    assert migrations.several and [s.name for s in migrations.specs] == ["orders", "shipments"]
    defs = build_code_location(migrations)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {f"orders/{s}" for s in (*STAGES, "bigint_table_copy", "migration_proof")} | {
        f"shipments/{s}" for s in (*STAGES, "migration_proof")
    }
    assert {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()} == {
        key: key.split("/")[0] for key in keys
    }
    # the keys one asset finds another by: dependencies, checks, the sensor's selection
    parents = graph.get(dg.AssetKey(["orders", "target_table"])).parent_keys
    assert parents == {
        dg.AssetKey(["orders", "aurora_temp_table"]),
        dg.AssetKey(["orders", "bigint_table_copy"]),
    }
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("shipments/target_table", "per_second_checksum_parity") in checks
    assert ("orders/bigint_table_copy", "per_second_count_parity") in checks
    assert len(checks) == 10 + 6  # orders as today (json: +1); shipments without the copy
    pools = {pool for k in graph.get_all_asset_keys() for pool in graph.get(k).pools or ()}
    assert pools == {"mysql"}  # one pool for both: its limit protects the one server
    jobs = {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    assert jobs == {
        "orders__clean_staging",
        "orders__bigint_copy_catch_up",
        "orders__bigint_cutover",
        "orders__bigint_change_capture",
        "shipments__clean_staging",
    }
    assert {s.name for s in defs.sensors} == {
        "orders__dynamodb_export_sensor",
        "orders__migration_proof_sensor",
        "shipments__dynamodb_export_sensor",
        "shipments__migration_proof_sensor",
    }
    assert {s.name for s in defs.schedules} == {
        "orders__live_days_schedule",
        "orders__bigint_change_capture_schedule",
        "shipments__live_days_schedule",
    }
    capture = defs.get_schedule_def("orders__bigint_change_capture_schedule")
    assert capture.job_name == "orders__bigint_change_capture"


CONFLICTS = {
    "the same target": ({"mysql": {"target_table": "orders"}}, "both write MySQL table(s)"),
    "a target that is the other's staging": (
        {"mysql": {"target_table": "orders_stage"}},
        "orders_stage",
    ),
    "the same legacy table": (
        {
            "legacy_copy": {
                "source_table": "table01",
                "time_column": "shipped_at",
                "bigint_columns": ["shipment_id"],
            }
        },
        "both copy legacy table table01",
    ),
    "writing the other's legacy table": (
        {"mysql": {"target_table": "table01"}},
        "writes table01, the legacy table",
    ),
    "the same parquet prefix": ({"s3": {"parquet_prefix": "parquet/orders"}}, "the same"),
    "a parquet prefix inside the other": (
        {"s3": {"parquet_prefix": "parquet/orders/eu"}},
        "overlapping s3.parquet_prefix",
    ),
    "the same name": ({"name": "orders"}, "both are named 'orders'"),
}


@pytest.mark.parametrize("change", CONFLICTS, ids=list(CONFLICTS))
def test_conflicting_specs_are_refused_naming_both_files(tmp_path, change):
    orders, shipments = documents()
    overrides, why = CONFLICTS[change]
    for section, values in overrides.items():
        if isinstance(values, dict):
            shipments.setdefault(section, {}).update(values)
        else:
            shipments[section] = values
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "a_orders.yaml").write_text(yaml.safe_dump(orders))
    (folder / "b_other.yaml").write_text(yaml.safe_dump(shipments))
    with pytest.raises(MigrationConflictError) as caught:
        load_migrations(folder)
    message = str(caught.value)
    assert f"{folder / 'a_orders.yaml'} and {folder / 'b_other.yaml'}" in message
    assert why in message


def test_what_may_be_shared_is_not_refused(tmp_path):
    """One DynamoDB table's exports feeding two MySQL tables; prefixes that only share a
    string prefix (`parquet/orders` and `parquet/orders_eu`) are different folders."""
    orders, shipments = documents()
    shipments["dynamodb"]["table"] = orders["dynamodb"]["table"]
    shipments["s3"].update(export_prefix="exports/orders", parquet_prefix="parquet/orders_eu")
    assert len(load_migrations(spec_folder(tmp_path, orders, shipments)).specs) == 2


def test_a_bad_spec_in_a_folder_names_its_file_and_key(tmp_path):
    orders, shipments = documents()
    shipments["mysql"]["mode"] = "upsert_please"
    folder = spec_folder(tmp_path, orders, shipments)
    with pytest.raises(SpecError, match=r"shipments\.yaml: mysql\.mode: .*upsert_please"):
        load_migrations(folder)
    (folder / "orders.yaml").unlink()
    (folder / "shipments.yaml").unlink()
    with pytest.raises(SpecError, match="no \\*.yaml spec file"):
        load_migrations(folder)


def _evaluations(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.get_asset_check_evaluations()
    }


def test_two_migrations_migrate_exactly_in_one_run_with_every_check_green(
    bucket, resources, mysql_db, s3_client, dynamodb_client
):
    specs = [parse_spec(doc, f"{doc['name']}.yaml") for doc in documents(bucket)]
    orders, shipments = specs
    reports = {
        spec.name: seed(
            spec,
            s3=s3_client,
            dynamodb=dynamodb_client,
            mysql=mysql_db,
            days=[dt.date.fromisoformat(DAY)],
            items_per_day=150,
        )
        for spec in specs
    }
    assets = [a for spec in specs for a in build_assets(spec, None, Naming(spec.name))]
    result = dg.materialize(assets, partition_key=DAY, resources=resources)
    assert result.success
    checks = _evaluations(result)
    assert len(checks) == 16 and all(e.passed for e in checks.values()), [
        k for k, e in checks.items() if not e.passed
    ]
    staged = {
        spec.name: result.asset_materializations_for_node(f"{spec.name}__aurora_temp_table")[0]
        .metadata["rows_loaded"]
        .value
        for spec in specs
    }
    assert staged["orders"] > 0 and staged["shipments"] > 0
    # update_only into the existing table: every covered row updated, the others untouched
    with connection(mysql_db) as conn:
        after = existing_target_summary(conn, shipments)
    seeded = reports["shipments"]
    assert after["covered_rows"] == seeded.existing_covered > 0
    assert after["covered_rows_not_updated"] == 0
    assert after["uncovered_rows"] == seeded.existing_uncovered > 0
    assert after["uncovered_checksum"] == seeded.existing_uncovered_checksum
    merged = result.asset_materializations_for_node("shipments__target_table")[0].metadata
    assert merged["inserted"].value == 0 and merged["updated"].value > 0
    assert merged["unmatched"].value > 0  # DynamoDB-only items: kept aside, not inserted
    # orders: the legacy rows and DynamoDB's in the new table, as with one spec
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM table01")
        legacy = cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM orders")
        assert cur.fetchone()[0] >= legacy == reports["orders"].legacy_rows > 0
    # a check of the second migration re-runs alone for the day, on its own prefixed key
    again = dg.materialize(
        assets,
        selection=dg.AssetSelection.checks_for_assets(dg.AssetKey(["shipments", "target_table"])),
        tags={"dagster/partition": DAY},
        resources=resources,
    )
    assert again.success
    assert {k for k in _evaluations(again)} == {
        ("shipments/target_table", "per_second_count_parity"),
        ("shipments/target_table", "per_second_checksum_parity"),
        ("shipments/target_table", "bigint_id_schema"),
    }


def test_each_sensor_reacts_only_to_its_own_exports(bucket, stack, s3_client, dynamodb_client):
    orders, shipments = (parse_spec(doc) for doc in documents(bucket))
    defs = build_code_location(Migrations((orders, shipments), several=True))
    report = seed(
        shipments,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=None,
        days=[dt.date(2023, 1, 1)],
        items_per_day=20,
    )
    s3 = S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3)

    def tick(name: str):
        context = dg.build_sensor_context(resources={"s3": s3})
        return defs.get_sensor_def(f"{name}__dynamodb_export_sensor")(context)

    quiet = tick("orders")
    assert not quiet.run_requests  # shipments' exports are none of orders' business
    requests = tick("shipments").run_requests
    backfill = next(r for r in requests if r.asset_graph_subset is not None)
    assert backfill.tags == {
        "migration/export_id": report.full_export_id,
        "migration/name": "shipments",
    }
    assert {k.to_user_string() for k in backfill.asset_graph_subset.asset_keys} == {
        f"shipments/{s}" for s in STAGES
    }
    runs = [r for r in requests if r.asset_graph_subset is None]
    assert sorted(r.run_key for r in runs) == sorted(
        f"{export_id}:2023-01-02" for export_id in report.incremental_export_ids
    )


# ------------------------------------------------------------------------------------ dg


def _dg(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "MIGRATION_SPEC"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "dg"), *args],
        cwd=cwd,
        env={**environment, **env, "DAGSTER_HOME": str(cwd / "dagster_home")},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dg_lists_and_checks_the_code_location(repo_root, tmp_path):
    """In this repository, as `dg` sees it: the bundled example with today's names, and a
    spec folder through `MIGRATION_SPEC` with prefixed ones."""
    listed = _dg(["list", "defs", "--json"], repo_root)
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    assert {a["asset_key"] for a in found["assets"]} == {
        *STAGES,
        "bigint_table_copy",
        "migration_proof",
    }
    assert {s["name"] for s in found["sensors"]} == {
        "dynamodb_export_sensor",
        "migration_proof_sensor",
    }
    assert "per_second_count_parity" in {c["name"] for c in found["asset_checks"]}
    folder = spec_folder(tmp_path, *documents())
    listed = _dg(["list", "defs", "--json"], repo_root, MIGRATION_SPEC=str(folder))
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    assert {a["asset_key"] for a in found["assets"]} >= {
        "orders/target_table",
        "shipments/target_table",
    }
    assert {a["group_name"] for a in found["assets"]} == {"orders", "shipments"}
    checked = _dg(["check", "defs"], repo_root)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def _project(tmp_path: Path, repo_root: Path) -> Path:
    """A dg project of its own that uses `migration_assets.MigrationComponent`, as a team's
    repository would (the package installed in the environment, here this repository's)."""
    root = tmp_path / "team_project"
    package = root / "team_migrations"
    (package / "defs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(
        "from pathlib import Path\n\nimport dagster as dg\n\n\n@dg.definitions\ndef defs():\n"
        "    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n"
    )
    (root / "pyproject.toml").write_text(
        '[project]\nname = "team_migrations"\nversion = "0"\n\n'
        '[tool.dg]\ndirectory_type = "project"\n\n'
        '[tool.dg.project]\nroot_module = "team_migrations"\n'
        'registry_modules = ["migration_assets"]\n'
    )
    (root / ".env").write_text(f"DG_PROJECT_PYTHON_EXECUTABLE={sys.executable}\n")
    return root


def test_dg_scaffolds_lists_and_checks_components_and_refuses_a_conflict(repo_root, tmp_path):
    root = _project(tmp_path, repo_root)
    env = {"PYTHONPATH": str(root)}
    scaffolded = _dg(
        ["scaffold", "defs", "migration_assets.MigrationComponent", "invoices"], root, **env
    )
    assert scaffolded.returncode == 0, scaffolded.stderr[-3000:]
    declared = yaml.safe_load((root / "team_migrations/defs/invoices/defs.yaml").read_text())
    assert declared["type"] == "migration_assets.MigrationComponent"
    assert declared["attributes"]["mysql"]["target_table"] == "invoices"
    orders, _ = documents()
    (root / "team_migrations/defs/orders").mkdir()
    component = {"type": "migration_assets.MigrationComponent", "attributes": orders}
    (root / "team_migrations/defs/orders/defs.yaml").write_text(yaml.safe_dump(component))
    listed = _dg(["list", "defs", "--json"], root, **env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    assert {a["asset_key"] for a in found["assets"]} == {
        f"invoices/{s}" for s in (*STAGES, "migration_proof")
    } | {f"orders/{s}" for s in (*STAGES, "bigint_table_copy", "migration_proof")}
    assert "orders__bigint_cutover" in {j["name"] for j in found["jobs"]}
    # a third component writing orders' target: refused, both files named
    clash = copy.deepcopy(component)
    clash["attributes"]["name"] = "orders_eu"
    clash["attributes"]["s3"]["parquet_prefix"] = "parquet/orders_eu"
    del clash["attributes"]["legacy_copy"]
    (root / "team_migrations/defs/orders_eu").mkdir()
    (root / "team_migrations/defs/orders_eu/defs.yaml").write_text(yaml.safe_dump(clash))
    refused = _dg(["check", "defs"], root, **env)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "team_migrations/defs/orders/defs.yaml" in output
    assert "team_migrations/defs/orders_eu/defs.yaml" in output
    assert "both write MySQL table(s)" in output
    # a bad key in a component: named with its file
    clash["attributes"]["mysql"]["target_table"] = "orders_eu"
    clash["attributes"]["mysql"]["mode"] = "sometimes"
    (root / "team_migrations/defs/orders_eu/defs.yaml").write_text(yaml.safe_dump(clash))
    refused = _dg(["check", "defs"], root, **env)
    assert refused.returncode != 0
    assert "orders_eu/defs.yaml attributes: mysql.mode" in refused.stdout + refused.stderr


def test_one_export_chain_feeding_two_tables_keeps_their_live_runs_apart(
    bucket, stack, s3_client, dynamodb_client, tmp_path
):
    """Two migrations of one DynamoDB table: the same export chain gives both the same live
    state, so a live run of one must not make the other's day look up to date."""
    orders, _ = documents(bucket)
    eu = copy.deepcopy(orders)
    eu.pop("legacy_copy")
    eu["name"] = "orders_eu"
    eu["mysql"].update(temp_table="orders_eu_stage", target_table="orders_eu")
    eu["s3"]["parquet_prefix"] = "parquet/orders_eu"
    specs = [parse_spec(orders), parse_spec(eu)]
    seed(
        specs[0],
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=None,
        days=[dt.date(2023, 1, 2)],
        items_per_day=20,
    )
    defs = build_code_location(Migrations(tuple(specs), several=True))
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    s3 = S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3)

    def tick(name: str):
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2023, 1, 3, 14, tzinfo=dt.UTC),
            repository_def=defs.get_repository_def(),
            resources={"s3": s3},
        ) as context:
            return defs.get_schedule_def(f"{name}__live_days_schedule").evaluate_tick(context)

    first = {name: tick(name).run_requests for name in ("orders", "orders_eu")}
    states = {name: {r.tags["migration/live_state"] for r in reqs} for name, reqs in first.items()}
    assert states["orders"] == states["orders_eu"] and states["orders"]  # one export chain
    assert {r.tags["migration/name"] for r in first["orders"]} == {"orders"}

    @dg.asset
    def stand_in() -> None:
        """A successful run with orders' live tags, as the daemon would have launched."""

    for request in first["orders"]:
        dg.materialize([stand_in], tags=request.tags, instance=instance)
    assert not tick("orders").run_requests  # its days are up to date
    assert tick("orders_eu").run_requests == first["orders_eu"]  # not those of orders_eu
