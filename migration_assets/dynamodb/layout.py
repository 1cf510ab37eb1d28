"""Read side of the DynamoDB export-to-S3 layout (full and incremental exports).

Why this module exists: DynamoDB writes an export as `_started`, data files, then
`manifest-files.json` and finally `manifest-summary.json`. Only the summary proves the
export finished, and incremental exports share one `AWSDynamoDB/data/` folder, so the
data files must come from `manifest-files.json` and never from listing S3. Everything
read here is checked strictly, because a silently mis-read manifest means silently lost
rows downstream. See `docs/dynamodb-export-format.md` sections 1, 2 and 7.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..s3io import get_object_bytes, stream_md5_b64

SUMMARY_NAME = "manifest-summary.json"
FILES_MANIFEST_NAME = "manifest-files.json"
STARTED_NAME = "_started"
DATA_FOLDER = "data/"
EXPORTS_FOLDER_NAME = "AWSDynamoDB"
# AWS's own exports name the sidecars `.md5`; the current AWS guide says `.checksum`.
CHECKSUM_SUFFIXES = (".md5", ".checksum")

FULL_EXPORT = "FULL_EXPORT"
INCREMENTAL_EXPORT = "INCREMENTAL_EXPORT"
ExportType = Literal["FULL_EXPORT", "INCREMENTAL_EXPORT"]
OUTPUT_FORMATS = frozenset({"DYNAMODB_JSON", "ION"})

EXPORT_ID_RE = re.compile(r"^(\d{14})-([0-9a-f]{8})$")
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_ETAG_RE = re.compile(r"^[0-9a-f]{32}(-\d+)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CorruptExportError(ValueError):
    """An export object is missing, malformed or fails its checksum/count checks.

    The message always names the S3 key (and field / line when known) so an operator can
    go straight to the object; `key`, `field` and `line` carry the same facts for code.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.field = field
        self.line = line


class IncompleteExportError(RuntimeError):
    """The export has begun (`_started` may exist) but `manifest-summary.json` is absent."""


def corrupt_export(
    key: str, problem: str, *, field: str | None = None, line: int | None = None
) -> CorruptExportError:
    where = f"s3 key {key!r}"
    if line is not None:
        where += f", line {line}"
    if field is not None:
        where += f", field {field!r}"
    return CorruptExportError(
        f"corrupt DynamoDB export: {where}: {problem}", key=key, field=field, line=line
    )


# --------------------------------------------------------------------------- keys


def _clean_prefix(prefix: str | None) -> str:
    """`None`/"" mean no prefix; a trailing slash is dropped so keys never hold `//`."""
    return (prefix or "").rstrip("/")


def exports_folder(prefix: str | None) -> str:
    """`<prefix>/AWSDynamoDB/` (or `AWSDynamoDB/` without a prefix): parent of all exports."""
    clean = _clean_prefix(prefix)
    return f"{clean}/{EXPORTS_FOLDER_NAME}/" if clean else f"{EXPORTS_FOLDER_NAME}/"


def export_root(prefix: str | None, export_id: str) -> str:
    """`<prefix>/AWSDynamoDB/<export_id>/`: the folder holding one export's manifests."""
    return f"{exports_folder(prefix)}{export_id}/"


def shared_data_folder(prefix: str | None) -> str:
    """`<prefix>/AWSDynamoDB/data/`: where incremental exports put data files, all together."""
    return exports_folder(prefix) + DATA_FOLDER


def summary_key(prefix: str | None, export_id: str) -> str:
    return export_root(prefix, export_id) + SUMMARY_NAME


def files_manifest_key(prefix: str | None, export_id: str) -> str:
    return export_root(prefix, export_id) + FILES_MANIFEST_NAME


def started_key(prefix: str | None, export_id: str) -> str:
    return export_root(prefix, export_id) + STARTED_NAME


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {moment!r}")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def new_export_id(start_time: datetime, rng: random.Random | None = None) -> str:
    """An export id as AWS makes it: 14-digit zero-padded epoch ms, `-`, 8 lowercase hex."""
    millis = _epoch_ms(start_time)
    if not 0 <= millis < 10**14:
        raise ValueError(f"start time {start_time!r} does not fit a 14-digit export id")
    suffix = (rng or random.SystemRandom()).getrandbits(32)
    return f"{millis:014d}-{suffix:08x}"


def is_export_id(name: str) -> bool:
    return EXPORT_ID_RE.fullmatch(name) is not None


