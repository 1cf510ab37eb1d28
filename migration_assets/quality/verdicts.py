"""Each check's verdict for one day: the facts gathered where the data is, compared second by
second, with the metadata an operator needs when they differ.

A verdict is a `Validation` that Great Expectations still has to see (`deferred`): the shell
(`defs/day_checks.py`) validates all the days of a run at once and reports them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

from ..days import SecondCounts
from ..mysql.catalog import table_columns
from ..mysql.copy_checksum import day_checksums, drill_down
from ..mysql.legacy import LegacyKey
from ..mysql.seconds import (
    DRILL_KEYS,
    DRILL_SECONDS,
    copied_second_counts,
    differing_keys,
    legacy_second_counts,
    merged_day,
    merged_second_counts,
    mysql_id_types,
    staged_seconds,
    unstaged_rows,
)
from ..parquet.counts import (
    json_counted_columns,
    parquet_counted_columns,
    parquet_json_checksums,
    parquet_second_counts,
    rejects_in_day,
)
from ..parquet.store import read_census, read_manifest, read_partition, read_rejects
from ..spec import MigrationSpec
from .validate import Validation, bigint_ids, second_count_parity

PARITY, SCHEMA = "per_second_count_parity", "bigint_id_schema"
CHECKSUM = "per_second_checksum_parity"
JSON_TEXT = "json_text_parity"
Connect = Callable[[], AbstractContextManager[Any]]


class MissingDayError(LookupError):
    """The hop a check compares against has not written the day."""


def _counted(client: Any, spec: MigrationSpec, day: dt.date) -> Any:
    """The day's Parquet rows, only the columns per-second counts read."""
    return read_partition(client, spec, day, parquet_counted_columns(spec))


def parquet_parity(client: Any, spec: MigrationSpec, day: dt.date) -> Validation:
    """The day's Parquet rows plus its quarantined records, per second, against the census of
    the items the exports yielded for the day (taken while reading)."""
    manifest = read_manifest(client, spec, day)
    if manifest is None:
        raise MissingDayError(f"parquet_partitions has no manifest for {day}")
    observed = parquet_second_counts(_counted(client, spec, day), spec)
    for second in rejects_in_day(read_rejects(client, spec, manifest), day):
        observed[second] = observed.get(second, 0) + 1
    expected = read_census(client, spec, manifest)
    validation = second_count_parity(expected, observed, "export items -> parquet", deferred=True)
    validation.summary["rejects"] = manifest.rejects
    return validation


def staged_parity(
    client: Any, spec: MigrationSpec, day: dt.date, *, connect: Connect, connections: int = 1
) -> dict[str, Validation]:
    """Both staging checks on one grouped scan of the day's staged puts: their rows per
    second against the day's Parquet rows and, with json columns, the sums of their json
    text's CRC32s against the Parquet text's (MySQL's JSON type would rewrite values in
    staging and target alike, where the other checks compare the two and would pass). S3,
    Arrow and zlib work in a thread while MySQL scans."""

    def parquet() -> tuple[dict[int, int], dict[int, int]]:
        if not spec.json_columns:
            return parquet_second_counts(_counted(client, spec, day), spec), {}
        table = read_partition(client, spec, day, json_counted_columns(spec))
        return parquet_second_counts(table, spec), parquet_json_checksums(table, spec)

    with ThreadPoolExecutor(1) as side:
        reading = side.submit(parquet)
        with connect() as conn:
            counts, texts = staged_seconds(
                conn, spec, day, connect=connect, connections=connections
            )
        expected_counts, expected_texts = reading.result()
    verdicts = {
        PARITY: second_count_parity(
            expected_counts, counts, "parquet_partitions -> staging", deferred=True
        )
    }
    if spec.json_columns:
        verdicts[JSON_TEXT] = second_count_parity(
            expected_texts,
            texts,
            "parquet_partitions -> staging json text",
            unit="checksum",
            deferred=True,
        )
    return verdicts


def _mismatching(*pairs: tuple[SecondCounts, SecondCounts]) -> list[int]:
    """The seconds where any pair of per-second facts differs, in order."""
    return sorted({s for a, b in pairs for s in set(a) | set(b) if a.get(s, 0) != b.get(s, 0)})


def named_keys(validation: Validation, keys: list[dict[str, Any]], seconds: int) -> None:
    """Record a drill-down in a failed verdict's metadata, with its bound, and say in its
    description how many keys of each kind it names."""
    validation.summary["differing_keys"] = keys
    validation.summary["differing_keys_bound"] = (
        f"at most {DRILL_KEYS} keys, from the first {DRILL_SECONDS} of the {seconds} "
        "mismatching seconds"
    )
    kinds: dict[str, int] = {}
    for entry in keys:
        kinds[entry["difference"]] = kinds.get(entry["difference"], 0) + 1
    if validation.description and keys:
        named = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        validation.description = (
            f"{validation.description[:-1]}; keys named in differing_keys: {named}."
        )


