"""`migration_proof`: one report over every partition day and every hop, for sign-off.

The shell's side: gather what is already recorded (the instance's materializations and
check evaluations in a few batched queries, a grouped count per MySQL table, the export
manifests' item counts), let `quality/proof.py` build the per-day table, and publish it
(Markdown and numbers in the metadata, a chart and a CSV in S3 next to the Parquet). It
never reads an export's data files or the Parquet.

Assets and checks are found by the keys passed in, each asset's role by its key's last part
(`orders/target_table` is a `target_table`): the code location may prefix them.
"""

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,  # not exported by dagster 1.13
)

from ...dynamodb.coverage import chain_item_counts, completed_exports
from ...mysql import day_rows
from ...mysql.legacy import legacy_key
from ...quality import proof
from ...quality.verdicts import PARITY
from ...s3io import put_bytes
from ...spec import MigrationSpec
from ..naming import SINGLE, Naming
from ..resources import MYSQL_POOL

PROOF_PREFIX = "_proof"
_PAGE = 1_000
_FAILED = {AssetCheckExecutionRecordStatus.FAILED}
_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def _role(key: dg.AssetKey) -> str:
    return key.path[-1]


def _plain(metadata: dict[str, Any]) -> dict[str, Any]:
    return {name: getattr(value, "value", value) for name, value in metadata.items()}


