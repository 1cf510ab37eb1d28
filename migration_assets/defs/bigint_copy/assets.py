"""`bigint_table_copy` and the jobs that finish the INT -> BIGINT migration: catch-up, cutover."""

from typing import Any

import dagster as dg

from ...days import parse_day
from ...mysql.apply import DEFAULT_BATCH_ROWS, CaptureBusy, days_changed_since_copy, drain
from ...mysql.binlog import CaptureRefused
from ...mysql.catalog import SchemaConflictError
from ...mysql.cutover import CutoverRefused, cutover
from ...mysql.ddl import ensure_tables
from ...mysql.legacy import DEFAULT_COPY_CHUNK_ROWS, catch_up, copy_day
from ...mysql.retry import with_retries
from ...quality.validate import warm_up
from ...spec import MigrationSpec
from ..eta import per_day_result
from ..naming import SINGLE, Naming
from ..partitions import DAYS_PER_RUN
from ..resources import MYSQL_POOL, MySQLResource
from ..step_retries import step_retries


class CopyConfig(dg.Config):
    chunk_rows: int = DEFAULT_COPY_CHUNK_ROWS
    connections: int = 2  # statements of one day at once; raise it when the server has room


def build_bigint_table_copy(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition, naming: Naming = SINGLE
) -> dg.AssetsDefinition:
    assert spec.legacy_copy is not None
    legacy = spec.legacy_copy

    @dg.asset(
        name="bigint_table_copy",
        key_prefix=naming.key_prefix,
        partitions_def=partitions,
        group_name=naming.group("aurora"),
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
    @step_retries
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
            except (SchemaConflictError, CaptureRefused) as exc:
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
    max_seconds: float = 240  # with change capture: how long one drain may run


class CaptureConfig(dg.Config):
    max_seconds: float = 240  # a bounded drain; the schedule starts the next one
    batch_rows: int = DEFAULT_BATCH_ROWS  # row changes per transaction of the new table


CAPTURE_CRON = "*/5 * * * *"


def _drain(context: dg.OpExecutionContext, mysql: MySQLResource, spec: MigrationSpec, **kw):
    """One bounded drain of the binlog into the new table, reported in the op's metadata."""
    try:
        drained = with_retries(lambda: drain(mysql.settings(), spec, **kw), log=context.log.warning)
    except CaptureBusy as exc:
        context.log.info(str(exc))
        context.add_output_metadata({"skipped": str(exc)})
        return
    except (CaptureRefused, SchemaConflictError) as exc:
        raise dg.Failure(description=str(exc)) from None
    with mysql.connect() as conn:
        since_copy = days_changed_since_copy(conn, spec)
    context.log.info(
        f"applied {drained.row_events} row changes ({drained.events_per_second:.0f}/s) up to "
        f"{drained.applied}; caught up: {drained.caught_up}, lag {drained.lag_seconds:.0f} s"
    )
    context.add_output_metadata(
        {
            "row_events_applied": drained.row_events,
            "transactions_read": drained.transactions,
            "events_per_second": round(drained.events_per_second),
            "caught_up": drained.caught_up,
            "lag_events": drained.behind_events,
            "lag_seconds": drained.lag_seconds,
            "lag_bytes": drained.behind_bytes,
            "applied_position": str(drained.applied),
            "applied_gtid": (drained.applied.gtid if drained.applied else None) or "",
            "days_changed_this_run": dg.MetadataValue.json(
                [d.isoformat() for d in drained.changed_days[:200]]
            ),
            "days_changed_since_copy": dg.MetadataValue.json(
                [d.isoformat() for d in since_copy[:200]]
            ),
            "days_changed_since_copy_count": len(since_copy),
            "seconds": round(drained.seconds, 3),
        }
    )


class CutoverConfig(dg.Config):
    confirm_table: str  # must name the legacy table: the cutover is never a stray click
    verify_days: int = 2  # today and the days before it, compared second by second
    keep_old_as: str = ""  # default: <legacy table>_old
    catch_up_timeout_s: float = 600  # with change capture: how long the applier may take to
    #                                  catch up before the lock (then: refused, nothing renamed)


def build_legacy_jobs(spec: MigrationSpec, naming: Naming = SINGLE) -> list[dg.JobDefinition]:
    assert spec.legacy_copy is not None
    source = spec.legacy_copy.source_table
    capture = spec.legacy_copy.change_capture == "binlog"

    @dg.op(pool=MYSQL_POOL, name=naming.name("copy_legacy_tail"))
    def copy_legacy_tail(
        context: dg.OpExecutionContext, config: CatchUpConfig, mysql: MySQLResource
    ) -> None:
        """Bring the new table up to date: with change capture, apply the binlog's changes
        (a bounded drain); without, copy legacy rows that arrived after their day was copied.
        Reports the lag."""
        if capture:
            _drain(context, mysql, spec, max_seconds=config.max_seconds)
            return

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

    @dg.op(pool=MYSQL_POOL, name=naming.name("swap_in_bigint_table"))
    def swap_in_bigint_table(
        context: dg.OpExecutionContext, config: CutoverConfig, mysql: MySQLResource
    ) -> None:
        """Checksums of every copied day without locks, then the final catch-up, counts and
        checksums of the last days under write locks, then the atomic RENAME swap."""
        if config.confirm_table != source:
            raise dg.Failure(f"confirm_table must be {source!r} to cut over")
        try:
            done = cutover(
                mysql.connect,
                spec,
                verify_days=config.verify_days,
                keep_old_as=config.keep_old_as or None,
                catch_up_timeout_s=config.catch_up_timeout_s,
            )
        except CutoverRefused as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={"refused": str(exc), "differing_days": dg.MetadataValue.json(exc.days)},
            ) from None
        except (CaptureRefused, SchemaConflictError) as exc:
            raise dg.Failure(description=str(exc)) from None
        context.log.info(
            f"{source!r} is now the BIGINT table; the legacy table is kept as {done.old_table!r}"
        )
        context.add_output_metadata(
            {
                "legacy_table_kept_as": done.old_table,
                "rows_caught_up": done.caught_up_rows,
                "rows_copied_under_lock": done.final_rows,
                "checksummed_days_without_locks": done.checksummed_days,
                "checksum_seconds": round(done.checksum_seconds, 3),
                "verified_days": dg.MetadataValue.json(done.verified_days),
                "writes_paused_seconds": round(done.locked_seconds, 3),
                "rows_found_after_swap": done.rows_after_swap,
            }
        )

    @dg.job(name=naming.name("bigint_copy_catch_up"), description=copy_legacy_tail.__doc__)
    def bigint_copy_catch_up():
        copy_legacy_tail()

    @dg.job(name=naming.name("bigint_cutover"), description=swap_in_bigint_table.__doc__)
    def bigint_cutover():
        swap_in_bigint_table()

    if not capture:
        return [bigint_copy_catch_up, bigint_cutover]

    @dg.op(pool=MYSQL_POOL, name=naming.name("apply_binlog_changes"))
    def apply_binlog_changes(
        context: dg.OpExecutionContext, config: CaptureConfig, mysql: MySQLResource
    ) -> None:
        """Apply the legacy table's inserts, updates and deletes from the binlog to the new
        table for a bounded time, from the stored position; report lag and changed days."""
        _drain(context, mysql, spec, max_seconds=config.max_seconds, batch_rows=config.batch_rows)

    @dg.job(name=naming.name("bigint_change_capture"), description=apply_binlog_changes.__doc__)
    def bigint_change_capture():
        apply_binlog_changes()

    return [bigint_copy_catch_up, bigint_cutover, bigint_change_capture]


def build_capture_schedules(
    spec: MigrationSpec, jobs: list[dg.JobDefinition], naming: Naming = SINGLE
) -> list:
    """With change capture, a drain every few minutes keeps the new table close behind the
    legacy one (and the binlog read before the server purges it)."""
    capture = next((job for job in jobs if job.name == naming.name("bigint_change_capture")), None)
    if capture is None:
        return []
    return [
        dg.ScheduleDefinition(
            name=naming.name("bigint_change_capture_schedule"),
            cron_schedule=CAPTURE_CRON,
            execution_timezone="UTC",
            job=capture,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description="Drains the legacy table's binlog changes into the new table.",
        )
    ]
