"""The code location: `defs`, built from the migration spec (`MIGRATION_SPEC`).

`bigint_table_copy` and its jobs (catch-up, cutover; with change capture the binlog drain
and its schedule) are present when the spec has a `legacy_copy` section.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from .defs.aurora.assets import build_aurora_assets, build_clean_staging_job
from .defs.aurora.checks import build_aurora_checks
from .defs.bigint_copy.assets import (
    build_bigint_table_copy,
    build_capture_schedules,
    build_legacy_jobs,
)
from .defs.bigint_copy.checks import build_copy_checks
from .defs.dynamodb.assets import build_dynamodb_export
from .defs.dynamodb.sensors import build_export_sensor
from .defs.parquet.assets import build_parquet_partitions
from .defs.parquet.checks import build_parquet_checks
from .defs.partitions import daily_partitions
from .defs.proof.assets import build_migration_proof
from .defs.proof.sensors import build_proof_sensor
from .defs.resources import PipesParquetEngine, default_resources, parquet_engine_from_env
from .defs.schedules import build_live_schedule
from .spec import MigrationSpec, load_spec


def build_assets(
    spec: MigrationSpec, parquet_engine: PipesParquetEngine | None = None
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """Every asset and check of the migration described by `spec`, on one daily partitioning
    (`parquet_engine`: where Parquet is converted; None: in-process)."""
    partitions = daily_partitions(spec)
    return [
        *build_parquet_checks(spec, partitions),
        *build_aurora_checks(spec, partitions),
        *(build_copy_checks(spec, partitions) if spec.legacy_copy else []),
        build_dynamodb_export(spec, partitions),
        build_parquet_partitions(spec, partitions, parquet_engine),
        *build_aurora_assets(spec, partitions),
        *([build_bigint_table_copy(spec, partitions)] if spec.legacy_copy else []),
    ]


def build_definitions(
    spec: MigrationSpec, resources: dict[str, Any] | None = None
) -> dg.Definitions:
    definitions = build_assets(spec, parquet_engine_from_env())
    asset_keys = [d.key for d in definitions if not isinstance(d, dg.AssetChecksDefinition)]
    legacy_jobs = build_legacy_jobs(spec) if spec.legacy_copy else []
    check_keys = [k for d in definitions for k in d.check_keys]
    proof = build_migration_proof(spec, daily_partitions(spec), asset_keys, check_keys)
    return dg.Definitions(
        assets=[*definitions, proof],
        sensors=[
            build_export_sensor(spec, daily_partitions(spec), asset_keys),
            build_proof_sensor(proof.key, asset_keys),
        ],
        schedules=[
            build_live_schedule(spec, asset_keys),
            *build_capture_schedules(spec, legacy_jobs),
        ],
        jobs=[build_clean_staging_job(spec), *legacy_jobs],
        resources=resources or default_resources(),
        executor=dg.in_process_executor,
    )


defs = build_definitions(load_spec())
