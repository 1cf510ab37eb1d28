"""A full export split by day once, for every later run of a backfill.

A backfill batches days per run, and every day of a full export needs the same data files:
a three-year export would be read and parsed again by each of its ~37 runs (measured: the
biggest part of every run). The first run that reads the export whole writes each day's
decoded rows (Arrow IPC, zstd) and the export's bad records under
`{parquet_prefix}/_split/<export id>-<spec digest>/`, committed by `_SUCCESS.json` written
last; later runs read only their days' files. One run splits at a time: it holds a lease
object created with `If-None-Match: *`. A run that finds the lease taken reads the export
itself, keeping only its days (the same rows either way), so no run ever waits for another.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..days import from_epoch_day
from ..dynamodb.decode import Reject
from ..dynamodb.layout import ExportManifest, format_timestamp
from ..s3io import get_object_bytes
from ..spec import MigrationSpec

LEASE_TTL = dt.timedelta(hours=2)  # a lease older than this is a crashed splitter's


def _digest(spec: MigrationSpec) -> str:
    """What the decoded rows depend on: columns, event time, partition range."""
    text = repr((spec.columns, spec.dynamodb.event_time, spec.partitions))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def split_prefix(spec: MigrationSpec, export_id: str) -> str:
    return f"{spec.s3.parquet_prefix}/_split/{export_id}-{_digest(spec)}"


def day_key(spec: MigrationSpec, export_id: str, day_number: int) -> str:
    return f"{split_prefix(spec, export_id)}/dt={from_epoch_day(day_number)}.arrow"


@dataclass(frozen=True)
class SplitExport:
    """A committed split: which days have rows, and the export's counts and bad records."""

    export_id: str
    days: frozenset[int]  # epoch day numbers with rows
    files: int
    items: int
    bytes: int
    rejects: tuple[Reject, ...]


def _reject_json(reject: Reject) -> dict[str, Any]:
    return {
        **reject.to_json(),
        "day": reject.day.isoformat() if reject.day else None,
        "in_rows": reject.in_rows,
    }


def _reject_of(data: dict[str, Any]) -> Reject:
    return Reject(
        data["file"],
        data["line"],
        data["reason"],
        data["raw"],
        dt.date.fromisoformat(data["day"]) if data["day"] else None,
        data["event_second"],
        data["in_rows"],
    )


def load_split(s3: Any, spec: MigrationSpec, manifest: ExportManifest) -> SplitExport | None:
    """The committed split of this export (for this spec), or None."""
    export_id = manifest.summary.export_id
    marker = get_object_bytes(s3, spec.s3.bucket, f"{split_prefix(spec, export_id)}/_SUCCESS.json")
    if marker is None:
        return None
    record = json.loads(marker)
    if record["files_manifest_md5"] != manifest.files_manifest_md5_b64:
        return None  # not the export as it is now
    return SplitExport(
        export_id,
        frozenset(record["days"]),
        record["files"],
        record["items"],
        record["bytes"],
        tuple(_reject_of(r) for r in record["rejects"]),
    )


def read_split_day(
    s3: Any, spec: MigrationSpec, split: SplitExport, day_number: int, schema: pa.Schema
) -> pa.Table:
    if day_number not in split.days:
        return schema.empty_table()
    data = get_object_bytes(s3, spec.s3.bucket, day_key(spec, split.export_id, day_number))
    if data is None:
        raise FileNotFoundError(
            f"split file of {from_epoch_day(day_number)} of export {split.export_id} is missing"
        )
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def take_lease(s3: Any, spec: MigrationSpec, export_id: str, now: dt.datetime) -> bool:
    """True if this caller may split the export (no one else is at it)."""
    key = f"{split_prefix(spec, export_id)}/_lease.json"
    body = json.dumps({"owner": uuid.uuid4().hex, "since": format_timestamp(now)}).encode()
    try:
        s3.put_object(Bucket=spec.s3.bucket, Key=key, Body=body, IfNoneMatch="*")
        return True
    except s3.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
            raise
    held = get_object_bytes(s3, spec.s3.bucket, key)
    since = json.loads(held)["since"] if held else None
    if since and now - dt.datetime.fromisoformat(since.replace("Z", "+00:00")) < LEASE_TTL:
        return False
    s3.put_object(Bucket=spec.s3.bucket, Key=key, Body=body)  # a stale lease: take it over
    return True


def write_split_day(
    s3: Any, spec: MigrationSpec, export_id: str, day_number: int, table: pa.Table
) -> None:
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    s3.put_object(
        Bucket=spec.s3.bucket, Key=day_key(spec, export_id, day_number), Body=sink.getvalue()
    )


def commit_split(
    s3: Any,
    spec: MigrationSpec,
    manifest: ExportManifest,
    days: list[int],
    rejects: list[Reject],
    *,
    files: int,
    items: int,
    size: int,
) -> None:
    """Written after every day's file: the marker that makes the split usable; then the
    lease is released."""
    export_id = manifest.summary.export_id
    record = {
        "export_id": export_id,
        "files_manifest_md5": manifest.files_manifest_md5_b64,
        "days": sorted(days),
        "files": files,
        "items": items,
        "bytes": size,
        "rejects": [_reject_json(r) for r in rejects],
    }
    prefix = split_prefix(spec, export_id)
    s3.put_object(
        Bucket=spec.s3.bucket, Key=f"{prefix}/_SUCCESS.json", Body=json.dumps(record).encode()
    )
    s3.delete_object(Bucket=spec.s3.bucket, Key=f"{prefix}/_lease.json")
