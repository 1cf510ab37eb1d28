"""The staging table's and the target's checks: each hop against the one before it."""

from __future__ import annotations

import functools

import dagster as dg

from ...quality import verdicts
from ...spec import MigrationSpec
from ..checks import day_check, day_checks, on_connection
from ..naming import SINGLE, Naming


def build_aurora_checks(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition, naming: Naming = SINGLE
) -> list[dg.AssetChecksDefinition]:
    def staged_ids(r):
        types = on_connection(r.mysql, lambda conn: verdicts.staged_id_types(conn, spec))
        client = r.s3
        return lambda day: verdicts.staged_ids(client, spec, day, types())

    def target_ids(r):
        types = on_connection(r.mysql, lambda conn: verdicts.new_table_id_types(conn, spec))
        return lambda day: verdicts.table_ids(types(), spec.mysql.target_table)

    staged = {
        verdicts.PARITY: "Rows per second of event time: staged puts equal the day's Parquet rows."
    }
    if spec.json_columns:
        staged[verdicts.JSON_TEXT] = (
            f"JSON text ({', '.join(spec.json_columns)}): per second of event time, the sum of "
            "the staged puts' CRC32s of each json value equals that of the day's Parquet text, "
            "so a value the server changed (or anyone did) fails; with the target's checksum it "
            "carries the text from Parquet to the target."
        )
    return [
        day_checks(
            naming.key("aurora_temp_table"),
            naming.name("aurora_temp_table_checks"),
            partitions,
            staged,
            lambda r: functools.partial(verdicts.staged_parity, r.s3, spec, **r.mysql.parallel()),
            resources=("s3", "mysql"),
        ),
        day_checks(
            naming.key("target_table"),
            naming.name("target_table_merge_checks"),
            partitions,
            {
                verdicts.PARITY: (
                    "Rows per second of event time: every staged put is in the target with the "
                    "merged values (update_only: or kept in the unmatched table). Where every "
                    "target row of the day must be a staged put, the key holds the event time "
                    "and the target is partitioned by day: the target's rows of the day per "
                    "second equal the staged puts, whose values the checksum check compares "
                    "(metadata `compared_by`)."
                ),
                verdicts.CHECKSUM: (
                    "Per second of event time, the order-independent sum of row hashes (key "
                    "and merged columns) of the staged puts equals that of the target rows at "
                    "their keys (compared by scans: of the target's rows of the day): catches "
                    "a changed value, which counts miss. Lists the differing keys of the first "
                    "mismatching second (and, by scans, its target rows no put accounts for)."
                ),
            },
            lambda r: functools.partial(verdicts.merged_parity, spec, **r.mysql.parallel()),
        ),
        day_check(
            naming.key("aurora_temp_table"),
            verdicts.SCHEMA,
            partitions,
            "Id columns are BIGINT in the staging table and int64 in the day's Parquet.",
            staged_ids,
            resources=("s3", "mysql"),
        ),
        day_check(
            naming.key("target_table"),
            verdicts.SCHEMA,
            partitions,
            "Id columns (the spec's bigint columns and legacy_copy.bigint_columns present in "
            "the table) are BIGINT in the target.",
            target_ids,
        ),
    ]
