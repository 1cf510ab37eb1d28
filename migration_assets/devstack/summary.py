"""The demo's closing summary: each asset's latest materialization and check per seeded day."""

from __future__ import annotations

import os

import dagster as dg


def print_summary(days: list[str], env: dict[str, str]) -> None:
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
