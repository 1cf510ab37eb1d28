"""`aurora_temp_table` and `target_table`: the day staged in MySQL, then merged into the target."""

import datetime as dt
from typing import Literal

import dagster as dg
from dagster_aws.s3 import S3Resource

from ...days import parse_day
from ...mysql.ddl import SchemaConflictError, ensure_tables
from ...mysql.load import LoadError, clean_days, load_day
from ...mysql.merge import DEFAULT_CHUNK_ROWS, merge_day
from ...mysql.retry import with_retries
from ...parquet.store import read_partition
from ...quality.validate import warm_up
from ...spec import MigrationSpec
from ..eta import DayLog, per_day_result
from ..naming import SINGLE, Naming
from ..partitions import backfill_policy
from ..resources import MYSQL_POOL, MySQLResource
from ..step_retries import step_retries


class LoadConfig(dg.Config):
    method: Literal["auto", "local_infile", "insert"] = "auto"


class MergeConfig(dg.Config):
    chunk_rows: int = DEFAULT_CHUNK_ROWS


def prepare_tables(context: dg.AssetExecutionContext, spec: MigrationSpec, mysql: MySQLResource):
    """Create missing tables, refuse conflicting ones: once per run, not once per day (each
    time is a dozen information_schema queries and DDL statements; with two backfill runs
    at once, MariaDB 10.11 was seen crashing in an information_schema query)."""

    def prepare():
        with mysql.connect() as conn:
            ensure_tables(conn, spec)

    try:
        with_retries(prepare, log=context.log.warning)
    except SchemaConflictError as exc:
        raise dg.Failure(description=str(exc)) from None


def build_aurora_assets(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition, naming: Naming = SINGLE
) -> list[dg.AssetsDefinition]:
    policy = backfill_policy()

    @dg.asset(
        name="aurora_temp_table",
        key_prefix=naming.key_prefix,
        partitions_def=partitions,
        deps=[naming.key("parquet_partitions")],
        group_name=naming.group("aurora"),
        kinds={"mysql"},
        pool=MYSQL_POOL,
        backfill_policy=policy,
        description=(
            f"The day's Parquet rows staged in MySQL table `{spec.mysql.temp_table}` (primary "
            "key `_day`, `_seq`: key-sorted, so a day loads as one append), by LOAD DATA LOCAL "
            "INFILE or multi-row INSERTs where the server refuses it; the day is replaced "
            "atomically."
        ),
    )
    @step_retries
    def aurora_temp_table(
        context: dg.AssetExecutionContext, config: LoadConfig, s3: S3Resource, mysql: MySQLResource
    ) -> dg.MaterializeResult:
        warm_up()
        client = s3.get_client()
        prepare_tables(context, spec, mysql)
        results = {}
        log = DayLog(context, "staged")
        for key in context.partition_keys:
            day = parse_day(key)
            table = read_partition(client, spec, day)

            def load(day=day, table=table):
                with mysql.connect() as conn:
                    return load_day(conn, spec, day, table, config.method)

            try:
                loaded = with_retries(load, log=context.log.warning)
            except (SchemaConflictError, LoadError) as exc:
                raise dg.Failure(description=str(exc)) from None
            if loaded.fallback:
                context.log.warning(loaded.fallback)
            results[key] = {
                "rows_loaded": loaded.rows,
                "rows_replaced": loaded.deleted_before,
                "method": loaded.method,
                **({"method_note": loaded.fallback} if loaded.fallback else {}),
                "seconds": round(loaded.seconds, 3),
                "rows_per_second": round(loaded.rows / loaded.seconds) if loaded.seconds else 0,
            }
            log.done(key, loaded.rows)
        return per_day_result(context, results)

    @dg.asset(
        name="target_table",
        key_prefix=naming.key_prefix,
        partitions_def=partitions,
        # with legacy_copy, the day's legacy rows are in the new table before the merge
        deps=[
            naming.key("aurora_temp_table"),
            *([naming.key("bigint_table_copy")] if spec.legacy_copy else []),
        ],
        group_name=naming.group("aurora"),
        kinds={"mysql"},
        pool=MYSQL_POOL,
        backfill_policy=policy,
        description=(
            f"The day merged into `{spec.mysql.target_table}` by ({', '.join(spec.mysql.key)}) "
            f"in `{spec.mysql.mode}` mode, deletes per `{spec.mysql.on_delete}`, in chunks of "
            "`chunk_rows` staged rows, each its own short transaction."
        ),
    )
    @step_retries
    def target_table(
        context: dg.AssetExecutionContext, config: MergeConfig, mysql: MySQLResource
    ) -> dg.MaterializeResult:
        warm_up()
        prepare_tables(context, spec, mysql)
        results = {}
        log = DayLog(context, "merged")
        for key in context.partition_keys:
            day = parse_day(key)

            def merge(day=day):
                with mysql.connect() as conn:
                    return merge_day(
                        conn, spec, day, chunk_rows=config.chunk_rows, **mysql.parallel()
                    )

            try:
                merged = with_retries(merge, log=context.log.warning)
            except SchemaConflictError as exc:
                raise dg.Failure(description=str(exc)) from None
            if merged.unmatched:
                context.log.warning(
                    f"{key}: {merged.unmatched} staged rows match no target row; kept in "
                    f"`{spec.mysql.temp_table}_unmatched`"
                )
            results[key] = {
                "rows_staged": merged.staged,
                "inserted": merged.inserted,
                "updated": merged.updated,
                "deleted": merged.deleted,
                "deletes_ignored": merged.deletes_ignored,
                "unmatched": merged.unmatched,
                "chunks": merged.chunks,
                "connections": merged.connections,
                "target_partition": merged.partition or "none (target not partitioned by day)",
                "partitions_added": merged.partitions_added,
                "longest_chunk_seconds": round(max(merged.per_chunk, default=0.0), 3),
                "seconds": round(merged.seconds, 3),
                "rows_per_second": round(merged.staged / merged.seconds) if merged.seconds else 0,
                "mode": merged.mode,
                "on_delete": merged.on_delete,
            }
            log.done(key, merged.staged)
        return per_day_result(context, results)

    return [aurora_temp_table, target_table]


class CleanStagingConfig(dg.Config):
    keep_days: int = 7  # staged days younger than this stay (re-checks and re-merges read them)


def build_clean_staging_job(spec: MigrationSpec, naming: Naming = SINGLE) -> dg.JobDefinition:
    """Delete staged days older than `keep_days` in small batches (staging never grows)."""

    @dg.op(pool=MYSQL_POOL, name=naming.name("clean_staging_days"))
    def clean_staging_days(
        context: dg.OpExecutionContext, config: CleanStagingConfig, mysql: MySQLResource
    ) -> int:
        before = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=config.keep_days)
        with mysql.connect() as conn:
            deleted = clean_days(conn, spec, before)
        context.log.info(f"deleted {deleted} staged rows of days before {before}")
        return deleted

    @dg.job(name=naming.name("clean_staging"), description=clean_staging_days.__doc__)
    def clean_staging():
        clean_staging_days()

    return clean_staging
