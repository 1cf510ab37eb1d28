"""The demo's closing summary: each asset's latest materialization per seeded day."""

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
