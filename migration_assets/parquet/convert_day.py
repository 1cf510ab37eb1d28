"""Days of exports to Parquet partitions, with the figures each day reports.

The one conversion entry point: `parquet_partitions` runs it in-process, and the Dagster Pipes
entry point (`remote/convert_entry.py`) runs it on EMR Serverless or Glue. Its result is plain
JSON, so a remote run sends it back over Pipes unchanged and Dagster reports the same metadata
either way (`Conversion.messages` / `Conversion.from_messages`: the only wire format).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..days import parse_day
from ..dynamodb.layout import CorruptExportError, IncompleteExportError
from ..spec import MigrationSpec
from .day_builder import (
    BadRecordsError,
    BuildStats,
    DayResult,
    MissingCoverageError,
    build_days,
)
from .store import manifest_key, partition_prefix

# What the exports or the spec can be wrong about: the step fails with the message, not a trace.
CONVERSION_ERRORS = (
    BadRecordsError,
    MissingCoverageError,
    CorruptExportError,
    IncompleteExportError,
)

JSON_KEYS = ("exports", "seconds")  # day metadata shown as JSON in the UI
PATH_KEYS = ("partition", "manifest")  # day metadata shown as S3 paths


class ConversionFailed(RuntimeError):
    """A conversion error (`CONVERSION_ERRORS`) reported by a remote run, with its message."""


def day_summary(spec: MigrationSpec, result: DayResult) -> dict[str, Any]:
    """A day's metadata: what was written and from which exports (plain JSON values)."""
    manifest = result.manifest
    day = parse_day(manifest.day)
    return {
        "rows": manifest.rows,
        "deletes": manifest.deletes,
        "rejects": manifest.rejects,
        "rejects_file": manifest.rejects_key or "none",
        "files": len(manifest.files),
        "bytes": sum(f["bytes"] for f in manifest.files),
        "day_complete": manifest.complete,
        "exports": list(manifest.exports),
        "seconds": manifest.seconds,
        "partition": f"s3://{spec.s3.bucket}/{partition_prefix(spec, day)}",
        "manifest": f"s3://{spec.s3.bucket}/{manifest_key(spec, day)}",
    }


def run_summary(stats: BuildStats, seconds: float) -> dict[str, Any]:
    """The run's reading figures, shared by every day of it (plain JSON values)."""
    return {
        "days": len(stats.results),
        "files_read": stats.files_read,
        "items_read": stats.items_read,
        "bytes_read": stats.bytes_read,
        "run_seconds": round(seconds, 3),  # not "seconds": that is each day's per-second summary
        "items_per_second": round(stats.items_read / seconds) if seconds else 0,
        "full_export_days_from_split": stats.split_days_read,
        "full_export_split_written": stats.split_written,
        "unplaced_rejects": stats.unplaced_rejects,
        "unplaced_rejects_file": stats.unplaced_rejects_key or "none",
    }


@dataclass(frozen=True)
class Conversion:
    """Per day (`YYYY-MM-DD`) its metadata, and the run's figures."""

    days: dict[str, dict[str, Any]]
    run: dict[str, Any]

    def messages(self) -> list[dict[str, Any]]:
        """One message per day, then one for the run (Pipes custom messages)."""
        return [{"day": day, "metadata": meta} for day, meta in self.days.items()] + [
            {"run": self.run}
        ]

    @classmethod
    def from_messages(cls, messages: Iterable[Any], days: list[str]) -> Conversion:
        """The conversion a remote run reported; every day of `days` must be in it."""
        by_day: dict[str, dict[str, Any]] = {}
        run: dict[str, Any] | None = None
        for message in messages:
            if not isinstance(message, dict):
                continue
            if "failure" in message:
                raise ConversionFailed(str(message["failure"]))
            if "day" in message:
                by_day[message["day"]] = message["metadata"]
            elif "run" in message:
                run = message["run"]
        missing = [day for day in days if day not in by_day]
        if run is None or missing:
            raise ConversionFailed(
                "the remote conversion ended without reporting "
                + (f"the days {', '.join(missing)}" if missing else "its run figures")
                + " (see the engine's logs)"
            )
        return cls({day: by_day[day] for day in days}, run)


def convert_days(
    s3: Any,
    spec: MigrationSpec,
    days: list[dt.date],
    *,
    log: Callable[[str], None] = lambda message: None,
    after_reading: Callable[[], None] = lambda: None,
) -> Conversion:
    """Write the Parquet partition of every day in `days` (each export file read once) and
    summarize it. Raises one of `CONVERSION_ERRORS` when the exports or the spec are wrong.
    `after_reading`: see `build_days`."""
    clock = time.perf_counter()
    stats = build_days(s3, spec, days, log=log, after_reading=after_reading)
    elapsed = time.perf_counter() - clock
    by_day = {r.day: r for r in stats.results}
    return Conversion(
        {day.isoformat(): day_summary(spec, by_day[day]) for day in days},
        run_summary(stats, elapsed),
    )
