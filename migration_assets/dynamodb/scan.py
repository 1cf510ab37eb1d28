"""Scan mode: a throttled, resumable parallel Scan written out as a DynamoDB full export.

Why: exports need PITR, which some tables cannot have. A segmented Scan (`Segment` /
`TotalSegments`) reads the same items; written in the exact full-export layout
(`data/*.json.gz` of `{"Item": ...}` lines, `manifest-files.json`, then
`manifest-summary.json` last, export time = scan start), every later hop reads it unchanged,
and since it is a full snapshot one scan serves every day it covers.

- Segments: `TotalSegments` is one per 2 GiB of table (AWS's advice), at least `workers`;
  workers take segments in an order spread over the segment space, so the segments read
  at the same time sit on different partitions.
- Rate: every request goes through one `RateController` (throttle.py) fed by
  `ConsumedCapacity`; a throttled request is retried with the SAME `ExclusiveStartKey`
  after a full-jitter backoff, so nothing is skipped or read twice.
- Restart: per segment a checkpoint in S3 (`LastEvaluatedKey` with its Segment and
  TotalSegments, items so far, data files written). Data files are written before the
  checkpoint that names them, under names derived from (scan, segment, part), so a crash
  between the two leaves a file that the resumed scan overwrites and no manifest lists:
  items are neither lost nor duplicated. What a crash costs is the unflushed tail of each
  segment (at most `checkpoint_every_s` of reading), read again.
- One scan at a time per table: a lease object taken with S3 conditional writes
  (`If-None-Match: *`, then `If-Match` on its ETag), renewed while the scan runs.

State lives under `<export_prefix>/AWSDynamoDB/_scan/` (not an export id, so export
discovery never mistakes it for one).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import math
import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ..s3io import get_object_bytes
from .export_writer import encode_full_line, finish_export, gzip_member
from .layout import (
    DATA_FOLDER,
    FILES_MANIFEST_NAME,
    ExportSummary,
    export_root,
    exports_folder,
    format_timestamp,
    md5_b64,
    multipart_etag,
    new_export_id,
    parse_timestamp,
    started_key,
    summary_key,
)
from .throttle import (
    CapacityTarget,
    Clock,
    RateController,
    SystemClock,
    full_jitter,
    target_from_table,
)

log = logging.getLogger(__name__)

SEGMENT_BYTES = 2 * 1024**3  # AWS: start with one segment per 2 GB
MAX_SEGMENTS = 1_000_000
THROTTLE_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
TRANSIENT_CODES = frozenset({"InternalServerError", "ServiceUnavailable", "InternalFailure"})
TRANSIENT_ATTEMPTS = 8
RCU_PER_4KB = 0.5  # eventually consistent reads
_NAME_ALPHABET_LEN = 26


class ScanBusyError(RuntimeError):
    """Another process holds the table's scan lease (a scan is running elsewhere)."""


class LeaseLostError(RuntimeError):
    """Our lease was taken over (we were presumed dead); stop writing at once."""


@dataclass(frozen=True)
class ScanSettings:
    """How the scan reads: from the spec (`dynamodb.scan`) plus operational knobs."""

    target_share: float = 0.5
    target_rcu_per_s: float | None = None
    segments: int | None = None
    workers: int = 4
    page_items: int | None = None  # Scan `Limit`; None: full 1 MB pages
    file_max_bytes: int = 64 * 1024**2  # uncompressed bytes per data file
    checkpoint_every_s: float = 30.0
    refresh_s: float = 30.0  # how often DescribeTable is re-read for capacity changes
    lease_s: float = 300.0  # a lease not renewed for this long belongs to a dead run
    progress_every_s: float = 30.0
    max_throttled_s: float = 1800.0  # give up after this long throttled without a success
    consistent_read: bool = False
    price_per_million_rru: float = 0.125  # on-demand us-east-1 (after the Nov-2024 cut)

    @classmethod
    def from_spec(cls, scan: Any, **overrides: Any) -> ScanSettings:
        return cls(
            target_share=scan.target_share,
            target_rcu_per_s=scan.target_rcu_per_s,
            segments=scan.segments,
            workers=scan.workers,
            **overrides,
        )