def merged_parity(
    spec: MigrationSpec, day: dt.date, *, connect: Connect, connections: int = 1
) -> dict[str, Validation]:
    """Both target checks on the same facts (`merged_day`: one join, or two scans): rows
    per second (a row whose values differ is not missing: values are the checksum's), and
    row-hash sums per second; a failed one names the keys of its mismatching seconds."""
    with connect() as conn:
        facts = merged_day(conn, spec, day, connect=connect, connections=connections)
        observed = merged_second_counts(conn, spec, day, facts)
        counts = second_count_parity(facts.staged, observed, "staging -> target", deferred=True)
        values = second_count_parity(
            facts.staged_checksums,
            facts.target_checksums,
            "staging -> target values",
            unit="checksum",
            deferred=True,
        )
        for validation in (counts, values):
            validation.summary["compared_by"] = facts.method
        seconds = _mismatching(
            (facts.staged, observed), (facts.staged_checksums, facts.target_checksums)
        )
        if seconds:
            drill = differing_keys(conn, spec, day, seconds)
            if facts.method == "scans" or facts.target_in_day is not None:  # `exclusive`:
                # the target's rows of the day that no staged put accounts for
                drill = sorted(
                    drill + unstaged_rows(conn, spec, day, seconds), key=lambda k: k["second"]
                )[:DRILL_KEYS]
            if not values.passed:
                named_keys(values, drill, len(seconds))
            if not counts.passed:  # the rows it counts: missing or extra, not changed
                named_keys(counts, [k for k in drill if k["difference"] != "changed"], len(seconds))
    return {PARITY: counts, CHECKSUM: values}


def copy_parity(connect: Connect, spec: MigrationSpec, day: dt.date, key: LegacyKey) -> Validation:
    """The legacy table's rows of the day per second against those the new table holds from
    it (plus the tombstones of rows a merge deleted on purpose)."""
    assert spec.legacy_copy is not None
    with connect() as conn:
        expected = legacy_second_counts(conn, spec, day)
        observed = copied_second_counts(conn, spec, day, key)
        where = f"{spec.legacy_copy.source_table} -> {spec.mysql.target_table}"
        validation = second_count_parity(expected, observed, where, deferred=True)
        if not validation.passed:  # the rows it counts: missing or extra, not changed
            seconds = _mismatching((expected, observed))
            keys = drill_down(conn, spec, day, seconds, key)
            named_keys(validation, [k for k in keys if k["difference"] != "changed"], len(seconds))
    return validation


def copy_checksum_parity(
    spec: MigrationSpec, day: dt.date, key: LegacyKey, *, connect: Connect, connections: int = 1
) -> Validation:
    """Row-hash sums per second of every legacy column (but the merged ones) of the legacy
    rows of the day against those the new table holds from them, with the differing keys and
    both sides' values of the differing seconds (up to `named_keys`' bound)."""
    assert spec.legacy_copy is not None
    where = f"{spec.legacy_copy.source_table} -> {spec.mysql.target_table} values"
    with connect() as conn:
        sums = day_checksums(conn, spec, day, key, connect=connect, connections=connections)
        validation = second_count_parity(
            sums.legacy_sums, sums.copied_sums, where, unit="checksum", deferred=True
        )
        validation.summary["rows_compared"] = sum(sums.legacy_rows.values())
        validation.summary["columns_compared"] = ", ".join(sums.columns)
        seconds = sums.differing_seconds()
        if seconds and not validation.passed:
            named_keys(validation, drill_down(conn, spec, day, seconds, key), len(seconds))
    return validation


def spec_id_columns(spec: MigrationSpec) -> tuple[str, ...]:
    """The spec's columns that are ids (typed `bigint`)."""
    return tuple(c.column for c in spec.columns if c.column in spec.id_columns)


def staged_id_types(conn: Any, spec: MigrationSpec) -> dict[str, str | None]:
    return mysql_id_types(conn, spec.mysql.temp_table, spec_id_columns(spec))


def staged_ids(
    client: Any, spec: MigrationSpec, day: dt.date, table_types: dict[str, str | None]
) -> Validation:
    """The staging table's id types (read once per run) and the day's Parquet id types."""
    ids = list(spec_id_columns(spec))
    schema = read_partition(client, spec, day, ids).schema
    types = dict(table_types) | {f"parquet.{n}": str(schema.field(n).type) for n in ids}
    return bigint_ids(types, f"{spec.mysql.temp_table} and Parquet", deferred=True)


def new_table_id_types(conn: Any, spec: MigrationSpec) -> dict[str, str | None]:
    """Types of the spec's ids and the widened legacy columns the new table has (every
    widened legacy column must be there, and BIGINT)."""
    spec_ids = spec_id_columns(spec)
    present = table_columns(conn, spec.mysql.target_table)
    names = spec_ids + tuple(n for n in spec.id_columns if n not in spec_ids and n in present)
    if spec.legacy_copy:
        names += tuple(n for n in spec.legacy_copy.bigint_columns if n not in names)
    return mysql_id_types(conn, spec.mysql.target_table, names)


def table_ids(types: dict[str, str | None], table: str) -> Validation:
    return bigint_ids(types, table, deferred=True)
