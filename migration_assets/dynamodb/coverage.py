"""Which completed exports make up a day's source state.

docs/design.md §1: a day's source state is the newest completed full export, with every later
incremental export applied in window order. Incrementals chain `[from, to)` from the full
export's time; a gap ends the chain (changes after a gap cannot be applied safely). A day is
complete once the chain reaches the day's end; before that it is a live, partial day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..days import day_window
from .layout import ExportManifest, format_timestamp, list_export_ids, read_manifest


class NoCoveringExportError(LookupError):
    """No completed export holds the day yet."""


@dataclass(frozen=True)
class ExportRef:
    export_id: str
    export_type: str
    item_count: int
    data_files: int
    export_time: str | None = None
    window_from: str | None = None
    window_to: str | None = None

    @classmethod
    def of(cls, manifest: ExportManifest) -> ExportRef:
        summary = manifest.summary

        def iso(moment: dt.datetime | None) -> str | None:
            return format_timestamp(moment) if moment else None

        return cls(
            summary.export_id,
            summary.export_type,
            summary.item_count,
            len(manifest.files),
            iso(summary.export_time),
            iso(summary.export_from_time),
            iso(summary.export_to_time),
        )


@dataclass(frozen=True)
class DayCoverage:
    day: str
    full_export: ExportRef
    incrementals: tuple[ExportRef, ...]
    covered_until: str  # the time up to which the chain holds every write
    complete: bool  # covered_until reaches the end of the day
    gap_after: str | None = None  # set when an incremental chain stops at a gap

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "full_export": self.full_export.__dict__,
            "incrementals": [ref.__dict__ for ref in self.incrementals],
            "covered_until": self.covered_until,
            "complete": self.complete,
            "gap_after": self.gap_after,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DayCoverage:
        return cls(
            data["day"],
            ExportRef(**data["full_export"]),
            tuple(ExportRef(**ref) for ref in data["incrementals"]),
            data["covered_until"],
            data["complete"],
            data.get("gap_after"),
        )

    @property
    def export_ids(self) -> list[str]:
        return [self.full_export.export_id, *(ref.export_id for ref in self.incrementals)]


def completed_exports(
    s3: Any, bucket: str, prefix: str, table: str | None = None
) -> list[ExportManifest]:
    """Completed DYNAMODB_JSON exports of `table` under the prefix (in-progress ones skipped).

    An export of another table, or in ION, that shares the prefix is never chosen.
    """
    manifests = (
        read_manifest(s3, bucket, prefix, export_id)
        for export_id in list_export_ids(s3, bucket, prefix)
    )
    return [
        m
        for m in manifests
        if m is not None
        and m.summary.output_format == "DYNAMODB_JSON"
        and (table is None or m.summary.table_arn.rsplit("/", 1)[-1] == table)
    ]


def incremental_chain(
    full: ExportManifest, exports: list[ExportManifest]
) -> tuple[list[ExportManifest], dt.datetime, dt.datetime | None]:
    """Incrementals that continue `full` without a gap, the chain's end, and a gap if any."""
    assert full.summary.export_time is not None
    cursor = full.summary.export_time
    pending = sorted(
        (m for m in exports if m.summary.is_incremental and m.summary.export_to_time > cursor),
        key=lambda m: (m.summary.export_from_time, m.summary.export_to_time),
    )
    chain: list[ExportManifest] = []
    for manifest in pending:
        window_from, window_to = manifest.summary.export_from_time, manifest.summary.export_to_time
        if window_to <= cursor:
            continue  # fully inside what the chain already holds
        if window_from > cursor:  # a gap, however short, may hold writes: never bridge it
            return chain, cursor, cursor
        chain.append(manifest)
        cursor = window_to
    return chain, cursor, None


def chain_end(exports: list[ExportManifest]) -> dt.datetime | None:
    """Until when the newest full export and its incremental chain hold every write (None
    without a full export): where the next incremental export must start."""
    fulls = [m for m in exports if not m.summary.is_incremental and m.summary.export_time]
    if not fulls:
        return None
    return incremental_chain(max(fulls, key=lambda m: m.summary.export_time), exports)[1]


def cover_day(day: dt.date, exports: list[ExportManifest]) -> DayCoverage:
    """The exports that make up `day`: the newest full export plus its incremental chain."""
    start, end = day_window(day)
    fulls = [m for m in exports if not m.summary.is_incremental and m.summary.export_time]
    if not fulls:
        raise NoCoveringExportError(f"no completed full export exists yet; {day} cannot be read")
    full = max(fulls, key=lambda m: m.summary.export_time)
    chain, covered_until, gap = incremental_chain(full, exports)
    if covered_until <= start:
        raise NoCoveringExportError(
            f"no completed export reaches {day}: the newest full export "
            f"{full.summary.export_id} and its incrementals hold writes until "
            f"{format_timestamp(covered_until)}"
        )
    return DayCoverage(
        day=day.isoformat(),
        full_export=ExportRef.of(full),
        incrementals=tuple(ExportRef.of(m) for m in chain),
        covered_until=format_timestamp(covered_until),
        complete=covered_until >= end,
        gap_after=format_timestamp(gap) if gap else None,
    )


def chain_item_counts(exports: list[ExportManifest]) -> tuple[list[str], int, int] | None:
    """What DynamoDB says the newest full export and its incremental chain hold: their ids,
    the full export's item count and the incrementals' (None without a full export)."""
    fulls = [m for m in exports if not m.summary.is_incremental and m.summary.export_time]
    if not fulls:
        return None
    full = max(fulls, key=lambda m: m.summary.export_time)
    chain = incremental_chain(full, exports)[0]
    ids = [full.summary.export_id, *(m.summary.export_id for m in chain)]
    return ids, full.summary.item_count, sum(m.summary.item_count for m in chain)