def plan_segments(table_size_bytes: int, workers: int, configured: int | None = None) -> int:
    """TotalSegments: the configured count, else one per 2 GiB and at least one per worker."""
    if configured is not None:
        return configured
    by_size = math.ceil(max(table_size_bytes, 0) / SEGMENT_BYTES)
    return max(1, min(MAX_SEGMENTS, max(workers, by_size)))


def segment_order(total: int, workers: int) -> list[int]:
    """Segments in the order workers take them: `workers` runs started far apart.

    With 2 workers and 1,000,000 segments the first two taken are 0 and 500,000, then 1
    and 500,001, ...: segments read at the same time are never neighbours.
    """
    runs = max(1, min(workers, total))
    starts = [total * run // runs for run in range(runs)] + [total]
    order: list[int] = []
    for step in range(starts[1] - starts[0] + 1):
        for run in range(runs):
            segment = starts[run] + step
            if segment < starts[run + 1]:
                order.append(segment)
    return order


# --------------------------------------------------------------------- typed values


def to_export_json(value: Any) -> Any:
    """botocore's typed item (bytes for B) -> export JSON (base64 text for B), recursively."""
    if isinstance(value, dict):
        out = {}
        for name, inner in value.items():
            if name == "B" and isinstance(inner, bytes | bytearray):
                out[name] = base64.b64encode(inner).decode("ascii")
            elif name == "BS" and isinstance(inner, list):
                out[name] = [base64.b64encode(b).decode("ascii") for b in inner]
            else:
                out[name] = to_export_json(inner)
        return out
    if isinstance(value, list):
        return [to_export_json(inner) for inner in value]
    return value


def from_export_json(value: Any) -> Any:
    """The inverse, for checkpointed keys going back into `ExclusiveStartKey`."""
    if isinstance(value, dict):
        out = {}
        for name, inner in value.items():
            if name == "B" and isinstance(inner, str):
                out[name] = base64.b64decode(inner)
            elif name == "BS" and isinstance(inner, list):
                out[name] = [base64.b64decode(b) for b in inner]
            else:
                out[name] = from_export_json(inner)
        return out
    if isinstance(value, list):
        return [from_export_json(inner) for inner in value]
    return value


# --------------------------------------------------------------------- S3 state


def scan_folder(prefix: str | None) -> str:
    return exports_folder(prefix) + "_scan/"


def lease_key(prefix: str | None) -> str:
    return scan_folder(prefix) + "lease.json"


def plan_key(prefix: str | None, export_id: str) -> str:
    return f"{scan_folder(prefix)}{export_id}/plan.json"


def checkpoint_key(prefix: str | None, export_id: str, segment: int) -> str:
    return f"{scan_folder(prefix)}{export_id}/segment-{segment:07d}.json"


def result_key(prefix: str | None, export_id: str) -> str:
    return f"{scan_folder(prefix)}{export_id}/result.json"


def data_key(prefix: str | None, export_id: str, segment: int, part: int) -> str:
    """A 26-character base32 name like AWS's, fixed by (scan, segment, part): a part
    rewritten after a crash overwrites its orphan instead of adding a second copy."""
    digest = hashlib.sha256(f"{export_id}/{segment}/{part}".encode()).digest()
    name = base64.b32encode(digest).decode("ascii").lower()[:_NAME_ALPHABET_LEN]
    return f"{export_root(prefix, export_id)}{DATA_FOLDER}{name}.json.gz"


def _put_json(s3: Any, bucket: str, key: str, data: dict[str, Any], **kwargs: Any) -> str:
    body = json.dumps(data, sort_keys=True).encode()
    response = s3.put_object(Bucket=bucket, Key=key, Body=body, **kwargs)
    return response.get("ETag", "")


def _get_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    raw = get_object_bytes(s3, bucket, key)
    return None if raw is None else json.loads(raw)


@dataclass
class SegmentCheckpoint:
    """What one segment has durably written: resume from `last_key` with the same segments."""

    segment: int
    total_segments: int
    last_key: dict[str, Any] | None = None  # export JSON (B as base64)
    items: int = 0
    consumed_rcu: float = 0.0
    files: list[dict[str, Any]] = field(default_factory=list)  # manifest-files.json entries
    done: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentCheckpoint:
        return cls(**data)


@dataclass(frozen=True)
class ScanPlan:
    export_id: str
    table: str
    table_arn: str
    total_segments: int
    start_time: str  # the snapshot's export time: every write before it is in the scan

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanPlan:
        return cls(**data)


def open_scans(s3: Any, bucket: str, prefix: str | None, table: str) -> list[ScanPlan]:
    """Started but unfinished scans of `table` (a plan and no manifest-summary.json)."""
    folder = scan_folder(prefix)
    plans: list[ScanPlan] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=folder, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            export_id = common["Prefix"][len(folder) :].rstrip("/")
            data = _get_json(s3, bucket, plan_key(prefix, export_id))
            if data is None or data.get("table") != table:
                continue
            if get_object_bytes(s3, bucket, summary_key(prefix, export_id)) is None:
                plans.append(ScanPlan.from_json(data))
    return sorted(plans, key=lambda p: p.export_id)


class Lease:
    """One scan per table at a time, by S3 conditional writes (no lock service needed)."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        lease_s: float,
        owner: str | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.s3, self.bucket, self.key, self.lease_s = s3, bucket, key, lease_s
        self.owner = owner or uuid.uuid4().hex
        self.now = now
        self.etag: str | None = None

    def _body(self) -> dict[str, Any]:
        return {"owner": self.owner, "heartbeat": format_timestamp(self.now())}

    def acquire(self) -> None:
        try:
            self.etag = _put_json(self.s3, self.bucket, self.key, self._body(), IfNoneMatch="*")
            return
        except ClientError as exc:
            if not _precondition_failed(exc):
                raise
        response = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        held = json.loads(response["Body"].read())
        age = (self.now() - parse_timestamp(held["heartbeat"])).total_seconds()
        if held.get("owner") != self.owner and age < self.lease_s:
            raise ScanBusyError(
                f"a scan of this table is running elsewhere (lease s3://{self.bucket}/"
                f"{self.key}, heartbeat {age:.0f} s ago)"
            )
        try:  # a dead run's lease: take it over, unless someone else just did
            self.etag = _put_json(
                self.s3, self.bucket, self.key, self._body(), IfMatch=response["ETag"]
            )
        except ClientError as exc:
            if _precondition_failed(exc):
                raise ScanBusyError("another run took over the scan lease first") from None
            raise

    def renew(self) -> None:
        try:
            self.etag = _put_json(self.s3, self.bucket, self.key, self._body(), IfMatch=self.etag)
        except ClientError as exc:
            if _precondition_failed(exc):
                self.etag = None  # not ours any more: never delete it on the way out
                raise LeaseLostError("the scan lease was taken over by another run") from None
            raise

    def release(self) -> None:
        if self.etag is not None:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key)
            self.etag = None


def _precondition_failed(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or status in (
        409,
        412,
    )


# --------------------------------------------------------------------- the scan


@dataclass
class ScanResult:
    export_id: str
    summary: ExportSummary | None
    items: int
    segments: int
    consumed_rcu: float
    requests: int
    throttle_events: int
    elapsed_s: float
    target_rcu_per_s: float
    target_why: str
    achieved_rcu_per_s: float
    targets: list[tuple[float, float, str]]
    resumed_segments: int
    estimated_cost_usd: float
    price_per_million_rru: float

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("summary")
        return data


@dataclass
class _Shared:
    """What all workers of one scan share."""

    dynamodb: Any
    s3: Any
    bucket: str
    prefix: str | None
    plan: ScanPlan
    settings: ScanSettings
    controller: RateController
    clock: Clock
    stop: threading.Event
    rng: random.Random
    rng_lock: threading.Lock = field(default_factory=threading.Lock)
    lock: threading.Lock = field(default_factory=threading.Lock)
    checkpoints: dict[int, SegmentCheckpoint] = field(default_factory=dict)
    unflushed_items: int = 0

    def jitter(self, attempt: int) -> float:
        with self.rng_lock:
            return full_jitter(attempt, self.rng)


def _scan_page(shared: _Shared, request: dict[str, Any]) -> dict[str, Any]:
    """One Scan page through the rate controller; throttles retry the same request."""
    attempt, transient, throttled_since = 0, 0, None
    while True:
        reserved = shared.controller.acquire()
        try:
            response = shared.dynamodb.scan(**request)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            now = shared.clock.monotonic()
            if code in THROTTLE_CODES:
                shared.controller.throttled(reserved)
                throttled_since = now if throttled_since is None else throttled_since
                if now - throttled_since > shared.settings.max_throttled_s:
                    raise
                if shared.controller.stats.throttles % 50 == 1:
                    log.warning(
                        "throttled (%s) on segment %s; %d throttle events so far, rate now "
                        "%.1f RCU/s",
                        code,
                        request["Segment"],
                        shared.controller.stats.throttles,
                        shared.controller.rate,
                    )
            elif code in TRANSIENT_CODES and transient < TRANSIENT_ATTEMPTS:
                shared.controller.settle(reserved, 0.0)
                transient += 1
            else:
                raise
            shared.clock.sleep(shared.jitter(attempt))
            attempt += 1
            continue
        except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError):
            if transient >= TRANSIENT_ATTEMPTS:
                raise
            shared.controller.settle(reserved, 0.0)
            transient += 1
            shared.clock.sleep(shared.jitter(attempt))
            attempt += 1
            continue
        consumed = (response.get("ConsumedCapacity") or {}).get("CapacityUnits", reserved)
        shared.controller.settle(reserved, float(consumed))
        return response


def _flush(
    shared: _Shared, checkpoint: SegmentCheckpoint, lines: list[bytes], consumed: float
) -> None:
    """Data file first, then the checkpoint naming it (the order that makes a crash safe)."""
    plan = shared.plan
    if lines:
        body = gzip_member(b"".join(lines))
        key = data_key(shared.prefix, plan.export_id, checkpoint.segment, len(checkpoint.files))
        shared.s3.put_object(Bucket=shared.bucket, Key=key, Body=body)
        checkpoint.files.append(
            {
                "itemCount": len(lines),
                "md5Checksum": md5_b64(body),
                "etag": multipart_etag(body),
                "dataFileS3Key": key,
            }
        )
        checkpoint.items += len(lines)
    checkpoint.consumed_rcu += consumed
    _put_json(
        shared.s3,
        shared.bucket,
        checkpoint_key(shared.prefix, plan.export_id, checkpoint.segment),
        asdict(checkpoint),
    )


def _scan_segment(shared: _Shared, checkpoint: SegmentCheckpoint) -> None:
    """Read one segment to its end (or until stopped), flushing data + checkpoint as it goes."""
    settings, plan = shared.settings, shared.plan
    request: dict[str, Any] = {
        "TableName": plan.table,
        "Segment": checkpoint.segment,
        "TotalSegments": plan.total_segments,
        "ReturnConsumedCapacity": "TOTAL",
    }
    if settings.page_items:
        request["Limit"] = settings.page_items
    if settings.consistent_read:
        request["ConsistentRead"] = True
    position = checkpoint.last_key
    lines: list[bytes] = []
    size, consumed = 0, 0.0
    last_flush = shared.clock.monotonic()
    while not checkpoint.done and not shared.stop.is_set():
        if position is not None:
            request["ExclusiveStartKey"] = from_export_json(position)
        response = _scan_page(shared, request)
        for item in response.get("Items", []):
            line = encode_full_line(to_export_json(item))
            lines.append(line)
            size += len(line)
        with shared.lock:
            shared.unflushed_items += len(response.get("Items", []))
        consumed += float((response.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0))
        last_key = response.get("LastEvaluatedKey")
        position = to_export_json(last_key) if last_key else None
        done = last_key is None
        now = shared.clock.monotonic()
        if (
            done
            or size >= settings.file_max_bytes
            or now - last_flush >= (settings.checkpoint_every_s)
        ):
            checkpoint.last_key, checkpoint.done = position, done
            _flush(shared, checkpoint, lines, consumed)
            with shared.lock:
                shared.unflushed_items -= len(lines)
            lines, size, consumed, last_flush = [], 0, 0.0, now
    if lines:  # stopped by another worker's failure: keep what was read (graceful stop)
        checkpoint.last_key = position
        _flush(shared, checkpoint, lines, consumed)
        with shared.lock:
            shared.unflushed_items -= len(lines)


def _new_plan(
    s3: Any,
    bucket: str,
    prefix: str | None,
    table: dict[str, Any],
    settings: ScanSettings,
    started: dt.datetime,
    rng: random.Random,
) -> ScanPlan:
    start = started.replace(microsecond=started.microsecond // 1000 * 1000)
    export_id = new_export_id(start, rng)
    plan = ScanPlan(
        export_id=export_id,
        table=table["TableName"],
        table_arn=table["TableArn"],
        total_segments=plan_segments(
            int(table.get("TableSizeBytes") or 0), settings.workers, settings.segments
        ),
        start_time=format_timestamp(start),
    )
    s3.put_object(Bucket=bucket, Key=started_key(prefix, export_id), Body=b"")
    _put_json(s3, bucket, plan_key(prefix, export_id), asdict(plan))
    return plan


def _load_checkpoints(
    s3: Any, bucket: str, prefix: str | None, plan: ScanPlan
) -> dict[int, SegmentCheckpoint]:
    """Every segment's checkpoint (fresh ones for segments never flushed)."""
    folder = f"{scan_folder(prefix)}{plan.export_id}/"
    found: dict[int, SegmentCheckpoint] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=folder + "segment-"):
        for obj in page.get("Contents", []):
            data = _get_json(s3, bucket, obj["Key"])
            if data is None:
                continue
            checkpoint = SegmentCheckpoint.from_json(data)
            if checkpoint.total_segments != plan.total_segments:
                raise ValueError(
                    f"{obj['Key']}: checkpoint of {checkpoint.total_segments} segments in a "
                    f"scan of {plan.total_segments}; a LastEvaluatedKey is only valid with "
                    "the same TotalSegments"
                )
            found[checkpoint.segment] = checkpoint
    return {
        segment: found.get(segment) or SegmentCheckpoint(segment, plan.total_segments)
        for segment in range(plan.total_segments)
    }


