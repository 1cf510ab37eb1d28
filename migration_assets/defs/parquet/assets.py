"""`parquet_partitions`: each UTC day's items as typed, key-sorted Parquet in S3."""

from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from ...days import parse_day
from ...parquet.convert_day import (
    CONVERSION_ERRORS,
    JSON_KEYS,
    PATH_KEYS,
    Conversion,
    ConversionFailed,
    convert_days,
)
from ...quality.validate import warm_up
from ...spec import MigrationSpec, spec_document
from ..eta import per_day_result
from ..naming import SINGLE, Naming
from ..partitions import backfill_policy
from ..resources import PipesParquetEngine


def day_metadata(summary: dict[str, Any]) -> dict[str, Any]:
    """A day's plain summary (`convert_day.day_summary`) typed for the UI."""

    def typed(key: str, value: Any) -> Any:
        if key in JSON_KEYS:
            return dg.MetadataValue.json(value)
        if key in PATH_KEYS:
            return dg.MetadataValue.path(value)
        return value

    return {key: typed(key, value) for key, value in summary.items()}


def convert_remotely(
    context: dg.AssetExecutionContext,
    spec: MigrationSpec,
    days: list[str],
    engine: PipesParquetEngine,
) -> Conversion:
    """The same conversion, run by `remote/convert_entry.py` through the engine's Pipes client.

    Pipes materializations carry no partition key (1.13), so the entry point reports each
    day's figures as a custom message and this side emits the per-day materializations.
    """
    context.log.info(f"converting {len(days)} day(s) on {engine.name} through Dagster Pipes")
    invocation = engine.run(context, {"spec": spec_document(spec), "days": days})
    conversion = Conversion.from_messages(invocation.get_custom_messages(), days)
    return Conversion(conversion.days, {**conversion.run, **invocation.metadata})


def build_parquet_partitions(
    spec: MigrationSpec,
    partitions: dg.PartitionsDefinition,
    engine: PipesParquetEngine | None = None,
    naming: Naming = SINGLE,
) -> dg.AssetsDefinition:
    """`engine`: None converts in this process (the default); else through Dagster Pipes on
    the engine (EMR Serverless, Glue; `resources.parquet_engine_from_env`)."""

    @dg.asset(
        name="parquet_partitions",
        key_prefix=naming.key_prefix,
        partitions_def=partitions,
        deps=[naming.key("dynamodb_export")],
        group_name=naming.group("dynamodb"),
        kinds={"parquet", "s3"},
        backfill_policy=backfill_policy(),
        description=(
            f"Items of `{spec.dynamodb.table}` per UTC day of "
            f"`{spec.dynamodb.event_time.attribute}`"
            f" as zstd Parquet under s3://{spec.s3.bucket}/{spec.s3.parquet_prefix}/dt=YYYY-MM-DD/"
            " (the spec's exact Arrow schema plus `_change`: put or delete), sorted by the MySQL "
            "key and committed by `_manifest.json`. A run over many days reads each export file "
            "once; the first run to read a full export also splits it by day for later runs. "
            "Bad records go to `_rejects/` or fail the run, per `on_bad_record`."
            + (f" Converted on {engine.name} through Dagster Pipes." if engine else "")
        ),
    )
    def parquet_partitions(
        context: dg.AssetExecutionContext, s3: S3Resource
    ) -> dg.MaterializeResult:
        days = [parse_day(key) for key in context.partition_keys]
        try:
            if engine is None:  # the checks' Great Expectations imports once the exports are read
                conversion = convert_days(
                    s3.get_client(), spec, days, log=context.log.info, after_reading=warm_up
                )
            else:
                warm_up()  # while the engine converts
                conversion = convert_remotely(context, spec, context.partition_keys, engine)
        except (*CONVERSION_ERRORS, ConversionFailed) as exc:
            raise dg.Failure(description=str(exc)) from None
        if conversion.run["unplaced_rejects"]:
            context.log.warning(
                f"{conversion.run['unplaced_rejects']} bad records have no readable event time: "
                f"{conversion.run['unplaced_rejects_file']}"
            )
        return per_day_result(
            context,
            {day: day_metadata(summary) for day, summary in conversion.days.items()},
            run=conversion.run,
        )

    return parquet_partitions
