"""`live_days_schedule`: keeps today and yesterday (UTC) current from incremental exports.

Each tick plans (`live.py`) one run of the whole graph per live day. A day whose exports did
not change since its last successful live run is skipped, and so is a day whose previous
live run is still going; a failed run is retried by the next tick. Schedules de-duplicate
run keys only within a tick, so "unchanged" is looked up in the instance by the run's
`migration/live_state` tag. With `dynamodb.request: true`, `dynamodb_export` asks DynamoDB
for the next incremental export itself (and waits a bounded time for it).
"""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from ..dynamodb.coverage import NoCoveringExportError, completed_exports, cover_day
from ..live import LivePlan, live_days, plan_live_runs
from ..spec import MigrationSpec
from .naming import SINGLE, Naming

LIVE_CRON_ENV_VAR = "MIGRATION_LIVE_CRON"
DEFAULT_LIVE_CRON = "*/30 * * * *"
DAY_TAG, STATE_TAG = "migration/live_day", "migration/live_state"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _why_not(instance: dg.DagsterInstance, plan: LivePlan, naming: Naming) -> str | None:
    """Why no run is needed for a planned day (None: request one); with several migrations
    only this migration's runs count (`naming.tags()`)."""
    if plan.state is None:
        return plan.reason
    day = plan.day.isoformat()
    mine = naming.tags()
    if instance.get_runs(dg.RunsFilter(tags={DAY_TAG: day, **mine}, statuses=UNFINISHED), limit=1):
        return f"{day}: its live run is still going"
    done = dg.RunsFilter(
        tags={STATE_TAG: plan.state, **mine}, statuses=[dg.DagsterRunStatus.SUCCESS]
    )
    if instance.get_runs(done, limit=1):
        return f"{day}: up to date ({plan.reason})"
    return None


def build_live_schedule(
    spec: MigrationSpec, assets: list[dg.AssetKey], naming: Naming = SINGLE
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=naming.name("live_days_schedule"),
        cron_schedule=os.environ.get(LIVE_CRON_ENV_VAR, DEFAULT_LIVE_CRON),
        execution_timezone="UTC",
        target=dg.AssetSelection.assets(*assets),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "Brings today and yesterday (UTC) up to date: one run of the whole graph per day "
            "whose exports changed since its last successful live run"
            + (
                "; the run asks DynamoDB for the next incremental export (dynamodb.request)."
                if spec.dynamodb.request
                else "."
            )
            + f" Cron from {LIVE_CRON_ENV_VAR} (default `{DEFAULT_LIVE_CRON}`). Off by default."
        ),
    )
    def live_days_schedule(context: dg.ScheduleEvaluationContext, s3: S3Resource):
        tick = context.scheduled_execution_time.astimezone(dt.UTC)
        end = spec.partitions.end  # exclusive; open-ended partitions include today
        last = end - dt.timedelta(days=1) if end is not None else None
        days = live_days(tick.date(), spec.partitions.start, last)
        if not days:
            return dg.SkipReason(f"no live day: the partitions run {spec.partitions.start}..{last}")
        exports = completed_exports(
            s3.get_client(), spec.s3.bucket, spec.s3.export_prefix, spec.dynamodb.table
        )
        coverages = {}
        for day in days:
            try:
                coverages[day] = cover_day(day, exports)
            except NoCoveringExportError:
                coverages[day] = None
        plans = plan_live_runs(days, coverages, request_exports=spec.dynamodb.request, tick=tick)
        requests, skipped = [], []
        for plan in plans:
            why_not = _why_not(context.instance, plan, naming)
            if why_not is not None:
                skipped.append(why_not)
                continue
            assert plan.state is not None
            requests.append(
                dg.RunRequest(
                    run_key=plan.state,
                    partition_key=plan.day.isoformat(),
                    tags={DAY_TAG: plan.day.isoformat(), STATE_TAG: plan.state, **naming.tags()},
                )
            )
        if not requests:
            return dg.SkipReason("; ".join(skipped))
        return requests

    return live_days_schedule