def estimate_finish_s(
    table: dict[str, Any],
    items_done: int,
    consumed: float,
    segments_done: int,
    total: int,
    rate: float,
) -> float | None:
    """Seconds left at `rate`: from the table size (0.5 RCU per 4 KB) when DescribeTable
    knows it, else from its item count, else from the share of segments finished."""
    size = int(table.get("TableSizeBytes") or 0)
    if rate <= 0:
        return None
    if size > 0:
        return max(0.0, size / 4096 * RCU_PER_4KB - consumed) / rate
    count = int(table.get("ItemCount") or 0)
    fraction = items_done / count if count > 0 else (segments_done / total if total else 0)
    if fraction <= 0 or consumed <= 0:
        return None
    return max(0.0, consumed / fraction - consumed) / rate


def _finish(
    shared: _Shared, checkpoints: dict[int, SegmentCheckpoint], ended: dt.datetime
) -> ExportSummary:
    """Manifests in AWS's order (files manifest, then the summary that marks completion)."""
    plan, s3, bucket, prefix = shared.plan, shared.s3, shared.bucket, shared.prefix
    entries = [entry for seg in sorted(checkpoints) for entry in checkpoints[seg].files]
    if not entries:  # AWS always lists at least one (possibly empty) data file
        body = gzip_member(b"")
        key = data_key(prefix, plan.export_id, 0, 1_000_000)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        entries.append(
            {
                "itemCount": 0,
                "md5Checksum": md5_b64(body),
                "etag": multipart_etag(body),
                "dataFileS3Key": key,
            }
        )
    root = export_root(prefix, plan.export_id)
    files_manifest = b"".join(
        json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries
    )
    start = parse_timestamp(plan.start_time)
    summary = {
        "version": "2020-06-30",
        "exportArn": f"{plan.table_arn}/export/{plan.export_id}",
        "startTime": plan.start_time,
        "endTime": format_timestamp(max(ended, start)),
        "tableArn": plan.table_arn,
        "tableId": str(uuid.uuid5(uuid.NAMESPACE_URL, plan.table_arn)),
        "exportTime": plan.start_time,
        "s3Bucket": bucket,
        "s3Prefix": prefix or None,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": root + FILES_MANIFEST_NAME,
        "billedSizeBytes": 0,
        "itemCount": sum(e["itemCount"] for e in entries),
        "outputFormat": "DYNAMODB_JSON",
    }
    return finish_export(s3, bucket, root, files_manifest, summary)


