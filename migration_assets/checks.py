"""Asset checks: each partition's proof that the hop before it arrived intact.

Thin shell over `quality/`: gather the facts where the data is, validate them with Great
Expectations, and report passed/failed with the first mismatching seconds in metadata.
Checks are blocking (a failed proof stops the data from flowing further in the run) and
partitioned, so each can also be executed alone for one day to re-verify it.
"""

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,  # not exported by dagster 1.13
)
from dagster_aws.s3 import S3Resource

from .days import parse_day
from .mysql.catalog import table_columns
from .mysql.legacy import legacy_key
from .parquet_store import read_census, read_manifest, read_partition, read_rejects
from .quality.counts import (
    copied_second_counts,
    differing_keys,
    json_columns,
    json_counted_columns,
    legacy_second_counts,
    merged_day,
    merged_second_counts,
    mysql_id_types,
    parquet_counted_columns,
    parquet_json_checksums,
    parquet_second_counts,
    rejects_in_day,
    staged_seconds,
    unstaged_rows,
)
from .quality.validate import Validation, bigint_ids, second_count_parity, validate_all
from .resources import MySQLResource
from .spec import MigrationSpec

PARITY, SCHEMA = "per_second_count_parity", "bigint_id_schema"
CHECKSUM = "per_second_checksum_parity"
JSON_TEXT = "json_text_parity"


def _days(context: dg.AssetCheckExecutionContext) -> list[str]:
    return (
        list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
    )


def _metadata(day: str, validation: Validation) -> dict[str, Any]:
    metadata: dict[str, Any] = {**validation.summary, "day": day}
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
        )
    )


def _result(context: dg.AssetCheckExecutionContext, run: Callable[[str], Validation]):
    """One check's result over the days of the run (see `_results`)."""
    (check,) = context.check_specs
    (result,) = _results(context, lambda day: {check.name: run(day)})
    return result


def _results(
    context: dg.AssetCheckExecutionContext, run: Callable[[str], dict[str, Validation]]
) -> list[dg.AssetCheckResult]:
    """Validate every day of the run (Great Expectations once for all of them); `run(day)`
    judges the day for each selected check by name. One day: its result per check. A range:
    one result per day and check (logged with the day as partition) plus a summary result
    per check for the run."""
    outcomes = {day: run(day) for day in _days(context)}
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
        results.append(
            dg.AssetCheckResult(
                asset_key=check.asset_key, check_name=check.name, passed=passed, metadata=metadata
            )
        )
    return results


def _once_per_run(mysql: MySQLResource, read: Callable[[Any], Any]) -> Callable[[], Any]:
    """`read(conn)` on first use only: a table's facts (column types, key) are the same for
    every day of a run."""

    @functools.cache
    def value() -> Any:
        with mysql.connect() as conn:
            return read(conn)

    return value


def _id_schema(
    context: dg.AssetCheckExecutionContext,
    mysql: MySQLResource,
    read_types: Callable[[Any], dict[str, str | None]],
    where: str,
) -> dg.AssetCheckResult:
    """A table's id columns judged for every day of the run on one read of its types."""
    table_types = _once_per_run(mysql, read_types)
    return _result(context, lambda day: bigint_ids(table_types(), where, deferred=True))


