"""Which live days to bring up to date now, and when a run would change nothing.

Today and yesterday (UTC) still change: incremental exports keep arriving, and a change to
an item of yesterday (an update, a delete) lands in today's exports. A day's run reads its
coverage (the newest full export and the incremental chain after it), so a day needs a new
run exactly when that chain changed: the chain's export ids are the run's `state`. With
`dynamodb.request: true` the run itself asks DynamoDB for the next incremental export, so a
day the chain does not complete yet is run on every tick (its state includes the tick).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from .dynamodb.coverage import DayCoverage


@dataclass(frozen=True)
class LivePlan:
    day: dt.date
    state: str | None  # None: nothing a run could do for the day now
    reason: str


def live_days(today: dt.date, first: dt.date, last: dt.date | None) -> list[dt.date]:
    """Yesterday and today, within the partitions (`last` inclusive; None: open-ended)."""
    days = [today - dt.timedelta(days=1), today]
    return [d for d in days if d >= first and (last is None or d <= last)]


def chain_state(coverage: DayCoverage) -> str:
    """A short, stable name for the exports a day's run would read."""
    return hashlib.sha256("|".join(coverage.export_ids).encode()).hexdigest()[:16]


def plan_live_runs(
    days: list[dt.date],
    coverages: dict[dt.date, DayCoverage | None],
    *,
    request_exports: bool,
    tick: dt.datetime,
) -> list[LivePlan]:
    plans = []
    for day in days:
        coverage = coverages.get(day)
        if request_exports and (coverage is None or not coverage.complete):
            chain = chain_state(coverage) if coverage else "none"
            plans.append(
                LivePlan(
                    day,
                    f"{day}:{chain}:{tick:%Y%m%dT%H%M}",
                    "requests the next export (dynamodb.request)",
                )
            )
        elif coverage is None:
            plans.append(LivePlan(day, None, f"no completed export reaches {day} yet"))
        else:
            plans.append(
                LivePlan(
                    day,
                    f"{day}:{chain_state(coverage)}",
                    f"exports until {coverage.covered_until}",
                )
            )
    return plans
