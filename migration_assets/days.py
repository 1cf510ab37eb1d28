"""UTC days as half-open time windows, and counts per second of them: the units every hop is
compared in."""

from __future__ import annotations

import datetime as dt

import numpy as np


def parse_day(key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(key)
    except ValueError:
        raise ValueError(f"partition key {key!r} is not a day (YYYY-MM-DD)") from None


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """`[start, end)` of a UTC day as aware datetimes."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)


_EPOCH_DAY = dt.date(1970, 1, 1)


def epoch_day(day: dt.date) -> int:
    """Days since 1970-01-01: how event times are bucketed into days, vectorized."""
    return (day - _EPOCH_DAY).days


def day_seconds(day: dt.date) -> range:
    """The epoch seconds of a UTC day (`second in day_seconds(day)` is O(1))."""
    first = epoch_day(day) * 86_400
    return range(first, first + 86_400)


def from_epoch_day(number: int) -> dt.date:
    return _EPOCH_DAY + dt.timedelta(days=int(number))


SecondCounts = dict[int, int]  # epoch second -> rows (or a sum per second, e.g. of row hashes)
NULL_TEXT_HASH = 1 << 32  # a NULL's hash where text hashes by CRC32: outside CRC32's range


def sum_by_second(seconds: np.ndarray, values: np.ndarray) -> SecondCounts:
    """Exact int64 sums per second; seconds whose sum is 0 are left out (0 is the default)."""
    unique, inverse = np.unique(seconds, return_inverse=True)
    sums = np.zeros(len(unique), dtype=np.int64)
    np.add.at(sums, inverse, values)
    keep = sums != 0
    return dict(zip(unique[keep].tolist(), sums[keep].tolist(), strict=True))


def mismatched_seconds(expected: SecondCounts, observed: SecondCounts) -> list[int]:
    """Seconds whose values differ (a quick, GE-free comparison for use under a lock)."""
    return sorted(s for s in set(expected) | set(observed) if expected.get(s) != observed.get(s))