def export_start_time(export_id: str) -> datetime:
    """The export's start time (UTC, ms precision) encoded in its id."""
    match = EXPORT_ID_RE.fullmatch(export_id)
    if match is None:
        raise ValueError(f"not a DynamoDB export id: {export_id!r}")
    return _EPOCH + timedelta(milliseconds=int(match.group(1)))


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, the manifests' timestamp format."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {moment!r}")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """Parse the manifests' `2026-03-02T09:00:05.123Z` into an aware UTC datetime."""
    if not isinstance(text, str) or _TIMESTAMP_RE.fullmatch(text) is None:
        raise ValueError(f"not an ISO-8601 UTC timestamp ending in Z: {text!r}")
    return datetime.fromisoformat(text).astimezone(UTC)


# ------------------------------------------------------------------ hashes


def md5_b64(data: bytes) -> str:
    """Base64 MD5, the form of `md5Checksum` and of the `.md5` sidecar files."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def multipart_etag(data: bytes) -> str:
    """The one-part multipart-upload ETag DynamoDB records: hex(MD5(MD5(data))) + "-1"."""
    return hashlib.md5(hashlib.md5(data).digest()).hexdigest() + "-1"


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class ExportSummary:
    """`manifest-summary.json`; its presence is what proves an export completed."""

    export_id: str
    export_arn: str
    export_type: ExportType
    export_time: datetime | None  # full exports only
    export_from_time: datetime | None  # incremental only, inclusive
    export_to_time: datetime | None  # incremental only, exclusive
    start_time: datetime
    end_time: datetime
    item_count: int
    manifest_files_key: str
    bucket: str
    s3_prefix: str | None
    output_format: str
    output_view: str | None  # None for full exports
    table_arn: str
    summary_key: str

    @property
    def is_incremental(self) -> bool:
        return self.export_type == INCREMENTAL_EXPORT


@dataclass(frozen=True)
class DataFile:
    """One line of `manifest-files.json`: a gzip data file and how to check it."""

    key: str
    item_count: int
    md5_b64: str
    etag: str


@dataclass(frozen=True)
class ExportManifest:
    """A completed export: its summary plus the data files listed in `manifest-files.json`.

    `bucket` is where the manifests were read from (the summary's `s3Bucket` may name
    the original bucket of a copied export); the `*_md5_b64` fields hash the manifests'
    raw bytes so `verify_manifest` can check the optional sidecar checksum files.
    """

    summary: ExportSummary
    files: tuple[DataFile, ...]
    bucket: str | None = None
    summary_md5_b64: str | None = None
    files_manifest_md5_b64: str | None = None

    @property
    def source_bucket(self) -> str:
        return self.bucket or self.summary.bucket

    @property
    def files_item_count(self) -> int:
        return sum(f.item_count for f in self.files)


# ------------------------------------------------------------------ parsing


def _load_object(raw: bytes, key: str, line: int | None = None) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise corrupt_export(key, f"not UTF-8 ({exc})", line=line) from exc
    except json.JSONDecodeError as exc:
        raise corrupt_export(key, f"not valid JSON ({exc})", line=line) from exc
    if not isinstance(value, dict):
        raise corrupt_export(key, f"expected a JSON object, got {type(value).__name__}", line=line)
    return value


class _Fields:
    """Typed, strict access to one JSON object's fields, with errors naming key/field/line."""

    def __init__(self, obj: dict[str, Any], key: str, line: int | None = None) -> None:
        self.obj, self.key, self.line = obj, key, line

    def _err(self, field: str, problem: str) -> CorruptExportError:
        return corrupt_export(self.key, problem, field=field, line=self.line)

    def _get(self, field: str, *, optional: bool) -> Any:
        if field not in self.obj:
            if optional:
                return None
            raise self._err(field, "missing")
        return self.obj[field]

    def string(self, field: str, *, optional: bool = False, nullable: bool = False) -> str | None:
        """`optional`: the field may be absent; `nullable`: it may be JSON null."""
        if field not in self.obj and optional:
            return None
        value = self._get(field, optional=False)
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value:
            raise self._err(field, f"expected a non-empty string, got {value!r}")
        return value

    def required_string(self, field: str) -> str:
        value = self.string(field)
        assert value is not None
        return value

    def count(self, field: str) -> int:
        value = self._get(field, optional=False)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._err(field, f"expected a non-negative integer, got {value!r}")
        return value

    def timestamp(self, field: str, *, optional: bool = False) -> datetime | None:
        value = self._get(field, optional=optional)
        if value is None and optional:
            return None
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise self._err(field, str(exc)) from exc

    def required_timestamp(self, field: str) -> datetime:
        value = self.timestamp(field)
        assert value is not None
        return value


