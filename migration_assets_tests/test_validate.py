"""Great Expectations over many days at once: each day keeps its own verdict and figures."""

from __future__ import annotations

import subprocess
import sys

from migration_assets.quality.validate import bigint_ids, second_count_parity, validate_all

DAY = 1_672_531_200  # 2023-01-01T00:00:00Z


def _day(number: int) -> dict[int, int]:
    return {DAY + number * 86_400 + s: 1 + s % 3 for s in range(0, 86_400, 600)}


def test_many_days_in_one_validation_match_one_validation_per_day():
    days = [_day(n) for n in range(5)]
    observed = [dict(d) for d in days]
    first = next(iter(observed[3]))
    observed[3][first] += 2  # day 3 has one second with two rows too many
    alone = [second_count_parity(e, o, "hop") for e, o in zip(days, observed, strict=True)]
    together = [
        second_count_parity(e, o, "hop", deferred=True) for e, o in zip(days, observed, strict=True)
    ]
    assert all(v.pending is not None for v in together)
    validate_all(together)
    assert [v.passed for v in together] == [True, True, True, False, True]
    for one, batched in zip(alone, together, strict=True):
        assert batched.summary == one.summary and batched.details == one.details
        assert batched.pending is None
    assert together[3].summary["ge_unexpected_count"] == 1
    assert together[3].details == [{"second": "2023-01-04T00:00:00Z", "expected": 1, "observed": 3}]


def test_id_types_of_many_days_at_once():
    checks = [
        bigint_ids({"id": "bigint", "parquet.id": "int64"}, "day 1", deferred=True),
        bigint_ids({"id": "int", "parquet.id": "int64"}, "day 2", deferred=True),
        bigint_ids({"id": None}, "day 3", deferred=True),
    ]
    validate_all(checks)
    assert [c.passed for c in checks] == [True, False, False]
    assert checks[1].summary["not_bigint"] == {"id": "int"}
    assert checks[2].summary["not_bigint"] == {"id": "(missing)"}


def test_an_empty_day_on_both_sides_passes_without_a_frame():
    empty = second_count_parity({}, {}, "hop", deferred=True)
    validate_all([empty, second_count_parity(_day(0), _day(0), "hop", deferred=True)])
    assert empty.passed and empty.summary["seconds_compared"] == 0


def _in_a_fresh_interpreter(script: str) -> None:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_warm_up_imports_great_expectations_once_in_the_background():
    """Nothing imported GE before; two calls start one daemon thread, which imports it."""
    _in_a_fresh_interpreter(
        """
import sys
from migration_assets.quality import validate
assert "great_expectations" not in sys.modules
validate.warm_up()
validate.warm_up()
assert len(validate._WARM_UP) == 1
thread = validate._WARM_UP[0]
assert thread.daemon and thread.name == "great-expectations-import"
thread.join(timeout=60)
assert not thread.is_alive() and "great_expectations.expectations" in sys.modules
"""
    )


def test_a_validation_during_the_warm_up_gets_great_expectations_verdict():
    """A check right after the warm-up started (the import still running) waits for it on
    the import lock and gets GE's verdict."""
    _in_a_fresh_interpreter(
        """
from migration_assets.quality import validate
validate.warm_up()
assert validate._WARM_UP[0].is_alive()
failed = validate.second_count_parity({1: 2}, {1: 3}, "hop")
assert not failed.passed and failed.summary["ge_unexpected_count"] == 1
"""
    )
