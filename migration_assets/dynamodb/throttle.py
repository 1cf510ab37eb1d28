"""The read-rate controller of scan mode: a shared RCU budget fed by ConsumedCapacity.

Why: a segmented scan with N threads and no governor reads as fast as the table lets it,
which is what hurt the seeds' teams (throttled live traffic, unpredictable run time). Here
every Scan request first reserves its expected cost from one budget refilled at the target
rate (RCU/s), and afterwards the estimate is corrected with the `ConsumedCapacity` DynamoDB
reports, so the average converges on the target whatever the item sizes are. The target
follows the table's capacity (DescribeTable is re-read every `refresh_s`), and a throttle
cuts the rate by `THROTTLE_CUT` and lets it climb back by `RECOVERY_PER_S` of the target per
second (AIMD): throttling while under our share means live traffic needs more than the rest.

No boto3 here; time comes from an injectable clock so tests are exact.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

THROTTLE_CUT = 0.9  # rate factor kept after each throttle event (sustained throttling compounds)
MIN_FACTOR = 0.1  # never below 10% of the target: a scan must still finish
RECOVERY_PER_S = 0.2  # share of the target regained per second without throttles
BURST_S = 1.0  # unused budget kept while idle, in seconds of the target rate
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 20.0


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Time that only moves when someone sleeps, for exact and fast rate tests.

    `sleep_until(t)` moves the clock to at least `t`, so workers waiting for their reserved
    slots overlap as on a wall clock; `sleep(d)` (backoff) adds `d`. Real work (HTTP calls)
    takes no virtual time, so a rate measured in it is the controller's rate alone.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)

    def sleep_until(self, moment: float) -> None:
        with self._lock:
            self._now = max(self._now, moment)


class CapacityError(ValueError):
    """The table's capacity mode gives no target (on-demand without `target_rcu_per_s`)."""


@dataclass(frozen=True)
class CapacityTarget:
    rcu_per_s: float
    why: str  # e.g. "50% of 100 provisioned RCUs"


def target_from_table(
    table: dict[str, Any], share: float, absolute: float | None
) -> CapacityTarget:
    """The read rate to aim for, from DescribeTable's `Table`.

    Provisioned: `share` of the provisioned RCUs, capped by `absolute` when given. On-demand:
    `absolute`, else `share` of the table's on-demand maximum (`OnDemandThroughput`) if one
    is set; without either there is nothing to take a share of, so it is refused.
    """
    billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    provisioned = (table.get("ProvisionedThroughput") or {}).get("ReadCapacityUnits") or 0
    if billing != "PAY_PER_REQUEST" and provisioned > 0:
        rate = share * provisioned
        why = f"{share:.0%} of {provisioned} provisioned RCUs"
        if absolute is not None and absolute < rate:
            return CapacityTarget(absolute, f"dynamodb.scan.target_rcu_per_s, below {why}")
        return CapacityTarget(rate, why)
    if absolute is not None:
        return CapacityTarget(absolute, "dynamodb.scan.target_rcu_per_s (on-demand table)")
    maximum = (table.get("OnDemandThroughput") or {}).get("MaxReadRequestUnits") or -1
    if maximum > 0:
        return CapacityTarget(share * maximum, f"{share:.0%} of the on-demand max {maximum}")
    raise CapacityError(
        f"table {table.get('TableName')!r} is on-demand with no maximum read throughput: "
        "set dynamodb.scan.target_rcu_per_s in the spec (RCU/s the scan may use)"
    )


def full_jitter(attempt: int, rng: random.Random, base: float = BACKOFF_BASE_S) -> float:
    """AWS's full-jitter backoff: uniform(0, min(cap, base * 2^attempt))."""
    return rng.uniform(0.0, min(BACKOFF_CAP_S, base * 2**attempt))


@dataclass
class RateStats:
    consumed: float = 0.0
    requests: int = 0
    throttles: int = 0
    first_request: float | None = None
    last_response: float | None = None
    targets: list[tuple[float, float, str]] = field(default_factory=list)  # (t, rcu/s, why)

    @property
    def elapsed_s(self) -> float:
        if self.first_request is None or self.last_response is None:
            return 0.0
        return self.last_response - self.first_request


class RateController:
    """One RCU budget shared by every scan worker (thread-safe).

    Reservation model: `_next` is when the budget is next free. A request reserving `cost`
    starts at `max(now, _next)` and pushes `_next` by `cost / rate`; `settle` moves it by the
    difference between the reported and the estimated cost. Unused budget is kept for at
    most `BURST_S`, so an idle spell never turns into a burst against the table.
    """

    def __init__(
        self,
        target: CapacityTarget,
        clock: Clock | None = None,
        *,
        refresh: Callable[[], CapacityTarget] | None = None,
        refresh_s: float = 30.0,
    ) -> None:
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._refresh = refresh
        self._refresh_s = refresh_s
        now = self.clock.monotonic()
        self._next = now
        self._factor = 1.0
        self._factor_at = now
        self._refreshed_at = now
        self._estimate = 1.0  # RCU per request, learned from ConsumedCapacity
        self.target = target
        self.stats = RateStats(targets=[(0.0, target.rcu_per_s, target.why)])
        self._start = now

    @property
    def rate(self) -> float:
        """The rate in force now: the target times the throttle factor."""
        return self.target.rcu_per_s * self._factor

    @property
    def estimate(self) -> float:
        return self._estimate

    def _recover(self, now: float) -> None:
        if self._factor < 1.0:
            self._factor = min(1.0, self._factor + RECOVERY_PER_S * (now - self._factor_at))
        self._factor_at = now

    def _maybe_refresh(self, now: float) -> None:
        if self._refresh is None or now - self._refreshed_at < self._refresh_s:
            return
        self._refreshed_at = now  # set first: a failing DescribeTable is not retried per call
        target = self._refresh()
        if target.rcu_per_s != self.target.rcu_per_s:
            self.target = target
            self.stats.targets.append((now - self._start, target.rcu_per_s, target.why))

    def acquire(self) -> float:
        """Wait for this request's turn; returns the estimate reserved (pass it to `settle`)."""
        with self._lock:
            now = self.clock.monotonic()
            self._maybe_refresh(now)
            self._recover(now)
            cost = self._estimate
            self._next = max(self._next, now - BURST_S)
            start = max(now, self._next)
            self._next = start + cost / self.rate
            if self.stats.first_request is None:
                self.stats.first_request = start
        self._sleep_until(start, now)
        return cost

    def _sleep_until(self, start: float, now: float) -> None:
        sleep_until = getattr(self.clock, "sleep_until", None)
        if sleep_until is not None:
            sleep_until(start)
        else:
            self.clock.sleep(start - now)

    def settle(self, reserved: float, consumed: float) -> None:
        """Book what the request really consumed and learn the per-request cost."""
        with self._lock:
            self._next += (consumed - reserved) / self.rate
            self._estimate = 0.8 * self._estimate + 0.2 * max(consumed, 0.5)
            self.stats.consumed += consumed
            self.stats.requests += 1
            self.stats.last_response = self.clock.monotonic()

    def throttled(self, reserved: float) -> None:
        """A throttled request consumed nothing: refund it and slow down (AIMD)."""
        with self._lock:
            now = self.clock.monotonic()
            self._recover(now)
            self._next -= reserved / self.rate
            self._factor = max(MIN_FACTOR, self._factor * THROTTLE_CUT)
            self.stats.throttles += 1

    def achieved_rate(self) -> float:
        elapsed = self.stats.elapsed_s
        return self.stats.consumed / elapsed if elapsed > 0 else 0.0