def parse_summary(raw: bytes, key: str) -> ExportSummary:
    """Parse `manifest-summary.json` strictly; raise `CorruptExportError` naming key and field.

    A missing `exportType` means FULL_EXPORT (real full-export summaries omit it). Full
    exports must carry `exportTime`; incremental ones `exportFromTime`, `exportToTime`
    and `outputView`, because the pipeline's window bookkeeping depends on them.
    """
    f = _Fields(_load_object(raw, key), key)
    export_arn = f.required_string("exportArn")
    export_id = export_arn.rsplit("/export/", 1)[-1] if "/export/" in export_arn else ""
    if not is_export_id(export_id):
        raise corrupt_export(
            key, f"no export id after '/export/' in {export_arn!r}", field="exportArn"
        )
    table_arn = f.required_string("tableArn")
    if not export_arn.startswith(table_arn + "/export/"):
        raise corrupt_export(
            key, f"{export_arn!r} is not an export of {table_arn!r}", field="exportArn"
        )

    export_type = f.string("exportType", optional=True) or FULL_EXPORT
    if export_type not in (FULL_EXPORT, INCREMENTAL_EXPORT):
        raise corrupt_export(key, f"unknown export type {export_type!r}", field="exportType")
    output_format = f.required_string("outputFormat")
    if output_format not in OUTPUT_FORMATS:
        raise corrupt_export(key, f"unknown output format {output_format!r}", field="outputFormat")

    if export_type == FULL_EXPORT:
        export_time = f.required_timestamp("exportTime")
        export_from = export_to = None
        output_view = f.string("outputView", optional=True, nullable=True)
    else:
        export_time = f.timestamp("exportTime", optional=True)
        export_from = f.required_timestamp("exportFromTime")
        export_to = f.required_timestamp("exportToTime")
        if export_from >= export_to:
            raise corrupt_export(
                key, "exportFromTime is not before exportToTime", field="exportToTime"
            )
        output_view = f.required_string("outputView")

    start_time = f.required_timestamp("startTime")
    end_time = f.required_timestamp("endTime")
    if end_time < start_time:
        raise corrupt_export(key, "endTime is before startTime", field="endTime")

    return ExportSummary(
        export_id=export_id,
        export_arn=export_arn,
        export_type=export_type,  # type: ignore[arg-type]  # checked just above
        export_time=export_time,
        export_from_time=export_from,
        export_to_time=export_to,
        start_time=start_time,
        end_time=end_time,
        item_count=f.count("itemCount"),
        manifest_files_key=f.required_string("manifestFilesS3Key"),
        bucket=f.required_string("s3Bucket"),
        s3_prefix=f.string("s3Prefix", nullable=True),
        output_format=output_format,
        output_view=output_view,
        table_arn=table_arn,
        summary_key=key,
    )


def _check_md5_b64(value: str, fields: _Fields) -> None:
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise fields._err("md5Checksum", f"not base64: {value!r}") from exc
    if len(digest) != 16:
        raise fields._err("md5Checksum", f"not a base64 MD5 digest: {value!r}")


def parse_files_manifest(raw: bytes, key: str) -> tuple[DataFile, ...]:
    """Parse `manifest-files.json` (JSON Lines, each line ending in `\\n`) strictly.

    Errors name the key, the 1-based line and the field. An empty manifest, a missing
    final newline or a repeated data key are corruption: AWS writes at least one file
    and a truncated upload must never pass as a shorter, valid list.
    """
    if not raw:
        raise corrupt_export(key, "lists no data files")
    if not raw.endswith(b"\n"):
        raise corrupt_export(key, "last line does not end with a newline (truncated?)")
    files: list[DataFile] = []
    seen: set[str] = set()
    for number, line in enumerate(raw[:-1].split(b"\n"), start=1):
        if not line.strip():
            raise corrupt_export(key, "blank line", line=number)
        fields = _Fields(_load_object(line, key, number), key, number)
        md5 = fields.required_string("md5Checksum")
        _check_md5_b64(md5, fields)
        etag = fields.required_string("etag")
        if _ETAG_RE.fullmatch(etag) is None:
            raise fields._err("etag", f"not an S3 ETag: {etag!r}")
        data_key = fields.required_string("dataFileS3Key")
        if data_key in seen:
            raise fields._err("dataFileS3Key", f"data file {data_key!r} listed twice")
        seen.add(data_key)
        files.append(
            DataFile(key=data_key, item_count=fields.count("itemCount"), md5_b64=md5, etag=etag)
        )
    return tuple(files)


def list_export_ids(s3: Any, bucket: str, prefix: str | None) -> list[str]:
    """Export ids under `<prefix>/AWSDynamoDB/`, oldest first (ids sort by start time).

    Lists one level with `Delimiter="/"` and keeps only names shaped like export ids, so
    the incrementals' shared `data/` folder is never mistaken for an export. In-progress
    exports are included; `read_manifest` tells them apart.
    """
    folder = exports_folder(prefix)
    ids: set[str] = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=folder, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"][len(folder) :].rstrip("/")
            if is_export_id(name):
                ids.add(name)
    return sorted(ids)


