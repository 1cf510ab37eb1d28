"""UTC days as half-open time windows (no Dagster): the unit of every partition."""

from __future__ import annotations

import datetime as dt


def parse_day(key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(key)
    except ValueError:
        raise ValueError(f"partition key {key!r} is not a day (YYYY-MM-DD)") from None


def day_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """`[start, end)` of a UTC day as aware datetimes."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)
