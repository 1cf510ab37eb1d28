"""`dynamodb_export`: which completed DynamoDB exports in S3 make up each UTC day."""

import datetime as dt
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from ...days import parse_day
from ...dynamodb.coverage import (
    DayCoverage,
    NoCoveringExportError,
    chain_end,
    completed_exports,
    cover_day,
)
from ...dynamodb.layout import ExportManifest
from ...dynamodb.requests import (
    ExportRequestError,
    pitr_window,
    plan_after_chain,
    running_export,
    start_export,
    wait_for_export,
)
from ...parquet.coverage_store import save_coverage, verify_once
from ...spec import MigrationSpec
from ..eta import per_day_result
from ..naming import SINGLE, Naming
from ..partitions import backfill_policy
from ..resources import DynamoDBResource
from .scan_snapshot import scan_snapshot


class ExportRequestConfig(dg.Config):
    """With `dynamodb.request: true`: how long one run waits for a requested export."""

    wait_seconds: int = 600
    poll_seconds: int = 20
    rescan: bool = False  # scan mode: scan again although a snapshot covers the days


def _coverages(
    client, spec: MigrationSpec, days: list[dt.date]
) -> tuple[list[ExportManifest], dict[dt.date, DayCoverage | None], dict[dt.date, str]]:
    """The completed exports (listed once for all days), each day's coverage (None if no
    export reaches it) and why not."""
    exports = completed_exports(client, spec.s3.bucket, spec.s3.export_prefix, spec.dynamodb.table)
    coverages: dict[dt.date, DayCoverage | None] = {}
    missing: dict[dt.date, str] = {}
    for day in days:
        try:
            coverages[day] = cover_day(day, exports)
        except NoCoveringExportError as exc:
            coverages[day], missing[day] = None, str(exc)
    return exports, coverages, missing


def _request_export(
    context: dg.AssetExecutionContext,
    spec: MigrationSpec,
    dynamodb: DynamoDBResource,
    day: dt.date,
    covered_until: dt.datetime | None,
    must_complete: bool,
    config: ExportRequestConfig,
) -> dict[str, str]:
    """Start (or find) the export `day` needs and wait a bounded time; return its state."""
    client = dynamodb.get_client()
    try:
        table_arn, pitr = pitr_window(client, spec.dynamodb.table)
        request = plan_after_chain(day, covered_until, pitr)
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
    if status != "COMPLETED" and must_complete:
        raise dg.Failure(
            description=(
                f"requested {request.describe()} for {day} ({export_arn}); it is still "
                f"{status} after {config.wait_seconds} s. Materialize the day again once the "
                "export has completed; this run does not hold a worker while it runs."
            ),
            metadata={"export_arn": export_arn, "status": status},
        )
    return {"requested_export_arn": export_arn, "requested_export_status": status}


def _day_metadata(
    spec: MigrationSpec, coverage: DayCoverage, key: str, verified_now: list[str]
) -> dict[str, Any]:
    return {
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
    }


def build_dynamodb_export(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition, naming: Naming = SINGLE
) -> dg.AssetsDefinition:
    @dg.asset(
        name="dynamodb_export",
        key_prefix=naming.key_prefix,
        partitions_def=partitions,
        group_name=naming.group("dynamodb"),
        kinds={"dynamodb", "s3"},
        backfill_policy=backfill_policy(),
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
        days = [parse_day(key) for key in context.partition_keys]
        exports, coverages, missing = _coverages(client, spec, days)
        requested: dict[str, str] = {}
        scanned: dict[str, Any] = {}
        lacking = [d for d in days if coverages[d] is None or not coverages[d].complete]
        if spec.dynamodb.mode == "scan":  # one snapshot serves every day it covers
            if missing or config.rescan:
                scanned = scan_snapshot(
                    context, spec, client, dynamodb, config.wait_seconds, config.poll_seconds
                )
                exports, coverages, missing = _coverages(client, spec, days)
        elif spec.dynamodb.request and lacking:  # one request serves every day of the run
            requested = _request_export(
                context,
                spec,
                dynamodb,
                lacking[-1],
                chain_end(exports),
                any(coverages[d] is None for d in days),
                config,
            )
            if requested.get("requested_export_status") == "COMPLETED":
                exports, coverages, missing = _coverages(client, spec, days)
        if missing:
            (first, why), more = next(iter(missing.items())), len(missing) - 1
            if requested:
                why += (
                    f"; requested export {requested['requested_export_arn']} is "
                    f"{requested['requested_export_status']} but no manifest-summary.json of it "
                    f"is under s3://{spec.s3.bucket}/{spec.s3.export_prefix}/AWSDynamoDB/"
                )
            also = f" ({more} more day(s) of the run have no export either)" if more else ""
            raise dg.Failure(description=why + also if len(days) == 1 else f"{first}: {why}{also}")
        covered = {day: c for day, c in coverages.items() if c is not None}
        by_id = {m.summary.export_id: m for m in exports}
        used = dict.fromkeys(eid for c in covered.values() for eid in c.export_ids)
        verified_now = [eid for eid in used if verify_once(client, spec, by_id[eid])]
        results = {}
        for day, coverage in covered.items():
            key = save_coverage(client, spec, coverage)
            if not coverage.complete:
                context.log.warning(
                    f"{day} is live: exports hold writes until {coverage.covered_until}"
                )
            results[day.isoformat()] = {
                **_day_metadata(spec, coverage, key, verified_now),
                **requested,
                **scanned,
            }
        versions = {"|".join(c.export_ids) for c in covered.values()}
        return per_day_result(
            context,
            results,
            data_version=dg.DataVersion(versions.pop()) if len(versions) == 1 else None,
        )

    return dynamodb_export
