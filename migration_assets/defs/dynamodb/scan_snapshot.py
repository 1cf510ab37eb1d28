"""Scan mode inside `dynamodb_export`: make sure a scan snapshot covers the run's days.

Thin shell over `dynamodb/scan.py`. A scan is a full snapshot recorded exactly like a full
export, so the asset's coverage logic picks it up and every later day reuses it; a scan
runs only when no completed snapshot reaches a day of the run (or on `rescan: true`). If
another run holds the table's scan lease, this run waits for that scan (bounded by
`wait_seconds`) instead of reading the table a second time.
"""

from __future__ import annotations

import time
from typing import Any

import dagster as dg

from ...dynamodb.scan import ScanBusyError, ScanSettings, open_scans, run_scan
from ...dynamodb.throttle import CapacityError
from ...spec import MigrationSpec
from ..resources import DynamoDBResource


def scan_snapshot(
    context: dg.AssetExecutionContext,
    spec: MigrationSpec,
    s3_client: Any,
    dynamodb: DynamoDBResource,
    wait_seconds: int,
    poll_seconds: int,
) -> dict[str, Any]:
    """Run (or resume, or wait for) the table's scan; return metadata for the run's days."""
    settings = ScanSettings.from_spec(spec.dynamodb.scan)
    client = dynamodb.get_client(max_attempts=1)  # throttles must reach the controller
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            result = run_scan(
                client,
                s3_client,
                bucket=spec.s3.bucket,
                prefix=spec.s3.export_prefix,
                table=spec.dynamodb.table,
                settings=settings,
                progress=context.log.info,
            )
            break
        except CapacityError as exc:
            raise dg.Failure(description=str(exc)) from None
        except ScanBusyError as exc:
            if time.monotonic() >= deadline:
                raise dg.Failure(
                    description=f"{exc}; waited {wait_seconds} s. Materialize the day again "
                    "once that scan has finished: its snapshot serves every day it covers."
                ) from None
            context.log.info(f"{exc}; waiting for it")
            time.sleep(poll_seconds)
            table = spec.dynamodb.table
            if not open_scans(s3_client, spec.s3.bucket, spec.s3.export_prefix, table):
                return {"scan_waited_for_other_run": True}
    return {
        "scan_export_id": result.export_id,
        "scan_items": result.items,
        "scan_segments": result.segments,
        "scan_resumed_segments": result.resumed_segments,
        "scan_consumed_rcu": result.consumed_rcu,
        "scan_requests": result.requests,
        "scan_throttle_events": result.throttle_events,
        "scan_seconds": result.elapsed_s,
        "scan_finished_at": result.summary.end_time.isoformat() if result.summary else "",
        "scan_rcu_per_s": result.achieved_rcu_per_s,
        "scan_target_rcu_per_s": result.target_rcu_per_s,
        "scan_target": result.target_why,
        "scan_target_changes": dg.MetadataValue.json(
            [{"at_s": round(t, 1), "rcu_per_s": r, "why": w} for t, r, w in result.targets]
        ),
        "scan_estimated_cost_usd": dg.MetadataValue.float(result.estimated_cost_usd),
        "scan_cost_assumption": (
            f"on-demand reads at ${result.price_per_million_rru} per million read request "
            "units (us-east-1); on a provisioned table the scan uses capacity already paid for"
        ),
    }
