"""`dynamodb_export`: which completed DynamoDB exports in S3 make up each UTC day."""

import datetime as dt

import dagster as dg
from dagster_aws.s3 import S3Resource

from ..coverage_store import save_coverage, verify_once
from ..dynamodb.coverage import DayCoverage, NoCoveringExportError, completed_exports, cover_day
from ..dynamodb.layout import ExportManifest
from ..dynamodb.requests import (
    ExportRequestError,
    pitr_window,
    plan_request,
    running_export,
    start_export,
    wait_for_export,
)
from ..partitions import partition_day
from ..resources import DynamoDBResource
from ..spec import MigrationSpec


class ExportRequestConfig(dg.Config):
    """With `dynamodb.request: true`: how long one run waits for a requested export."""

    wait_seconds: int = 600
    poll_seconds: int = 20


def _coverage(
    client, spec: MigrationSpec, day: dt.date
) -> tuple[list[ExportManifest], DayCoverage | None, str]:
    """The completed exports, the day's coverage (None if none reaches it) and why not."""
    exports = completed_exports(client, spec.s3.bucket, spec.s3.export_prefix, spec.dynamodb.table)
    try:
        return exports, cover_day(day, exports), ""
    except NoCoveringExportError as exc:
        return exports, None, str(exc)


def _request_export(
    context: dg.AssetExecutionContext,
    spec: MigrationSpec,
    dynamodb: DynamoDBResource,
    day: dt.date,
    coverage: DayCoverage | None,
    config: ExportRequestConfig,
) -> dict[str, str]:
    """Start (or find) the export the day needs and wait a bounded time; return its state."""
    client = dynamodb.get_client()
    try:
        table_arn, pitr = pitr_window(client, spec.dynamodb.table)
        request = plan_request(day, coverage, pitr)
        if request is None:
            return {}
        export_arn = running_export(client, table_arn) or start_export(
            client, table_arn, spec.s3.bucket, spec.s3.export_prefix, request
        )
        context.log.info(
            f"waiting up to {config.wait_seconds} s for {request.describe()}: {export_arn}"
        )
        status = wait_for_export(
            client, export_arn, budget_s=config.wait_seconds, poll_s=config.poll_seconds
        )
    except ExportRequestError as exc:
        raise dg.Failure(description=str(exc)) from None
    if status != "COMPLETED" and coverage is None:
        raise dg.Failure(
            description=(
                f"requested {request.describe()} for {day} ({export_arn}); it is still "
                f"{status} after {config.wait_seconds} s. Materialize the day again once the "
                "export has completed; this run does not hold a worker while it runs."
            ),
            metadata={"export_arn": export_arn, "status": status},
        )
    return {"requested_export_arn": export_arn, "requested_export_status": status}


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
    def dynamodb_export(
        context: dg.AssetExecutionContext,
        config: ExportRequestConfig,
        s3: S3Resource,
        dynamodb: DynamoDBResource,
    ) -> dg.MaterializeResult:
        client = s3.get_client()
        day = partition_day(context)
        exports, coverage, missing = _coverage(client, spec, day)
        requested: dict[str, str] = {}
        if spec.dynamodb.request and (coverage is None or not coverage.complete):
            requested = _request_export(context, spec, dynamodb, day, coverage, config)
            if requested.get("requested_export_status") == "COMPLETED":
                exports, coverage, missing = _coverage(client, spec, day)
        if coverage is None:
            if requested:
                missing += (
                    f"; requested export {requested['requested_export_arn']} is "
                    f"{requested['requested_export_status']} but no manifest-summary.json of it "
                    f"is under s3://{spec.s3.bucket}/{spec.s3.export_prefix}/AWSDynamoDB/"
                )
            raise dg.Failure(description=missing)
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
                **requested,
            },
            data_version=dg.DataVersion("|".join(coverage.export_ids)),
        )

    return dynamodb_export
