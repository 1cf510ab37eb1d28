"""Write DynamoDB exports to S3 exactly as AWS lays them out, for the local stack and tests.

Why: moto's ExportTableToPointInTime writes no manifests, no `_started`, wrong keys and
no incremental exports (docs/dynamodb-export-format.md section 5), so the pipeline could
never be exercised against it. This writer produces the real shapes byte for byte:
compact DynamoDB-JSON lines ending in `\\n`, gzip members with mtime 0 and OS 0xff, empty
partition files, md5/etag values, the shared `data/` folder of incrementals, the manifest
field order, and the summary written last, since its presence is what marks completion.
"""

from __future__ import annotations

import json
import random
import re
import struct
import uuid
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .layout import (
    DATA_FOLDER,
    FILES_MANIFEST_NAME,
    INCREMENTAL_EXPORT,
    SUMMARY_NAME,
    ExportSummary,
    export_root,
    format_timestamp,
    md5_b64,
    multipart_etag,
    new_export_id,
    parse_summary,
    shared_data_folder,
    started_key,
)

ATTRIBUTE_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})
VIEW_TYPES = frozenset({"NEW_AND_OLD_IMAGES", "NEW_IMAGE"})
MIN_INCREMENTAL_WINDOW = timedelta(minutes=15)
MAX_INCREMENTAL_WINDOW = timedelta(hours=24)
FULL_SUMMARY_VERSION = "2020-06-30"
INCREMENTAL_SUMMARY_VERSION = "2023-08-01"
INCREMENTAL_BILLED_BYTES = 10_000_000  # the 10 MB minimum seen on real incrementals
_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_NAME_LENGTH = 26
_TABLE_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]{3,255}$"
)
# Gzip header as in real export files: deflate, no flags, mtime 0, XFL 2 (max), OS 0xff.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"

_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------ lines


def _check_typed(attributes: Mapping[str, Any], what: str) -> None:
    """Catch plain (untyped) dicts early: each value must be `{"<type>": value}`."""
    if not isinstance(attributes, Mapping):
        raise TypeError(f"{what} must be a mapping of DynamoDB-typed attributes")
    for name, value in attributes.items():
        if not (
            isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in ATTRIBUTE_TYPES
        ):
            raise ValueError(f"{what} attribute {name!r} is not DynamoDB-typed: {value!r}")


def _line(obj: Mapping[str, Any]) -> bytes:
    return _JSON.encode(obj).encode("utf-8") + b"\n"


def encode_full_line(item: Mapping[str, Any]) -> bytes:
    """One full-export line, `{"Item":{...}}\\n`, compact, for an already-typed item."""
    _check_typed(item, "Item")
    return _line({"Item": item})


def encode_incremental_line(
    keys: Mapping[str, Any],
    write_micros: int,
    new_image: Mapping[str, Any] | None = None,
    old_image: Mapping[str, Any] | None = None,
) -> bytes:
    """One incremental line: Metadata, Keys, then OldImage and/or NewImage, as AWS orders them.

    `WriteTimestampMicros` is typed `{"N": "..."}` like an attribute (not a bare number).
    Omitting both images gives the NEW_IMAGE view's delete line.
    """
    if isinstance(write_micros, bool) or not isinstance(write_micros, int) or write_micros < 0:
        raise ValueError(f"write_micros must be a non-negative int, got {write_micros!r}")
    _check_typed(keys, "Keys")
    line: dict[str, Any] = {
        "Metadata": {"WriteTimestampMicros": {"N": str(write_micros)}},
        "Keys": keys,
    }
    if old_image is not None:
        _check_typed(old_image, "OldImage")
        line["OldImage"] = old_image
    if new_image is not None:
        _check_typed(new_image, "NewImage")
        line["NewImage"] = new_image
    return _line(line)


# ------------------------------------------------------------------ gzip


