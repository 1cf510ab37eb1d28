"""Which completed exports are new, and which days each one covers.

Listing is one level deep with a delimiter (`layout.list_export_ids`), so the shared data
folder of incremental exports, however many objects it holds, is never listed. An export is
new until it has been handled once; one without `manifest-summary.json` is still running (or
half-written) and is looked at again on the next tick.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .layout import CorruptExportError, ExportManifest, list_export_ids, read_manifest

ONE_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class NewExport:
    manifest: ExportManifest
    days: tuple[dt.date, ...]  # the partitions whose state this export changes

    @property
    def export_id(self) -> str:
        return self.manifest.summary.export_id


@dataclass
class FeedScan:
    new: list[NewExport]
    in_progress: list[str]
    unreadable: dict[str, str]  # export id -> why (logged; retried next time)


def covered_days(manifest: ExportManifest, first: dt.date, last: dt.date) -> tuple[dt.date, ...]:
    """An incremental export changes the days of its window; a full export, every day up to
    its export time (it is the new base of all of them). Clipped to [first, last]."""
    summary = manifest.summary
    if summary.is_incremental:
        assert summary.export_from_time and summary.export_to_time
        start = summary.export_from_time.date()
        end = (summary.export_to_time - ONE_MICROSECOND).date()
    else:
        assert summary.export_time is not None
        start, end = first, summary.export_time.date()
    start, end = max(start, first), min(end, last)
    return tuple(start + dt.timedelta(days=n) for n in range((end - start).days + 1))


def scan_exports(
    s3: Any,
    bucket: str,
    prefix: str,
    table: str,
    handled: set[str],
    first: dt.date,
    last: dt.date,
) -> FeedScan:
    """Completed, not yet handled DYNAMODB_JSON exports of `table`, oldest first."""
    scan = FeedScan([], [], {})
    for export_id in list_export_ids(s3, bucket, prefix):
        if export_id in handled:
            continue
        try:
            manifest = read_manifest(s3, bucket, prefix, export_id)
        except CorruptExportError as exc:
            scan.unreadable[export_id] = str(exc)
            continue
        if manifest is None:
            scan.in_progress.append(export_id)
            continue
        summary = manifest.summary
        if (
            summary.output_format != "DYNAMODB_JSON"
            or summary.table_arn.rsplit("/", 1)[-1] != table
        ):
            handled.add(export_id)  # another table's export, or ION: never ours
            continue
        scan.new.append(NewExport(manifest, covered_days(manifest, first, last)))
    return scan
