"""`parquet_partitions`: each UTC day's items as typed, key-sorted Parquet in S3."""

import time
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from ..days import parse_day
from ..dynamodb.layout import CorruptExportError, IncompleteExportError
from ..parquet_store import manifest_key, partition_prefix
from ..partition_builder import (
    BadRecordsError,
    BuildStats,
    DayResult,
    MissingCoverageError,
    build_days,
)
from ..partitions import backfill_policy
from ..spec import MigrationSpec
from .aurora import per_day_result


def day_metadata(spec: MigrationSpec, result: DayResult) -> dict[str, Any]:
    manifest = result.manifest
    return {
        "rows": manifest.rows,
        "deletes": manifest.deletes,
        "rejects": manifest.rejects,
        "rejects_file": manifest.rejects_key or "none",
        "files": len(manifest.files),
        "bytes": sum(f["bytes"] for f in manifest.files),
        "day_complete": manifest.complete,
        "exports": dg.MetadataValue.json(list(manifest.exports)),
        "seconds": dg.MetadataValue.json(manifest.seconds),
        "partition": dg.MetadataValue.path(
            f"s3://{spec.s3.bucket}/{partition_prefix(spec, parse_day(manifest.day))}"
        ),
        "manifest": dg.MetadataValue.path(
            f"s3://{spec.s3.bucket}/{manifest_key(spec, parse_day(manifest.day))}"
        ),
    }


def run_metadata(stats: BuildStats, seconds: float) -> dict[str, Any]:
    return {
        "days": len(stats.results),
        "files_read": stats.files_read,
        "items_read": stats.items_read,
        "bytes_read": stats.bytes_read,
        "seconds": round(seconds, 3),
        "items_per_second": round(stats.items_read / seconds) if seconds else 0,
        "full_export_days_from_split": stats.split_days_read,
        "full_export_split_written": stats.split_written,
        "unplaced_rejects": stats.unplaced_rejects,
        "unplaced_rejects_file": stats.unplaced_rejects_key or "none",
    }


def build_parquet_partitions(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        name="parquet_partitions",
        partitions_def=partitions,
        deps=["dynamodb_export"],
        group_name="dynamodb",
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
        ),
    )
    def parquet_partitions(
        context: dg.AssetExecutionContext, s3: S3Resource
    ) -> dg.MaterializeResult:
        days = [parse_day(key) for key in context.partition_keys]
        clock = time.perf_counter()
        try:
            stats = build_days(s3.get_client(), spec, days, log=context.log.info)
        except (
            BadRecordsError,
            MissingCoverageError,
            CorruptExportError,
            IncompleteExportError,
        ) as exc:
            raise dg.Failure(description=str(exc)) from None
        elapsed = time.perf_counter() - clock
        if stats.unplaced_rejects:
            context.log.warning(
                f"{stats.unplaced_rejects} bad records have no readable event time: "
                f"{stats.unplaced_rejects_key}"
            )
        by_day = {r.day: r for r in stats.results}
        return per_day_result(
            context,
            {day.isoformat(): day_metadata(spec, by_day[day]) for day in days},
            run=run_metadata(stats, elapsed),
        )

    return parquet_partitions
