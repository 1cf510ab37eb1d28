"""The code location's definitions: each migration's assets, checks, sensor, schedules and
jobs, named by its `Naming` (`naming.py`), over the resources and the `mysql` pool they share.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ..migrations import Migrations
from ..spec import MigrationSpec
from .aurora.assets import build_aurora_assets, build_clean_staging_job
from .aurora.checks import build_aurora_checks
from .bigint_copy.assets import build_bigint_table_copy, build_capture_schedules, build_legacy_jobs
from .bigint_copy.checks import build_copy_checks
from .dynamodb.assets import build_dynamodb_export
from .dynamodb.sensors import build_export_sensor
from .naming import SINGLE, Naming
from .parquet.assets import build_parquet_partitions
from .parquet.checks import build_parquet_checks
from .partitions import daily_partitions
from .proof.assets import build_migration_proof
from .proof.sensors import build_proof_sensor
from .resources import PipesParquetEngine, default_resources, parquet_engine_from_env
from .schedules import build_live_schedule


def build_assets(
    spec: MigrationSpec,
    parquet_engine: PipesParquetEngine | None = None,
    naming: Naming = SINGLE,
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """Every asset and check of the migration described by `spec`, on one daily partitioning
    (`parquet_engine`: where Parquet is converted; None: in-process)."""
    partitions = daily_partitions(spec)
    return [
        *build_parquet_checks(spec, partitions, naming),
        *build_aurora_checks(spec, partitions, naming),
        *(build_copy_checks(spec, partitions, naming) if spec.legacy_copy else []),
        build_dynamodb_export(spec, partitions, naming),
        build_parquet_partitions(spec, partitions, parquet_engine, naming),
        *build_aurora_assets(spec, partitions, naming),
        *([build_bigint_table_copy(spec, partitions, naming)] if spec.legacy_copy else []),
    ]


def migration_definitions(spec: MigrationSpec, naming: Naming = SINGLE) -> dg.Definitions:
    """One migration's assets, checks, sensor, schedules and jobs, without resources."""
    definitions = build_assets(spec, parquet_engine_from_env(), naming)
    asset_keys = [d.key for d in definitions if not isinstance(d, dg.AssetChecksDefinition)]
    legacy_jobs = build_legacy_jobs(spec, naming) if spec.legacy_copy else []
    check_keys = [k for d in definitions for k in d.check_keys]
    proof = build_migration_proof(spec, daily_partitions(spec), asset_keys, check_keys, naming)
    return dg.Definitions(
        assets=[*definitions, proof],
        sensors=[
            build_export_sensor(spec, daily_partitions(spec), asset_keys, naming),
            build_proof_sensor(proof.key, asset_keys, naming.name("migration_proof_sensor")),
        ],
        schedules=[
            build_live_schedule(spec, asset_keys, naming),
            *build_capture_schedules(spec, legacy_jobs, naming),
        ],
        jobs=[build_clean_staging_job(spec, naming), *legacy_jobs],
    )


def shared_definitions(resources: dict[str, Any] | None = None) -> dg.Definitions:
    """What every migration of the code location shares: the resources, the executor."""
    return dg.Definitions(
        resources=resources or default_resources(), executor=dg.in_process_executor
    )


def build_definitions(
    spec: MigrationSpec, resources: dict[str, Any] | None = None, naming: Naming = SINGLE
) -> dg.Definitions:
    """One migration's code location (today's names unless `naming` says otherwise)."""
    return dg.Definitions.merge(migration_definitions(spec, naming), shared_definitions(resources))


def build_code_location(
    migrations: Migrations, resources: dict[str, Any] | None = None
) -> dg.Definitions:
    """One spec: today's names. Several: each migration prefixed by its spec's name."""
    return dg.Definitions.merge(
        *(
            migration_definitions(spec, Naming(spec.name) if migrations.several else SINGLE)
            for spec in migrations.specs
        ),
        shared_definitions(resources),
    )
