"""Great Expectations 1.x validation of the facts `counts.py` gathers (no Dagster here).

An ephemeral GE context validates small pandas frames: the per-second counts of two hops
joined side by side (`ExpectColumnPairValuesToBeEqual`), and the id columns' types
(`ExpectColumnValuesToBeInSet`). GE is imported lazily: it takes seconds to import, and
sensors and the code server should not pay for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .counts import SecondCounts

FIRST_MISMATCHES = 20


@dataclass
class Validation:
    passed: bool
    summary: dict[str, Any]
    details: list[dict[str, Any]] = field(default_factory=list)


def _validate(frame: Any, expectation: Any) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("migration")
        .add_dataframe_asset("facts")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    return batch.validate(expectation, result_format="SUMMARY")


def _iso(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def second_count_parity(
    expected: SecondCounts, observed: SecondCounts, what: str, unit: str = "rows"
) -> Validation:
    """Every second's value (a count, or a checksum) equal on both sides; the first
    mismatching seconds listed."""
    import great_expectations.expectations as gxe
    import pandas as pd

    seconds = sorted(set(expected) | set(observed))
    frame = pd.DataFrame(
        {
            "second": seconds,
            "expected": [expected.get(s, 0) for s in seconds],
            "observed": [observed.get(s, 0) for s in seconds],
        }
    )
    mismatched = frame[frame["expected"] != frame["observed"]]
    summary: dict[str, Any] = {
        "compared": what,
        "seconds_compared": len(seconds),
        f"expected_{unit}": int(frame["expected"].sum()),
        f"observed_{unit}": int(frame["observed"].sum()),
        "mismatched_seconds": len(mismatched),
    }
    if seconds:
        result = _validate(
            frame, gxe.ExpectColumnPairValuesToBeEqual(column_A="expected", column_B="observed")
        )
        passed = bool(result.success)
        summary["ge_unexpected_count"] = int(result.result.get("unexpected_count", 0) or 0)
    else:
        passed = True  # an empty day on both sides: nothing to compare, nothing lost
    details = [
        {
            "second": _iso(int(row.second)),
            "expected": int(row.expected),
            "observed": int(row.observed),
        }
        for row in mismatched.head(FIRST_MISMATCHES).itertuples()
    ]
    if passed != mismatched.empty:  # pragma: no cover - GE and pandas must agree
        raise AssertionError("Great Expectations and the direct comparison disagree")
    return Validation(passed, summary, details)


def bigint_ids(types: dict[str, str | None], where: str) -> Validation:
    """Every id column exists and is BIGINT (MySQL) / int64 (Arrow)."""
    import great_expectations.expectations as gxe
    import pandas as pd

    frame = pd.DataFrame(
        {"column": list(types), "type": [t or "(missing)" for t in types.values()]}
    )
    allowed = ["bigint", "int64"]
    result = _validate(frame, gxe.ExpectColumnValuesToBeInSet(column="type", value_set=allowed))
    wrong = {name: t or "(missing)" for name, t in types.items() if t not in allowed}
    return Validation(
        bool(result.success),
        {"checked": where, "id_columns": list(types), "not_bigint": wrong},
    )
