"""`bigint_table_copy` and the jobs that finish the INT -> BIGINT migration: catch-up, cutover."""

from typing import Any

import dagster as dg

from ...days import parse_day
from ...mysql.catalog import SchemaConflictError
from ...mysql.cutover import CutoverRefused, cutover
from ...mysql.ddl import ensure_tables
from ...mysql.legacy import DEFAULT_COPY_CHUNK_ROWS, catch_up, copy_day
from ...mysql.retry import with_retries
from ...quality.validate import warm_up
from ...spec import MigrationSpec
from ..eta import per_day_result
from ..partitions import DAYS_PER_RUN
from ..resources import MYSQL_POOL, MySQLResource


class CopyConfig(dg.Config):
    chunk_rows: int = DEFAULT_COPY_CHUNK_ROWS
    connections: int = 2  # statements of one day at once; raise it when the server has room


def build_bigint_table_copy(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    assert spec.legacy_copy is not None
    legacy = spec.legacy_copy

    @dg.asset(
        name="bigint_table_copy",
        partitions_def=partitions,
        group_name="aurora",
        kinds={"mysql"},
        pool=MYSQL_POOL,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=DAYS_PER_RUN),
        description=(
            f"The day's rows of the legacy table `{legacy.source_table}` (by "
            f"`{legacy.time_column}`) copied into `{spec.mysql.target_table}`, the new table "
            f"with {', '.join(legacy.bigint_columns)} widened to BIGINT: set-based INSERT ... "
            "SELECT over id ranges of `chunk_rows` rows, `connections` at a time; idempotent."
        ),
    )
    def bigint_table_copy(
        context: dg.AssetExecutionContext, config: CopyConfig, mysql: MySQLResource
    ) -> dg.MaterializeResult:
        warm_up()
        results: dict[str, dict[str, Any]] = {}
        for key in context.partition_keys:
            day = parse_day(key)

            def copy(day=day):
                with mysql.connect() as conn:
                    ensure_tables(conn, spec)
                return copy_day(
                    mysql.connect,
                    spec,
                    day,
                    chunk_rows=config.chunk_rows,
                    connections=config.connections,
                )

            try:
                copied = with_retries(copy, log=context.log.warning)
            except SchemaConflictError as exc:
                raise dg.Failure(description=str(exc)) from None
            results[key] = {
                "rows_copied": copied.rows,
                "orphans_deleted": copied.orphans_deleted,
                "chunks": copied.chunks,
                "connections": copied.connections,
                "legacy_max_id_at_start": copied.source_max_id,
                "seconds": round(copied.seconds, 3),
                "rows_per_second": round(copied.rows / copied.seconds) if copied.seconds else 0,
            }
        return per_day_result(context, results)

    return bigint_table_copy


class CatchUpConfig(dg.Config):
    chunk_rows: int = DEFAULT_COPY_CHUNK_ROWS


class CutoverConfig(dg.Config):
    confirm_table: str  # must name the legacy table: the cutover is never a stray click
    verify_days: int = 2  # today and the days before it, compared second by second
    keep_old_as: str = ""  # default: <legacy table>_old


def build_legacy_jobs(spec: MigrationSpec) -> list[dg.JobDefinition]:
    assert spec.legacy_copy is not None
    source = spec.legacy_copy.source_table

    @dg.op(pool=MYSQL_POOL, name="copy_legacy_tail")
    def copy_legacy_tail(
        context: dg.OpExecutionContext, config: CatchUpConfig, mysql: MySQLResource
    ) -> None:
        """Copy legacy rows that arrived after their day was copied; report the lag."""

        def tail_copy():
            with mysql.connect() as conn:
                return catch_up(conn, spec, chunk_rows=config.chunk_rows)

        tail = with_retries(tail_copy, log=context.log.warning)
        context.log.info(
            f"copied {tail.new_rows} new rows ({tail.rows} with the overlap); every legacy id "
            f"up to {tail.copied_through} is in {spec.mysql.target_table!r}; "
            f"{tail.rows_behind} rows behind, event-time lag {tail.lag_seconds} s"
        )
        context.add_output_metadata(
            {
                "new_rows_copied": tail.new_rows,
                "rows_copied_with_overlap": tail.rows,
                "copied_through_id": tail.copied_through,
                "legacy_max_id": tail.source_max_id,
                "rows_behind": tail.rows_behind,
                "lag_seconds": tail.lag_seconds,
                "seconds": round(tail.seconds, 3),
            }
        )

    @dg.op(pool=MYSQL_POOL, name="swap_in_bigint_table")
    def swap_in_bigint_table(
        context: dg.OpExecutionContext, config: CutoverConfig, mysql: MySQLResource
    ) -> None:
        """Final catch-up and parity under write locks, then the atomic RENAME swap."""
        if config.confirm_table != source:
            raise dg.Failure(f"confirm_table must be {source!r} to cut over")
        try:
            done = cutover(
                mysql.connect,
                spec,
                verify_days=config.verify_days,
                keep_old_as=config.keep_old_as or None,
            )
        except (CutoverRefused, SchemaConflictError) as exc:
            raise dg.Failure(description=str(exc)) from None
        context.log.info(
            f"{source!r} is now the BIGINT table; the legacy table is kept as {done.old_table!r}"
        )
        context.add_output_metadata(
            {
                "legacy_table_kept_as": done.old_table,
                "rows_caught_up": done.caught_up_rows,
                "rows_copied_under_lock": done.final_rows,
                "verified_days": dg.MetadataValue.json(done.verified_days),
                "writes_paused_seconds": round(done.locked_seconds, 3),
                "rows_found_after_swap": done.rows_after_swap,
            }
        )

    @dg.job(name="bigint_copy_catch_up", description=copy_legacy_tail.__doc__)
    def bigint_copy_catch_up():
        copy_legacy_tail()

    @dg.job(name="bigint_cutover", description=swap_in_bigint_table.__doc__)
    def bigint_cutover():
        swap_in_bigint_table()

    return [bigint_copy_catch_up, bigint_cutover]
