"""Great Expectations 1.x validation of the per-second facts each hop gathers .

An ephemeral GE context validates small pandas frames: the per-second counts of two hops
joined side by side (`ExpectColumnPairValuesToBeEqual`), and the id columns' types
(`ExpectColumnValuesToBeInSet`). GE is imported lazily: it takes seconds to import, and
sensors and the code server should not pay for it.

A run over many days validates them together (`deferred=True`, then `validate_all`): one
frame per expectation with a `_batch` column, one GE call, and GE's unexpected rows mapped
back to their day. A three-year backfill has ~8,800 (check, day) pairs; one GE call each
costs ~30 ms, which is most of the checks' time.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ..days import SecondCounts

FIRST_MISMATCHES = 20


@dataclass
class Validation:
    passed: bool
    summary: dict[str, Any]
    details: list[dict[str, Any]] = field(default_factory=list)
    pending: tuple[str, Any] | None = None  # (expectation kind, frame) GE still has to see
    description: str | None = None  # what is wrong, in one sentence (None when it passed)


BATCH = "_batch"
_WARM_UP: list[threading.Thread] = []
_WARM_UP_LOCK = threading.Lock()


def warm_up() -> None:
    """Import Great Expectations in a background thread, once per process.

    The import takes ~2.8 s of one core (scipy, pandas, pydantic models); an asset step
    calls this early (`parquet_partitions` once its exports are read: `build_days`), so the
    import overlaps the step's I/O and Arrow work (which release the GIL) instead of
    delaying the first check. A check that needs GE before the import
    has finished waits for it on Python's import lock; an import that fails here fails
    again, with its error, where the check imports GE. GE's modules (~180 MB of RSS) then load
    during the conversion's peak memory rather than after it."""
    with _WARM_UP_LOCK:
        if _WARM_UP:
            return
        thread = threading.Thread(
            target=_import_quietly, name="great-expectations-import", daemon=True
        )
        _WARM_UP.append(thread)
    thread.start()


def _import_quietly() -> None:
    try:
        import great_expectations.expectations  # noqa: F401 (it imports pandas too)
    except Exception:  # reported where the check imports it
        logging.getLogger(__name__).debug("importing Great Expectations failed", exc_info=True)


def _expectation(kind: str) -> Any:
    import great_expectations.expectations as gxe

    if kind == "pair":
        return gxe.ExpectColumnPairValuesToBeEqual(column_A="expected", column_B="observed")
    return gxe.ExpectColumnValuesToBeInSet(column="type", value_set=list(BIGINT_TYPES))


def validate_all(validations: list[Validation]) -> None:
    """Run GE once per expectation kind over every pending validation; each gets GE's
    verdict for its own rows (GE and the direct comparison must agree)."""
    import pandas as pd

    by_kind: dict[str, list[Validation]] = {}
    for validation in validations:
        if validation.pending is not None:
            by_kind.setdefault(validation.pending[0], []).append(validation)
    for kind, members in by_kind.items():
        frame = pd.concat(
            [v.pending[1].assign(**{BATCH: n}) for n, v in enumerate(members) if v.pending],
            ignore_index=True,
        )
        result = _validate(
            frame,
            _expectation(kind),
            {
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [BATCH],
                "return_unexpected_index_query": False,
            },
        )
        unexpected = [0] * len(members)
        for row in result.result.get("unexpected_index_list") or []:
            unexpected[int(row[BATCH])] += 1
        if bool(result.success) != (sum(unexpected) == 0):  # pragma: no cover - GE's own
            raise AssertionError("Great Expectations' verdict and its unexpected rows disagree")
        for validation, count in zip(members, unexpected, strict=True):
            if validation.passed != (count == 0):  # pragma: no cover - GE and pandas agree
                raise AssertionError("Great Expectations and the direct comparison disagree")
            if kind == "pair":
                validation.summary["ge_unexpected_count"] = count
            validation.pending = None


def _validate(frame: Any, expectation: Any, result_format: Any = "SUMMARY") -> Any:
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
    return batch.validate(expectation, result_format=result_format)


def _iso(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def second_count_parity(
    expected: SecondCounts,
    observed: SecondCounts,
    what: str,
    unit: str = "rows",
    *,
    deferred: bool = False,
) -> Validation:
    """Every second's value (a count, or a checksum) equal on both sides; the first
    mismatching seconds listed. `deferred`: GE runs later, in `validate_all`."""
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
    details = [
        {
            "second": _iso(int(row.second)),
            "expected": int(row.expected),
            "observed": int(row.observed),
        }
        for row in mismatched.head(FIRST_MISMATCHES).itertuples()
    ]
    pending = ("pair", frame) if seconds else None  # an empty day on both sides: nothing lost
    description = None if mismatched.empty else _what_differs(what, unit, mismatched, len(frame))
    validation = Validation(mismatched.empty, summary, details, pending, description)
    if not deferred:
        validate_all([validation])
    return validation


def _what_differs(what: str, unit: str, mismatched: Any, seconds: int) -> str:
    """One sentence for the UI: how many rows are missing or extra (counts), or in how many
    seconds the sums differ (checksums), and where it starts."""
    first = _iso(int(mismatched["second"].iloc[0]))
    where = f"{len(mismatched)} of {seconds} seconds differ, the first at {first}"
    if unit != "rows":
        return f"{what}: the {unit} sums differ in {where}."
    gap = mismatched["expected"] - mismatched["observed"]
    missing, extra = int(gap.clip(lower=0).sum()), int((-gap).clip(lower=0).sum())
    return f"{what}: {missing} row(s) missing and {extra} extra; {where}."


BIGINT_TYPES = ("bigint", "int64")


def bigint_ids(types: dict[str, str | None], where: str, *, deferred: bool = False) -> Validation:
    """Every id column exists and is BIGINT (MySQL) / int64 (Arrow)."""
    import pandas as pd

    frame = pd.DataFrame(
        {"column": list(types), "type": [t or "(missing)" for t in types.values()]}
    )
    wrong = {name: t or "(missing)" for name, t in types.items() if t not in BIGINT_TYPES}
    shown = ", ".join(f"{name} ({t})" for name, t in wrong.items())
    validation = Validation(
        not wrong,
        {"checked": where, "id_columns": list(types), "not_bigint": wrong},
        pending=("in_set", frame) if len(frame) else None,
        description=f"{where}: id columns not BIGINT: {shown}." if wrong else None,
    )
    if not deferred:
        validate_all([validation])
    return validation
