"""The migration's proof for sign-off: one table over every partition day and every hop,
built from what is already recorded (no Dagster here: the shell, `defs/proof/`, gathers the
instance's events, a few MySQL aggregates and the export manifests' item counts).

Per day and hop: its rows, and a status. A hop is `missing` for a day it never
materialized, `failed` when a check of its latest materialization failed, `stale` when
one of its checks has no evaluation of that latest materialization (never evaluated, or
evaluated before the asset was materialized again), else `passed`. A failed day
names where rows went missing: the first failed hop in the chain, its mismatching seconds
and the check's own description.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PASSED, FAILED, STALE, MISSING = "passed", "failed", "stale", "missing"
STATUSES = (PASSED, FAILED, STALE, MISSING)
FIRST_FAILING_DAYS = 10  # failed days the summary details (the CSV lists every day)
SECONDS_SHOWN = 5  # mismatching seconds named per failed day


@dataclass(frozen=True)
class Verdict:
    """A day's latest evaluation of a check: passed (None: never finished, e.g. planned in a
    run that stopped), whether it judged the asset's latest materialization of the day, and
    (for failures) its metadata and description."""

    passed: bool | None
    current: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class Hop:
    """One asset of the chain and its checks (names as the UI shows them)."""

    name: str
    checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Totals:
    """Totals the days are compared with: what DynamoDB says it exported (the newest full
    export and its incremental chain) and the legacy table's own row count."""

    export_items: int | None = None  # full export + incrementals, per their manifests
    full_export_items: int | None = None
    incremental_items: int | None = None
    exports: tuple[str, ...] = ()
    legacy_rows: int | None = None  # COUNT(*) of the legacy table


@dataclass
class DayRow:
    day: str
    rows: dict[str, int | None]
    status: dict[str, str]
    lost_at: str | None = None  # the first failed hop
    lost_rows: int | None = None  # expected - observed of its count check
    seconds: list[str] = field(default_factory=list)
    why: str | None = None


@dataclass
class Proof:
    columns: list[str]
    hops: list[str]
    days: list[DayRow]
    totals: dict[str, Any]

    def counts(self) -> dict[str, dict[str, int]]:
        """Days per status, per hop."""
        found = {hop: dict.fromkeys(STATUSES, 0) for hop in self.hops}
        for day in self.days:
            for hop, status in day.status.items():
                found[hop][status] += 1
        return found

    def failed_days(self) -> list[DayRow]:
        return [d for d in self.days if d.lost_at is not None]

    def complete(self) -> bool:
        """Every day passed at every hop and every total matches."""
        every_day = all(s == PASSED for d in self.days for s in d.status.values())
        return every_day and all(v for k, v in self.totals.items() if k.endswith("_match"))


def hop_status(materialized: bool, verdicts: Iterable[Verdict | None]) -> str:
    """`missing`, `stale`, `failed` or `passed` (see the module's docstring)."""
    if not materialized:
        return MISSING
    found = list(verdicts)
    if any(v is not None and v.current and v.passed is False for v in found):
        return FAILED  # whatever the other checks say: this one judged the latest
    if any(v is None or not v.current or v.passed is None for v in found):
        return STALE
    return PASSED


def build_proof(
    days: list[str],
    hops: list[Hop],
    materialized: dict[str, set[str]],
    verdicts: dict[tuple[str, str], dict[str, Verdict]],
    rows: dict[str, dict[str, int]],
    totals: Totals,
    count_check: str = "per_second_count_parity",
) -> Proof:
    """The table: per day each column of `rows` ({column: {day: rows}}) and each hop's
    status (`materialized`: {hop: days}; `verdicts`: {(hop, check): {day: verdict}}), where
    rows went missing on failed days, and the totals compared."""
    table = []
    for day in days:
        status: dict[str, str] = {}
        row = DayRow(day, {name: per_day.get(day) for name, per_day in rows.items()}, status)
        for hop in hops:
            checks = [verdicts.get((hop.name, c), {}).get(day) for c in hop.checks]
            status[hop.name] = hop_status(day in materialized.get(hop.name, ()), checks)
            if status[hop.name] == FAILED and row.lost_at is None:
                _where_lost(row, hop, checks, count_check)
        table.append(row)
    return Proof(list(rows), [h.name for h in hops], table, compare_totals(rows, totals))


def _where_lost(row: DayRow, hop: Hop, checks: list[Verdict | None], count_check: str) -> None:
    """The failed hop, its rows lost (the count check's expected - observed) and the
    mismatching seconds of its failed checks, the count check's first."""
    row.lost_at = hop.name
    failed = sorted(
        ((name, e) for name, e in zip(hop.checks, checks, strict=True) if e and not e.passed),
        key=lambda pair: pair[0] != count_check,
    )
    for name, evaluation in failed:
        meta = evaluation.metadata
        if name == count_check and "expected_rows" in meta:
            row.lost_rows = int(meta["expected_rows"]) - int(meta.get("observed_rows", 0))
        for mismatch in meta.get("first_mismatches") or []:
            if mismatch.get("second") and mismatch["second"] not in row.seconds:
                row.seconds.append(mismatch["second"])
        row.why = row.why or evaluation.description or f"{name} failed"
    row.seconds = row.seconds[:SECONDS_SHOWN]


