"""Chaining incremental exports after a full export: gaps end the chain, never bridged."""

from __future__ import annotations

import datetime as dt

import pytest

from migration_assets.dynamodb.coverage import NoCoveringExportError, cover_day
from migration_assets.dynamodb.layout import ExportManifest, ExportSummary

T0 = dt.datetime(2023, 1, 4, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def export(export_id: str, *, at=None, window=None) -> ExportManifest:
    start = at or window[1]
    summary = ExportSummary(
        export_id=export_id,
        export_arn=f"arn:x/export/{export_id}",
        export_type="INCREMENTAL_EXPORT" if window else "FULL_EXPORT",
        export_time=at,
        export_from_time=window[0] if window else None,
        export_to_time=window[1] if window else None,
        start_time=start,
        end_time=start,
        item_count=1,
        manifest_files_key="k",
        bucket="b",
        s3_prefix="p",
        output_format="DYNAMODB_JSON",
        output_view=None,
        table_arn="arn:x",
        summary_key="s",
    )
    return ExportManifest(summary, ())


def test_chain_follows_windows_in_order_and_stops_at_a_gap():
    exports = [
        export("full", at=T0),
        export("w2", window=(T0 + 6 * HOUR, T0 + 12 * HOUR)),
        export("w1", window=(T0, T0 + 6 * HOUR)),
        export("after_gap", window=(T0 + 12 * HOUR + dt.timedelta(seconds=30), T0 + 20 * HOUR)),
    ]
    coverage = cover_day(dt.date(2023, 1, 4), exports)
    assert [r.export_id for r in coverage.incrementals] == ["w1", "w2"]
    assert coverage.gap_after == "2023-01-04T13:00:00.000Z"  # 30 s gap: not bridged
    assert not coverage.complete


def test_newest_full_export_wins_and_old_windows_are_ignored():
    exports = [
        export("old_full", at=T0 - 48 * HOUR),
        export("old_window", window=(T0 - 48 * HOUR, T0 - 30 * HOUR)),
        export("full", at=T0),
        export("overlapping", window=(T0 - HOUR, T0 + 23 * HOUR)),
    ]
    coverage = cover_day(dt.date(2023, 1, 4), exports)
    assert coverage.full_export.export_id == "full"
    assert [r.export_id for r in coverage.incrementals] == ["overlapping"]
    assert coverage.complete and coverage.covered_until == "2023-01-05T00:00:00.000Z"
    with pytest.raises(NoCoveringExportError, match="2023-01-05"):
        cover_day(dt.date(2023, 1, 5), exports)
