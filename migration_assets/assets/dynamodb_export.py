"""`dynamodb_export`: which completed DynamoDB exports in S3 make up each UTC day."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from ..coverage_store import save_coverage, verify_once
from ..dynamodb.coverage import NoCoveringExportError, completed_exports, cover_day
from ..partitions import partition_day
from ..spec import MigrationSpec


def build_dynamodb_export(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        name="dynamodb_export",
        partitions_def=partitions,
        group_name="dynamodb",
        kinds={"dynamodb", "s3"},
        description=(
            f"Completed exports of DynamoDB table `{spec.dynamodb.table}` under "
            f"s3://{spec.s3.bucket}/{spec.s3.export_prefix}/AWSDynamoDB/ that make up the day: "
            "the newest full export plus its chained incrementals, each verified (md5 of every "
            "data file, item-count sum) before anything reads it."
        ),
    )
    def dynamodb_export(context: dg.AssetExecutionContext, s3: S3Resource) -> dg.MaterializeResult:
        client = s3.get_client()
        day = partition_day(context)
        exports = completed_exports(
            client, spec.s3.bucket, spec.s3.export_prefix, spec.dynamodb.table
        )
        try:
            coverage = cover_day(day, exports)
        except NoCoveringExportError as exc:
            raise dg.Failure(description=str(exc)) from None
        by_id = {m.summary.export_id: m for m in exports}
        verified_now = [eid for eid in coverage.export_ids if verify_once(client, spec, by_id[eid])]
        key = save_coverage(client, spec, coverage)
        if not coverage.complete:
            context.log.warning(
                f"{day} is live: exports hold writes until {coverage.covered_until}"
            )
        return dg.MaterializeResult(
            metadata={
                "full_export_id": coverage.full_export.export_id,
                "full_export_time": coverage.full_export.export_time,
                "full_export_items": coverage.full_export.item_count,
                "incremental_export_ids": dg.MetadataValue.json(
                    [ref.export_id for ref in coverage.incrementals]
                ),
                "incremental_windows": dg.MetadataValue.json(
                    [[ref.window_from, ref.window_to] for ref in coverage.incrementals]
                ),
                "incremental_items": sum(ref.item_count for ref in coverage.incrementals),
                "covered_until": coverage.covered_until,
                "day_complete": coverage.complete,
                "chain_gap_after": coverage.gap_after or "none",
                "exports_verified_now": dg.MetadataValue.json(verified_now),
                "coverage_record": dg.MetadataValue.path(f"s3://{spec.s3.bucket}/{key}"),
            },
            data_version=dg.DataVersion("|".join(coverage.export_ids)),
        )

    return dynamodb_export