class _GzipBuilder:
    """Streams lines into one gzip member so big exports never sit uncompressed in memory."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        self._parts = [_GZIP_HEADER]
        self._crc = 0
        self._size = 0
        self.items = 0

    def add(self, data: bytes) -> None:
        self._parts.append(self._deflate.compress(data))
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)

    def finish(self) -> bytes:
        self._parts.append(self._deflate.flush())
        self._parts.append(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        return b"".join(self._parts)


def gzip_member(data: bytes) -> bytes:
    """A single gzip member as DynamoDB writes it (mtime 0, OS 0xff); b"" gives 20 bytes."""
    builder = _GzipBuilder()
    builder.add(data)
    return builder.finish()


# ------------------------------------------------------------------ writing


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(UTC)


def _to_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _data_file_name(rng: random.Random) -> str:
    return "".join(rng.choice(_NAME_ALPHABET) for _ in range(_NAME_LENGTH)) + ".json.gz"


def _table_id(table_arn: str) -> str:
    """A stable uuid per table, standing in for the real tableId."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, table_arn))


def _check_table_arn(table_arn: str) -> None:
    if not _TABLE_ARN_RE.fullmatch(table_arn):
        raise ValueError(f"not a DynamoDB table ARN: {table_arn!r}")


def _put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def _write_data_files(
    s3: Any,
    bucket: str,
    folder: str,
    lines: Iterable[bytes],
    files: int,
    empty_files: int,
    rng: random.Random,
    export_id: str,
) -> tuple[bytes, int]:
    """Spread lines over `files` gzip files plus `empty_files` empty partitions; upload them.

    Returns the `manifest-files.json` bytes (listing order shuffled, since AWS promises
    none) and the total item count. Names are drawn from an rng seeded with the export id
    too, so two exports made with equally seeded rngs never overwrite each other's files
    in the incrementals' shared `data/` folder.
    """
    if files < 1 or empty_files < 0:
        raise ValueError("need files >= 1 and empty_files >= 0")
    builders = [_GzipBuilder() for _ in range(files)]
    total = 0
    for index, line in enumerate(lines):
        if not isinstance(line, bytes) or not line.endswith(b"\n") or b"\n" in line[:-1]:
            raise ValueError(f"line {index + 1} must be bytes holding one line ending in \\n")
        builder = builders[index % files]
        builder.add(line)
        builder.items += 1
        total += 1
    builders.extend(_GzipBuilder() for _ in range(empty_files))
    rng.shuffle(builders)

    names = random.Random(f"{export_id}/{rng.getrandbits(64)}")
    used: set[str] = set()
    entries: list[bytes] = []
    for builder in builders:
        body = builder.finish()
        key = folder + _data_file_name(names)
        while key in used:
            key = folder + _data_file_name(names)
        used.add(key)
        _put(s3, bucket, key, body)
        entries.append(
            _line(
                {
                    "itemCount": builder.items,
                    "md5Checksum": md5_b64(body),
                    "etag": multipart_etag(body),
                    "dataFileS3Key": key,
                }
            )
        )
    return b"".join(entries), total


def finish_export(
    s3: Any, bucket: str, root: str, files_manifest: bytes, summary: dict[str, Any]
) -> ExportSummary:
    """Write the manifests in AWS's order; the summary (completion signal) goes last."""
    files_key = root + FILES_MANIFEST_NAME
    _put(s3, bucket, files_key, files_manifest)
    _put(s3, bucket, files_key.removesuffix(".json") + ".md5", md5_b64(files_manifest).encode())
    raw_summary = _JSON.encode(summary).encode("utf-8")  # no trailing newline, as AWS
    key = root + SUMMARY_NAME
    _put(s3, bucket, key, raw_summary)
    _put(s3, bucket, key.removesuffix(".json") + ".md5", md5_b64(raw_summary).encode())
    return parse_summary(raw_summary, key)


def write_started_only(
    s3: Any,
    bucket: str,
    prefix: str | None,
    export_time: datetime,
    rng: random.Random | None = None,
) -> str:
    """An in-progress export (only `_started`), to test that discovery waits for it."""
    export_id = new_export_id(_utc(export_time, "export_time"), rng or random.Random())
    _put(s3, bucket, started_key(prefix, export_id), b"")
    return export_id


