"""The demo's closing summary: each asset's latest materialization and check per seeded day,
and for an update_only migration, what became of the existing table's rows."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from ..migrations import load_migrations
from ..mysql.connection import connection, parse_mysql_url
from .seed import existing_target_summary


def print_summary(days: list[str], env: dict[str, str], seeded: dict[str, Any]) -> int:
    """Print the summary; return 1 if an update_only target is not as it must be."""
    os.environ.update(env)
    from ..definitions import defs

    with dg.DagsterInstance.get() as instance:
        print("\n=== migration_assets demo summary ===")
        for key in defs.resolve_all_asset_keys():
            print(f"{key.to_user_string()}:")
            for day in days:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
                ).records
                if not records:
                    print(f"  {day}: not materialized")
                    continue
                meta = records[0].asset_materialization.metadata
                shown = {
                    k: v.value for k, v in meta.items() if not isinstance(v.value, list | dict)
                }
                print(f"  {day}: " + ", ".join(f"{k}={v}" for k, v in list(shown.items())[:6]))
        print_check_summary(instance, days)
    return print_existing_targets(env, seeded)


def print_existing_targets(env: dict[str, str], seeded: dict[str, Any]) -> int:
    """update_only into an existing table: rows DynamoDB covers were updated (none still holds
    the seeded placeholder), rows it does not cover are untouched (same count and checksum)."""
    wrong = 0
    for spec in load_migrations(env.get("MIGRATION_SPEC")).specs:
        report = seeded.get(spec.name, {})
        if not report.get("existing_covered"):
            continue
        with connection(parse_mysql_url(env["MIGRATION_MYSQL_URL"])) as conn:
            now = existing_target_summary(conn, spec)
        untouched = (
            now["uncovered_rows"] == report["existing_uncovered"]
            and now["uncovered_checksum"] == report["existing_uncovered_checksum"]
        )
        updated = now["covered_rows"] - now["covered_rows_not_updated"]
        ok = untouched and now["covered_rows_not_updated"] == 0
        wrong += not ok
        print(
            f"{spec.name}: existing table {spec.mysql.target_table} (update_only): "
            f"{updated}/{now['covered_rows']} rows DynamoDB covers updated; "
            f"{now['uncovered_rows']}/{report['existing_uncovered']} rows it does not cover "
            f"{'untouched (same checksum)' if untouched else 'CHANGED'}"
            + ("" if ok else "  <-- WRONG")
        )
    return wrong


def print_check_summary(instance: dg.DagsterInstance, days: list[str]) -> None:
    """The latest status of every check for each day (the proof of parity, per partition)."""
    from ..definitions import defs

    keys = list(defs.resolve_asset_graph().asset_check_keys)
    if not keys:
        return
    infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=days)
    status = {(i.check_key, i.partition_key): i.latest_execution_status.value for i in infos}
    print("checks:")
    for key in sorted(keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        cells = ", ".join(f"{day}={status.get((key, day), 'not run')}" for day in days)
        print(f"  {key.asset_key.to_user_string()}.{key.name}: {cells}")
