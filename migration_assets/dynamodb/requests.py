"""Asking DynamoDB for the export a day still needs (`dynamodb.request: true`).

A day needs a full export when none exists (or the newest one's incremental chain can no
longer be continued, because its end fell out of the PITR window), otherwise the next
incremental window of the chain: `[covered_until, min(covered_until + 24 h, latest
restorable time))`, at least 15 minutes long. Requests carry a deterministic ClientToken so
asking twice never starts two exports, and an export already running for the table is
waited for instead of doubled. Waiting is bounded: the caller gets the export's state back
and decides (the sensor materializes the day once the export completes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..days import day_window
from .coverage import DayCoverage
from .layout import format_timestamp

MIN_WINDOW = dt.timedelta(minutes=15)
MAX_WINDOW = dt.timedelta(hours=24)


class ExportRequestError(RuntimeError):
    """DynamoDB cannot export what the day needs (PITR off, window out of range...)."""


@dataclass(frozen=True)
class ExportRequest:
    export_type: str  # FULL_EXPORT | INCREMENTAL_EXPORT
    window_from: dt.datetime | None = None
    window_to: dt.datetime | None = None

    def describe(self) -> str:
        if self.export_type == "FULL_EXPORT":
            return "a full export at the latest restorable time"
        assert self.window_from and self.window_to
        return (
            f"an incremental export of [{format_timestamp(self.window_from)}, "
            f"{format_timestamp(self.window_to)})"
        )


@dataclass(frozen=True)
class PitrWindow:
    earliest: dt.datetime
    latest: dt.datetime


def plan_request(
    day: dt.date, coverage: DayCoverage | None, pitr: PitrWindow
) -> ExportRequest | None:
    """What to ask DynamoDB for so that `day` gets (more) covered; None if nothing can help."""
    if coverage is None:
        return ExportRequest("FULL_EXPORT")
    if coverage.complete:
        return None
    covered_until = dt.datetime.fromisoformat(coverage.covered_until.replace("Z", "+00:00"))
    return plan_after_chain(day, covered_until, pitr)


def plan_after_chain(
    day: dt.date, covered_until: dt.datetime | None, pitr: PitrWindow
) -> ExportRequest | None:
    """Like `plan_request`, from the chain's end alone: a day the chain has not reached yet
    (today, just after midnight) needs the next incremental window, not a new full export."""
    if covered_until is None:
        return ExportRequest("FULL_EXPORT")
    if covered_until < pitr.earliest:
        return ExportRequest("FULL_EXPORT")  # the chain's end is no longer restorable
    _, day_end = day_window(day)
    window_to = min(covered_until + MAX_WINDOW, pitr.latest)
    if window_to - covered_until < MIN_WINDOW:
        return None  # too soon: DynamoDB refuses windows shorter than 15 minutes
    if covered_until >= day_end:
        return None
    return ExportRequest("INCREMENTAL_EXPORT", covered_until, window_to)


def client_token(table_arn: str, request: ExportRequest) -> str:
    """The same request always carries the same token (DynamoDB keeps it 8 hours)."""
    parts = [
        table_arn,
        request.export_type,
        format_timestamp(request.window_from) if request.window_from else "",
        format_timestamp(request.window_to) if request.window_to else "",
    ]
    if request.export_type == "FULL_EXPORT":  # one full export per table per hour at most
        parts.append(dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H"))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def pitr_window(dynamodb: Any, table: str) -> tuple[str, PitrWindow]:
    """The table's ARN and restorable window; PITR off is a clear error (exports need it)."""
    table_arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    pitr = backups.get("PointInTimeRecoveryDescription", {})
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise ExportRequestError(
            f"point-in-time recovery is not enabled on DynamoDB table {table!r}; exports need "
            "it (enable PITR, or use dynamodb.mode: scan)"
        )
    now = dt.datetime.now(dt.UTC)
    earliest = pitr.get("EarliestRestorableDateTime") or now - dt.timedelta(days=35)
    latest = pitr.get("LatestRestorableDateTime") or now - dt.timedelta(minutes=5)
    return table_arn, PitrWindow(earliest.astimezone(dt.UTC), latest.astimezone(dt.UTC))


def running_export(dynamodb: Any, table_arn: str) -> str | None:
    """The ARN of an export of this table that is still in progress, if any."""
    token = None
    while True:
        page = dynamodb.list_exports(
            TableArn=table_arn, MaxResults=25, **({"NextToken": token} if token else {})
        )
        for summary in page.get("ExportSummaries", []):
            if summary.get("ExportStatus") == "IN_PROGRESS":
                return summary["ExportArn"]
        token = page.get("NextToken")
        if not token:
            return None


def start_export(
    dynamodb: Any, table_arn: str, bucket: str, prefix: str, request: ExportRequest
) -> str:
    """Ask for the export (idempotent through the ClientToken); return its ARN."""
    arguments: dict[str, Any] = {
        "TableArn": table_arn,
        "S3Bucket": bucket,
        "S3Prefix": prefix,
        "ExportFormat": "DYNAMODB_JSON",
        "ExportType": request.export_type,
        "ClientToken": client_token(table_arn, request),
    }
    if request.export_type == "INCREMENTAL_EXPORT":
        arguments["IncrementalExportSpecification"] = {
            "ExportFromTime": request.window_from,
            "ExportToTime": request.window_to,
            "ExportViewType": "NEW_AND_OLD_IMAGES",
        }
    response = dynamodb.export_table_to_point_in_time(**arguments)
    return response["ExportDescription"]["ExportArn"]


def wait_for_export(
    dynamodb: Any,
    export_arn: str,
    *,
    budget_s: float,
    poll_s: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll until the export leaves IN_PROGRESS or the budget is spent; return its status."""
    deadline = time.monotonic() + budget_s
    while True:
        description = dynamodb.describe_export(ExportArn=export_arn)["ExportDescription"]
        status = description["ExportStatus"]
        if status == "FAILED":
            raise ExportRequestError(
                f"export {export_arn} failed: {description.get('FailureCode')} "
                f"{description.get('FailureMessage')}"
            )
        if status != "IN_PROGRESS" or time.monotonic() + poll_s > deadline:
            return status
        sleep(poll_s)