def compare_totals(rows: dict[str, dict[str, int]], totals: Totals) -> dict[str, Any]:
    """Each column's total over the days, and the days' export items and legacy rows
    against what the export manifests and the legacy table say."""
    found: dict[str, Any] = {
        f"total_{name}": sum(v for v in per_day.values() if v is not None)
        for name, per_day in rows.items()
    }
    if totals.export_items is not None and "export_items" in rows:
        found["manifest_export_items"] = totals.export_items
        found["manifest_full_export_items"] = totals.full_export_items
        found["manifest_incremental_items"] = totals.incremental_items
        found["manifest_exports"] = list(totals.exports)
        found["export_items_match"] = _within_changes(found["total_export_items"], totals)
    if totals.legacy_rows is not None and "legacy_rows" in rows:
        found["legacy_table_rows"] = totals.legacy_rows
        found["legacy_rows_match"] = found["total_legacy_rows"] == totals.legacy_rows
        if "copied_rows" in rows:
            found["copied_rows_match"] = found["total_copied_rows"] == totals.legacy_rows
    return found


def numbers(proof: Proof) -> dict[str, int | float | bool]:
    """Numeric metadata the UI plots across materializations: days per status (any hop),
    days per status per hop, and the totals."""
    found: dict[str, int | float | bool] = {"days": len(proof.days), "complete": proof.complete()}
    worst = {status: 0 for status in STATUSES}
    for day in proof.days:  # a day counts once, at its worst hop
        statuses = set(day.status.values())
        worst[next((s for s in (FAILED, MISSING, STALE) if s in statuses), PASSED)] += 1
    found |= {f"days_{status}": n for status, n in worst.items()}
    for hop, counts in proof.counts().items():
        found |= {f"{hop}_days_{status}": n for status, n in counts.items()}
    found |= {
        name: value for name, value in proof.totals.items() if isinstance(value, int | float | bool)
    }
    return found


def _within_changes(days: int, totals: Totals) -> bool:
    """The days' items equal the full export's count when it has no incrementals; with
    them, each change record (an update, an insert, a delete) moves the count by at most
    one, so the days' items lie within that many of the full export's count."""
    full, changes = totals.full_export_items or 0, totals.incremental_items or 0
    return full - changes <= days <= full + changes


def to_csv(proof: Proof) -> bytes:
    """One line per day: each column's rows, each hop's status, where rows went missing."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "day",
            *proof.columns,
            *(f"{h}_status" for h in proof.hops),
            "lost_at",
            "lost_rows",
            "seconds",
            "why",
        ]
    )
    for day in proof.days:
        writer.writerow(
            [
                day.day,
                *("" if day.rows[c] is None else day.rows[c] for c in proof.columns),
                *(day.status[h] for h in proof.hops),
                day.lost_at or "",
                "" if day.lost_rows is None else day.lost_rows,
                " ".join(day.seconds),
                day.why or "",
            ]
        )
    return out.getvalue().encode()


def to_markdown(proof: Proof, links: dict[str, str] | None = None) -> str:
    """The summary for the UI: days per status per hop, the totals against the manifests
    and the legacy table, and the first failed days with their seconds and hop."""
    verdict = "every day passed at every hop" if proof.complete() else "NOT complete"
    lines = [f"**{len(proof.days)} days: {verdict}.**", ""]
    lines += ["| hop | " + " | ".join(STATUSES) + " |", "|---" * (len(STATUSES) + 1) + "|"]
    for hop, counts in proof.counts().items():
        lines.append(f"| {hop} | " + " | ".join(str(counts[s]) for s in STATUSES) + " |")
    lines += ["", "| total | value |", "|---|---|"]
    lines += [f"| {name} | {_shown(value)} |" for name, value in proof.totals.items()]
    failed = proof.failed_days()
    if failed:
        lines += ["", f"First failed days ({len(failed)} in all; every day is in the CSV):", ""]
        lines += ["| day | hop | rows lost | seconds | why |", "|---|---|---|---|---|"]
        for day in failed[:FIRST_FAILING_DAYS]:
            lost = "" if day.lost_rows is None else str(day.lost_rows)
            seconds = ", ".join(day.seconds)
            why = (day.why or "").replace("|", "/")
            lines.append(f"| {day.day} | {day.lost_at} | {lost} | {seconds} | {why} |")
    not_checked = {
        hop: [d.day for d in proof.days if d.status[hop] in (STALE, MISSING)][:5]
        for hop in proof.hops
    }
    shown = {hop: days for hop, days in not_checked.items() if days}
    if shown:
        lines += [
            "",
            "First days missing or stale: "
            + "; ".join(f"{hop}: {', '.join(days)}" for hop, days in shown.items())
            + ".",
        ]
    if links:
        lines += ["", " · ".join(f"[{name}]({url})" for name, url in links.items())]
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def chart_png(proof: Proof, title: str) -> bytes:
    """Rows per day per column, one line each (matplotlib, Agg: no display needed)."""
    import datetime as dt

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), dpi=100)
    axes = figure.subplots()
    days = [dt.date.fromisoformat(d.day) for d in proof.days]
    for column in proof.columns:
        values = [d.rows[column] for d in proof.days]
        axes.plot(
            days, [float("nan") if v is None else v for v in values], label=column, linewidth=1
        )
    failed = [dt.date.fromisoformat(d.day) for d in proof.failed_days()]
    for day in failed[:200]:
        axes.axvline(day, color="red", alpha=0.3, linewidth=0.8)
    axes.set_title(title + (f" ({len(failed)} failed days in red)" if failed else ""))
    axes.set_ylabel("rows per day")
    axes.legend(loc="upper left", fontsize="small")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