def run_scan(
    dynamodb: Any,
    s3: Any,
    *,
    bucket: str,
    prefix: str | None,
    table: str,
    settings: ScanSettings,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    owner: str | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    progress: Callable[[str], None] | None = None,
) -> ScanResult:
    """Scan `table` (or resume its unfinished scan) into a full export; return the stats.

    `dynamodb` should not retry throttles itself (max_attempts=1): the controller must see
    them to slow down, and retries here always reuse the same ExclusiveStartKey.
    """
    clock = clock or SystemClock()
    report = progress or log.info
    description = dynamodb.describe_table(TableName=table)["Table"]
    target = target_from_table(description, settings.target_share, settings.target_rcu_per_s)
    lease = Lease(s3, bucket, lease_key(prefix), settings.lease_s, owner, now)
    lease.acquire()
    try:
        existing = open_scans(s3, bucket, prefix, table)
        plan = existing[-1] if existing else None
        if plan is None:
            plan = _new_plan(
                s3, bucket, prefix, description, settings, now(), rng or random.Random()
            )
        elif settings.segments is not None and settings.segments != plan.total_segments:
            report(
                f"resuming scan {plan.export_id} with its {plan.total_segments} segments "
                f"(dynamodb.scan.segments {settings.segments} applies to the next scan)"
            )
        checkpoints = _load_checkpoints(s3, bucket, prefix, plan)
        resumed = sum(1 for c in checkpoints.values() if c.files or c.done or c.last_key)

        def refresh() -> CapacityTarget:
            fresh = dynamodb.describe_table(TableName=table)["Table"]
            return target_from_table(fresh, settings.target_share, settings.target_rcu_per_s)

        controller = RateController(target, clock, refresh=refresh, refresh_s=settings.refresh_s)
        shared = _Shared(
            dynamodb,
            s3,
            bucket,
            prefix,
            plan,
            settings,
            controller,
            clock,
            threading.Event(),
            rng or random.Random(),
            checkpoints=checkpoints,
        )
        report(
            f"scan {plan.export_id} of {table}: {plan.total_segments} segments, "
            f"{settings.workers} workers, target {target.rcu_per_s:g} RCU/s ({target.why}), "
            f"{resumed} segments resumed from checkpoints"
        )
        pending = [
            s
            for s in segment_order(plan.total_segments, settings.workers)
            if not checkpoints[s].done
        ]
        _run_workers(shared, pending, lease, description, report)
        summary = _finish(shared, checkpoints, now())
        stats = controller.stats
        result = ScanResult(
            export_id=plan.export_id,
            summary=summary,
            items=summary.item_count,
            segments=plan.total_segments,
            consumed_rcu=round(stats.consumed, 3),
            requests=stats.requests,
            throttle_events=stats.throttles,
            elapsed_s=round(stats.elapsed_s, 3),
            target_rcu_per_s=controller.target.rcu_per_s,
            target_why=controller.target.why,
            achieved_rcu_per_s=round(controller.achieved_rate(), 3),
            targets=stats.targets,
            resumed_segments=resumed,
            estimated_cost_usd=round(stats.consumed * settings.price_per_million_rru / 1e6, 9),
            price_per_million_rru=settings.price_per_million_rru,
        )
        _put_json(s3, bucket, result_key(prefix, plan.export_id), result.to_json())
        report(
            f"scan {plan.export_id} done: {result.items} items, {result.consumed_rcu:g} RCU in "
            f"{result.elapsed_s:.1f} s ({result.achieved_rcu_per_s:g} RCU/s, target "
            f"{result.target_rcu_per_s:g}), {result.throttle_events} throttle events"
        )
        return result
    finally:
        lease.release()


