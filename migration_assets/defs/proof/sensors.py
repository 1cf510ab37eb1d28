"""Materialize `migration_proof` after each backfill of the migration's assets."""

from collections.abc import Sequence

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus  # not exported by dagster 1.13

FINISHED = (
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
)
_RECENT = 50  # backfills looked at per tick, newest first


def finished_backfills(
    instance: dg.DagsterInstance, assets: Sequence[dg.AssetKey], after: float
) -> list[tuple[str, float]]:
    """(id, end time) of the backfills of any of `assets` that finished after `after`,
    oldest first; a failed or canceled one too (the proof then shows what is missing)."""
    watched = set(assets)
    found = []
    for backfill in instance.get_backfills(limit=_RECENT):
        ended = backfill.backfill_end_timestamp
        if backfill.status not in FINISHED or ended is None or ended <= after:
            continue
        if watched & set(backfill.asset_selection or ()):
            found.append((backfill.backfill_id, ended))
    return sorted(found, key=lambda found: found[1])


def build_proof_sensor(
    proof: dg.AssetKey, assets: Sequence[dg.AssetKey], name: str = "migration_proof_sensor"
) -> dg.SensorDefinition:
    """Running by default: the proof reads only what is recorded (a few seconds), and a
    report that is stale after a backfill is what an operator would not expect."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=60,
        asset_selection=dg.AssetSelection.assets(proof),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Requests a run of the migration's proof once a backfill of its assets has "
            "finished (succeeded, failed or canceled): one run per backfill (run key)."
        ),
    )
    def migration_proof_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        after = float(context.cursor) if context.cursor else 0.0
        done = finished_backfills(context.instance, assets, after)
        if not after and done:  # first tick: the newest finished backfill only
            done = done[-1:]
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(run_key=f"after-backfill-{backfill_id}", asset_selection=[proof])
                for backfill_id, _ in done
            ],
            cursor=str(done[-1][1]) if done else context.cursor,
        )

    return migration_proof_sensor
