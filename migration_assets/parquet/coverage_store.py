"""Where `dynamodb_export` records each day's coverage, so later hops read the same exports.

The record is a small JSON object at `{parquet_prefix}/_coverage/dt=YYYY-MM-DD.json`: the
decision is made once per materialization, and `parquet_partitions` (or a re-run on another
machine) reads exactly the exports that were recorded, even if a newer export lands meanwhile.
"""

from __future__ import annotations

import json
from typing import Any

from ..dynamodb.coverage import DayCoverage
from ..dynamodb.layout import ExportManifest, verify_manifest
from ..s3io import get_object_bytes
from ..spec import MigrationSpec


def coverage_key(spec: MigrationSpec, day: str) -> str:
    return f"{spec.s3.parquet_prefix}/_coverage/dt={day}.json"


def verified_marker_key(spec: MigrationSpec, export_id: str) -> str:
    return f"{spec.s3.parquet_prefix}/_verified/{export_id}.json"


def save_coverage(s3: Any, spec: MigrationSpec, coverage: DayCoverage) -> str:
    key = coverage_key(spec, coverage.day)
    body = json.dumps(coverage.to_json(), indent=2, sort_keys=True).encode()
    s3.put_object(Bucket=spec.s3.bucket, Key=key, Body=body, ContentType="application/json")
    return key


def load_coverage(s3: Any, spec: MigrationSpec, day: str) -> DayCoverage | None:
    body = get_object_bytes(s3, spec.s3.bucket, coverage_key(spec, day))
    return None if body is None else DayCoverage.from_json(json.loads(body))


def verify_once(s3: Any, spec: MigrationSpec, manifest: ExportManifest) -> bool:
    """Verify an export's md5s and item counts unless a marker says it was already done.

    A three-year backfill reads the same full export for every day; hashing its files
    1,096 times would dominate the run. Returns True when this call did the verification.
    """
    marker = verified_marker_key(spec, manifest.summary.export_id)
    recorded = get_object_bytes(s3, spec.s3.bucket, marker)
    if (
        recorded
        and json.loads(recorded).get("files_manifest_md5") == manifest.files_manifest_md5_b64
    ):
        return False  # the same manifest (so the same file md5s) was verified before
    verify_manifest(s3, manifest)
    record = {
        "export_id": manifest.summary.export_id,
        "files_manifest_md5": manifest.files_manifest_md5_b64,
        "files": len(manifest.files),
        "item_count": manifest.summary.item_count,
        "md5": {f.key: f.md5_b64 for f in manifest.files},
    }
    s3.put_object(Bucket=spec.s3.bucket, Key=marker, Body=json.dumps(record).encode())
    return True
