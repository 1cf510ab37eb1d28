"""`parquet_partitions`' check: the day's Parquet rows against what the exports yielded."""

from __future__ import annotations

import functools

import dagster as dg

from ...quality import verdicts
from ...spec import MigrationSpec
from ..checks import day_check
from ..naming import SINGLE, Naming


def build_parquet_checks(
    spec: MigrationSpec, partitions: dg.PartitionsDefinition, naming: Naming = SINGLE
) -> list[dg.AssetChecksDefinition]:
    return [
        day_check(
            naming.key("parquet_partitions"),
            verdicts.PARITY,
            partitions,
            "Rows per second of event time: the day's Parquet rows plus its quarantined records "
            "equal the items the exports yielded for the day (the census taken while reading).",
            lambda r: functools.partial(verdicts.parquet_parity, r.s3, spec),
            resources=("s3",),
        )
    ]