def write_full_export(
    s3: Any,
    *,
    bucket: str,
    prefix: str | None,
    table_arn: str,
    export_time: datetime,
    lines: Iterable[bytes],
    files: int = 4,
    rng: random.Random | None = None,
    empty_files: int = 1,
) -> ExportSummary:
    """Write a completed FULL_EXPORT of `lines` (from `encode_full_line`); return its summary.

    As in real full exports the id's start time equals `exportTime`, the summary has no
    `exportType`/`outputView`, and `billedSizeBytes` is 0.
    """
    _check_table_arn(table_arn)
    rng = rng or random.Random()
    start = _to_ms(_utc(export_time, "export_time"))
    export_id = new_export_id(start, rng)
    root = export_root(prefix, export_id)
    _put(s3, bucket, started_key(prefix, export_id), b"")
    files_manifest, total = _write_data_files(
        s3, bucket, root + DATA_FOLDER, lines, files, empty_files, rng, export_id
    )
    end = start + timedelta(milliseconds=rng.randint(240_000, 420_000))
    summary = {
        "version": FULL_SUMMARY_VERSION,
        "exportArn": f"{table_arn}/export/{export_id}",
        "startTime": format_timestamp(start),
        "endTime": format_timestamp(end),
        "tableArn": table_arn,
        "tableId": _table_id(table_arn),
        "exportTime": format_timestamp(start),
        "s3Bucket": bucket,
        "s3Prefix": prefix or None,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": root + FILES_MANIFEST_NAME,
        "billedSizeBytes": 0,
        "itemCount": total,
        "outputFormat": "DYNAMODB_JSON",
    }
    return finish_export(s3, bucket, root, files_manifest, summary)


def write_incremental_export(
    s3: Any,
    *,
    bucket: str,
    prefix: str | None,
    table_arn: str,
    export_from: datetime,
    export_to: datetime,
    lines: Iterable[bytes],
    view: str = "NEW_AND_OLD_IMAGES",
    files: int = 2,
    rng: random.Random | None = None,
    empty_files: int = 1,
) -> ExportSummary:
    """Write a completed INCREMENTAL_EXPORT of `lines` (from `encode_incremental_line`).

    The window `[export_from, export_to)` must be 15 min to 24 h, as AWS enforces. Data
    files go to the shared `AWSDynamoDB/data/` folder; the id's start time is a few whole
    seconds after `export_to` (".000" ms), as in real incrementals.
    """
    _check_table_arn(table_arn)
    if view not in VIEW_TYPES:
        raise ValueError(f"view must be one of {sorted(VIEW_TYPES)}, got {view!r}")
    window_from = _to_ms(_utc(export_from, "export_from"))
    window_to = _to_ms(_utc(export_to, "export_to"))
    if window_from >= window_to:
        raise ValueError(f"export_from {window_from} must be before export_to {window_to}")
    if not MIN_INCREMENTAL_WINDOW <= window_to - window_from <= MAX_INCREMENTAL_WINDOW:
        raise ValueError(f"incremental window {window_to - window_from} is outside 15 min..24 h")
    rng = rng or random.Random()
    start = window_to.replace(microsecond=0) + timedelta(seconds=rng.randint(180, 480))
    export_id = new_export_id(start, rng)
    root = export_root(prefix, export_id)
    _put(s3, bucket, started_key(prefix, export_id), b"")
    files_manifest, total = _write_data_files(
        s3, bucket, shared_data_folder(prefix), lines, files, empty_files, rng, export_id
    )
    end = start + timedelta(milliseconds=rng.randint(240_000, 420_000))
    summary = {
        "version": INCREMENTAL_SUMMARY_VERSION,
        "exportArn": f"{table_arn}/export/{export_id}",
        "startTime": format_timestamp(start),
        "endTime": format_timestamp(end),
        "tableArn": table_arn,
        "tableId": _table_id(table_arn),
        "exportFromTime": format_timestamp(window_from),
        "exportToTime": format_timestamp(window_to),
        "s3Bucket": bucket,
        "s3Prefix": prefix or None,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": root + FILES_MANIFEST_NAME,
        "billedSizeBytes": INCREMENTAL_BILLED_BYTES,
        "itemCount": total,
        "outputFormat": "DYNAMODB_JSON",
        "outputView": view,
        "exportType": INCREMENTAL_EXPORT,
    }
    return finish_export(s3, bucket, root, files_manifest, summary)