def read_manifest(
    s3: Any, bucket: str, prefix: str | None, export_id: str
) -> ExportManifest | None:
    """Read a completed export's manifests; None while it is in progress (no summary yet).

    The data file list comes only from `manifest-files.json` (named by the summary's
    `manifestFilesS3Key`), never from listing: incrementals share their data folder.
    """
    if not is_export_id(export_id):
        raise ValueError(f"not a DynamoDB export id: {export_id!r}")
    key = summary_key(prefix, export_id)
    raw_summary = get_object_bytes(s3, bucket, key)
    if raw_summary is None:
        return None
    summary = parse_summary(raw_summary, key)
    if summary.export_id != export_id:
        raise corrupt_export(
            key, f"describes export {summary.export_id!r}, not {export_id!r}", field="exportArn"
        )
    raw_files = get_object_bytes(s3, bucket, summary.manifest_files_key)
    if raw_files is None:
        # The summary is written last, so a missing files manifest is not "in progress".
        raise corrupt_export(
            summary.manifest_files_key,
            f"missing although {key!r} exists (named by manifestFilesS3Key)",
        )
    files = parse_files_manifest(raw_files, summary.manifest_files_key)
    return ExportManifest(
        summary=summary,
        files=files,
        bucket=bucket,
        summary_md5_b64=md5_b64(raw_summary),
        files_manifest_md5_b64=md5_b64(raw_files),
    )


def require_manifest(s3: Any, bucket: str, prefix: str | None, export_id: str) -> ExportManifest:
    """`read_manifest`, but an in-progress export raises `IncompleteExportError`."""
    manifest = read_manifest(s3, bucket, prefix, export_id)
    if manifest is None:
        raise IncompleteExportError(
            f"export {export_id!r} has no {summary_key(prefix, export_id)!r} in bucket "
            f"{bucket!r}: it is still in progress or failed"
        )
    return manifest


def _sidecar_digest(text: bytes) -> bytes | None:
    """The MD5 digest a sidecar holds (base64 as AWS writes it, or hex); None if neither."""
    value = text.strip()
    if re.fullmatch(rb"[0-9a-fA-F]{32}", value):
        return bytes.fromhex(value.decode("ascii"))
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == 16 else None


def _check_sidecars(s3: Any, bucket: str, manifest_key: str, expected_b64: str) -> None:
    """Compare any present `.md5`/`.checksum` sidecar with the manifest's MD5.

    Both names are optional (AWS has used both). A `.checksum` whose content is not an
    MD5 is ignored: its format is undocumented, so it cannot prove corruption.
    """
    base = manifest_key.removesuffix(".json")
    expected = base64.b64decode(expected_b64)
    for suffix in CHECKSUM_SUFFIXES:
        sidecar_key = base + suffix
        raw = get_object_bytes(s3, bucket, sidecar_key)
        if raw is None:
            continue
        digest = _sidecar_digest(raw)
        if digest is None:
            if suffix == ".md5":
                raise corrupt_export(sidecar_key, f"not an MD5 checksum: {raw[:64]!r}")
            continue
        if digest != expected:
            raise corrupt_export(manifest_key, f"MD5 {expected_b64} does not match {sidecar_key!r}")


def verify_manifest(s3: Any, manifest: ExportManifest, *, check_sidecars: bool = True) -> None:
    """Prove an export is whole before anything is loaded from it.

    Checks that the per-file item counts add up to the summary's, that every listed data
    file exists and that its bytes' MD5 equals `md5Checksum` (streamed, bounded memory),
    and, when present, the optional manifest checksum sidecars. The S3 ETag is not
    compared: it stops matching once objects are copied or KMS-encrypted.
    """
    summary = manifest.summary
    bucket = manifest.source_bucket
    listed = manifest.files_item_count
    if listed != summary.item_count:
        raise corrupt_export(
            summary.manifest_files_key,
            f"itemCount values sum to {listed} but {summary.summary_key!r} says "
            f"{summary.item_count}",
            field="itemCount",
        )
    if check_sidecars:
        for key, md5 in (
            (summary.summary_key, manifest.summary_md5_b64),
            (summary.manifest_files_key, manifest.files_manifest_md5_b64),
        ):
            if md5 is not None:
                _check_sidecars(s3, bucket, key, md5)
    for data_file in manifest.files:
        actual = stream_md5_b64(s3, bucket, data_file.key)
        if actual is None:
            raise corrupt_export(
                data_file.key,
                f"data file listed in "
                f"{summary.manifest_files_key!r} does not exist in bucket {bucket!r}",
            )
        if actual != data_file.md5_b64:
            raise corrupt_export(
                data_file.key,
                f"MD5 {actual} does not match md5Checksum "
                f"{data_file.md5_b64} in {summary.manifest_files_key!r}",
                field="md5Checksum",
            )
