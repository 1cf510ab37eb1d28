"""Day partitions of Parquet in S3, swapped in whole.

Layout (hive style): `{parquet_prefix}/dt=YYYY-MM-DD/part-00000-<digest>.parquet`, committed
by `{parquet_prefix}/dt=YYYY-MM-DD/_manifest.json`. Bad records of the day go to
`{parquet_prefix}/_rejects/dt=YYYY-MM-DD/rejects-<digest>.jsonl`.

Why a manifest: S3 cannot rename a folder, so a partition is replaced by uploading files
under content-derived names (which never collide with the files being replaced), then
writing the manifest in one PUT (the commit point), then deleting the files the replaced
manifest named (never files another run of the same day uploaded but has not committed).
A crash at any point leaves the previous manifest and its files intact, and readers of this
project read only what the manifest names; a crashed run can leave unnamed files behind,
visible only to engines that list the folder. Same content gives the same names and bytes, so
a re-run of a day writes identical files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..dynamodb.changes import CHANGE
from ..dynamodb.decode import Reject
from ..s3io import get_object_bytes, put_bytes
from ..spec import MigrationSpec

MANIFEST_NAME = "_manifest.json"
ROW_GROUP_ROWS = 262_144
DEFAULT_MAX_ROWS_PER_FILE = 500_000  # ~15-25 MB files; two are encoded at once


def partition_prefix(spec: MigrationSpec, day: dt.date) -> str:
    return f"{spec.s3.parquet_prefix}/dt={day.isoformat()}/"


def rejects_prefix(spec: MigrationSpec, day: dt.date | None) -> str:
    where = f"dt={day.isoformat()}" if day else "unplaced"
    return f"{spec.s3.parquet_prefix}/_rejects/{where}/"


def manifest_key(spec: MigrationSpec, day: dt.date) -> str:
    return partition_prefix(spec, day) + MANIFEST_NAME


def partition_schema(spec: MigrationSpec) -> pa.Schema:
    """The spec's columns plus the change kind ("put" or "delete") of each row."""
    return spec.arrow_schema.append(pa.field(CHANGE, pa.string(), nullable=False))


@dataclass(frozen=True)
class PartitionManifest:
    day: str
    files: tuple[dict[str, Any], ...]  # key, rows, bytes, sha256
    rows: int  # "put" rows: the day's items
    deletes: int  # "delete" rows
    rejects: int
    rejects_key: str | None
    exports: tuple[str, ...]  # export ids the day was built from
    complete: bool  # the exports hold every write of the day
    seconds: dict[str, Any] = field(default_factory=dict)  # per-second histogram summary
    census_key: str | None = None  # the day's items per second as read from the exports

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "files": list(self.files),
            "rows": self.rows,
            "deletes": self.deletes,
            "rejects": self.rejects,
            "rejects_key": self.rejects_key,
            "exports": list(self.exports),
            "complete": self.complete,
            "seconds": self.seconds,
            "census_key": self.census_key,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionManifest:
        return cls(
            data["day"],
            tuple(data["files"]),
            data["rows"],
            data["deletes"],
            data["rejects"],
            data.get("rejects_key"),
            tuple(data["exports"]),
            data["complete"],
            data.get("seconds", {}),
            data.get("census_key"),
        )


def parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic zstd Parquet bytes for a table (same table, same bytes)."""
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
        store_schema=True,
    )
    return sink.getvalue()


def rejects_bytes(rejects: Iterable[Reject]) -> bytes:
    return b"".join(
        json.dumps(r.to_json(), ensure_ascii=False, sort_keys=True).encode() + b"\n"
        for r in rejects
    )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_partition(
    s3: Any,
    spec: MigrationSpec,
    day: dt.date,
    table: pa.Table,
    rejects: list[Reject],
    *,
    exports: tuple[str, ...],
    complete: bool,
    seconds: dict[str, Any],
    census: dict[int, int] | None = None,
    max_rows_per_file: int = DEFAULT_MAX_ROWS_PER_FILE,
) -> PartitionManifest:
    """Upload the day's files, commit them with the manifest, then drop replaced files."""
    bucket = spec.s3.bucket
    prefix = partition_prefix(spec, day)
    previous = read_manifest(s3, spec, day)

    def upload(index: int) -> dict[str, Any]:
        part = table.slice(index * max_rows_per_file, max_rows_per_file)
        data = parquet_bytes(part)
        digest = _digest(data)
        key = f"{prefix}part-{index:05d}-{digest[:16]}.parquet"
        put_bytes(s3, bucket, key, data)
        return {"key": key, "rows": part.num_rows, "bytes": len(data), "sha256": digest}

    count = max(1, -(-table.num_rows // max_rows_per_file))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="parquet") as pool:
        files = list(pool.map(upload, range(count)))  # Parquet encoding releases the GIL
    rejects_key = None
    if rejects:
        data = rejects_bytes(rejects)
        rejects_key = f"{rejects_prefix(spec, day)}rejects-{_digest(data)[:16]}.jsonl"
        put_bytes(s3, bucket, rejects_key, data)
    census_key = None
    if census is not None:
        ordered = sorted(census.items())
        body = json.dumps(
            {"seconds": [s for s, _ in ordered], "counts": [c for _, c in ordered]}
        ).encode()
        census_key = f"{prefix}_census-{_digest(body)[:16]}.json"
        put_bytes(s3, bucket, census_key, body)
    deletes = int(pc.sum(pc.equal(table.column(CHANGE), "delete")).as_py() or 0)
    manifest = PartitionManifest(
        day=day.isoformat(),
        files=tuple(files),
        rows=table.num_rows - deletes,
        deletes=deletes,
        rejects=len(rejects),
        rejects_key=rejects_key,
        exports=exports,
        complete=complete,
        seconds=seconds,
        census_key=census_key,
    )
    body = json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode()
    put_bytes(s3, bucket, manifest_key(spec, day), body)  # the commit point
    # only what the replaced manifest named: files another run uploaded for this day but
    # has not committed yet must stay
    keep = {f["key"] for f in files} | {manifest_key(spec, day), rejects_key, census_key}
    if previous is not None:
        named = [f["key"] for f in previous.files] + [previous.rejects_key, previous.census_key]
        stale = [{"Key": k} for k in named if k and k not in keep]
        for start in range(0, len(stale), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": stale[start : start + 1000]})
    return manifest


def write_unplaced_rejects(s3: Any, spec: MigrationSpec, name: str, rejects: list[Reject]) -> str:
    """Bad records whose day is unknown (their event time itself is bad), per export."""
    key = f"{rejects_prefix(spec, None)}{name}.jsonl"
    put_bytes(s3, spec.s3.bucket, key, rejects_bytes(rejects))
    return key


def read_manifest(s3: Any, spec: MigrationSpec, day: dt.date) -> PartitionManifest | None:
    body = get_object_bytes(s3, spec.s3.bucket, manifest_key(spec, day))
    return None if body is None else PartitionManifest.from_json(json.loads(body))


def read_census(s3: Any, spec: MigrationSpec, manifest: PartitionManifest) -> dict[int, int]:
    if manifest.census_key is None:
        raise FileNotFoundError(f"the manifest of {manifest.day} records no census")
    body = get_object_bytes(s3, spec.s3.bucket, manifest.census_key)
    if body is None:
        raise FileNotFoundError(f"s3://{spec.s3.bucket}/{manifest.census_key} is missing")
    data = json.loads(body)
    return dict(zip(data["seconds"], data["counts"], strict=True))


def read_rejects(s3: Any, spec: MigrationSpec, manifest: PartitionManifest) -> list[dict[str, Any]]:
    if manifest.rejects_key is None:
        return []
    body = get_object_bytes(s3, spec.s3.bucket, manifest.rejects_key)
    if body is None:
        raise FileNotFoundError(f"s3://{spec.s3.bucket}/{manifest.rejects_key} is missing")
    return [json.loads(line) for line in body.splitlines()]


def read_partition(
    s3: Any, spec: MigrationSpec, day: dt.date, columns: list[str] | None = None
) -> pa.Table:
    """The committed rows of a day (exactly the files its manifest names); only `columns`
    decoded, when given (a check that counts rows needs two of them)."""
    manifest = read_manifest(s3, spec, day)
    if manifest is None:
        raise FileNotFoundError(
            f"s3://{spec.s3.bucket}/{manifest_key(spec, day)} does not exist: "
            f"parquet_partitions has not been materialized for {day}"
        )

    def read(entry: dict[str, Any]) -> pa.Table:
        data = get_object_bytes(s3, spec.s3.bucket, entry["key"])
        if data is None or _digest(data) != entry["sha256"]:
            raise FileNotFoundError(
                f"s3://{spec.s3.bucket}/{entry['key']} is missing or differs from "
                f"{manifest_key(spec, day)}"
            )
        return pq.read_table(io.BytesIO(data), columns=columns)

    # two files at once: downloads, digests and Parquet decoding let go of the GIL
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="parquet-read") as pool:
        tables = list(pool.map(read, manifest.files))
    schema = partition_schema(spec)  # Parquet stores DATETIME(0) as ms: cast back, exactly
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns])
    return pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()