def _run_workers(
    shared: _Shared,
    pending: list[int],
    lease: Lease,
    table: dict[str, Any],
    report: Callable[[str], None],
) -> None:
    """Workers pull segments from one queue; the calling thread renews the lease and logs."""
    queue = list(reversed(pending))
    queue_lock = threading.Lock()

    def worker() -> None:
        while not shared.stop.is_set():
            with queue_lock:
                if not queue:
                    return
                segment = queue.pop()
            _scan_segment(shared, shared.checkpoints[segment])

    settings = shared.settings
    with ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="scan") as pool:
        futures: list[Future[None]] = [pool.submit(worker) for _ in range(settings.workers)]
        beat = min(settings.progress_every_s, settings.lease_s / 3)
        while True:
            done, running = wait(futures, timeout=beat, return_when=FIRST_EXCEPTION)
            if any(f.exception() for f in done):
                shared.stop.set()
                wait(futures)
                raise next(f.exception() for f in futures if f.exception())  # type: ignore[misc]
            if not running:
                return
            try:
                lease.renew()
            except LeaseLostError:
                shared.stop.set()
                wait(futures)
                raise
            except ClientError as exc:  # a transient S3 error: renew at the next beat
                log.warning("could not renew the scan lease (%s); retrying", exc)
            _progress(shared, table, report)


def _progress(shared: _Shared, table: dict[str, Any], report: Callable[[str], None]) -> None:
    checkpoints = shared.checkpoints.values()
    items = sum(c.items for c in checkpoints) + shared.unflushed_items
    done = sum(1 for c in checkpoints if c.done)
    stats, controller = shared.controller.stats, shared.controller
    left = estimate_finish_s(
        table, items, stats.consumed, done, shared.plan.total_segments, controller.rate
    )
    eta = (
        "unknown"
        if left is None
        else (format_timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=left)))
    )
    report(
        f"scan {shared.plan.export_id}: {items} items, {done}/{shared.plan.total_segments} "
        f"segments, {stats.consumed:g} RCU ({controller.achieved_rate():.1f} RCU/s, target "
        f"{controller.target.rcu_per_s:g}), {stats.throttles} throttle events, "
        f"estimated finish {eta}"
    )