def build_checks(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    spec_ids = tuple(c.column for c in spec.columns if c.column in spec.id_columns)

    def counted(client: Any, day: str) -> Any:
        """The day's Parquet rows, only the columns per-second counts read."""
        return read_partition(client, spec, parse_day(day), parquet_counted_columns(spec))

    @dg.asset_check(
        asset="parquet_partitions",
        name=PARITY,
        blocking=True,
        partitions_def=partitions,
        description=(
            "Rows per second of event time: the day's Parquet rows plus its quarantined records "
            "equal the items the exports yielded for the day (the census taken while reading)."
        ),
    )
    def parquet_parity(
        context: dg.AssetCheckExecutionContext, s3: S3Resource
    ) -> dg.AssetCheckResult:
        client = s3.get_client()

        def run(day: str) -> Validation:
            manifest = read_manifest(client, spec, parse_day(day))
            if manifest is None:
                raise dg.Failure(f"parquet_partitions has no manifest for {day}")
            observed = parquet_second_counts(counted(client, day), spec)
            for second in rejects_in_day(read_rejects(client, spec, manifest), parse_day(day)):
                observed[second] = observed.get(second, 0) + 1
            expected = read_census(client, spec, manifest)
            validation = second_count_parity(
                expected, observed, "export items -> parquet", deferred=True
            )
            validation.summary["rejects"] = manifest.rejects
            return validation

        return _result(context, run)

    json_spec = (
        [
            dg.AssetCheckSpec(
                JSON_TEXT,
                asset="aurora_temp_table",
                blocking=True,
                partitions_def=partitions,
                description=(
                    f"JSON text ({', '.join(json_columns(spec))}): per second of event time, "
                    "the sum of the staged puts' CRC32s of each json value equals that of the "
                    "day's Parquet text, so a value the server changed (MySQL's JSON type "
                    "normalises numbers, key order and duplicate keys), or anyone did, fails. "
                    "With the target's checksum (json update columns) the text is proven from "
                    "Parquet to the target."
                ),
            )
        ]
        if json_columns(spec)
        else []
    )

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                PARITY,
                asset="aurora_temp_table",
                blocking=True,
                partitions_def=partitions,
                description=(
                    "Rows per second of event time: staged puts equal the day's Parquet rows."
                ),
            ),
            *json_spec,
        ],
        name="aurora_temp_table_checks",
        can_subset=True,
    )
    def staged_checks(
        context: dg.AssetCheckExecutionContext, s3: S3Resource, mysql: MySQLResource
    ) -> Iterator[dg.AssetCheckResult]:
        """Both staging checks judged on one grouped scan of the staged puts (rows and, with
        json columns, their text's CRC32 sums per second) and one read of the Parquet."""
        client = s3.get_client()
        text_key = dg.AssetCheckKey(dg.AssetKey("aurora_temp_table"), JSON_TEXT)
        with_text = bool(json_spec) and text_key in context.selected_asset_check_keys

        def parquet(day: str) -> tuple[dict[int, int], dict[int, int]]:
            columns = json_counted_columns(spec) if with_text else parquet_counted_columns(spec)
            table = read_partition(client, spec, parse_day(day), columns)
            sums = parquet_json_checksums(table, spec) if with_text else {}
            return parquet_second_counts(table, spec), sums

        def run(day: str) -> dict[str, Validation]:
            with ThreadPoolExecutor(1) as side:  # S3, Arrow and zlib while MySQL counts
                reading = side.submit(parquet, day)
                with mysql.connect() as conn:
                    counts, sums = staged_seconds(
                        conn, spec, parse_day(day), text=with_text, **mysql.parallel()
                    )
                expected_counts, expected_sums = reading.result()
            judged = {
                PARITY: second_count_parity(
                    expected_counts, counts, "parquet_partitions -> staging", deferred=True
                )
            }
            if with_text:
                judged[JSON_TEXT] = second_count_parity(
                    expected_sums,
                    sums,
                    "parquet_partitions -> staging json text",
                    unit="checksum",
                    deferred=True,
                )
            return judged

        yield from _results(context, run)

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                PARITY,
                asset="target_table",
                blocking=True,
                partitions_def=partitions,
                description=(
                    "Rows per second of event time: every staged put is in the target with the "
                    "merged values (update_only: or kept in the unmatched table). Where every "
                    "target row of the day must be a staged put, the key holds the event time "
                    "and the target is partitioned by day: the target's rows of the day per "
                    "second equal the staged puts, whose values the checksum check compares "
                    "(metadata `compared_by`)."
                ),
            ),
            dg.AssetCheckSpec(
                CHECKSUM,
                asset="target_table",
                blocking=True,
                partitions_def=partitions,
                description=(
                    "Per second of event time, the order-independent sum of row hashes (key "
                    "and merged columns) of the staged puts equals that of the target rows at "
                    "their keys (compared by scans: of the target's rows of the day): catches "
                    "a changed value, which counts miss. Lists the differing keys of the first "
                    "mismatching second (and, by scans, its target rows no put accounts for)."
                ),
            ),
        ],
        name="target_table_merge_checks",
        can_subset=True,
    )
    def merged_checks(
        context: dg.AssetCheckExecutionContext, mysql: MySQLResource
    ) -> Iterator[dg.AssetCheckResult]:
        """Both target checks judged on the same facts (`merged_day`: one join, or two scans)."""

        def run(day: str) -> dict[str, Validation]:
            with mysql.connect() as conn:
                facts = merged_day(conn, spec, parse_day(day), **mysql.parallel())
                observed = merged_second_counts(conn, spec, parse_day(day), facts)
                counts = second_count_parity(
                    facts.staged, observed, "staging -> target", deferred=True
                )
                values = second_count_parity(
                    facts.staged_checksums,
                    facts.target_checksums,
                    "staging -> target values",
                    unit="checksum",
                    deferred=True,
                )
                for validation in (counts, values):
                    validation.summary["compared_by"] = facts.method
                if values.details:
                    first = values.details[0]["second"]
                    moment = dt.datetime.strptime(first, "%Y-%m-%dT%H:%M:%SZ")
                    second = int(moment.replace(tzinfo=dt.UTC).timestamp())
                    drill = differing_keys(conn, spec, parse_day(day), second)
                    if facts.method == "scans":  # the target's rows no staged put accounts for
                        drill += unstaged_rows(conn, spec, parse_day(day), second)
                    values.summary["differing_keys_of_first_second"] = dg.MetadataValue.json(drill)
            return {PARITY: counts, CHECKSUM: values}

        yield from _results(context, run)

    @dg.asset_check(
        asset="aurora_temp_table",
        name=SCHEMA,
        blocking=True,
        partitions_def=partitions,
        description="Id columns are BIGINT in the staging table and int64 in the day's Parquet.",
    )
    def staged_ids(
        context: dg.AssetCheckExecutionContext, s3: S3Resource, mysql: MySQLResource
    ) -> dg.AssetCheckResult:
        client = s3.get_client()
        table_types = _once_per_run(
            mysql, lambda conn: mysql_id_types(conn, spec.mysql.temp_table, spec_ids)
        )

        def run(day: str) -> Validation:
            schema = read_partition(client, spec, parse_day(day), list(spec_ids)).schema
            types = dict(table_types())
            types |= {f"parquet.{n}": str(schema.field(n).type) for n in spec_ids}
            return bigint_ids(types, f"{spec.mysql.temp_table} and Parquet", deferred=True)

        return _result(context, run)

    def new_table_ids(conn: Any) -> dict[str, str | None]:
        """Types of the spec's ids and the widened legacy columns the new table has."""
        present = table_columns(conn, spec.mysql.target_table)
        names = spec_ids + tuple(n for n in spec.id_columns if n not in spec_ids and n in present)
        if spec.legacy_copy:  # every widened legacy column must be there, and BIGINT
            names += tuple(n for n in spec.legacy_copy.bigint_columns if n not in names)
        return mysql_id_types(conn, spec.mysql.target_table, names)

    @dg.asset_check(
        asset="target_table",
        name=SCHEMA,
        blocking=True,
        partitions_def=partitions,
        description=(
            "Id columns (the spec's bigint columns and legacy_copy.bigint_columns present in "
            "the table) are BIGINT in the target."
        ),
    )
    def target_ids(
        context: dg.AssetCheckExecutionContext, mysql: MySQLResource
    ) -> dg.AssetCheckResult:
        return _id_schema(context, mysql, new_table_ids, spec.mysql.target_table)

    checks = [parquet_parity, staged_checks, merged_checks, staged_ids]
    return [
        *checks,
        target_ids,
        *(_copy_checks(spec, partitions, new_table_ids) if spec.legacy_copy else []),
    ]


