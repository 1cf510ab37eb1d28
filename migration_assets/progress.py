"""Time-remaining estimates: rows per second measured so far times rows left.

Days of one migration hold similar numbers of rows, so the rows still to do are estimated
from the days already done (their mean times the days left). The rate is measured on wall
time, so it already includes orchestration and the runs that share the machine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    days_done: int
    days_left: int
    rows_done: int
    rows_left: int  # estimated from the days done
    seconds: float  # wall time the rows done took

    @property
    def rows_per_second(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """None while nothing has been measured (no rows done, or no time passed)."""
        if not self.days_left:
            return 0.0
        rate = self.rows_per_second
        return self.rows_left / rate if rate > 0 else None

    def metadata(self, prefix: str, now: dt.datetime | None = None) -> dict[str, int | float | str]:
        eta = self.eta_seconds
        finish = (
            (now or dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=eta)
            if eta is not None
            else None
        )
        return {
            f"{prefix}_days_done": self.days_done,
            f"{prefix}_days_left": self.days_left,
            f"{prefix}_rows_per_second": round(self.rows_per_second, 1),
            f"{prefix}_rows_left_estimate": self.rows_left,
            f"{prefix}_eta_seconds": round(eta, 1) if eta is not None else "unknown",
            f"{prefix}_eta": (
                f"{format_duration(eta)} (about {finish:%Y-%m-%d %H:%M} UTC)"
                if eta is not None and finish is not None
                else "unknown"
            ),
        }


def estimate(day_rows: Sequence[int], days_left: int, seconds: float) -> Estimate:
    """`day_rows`: rows of each day done; their mean sizes the `days_left`."""
    done = len(day_rows)
    rows_done = sum(day_rows)
    rows_left = round(rows_done / done * days_left) if done else 0
    return Estimate(done, days_left, rows_done, rows_left, seconds)


def scaled_estimate(
    days_done: int, days_left: int, rows_per_day: float, seconds: float
) -> Estimate:
    """When only some days' rows are known (a backfill seen from one of its runs): every
    day is taken to hold `rows_per_day`."""
    return Estimate(
        days_done,
        days_left,
        round(days_done * rows_per_day),
        round(days_left * rows_per_day),
        seconds,
    )


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
