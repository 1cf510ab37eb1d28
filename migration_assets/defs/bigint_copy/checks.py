"""`bigint_table_copy`'s checks: the legacy table's rows of each day arrived, ids widened."""

from __future__ import annotations

import dagster as dg

from ...mysql.legacy import legacy_key
from ...quality import verdicts
from ...spec import MigrationSpec
from ..checks import day_check, on_connection
from ..naming import SINGLE, Naming


def build_copy_checks(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition, naming: Naming = SINGLE
) -> list[dg.AssetChecksDefinition]:
    assert spec.legacy_copy is not None
    copy = spec.legacy_copy
    target = spec.mysql.target_table

    def parity(r):
        key = on_connection(r.mysql, lambda conn: legacy_key(conn, spec))
        return lambda day: verdicts.copy_parity(r.mysql.connect, spec, day, key())

    def checksum(r):
        key = on_connection(r.mysql, lambda conn: legacy_key(conn, spec))
        return lambda day: verdicts.copy_checksum_parity(spec, day, key(), **r.mysql.parallel())

    def ids(r):
        types = on_connection(r.mysql, lambda conn: verdicts.new_table_id_types(conn, spec))
        return lambda day: verdicts.table_ids(types(), target)

    return [
        day_check(
            naming.key("bigint_table_copy"),
            verdicts.PARITY,
            partitions,
            f"Rows per second of `{copy.time_column}`: the legacy table's rows of the day equal "
            f"the rows `{target}` holds from it (ids the legacy type can hold), plus legacy rows "
            "a merge deleted on purpose (tombstones).",
            parity,
        ),
        day_check(
            naming.key("bigint_table_copy"),
            verdicts.CHECKSUM,
            partitions,
            f"Per second of `{copy.time_column}`, the sum (mod 2^64) of row hashes (CRC32 of "
            "the CRC32 of every legacy column's QUOTEd value but the merged ones) of the "
            f"legacy rows equals that of the rows `{target}` holds from them (tombstoned rows "
            "taken off): catches a changed value, which counts miss. Lists the differing keys "
            "of the first differing seconds with both sides' values.",
            checksum,
        ),
        day_check(
            naming.key("bigint_table_copy"),
            verdicts.SCHEMA,
            partitions,
            f"legacy_copy.bigint_columns ({', '.join(copy.bigint_columns)}) and the spec's "
            f"bigint columns are BIGINT in `{target}`.",
            ids,
        ),
    ]