def _copy_checks(
    spec: MigrationSpec,
    partitions: dg.PartitionsDefinition,
    new_table_ids: Callable[[Any], dict[str, str | None]],
) -> list[dg.AssetChecksDefinition]:
    assert spec.legacy_copy is not None
    source, target = spec.legacy_copy.source_table, spec.mysql.target_table

    @dg.asset_check(
        asset="bigint_table_copy",
        name=PARITY,
        blocking=True,
        partitions_def=partitions,
        description=(
            f"Rows per second of `{spec.legacy_copy.time_column}`: the legacy table's rows of "
            f"the day equal the rows `{target}` holds from it (ids the legacy type can hold), "
            "plus legacy rows a merge deleted on purpose (tombstones)."
        ),
    )
    def copy_parity(
        context: dg.AssetCheckExecutionContext, mysql: MySQLResource
    ) -> dg.AssetCheckResult:
        key = _once_per_run(mysql, lambda conn: legacy_key(conn, spec))

        def run(day: str) -> Validation:
            with mysql.connect() as conn:
                expected = legacy_second_counts(conn, spec, parse_day(day))
                observed = copied_second_counts(conn, spec, parse_day(day), key())
            return second_count_parity(expected, observed, f"{source} -> {target}", deferred=True)

        return _result(context, run)

    @dg.asset_check(
        asset="bigint_table_copy",
        name=SCHEMA,
        blocking=True,
        partitions_def=partitions,
        description=(
            f"legacy_copy.bigint_columns ({', '.join(spec.legacy_copy.bigint_columns)}) and the "
            f"spec's bigint columns are BIGINT in `{target}`."
        ),
    )
    def copy_ids(
        context: dg.AssetCheckExecutionContext, mysql: MySQLResource
    ) -> dg.AssetCheckResult:
        return _id_schema(context, mysql, new_table_ids, target)

    return [copy_parity, copy_ids]