def latest_metadata(
    instance: dg.DagsterInstance, key: dg.AssetKey, names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """{day: the named metadata of its latest materialization}, in pages of `_PAGE`
    records, newest first (a query per day costs ~10 ms: seconds over 1,096 days)."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key), limit=_PAGE, cursor=cursor
        )
        for record in page.records:
            day = record.partition_key
            if day is None or day in found or record.asset_materialization is None:
                continue
            metadata = record.asset_materialization.metadata
            found[day] = {n: getattr(metadata[n], "value", None) for n in names if n in metadata}
        if not page.has_more:
            return found
        cursor = page.cursor


def _latest_evaluations(
    instance: dg.DagsterInstance,
    check: dg.AssetCheckKey,
    statuses: set[AssetCheckExecutionRecordStatus],
    wanted: set[str] | None = None,
) -> dict[str, Any]:
    """{day: its latest evaluation event with one of `statuses`}, newest first in pages,
    stopping once every `wanted` day is found."""
    found: dict[str, Any] = {}
    cursor = None
    while wanted is None or not wanted <= set(found):
        records = instance.event_log_storage.get_asset_check_execution_history(
            check, limit=_PAGE, cursor=cursor, status=statuses
        )
        for record in records:
            day = record.partition
            if day is None or day in found or record.event is None:
                continue
            found[day] = record.event.dagster_event.asset_check_evaluation_data
        if len(records) < _PAGE:
            break
        cursor = records[-1].id
    return found


def gather_verdicts(
    instance: dg.DagsterInstance, checks: Sequence[dg.AssetCheckKey]
) -> dict[tuple[str, str], dict[str, proof.Verdict]]:
    """Each check's latest verdict per day and whether it judged the latest materialization
    (one query per check), with the metadata and description of the failed ones."""
    infos = instance.event_log_storage.get_asset_check_partition_info(list(checks))
    verdicts: dict[tuple[str, str], dict[str, proof.Verdict]] = {}
    failed: dict[dg.AssetCheckKey, set[str]] = {}
    for info in infos:
        if info.partition_key is None:
            continue
        status = info.latest_execution_status
        passed = (
            None if status not in _DONE else status == AssetCheckExecutionRecordStatus.SUCCEEDED
        )
        verdicts.setdefault((_role(info.check_key.asset_key), info.check_key.name), {})[
            info.partition_key
        ] = proof.Verdict(passed, info.is_current)
        if passed is False:
            failed.setdefault(info.check_key, set()).add(info.partition_key)
    for check, days in failed.items():
        per_day = verdicts[(_role(check.asset_key), check.name)]
        for day, evaluation in _latest_evaluations(instance, check, _FAILED, days).items():
            if day in days:
                per_day[day] = proof.Verdict(
                    False, per_day[day].current, _plain(evaluation.metadata), evaluation.description
                )
    return verdicts


def gather_rows(
    instance: dg.DagsterInstance,
    spec: MigrationSpec,
    mysql: Any,
    assets: dict[str, dg.AssetKey],
    checks: dict[tuple[str, str], dg.AssetCheckKey],
    first: dt.date,
    last: dt.date,
) -> dict[str, dict[str, int]]:
    """{column: {day: rows}}: each hop's rows per day, from what its asset or check
    recorded (the export items as the Parquet count check read them) and from MySQL."""
    rows: dict[str, dict[str, int]] = {}
    census = checks.get(("parquet_partitions", PARITY))
    if census is not None:
        evaluations = _latest_evaluations(instance, census, _DONE)
        rows["export_items"] = {
            day: int(e.metadata["expected_rows"].value)
            for day, e in evaluations.items()
            if "expected_rows" in e.metadata
        }
    parquet: dict[str, dict[str, Any]] = {}
    if "parquet_partitions" in assets:
        parquet = latest_metadata(
            instance, assets["parquet_partitions"], ("rows", "deletes", "rejects")
        )
        rows["parquet_rows"] = {d: int(m.get("rows", 0)) for d, m in parquet.items()}
        rows["parquet_rejects"] = {d: int(m.get("rejects", 0)) for d, m in parquet.items()}
    if "aurora_temp_table" in assets:  # puts and deletes were loaded
        loaded = latest_metadata(instance, assets["aurora_temp_table"], ("rows_loaded",))
        rows["staged_puts"] = {
            d: int(m.get("rows_loaded", 0)) - int(parquet.get(d, {}).get("deletes", 0))
            for d, m in loaded.items()
        }
    with mysql.connect() as conn:
        rows["target_rows"] = day_rows.target_rows_per_day(conn, spec, first, last)
        if spec.legacy_copy is not None:
            rows["legacy_rows"] = day_rows.legacy_rows_per_day(conn, spec, first, last)
            key = legacy_key(conn, spec)
            rows["copied_rows"] = day_rows.copied_rows_per_day(conn, spec, key, first, last)
    return rows


def gather_totals(spec: MigrationSpec, s3: Any, mysql: Any) -> proof.Totals:
    """The export manifests' item counts (their `manifest-summary.json`, not their data)
    and the legacy table's row count."""
    exports = completed_exports(s3, spec.s3.bucket, spec.s3.export_prefix, spec.dynamodb.table)
    chain = chain_item_counts(exports)
    legacy = None
    if spec.legacy_copy is not None:
        with mysql.connect() as conn:
            legacy = day_rows.table_rows(conn, spec.legacy_copy.source_table)
    if chain is None:
        return proof.Totals(legacy_rows=legacy)
    ids, full, incremental = chain
    return proof.Totals(full + incremental, full, incremental, tuple(ids), legacy)


def _hops(assets: Sequence[dg.AssetKey], checks: Sequence[dg.AssetCheckKey]) -> list[proof.Hop]:
    """One hop per asset, in the order given (the chain's), with its checks."""
    return [
        proof.Hop(_role(key), tuple(c.name for c in checks if c.asset_key == key)) for key in assets
    ]


def build_migration_proof(
    spec: MigrationSpec,
    partitions: dg.PartitionsDefinition,
    asset_keys: Sequence[dg.AssetKey],
    check_keys: Iterable[dg.AssetCheckKey],
    naming: Naming = SINGLE,
) -> dg.AssetsDefinition:
    """The proof over `asset_keys` (the partitioned assets, in chain order) and
    `check_keys` (their checks)."""
    checks = [c for c in check_keys if c.asset_key in set(asset_keys)]
    bucket, folder = spec.s3.bucket, f"{spec.s3.parquet_prefix}/{PROOF_PREFIX}"

    @dg.asset(
        key=naming.key("migration_proof"),
        group_name=naming.group("proof"),
        kinds={"s3"},
        deps=list(asset_keys),
        required_resource_keys={"s3", "mysql"},
        pool=MYSQL_POOL,  # its grouped counts scan whole tables: within the server's limit
        description=(
            "The migration's proof for sign-off: per partition day and hop, the rows (export "
            "items, Parquet rows and rejects, staged puts, target rows, legacy and copied "
            "rows), each hop's status (passed, failed, stale: its checks did not judge its "
            "latest materialization, missing: never materialized) and where rows went "
            "missing; totals against the export manifests' item counts and the legacy "
            f"table. Chart and CSV in s3://{bucket}/{folder}/. Reads what is recorded, never "
            "the exports."
        ),
    )
    def migration_proof(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        started = time.monotonic()
        days = list(partitions.get_partition_keys())
        first, last = dt.date.fromisoformat(days[0]), dt.date.fromisoformat(days[-1])
        instance = context.instance
        s3, mysql = context.resources.s3, context.resources.mysql  # s3: the client
        by_role = {_role(k): k for k in asset_keys}
        by_check = {(_role(c.asset_key), c.name): c for c in checks}
        materialized = {_role(k): set(instance.get_materialized_partitions(k)) for k in asset_keys}
        table = proof.build_proof(
            days,
            _hops(asset_keys, checks),
            materialized,
            gather_verdicts(instance, checks),
            gather_rows(instance, spec, mysql, by_role, by_check, first, last),
            gather_totals(spec, s3, mysql),
        )
        links = {
            "csv": f"s3://{bucket}/{folder}/days.csv",
            "chart": f"s3://{bucket}/{folder}/rows_per_day.png",
        }
        put_bytes(s3, bucket, f"{folder}/days.csv", proof.to_csv(table), ContentType="text/csv")
        put_bytes(
            s3,
            bucket,
            f"{folder}/rows_per_day.png",
            proof.chart_png(table, f"{spec.name}: rows per day per hop"),
            ContentType="image/png",
        )
        return dg.MaterializeResult(
            metadata={
                "summary": dg.MetadataValue.md(proof.to_markdown(table, links)),
                **proof.numbers(table),
                "csv": dg.MetadataValue.path(links["csv"]),
                "chart": dg.MetadataValue.path(links["chart"]),
                "seconds": round(time.monotonic() - started, 3),
            }
        )

    return migration_proof
