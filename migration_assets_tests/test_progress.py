"""Time-remaining estimates: rows per second measured so far times rows left."""

from __future__ import annotations

import datetime as dt

from migration_assets.progress import estimate, format_duration, scaled_estimate


def test_rows_left_come_from_the_mean_of_the_days_done():
    now = estimate([1_000, 3_000], days_left=3, seconds=4.0)
    assert now.rows_done == 4_000 and now.rows_left == 6_000
    assert now.rows_per_second == 1_000.0
    assert now.eta_seconds == 6.0


def test_nothing_measured_yet_has_no_eta_and_nothing_left_is_zero():
    assert estimate([], days_left=5, seconds=0.0).eta_seconds is None
    assert estimate([10], days_left=5, seconds=0.0).eta_seconds is None
    assert estimate([10, 20], days_left=0, seconds=1.0).eta_seconds == 0.0


def test_a_backfill_seen_from_one_run_scales_its_days():
    # 300 of 1,096 days done in 120 s at 2,000 rows a day: 796 days left take 318.4 s
    now = scaled_estimate(300, 796, 2_000.0, 120.0)
    assert now.rows_per_second == 5_000.0
    assert now.rows_left == 1_592_000
    assert round(now.eta_seconds, 1) == 318.4
    at = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    metadata = now.metadata("backfill", now=at)
    assert metadata["backfill_days_left"] == 796
    assert metadata["backfill_eta_seconds"] == 318.4
    assert metadata["backfill_eta"] == "5m 18s (about 2026-01-01 12:05 UTC)"


def test_durations_read_like_a_clock():
    assert format_duration(9.6) == "10s"
    assert format_duration(318.4) == "5m 18s"
    assert format_duration(3 * 3600 + 7 * 60 + 5) == "3h 07m"
