"""`dynamodb_export_sensor`: a newly completed export in S3 brings its days up to date."""

import datetime as dt
import json

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster_aws.s3 import S3Resource

from ...dynamodb.export_feed import scan_exports
from ...spec import MigrationSpec
from ..naming import SINGLE, Naming

HANDLED_KEPT = 2_000  # export ids remembered in the cursor; older ones fall under its floor


def _cursor(text: str | None) -> tuple[set[str], str]:
    data = json.loads(text) if text else {}
    return set(data.get("handled", [])), data.get("floor", "")


def build_export_sensor(
    spec: MigrationSpec,
    partitions: dg.TimeWindowPartitionsDefinition,
    assets: list[dg.AssetKey],
    naming: Naming = SINGLE,
) -> dg.SensorDefinition:
    """`assets`: the migration's own keys; the sensor watches its own spec's export prefix."""

    @dg.sensor(
        name=naming.name("dynamodb_export_sensor"),
        minimum_interval_seconds=60,
        asset_selection=dg.AssetSelection.assets(*assets),
        description=(
            f"Watches s3://{spec.s3.bucket}/{spec.s3.export_prefix}/AWSDynamoDB/ (one level, "
            "with a delimiter). A completed incremental export requests a run for each day of "
            "its window; a completed full export launches a backfill of every day from the "
            "spec's start to its export time (batched by the assets' backfill policy)."
        ),
    )
    def dynamodb_export_sensor(context: dg.SensorEvaluationContext, s3: S3Resource):
        handled, floor = _cursor(context.cursor)
        known = handled | set()
        today = dt.datetime.now(dt.UTC).date()
        first = dt.date.fromisoformat(partitions.get_first_partition_key())
        last = dt.date.fromisoformat(partitions.get_last_partition_key() or today.isoformat())
        scan = scan_exports(
            s3.get_client(),
            spec.s3.bucket,
            spec.s3.export_prefix,
            spec.dynamodb.table,
            known,
            first,
            last,
        )
        requests: list[dg.RunRequest] = []
        for new in scan.new:
            if new.export_id <= floor or not new.days:
                known.add(new.export_id)
                continue
            tags = {"migration/export_id": new.export_id, **naming.tags()}
            if new.manifest.summary.is_incremental:
                requests += [
                    dg.RunRequest(
                        run_key=f"{new.export_id}:{day}", partition_key=day.isoformat(), tags=tags
                    )
                    for day in new.days
                ]
            else:
                keys = [day.isoformat() for day in new.days]
                subset = AssetGraphSubset(
                    partitions_subsets_by_asset_key={
                        key: partitions.subset_with_partition_keys(keys) for key in assets
                    }
                )
                requests.append(dg.RunRequest.for_asset_graph_subset(subset, tags=tags))
            known.add(new.export_id)
        for export_id, why in scan.unreadable.items():
            context.log.warning(f"export {export_id} cannot be read yet: {why}")
        kept = sorted(known)
        if len(kept) > HANDLED_KEPT:
            floor, kept = kept[-HANDLED_KEPT - 1], kept[-HANDLED_KEPT:]
        cursor = json.dumps({"handled": kept, "floor": floor})
        if not requests:
            waiting = f"; waiting for {', '.join(scan.in_progress)}" if scan.in_progress else ""
            return dg.SensorResult(
                skip_reason=dg.SkipReason(f"no newly completed export{waiting}"), cursor=cursor
            )
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return dynamodb_export_sensor
