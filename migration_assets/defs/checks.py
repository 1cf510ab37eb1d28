"""Asset checks, the shell's side: a blocking check of one asset, partitioned like it and
judged per day.

Each check is a declaration (`day_check`, or `day_checks` for several judged on the same
facts) in its domain's `checks.py`, plus a core function in `quality/verdicts.py` that
gathers the day's facts where the data is and returns the verdict with its metadata. Here:
validate all the days of a run with Great Expectations at once, and report them (one result
per day and check, tied to the day's materialization, plus a summary for a range run).
Blocking: a failed proof stops the data from flowing further in the run; partitioned: each
check can also be executed alone for one day to re-verify it.
"""

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,  # not exported by dagster 1.13
)

from ..days import parse_day
from ..quality.validate import Validation, validate_all
from ..quality.verdicts import MissingDayError
from .step_retries import retried_when_transient


def _days(context: dg.AssetCheckExecutionContext) -> list[str]:
    return (
        list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
    )


def _metadata(day: str, validation: Validation) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        name: dg.MetadataValue.json(value) if isinstance(value, list | dict) else value
        for name, value in validation.summary.items()
    }
    metadata["day"] = day
    if validation.details:
        metadata["first_mismatches"] = dg.MetadataValue.json(validation.details)
    return metadata


def _latest_materializations(
    context: dg.AssetCheckExecutionContext, days: list[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """Each day's latest materialization of the checked asset, in one query per page (a
    query per day costs ~10 ms each on SQLite: minutes over a three-year backfill)."""
    asset_key = context.check_specs[0].asset_key
    found: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    cursor = None
    while len(found) < len(days):
        page = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=days),
            limit=max(len(days), 100),
            cursor=cursor,
        )
        for record in page.records:  # newest first
            day = record.partition_key
            if day is not None and day not in found:
                found[day] = AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                )
        if not page.has_more:
            break
        cursor = page.cursor
    return found


def _report_day(
    context: dg.AssetCheckExecutionContext,
    check: dg.AssetCheckSpec,
    day: str,
    validation: Validation,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> None:
    """A range run attaches no result to partitions by itself: record one per day, pointing
    at that day's latest materialization so the UI shows it as the day's current result."""
    context.op_execution_context.log_event(
        dg.AssetCheckEvaluation(
            asset_key=check.asset_key,
            check_name=check.name,
            passed=validation.passed,
            metadata=_metadata(day, validation),
            target_materialization_data=target,
            blocking=True,
            partition=day,
            description=validation.description,
        )
    )


def _results(
    context: dg.AssetCheckExecutionContext, run: Callable[[str], dict[str, Validation]]
) -> list[dg.AssetCheckResult]:
    """Validate every day of the run (Great Expectations once for all of them); `run(day)`
    judges the day for each selected check by name. One day: its result per check. A range:
    one result per day and check (logged with the day as partition) plus a summary result
    per check for the run."""
    try:
        outcomes = {day: run(day) for day in _days(context)}
    except MissingDayError as exc:
        raise dg.Failure(str(exc)) from exc
    validate_all([v for per_check in outcomes.values() for v in per_check.values()])
    selected = context.selected_asset_check_keys
    checks = [c for c in context.check_specs if c.key in selected]
    targets = _latest_materializations(context, list(outcomes)) if len(outcomes) > 1 else {}
    results = []
    for check in checks:
        per_day = {day: per_check[check.name] for day, per_check in outcomes.items()}
        passed = all(v.passed for v in per_day.values())
        if len(per_day) == 1:
            ((day, validation),) = per_day.items()
            metadata = _metadata(day, validation)
            description = validation.description
        else:
            for day, validation in per_day.items():
                _report_day(context, check, day, validation, targets.get(day))
            metadata = {
                "days": len(per_day),
                "failed_days": dg.MetadataValue.json(
                    [d for d, v in per_day.items() if not v.passed]
                ),
                "per_day": dg.MetadataValue.json(
                    {
                        d: {**v.summary, "first_mismatches": v.details[:5]}
                        for d, v in per_day.items()
                    }
                ),
            }
            failed = [d for d, v in per_day.items() if not v.passed]
            description = (
                f"{len(failed)} of {len(per_day)} days failed, the first {failed[0]}: "
                f"{per_day[failed[0]].description}"
                if failed
                else None
            )
        results.append(
            dg.AssetCheckResult(
                asset_key=check.asset_key,
                check_name=check.name,
                passed=passed,
                metadata=metadata,
                description=description,
            )
        )
    return results


Verdicts = Callable[[dt.date], dict[str, Validation]]


def day_check(
    asset: str | dg.AssetKey,
    name: str,
    partitions: dg.PartitionsDefinition,
    description: str,
    judge: Callable[[Any], Callable[[dt.date], Validation]],
    resources: Iterable[str] = ("mysql",),
) -> dg.AssetChecksDefinition:
    """A blocking check of `asset`, partitioned like it and judged per day.

    `judge(resources)` runs once per check execution with the run's resources named in
    `resources` (`resources.s3` is the S3 client, `resources.mysql` the `MySQLResource`) and
    returns the function that gives a day's verdict (a core function of `quality/verdicts.py`,
    bound to its clients): facts a run shares are read once there."""

    @dg.asset_check(
        asset=asset,
        name=name,
        blocking=True,
        partitions_def=partitions,
        description=description,
        required_resource_keys=set(resources),
    )
    def check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        with retried_when_transient(context):
            verdict = judge(context.resources)
            (result,) = _results(context, lambda day: {name: verdict(parse_day(day))})
        return result

    return check


def day_checks(
    asset: str | dg.AssetKey,
    name: str,
    partitions: dg.PartitionsDefinition,
    descriptions: dict[str, str],
    judge: Callable[[Any], Verdicts],
    resources: Iterable[str] = ("mysql",),
) -> dg.AssetChecksDefinition:
    """Several checks of `asset` judged per day on the same facts (`judge` as in `day_check`,
    its day function returning a verdict per check name); each can run alone."""

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                check, asset=asset, blocking=True, partitions_def=partitions, description=text
            )
            for check, text in descriptions.items()
        ],
        name=name,
        can_subset=True,
        required_resource_keys=set(resources),
    )
    def checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        with retried_when_transient(context):
            verdicts = judge(context.resources)
            results = _results(context, lambda day: verdicts(parse_day(day)))
        yield from results

    return checks


def once(read: Callable[[], Any]) -> Callable[[], Any]:
    """`read()` on first use only: a table's facts (column types, key) are the same for
    every day of a run."""
    return functools.cache(read)


def on_connection(mysql: Any, read: Callable[[Any], Any]) -> Callable[[], Any]:
    """`read(conn)` on a connection of `mysql`, once per run (see `once`)."""

    def value() -> Any:
        with mysql.connect() as conn:
            return read(conn)

    return once(value)
