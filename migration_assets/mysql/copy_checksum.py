"""The copy's checksum proof: per second of the legacy time column, the same rows with the
same values in the legacy table and in the new table (no Dagster here).

Per second, the count and `hash_sum` of `row_hash` over every legacy column (QUOTEd values:
an INT 5 and its widened BIGINT 5 hash alike) of the legacy rows against the new table's
copied rows (ids up to `LegacyKey.limit`; larger ids were created elsewhere). The merged
columns (`mysql.update_columns`) are left out: the merge writes them on purpose. A legacy row
the merge deleted on purpose (a tombstone) is absent from the new table on purpose, so its
hash is taken off the legacy side. Each side is one grouped pass over the time index, cut
into time windows that run on parallel connections (`mysql/parallel.py`), each read along
the primary key when the window's ids are dense.

A difference is drilled down to keys: the rows of the differing seconds (up to a bound) are
read on both sides and compared value by value (by their QUOTEd text, as the hash sees them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..days import SecondCounts
from ..identifiers import quote_identifier as q
from ..spec import MigrationSpec
from .catalog import SchemaConflictError, table_columns
from .legacy import LegacyKey, day_window, tombstones_table
from .parallel import Connect, run_on_connections
from .seconds import (
    _SECOND,
    DRILL_KEYS,
    DRILL_SECONDS,
    _bucket,
    _grouped_rows,
    _sum_by,
    _whole_seconds,
    hash_sum,
    row_hash,
)

_BATCH = 200  # differing seconds read per query of each side


@dataclass(frozen=True)
class DayChecksums:
    """Per second of a day: rows and hash sums of the legacy rows still expected in the new
    table (tombstoned ones taken off) and of the new table's copied rows."""

    legacy_rows: SecondCounts
    legacy_sums: SecondCounts
    copied_rows: SecondCounts
    copied_sums: SecondCounts
    columns: tuple[str, ...]

    def differing_seconds(self) -> list[int]:
        seconds = set(self.legacy_rows) | set(self.copied_rows)
        seconds |= set(self.legacy_sums) | set(self.copied_sums)
        return sorted(
            s
            for s in seconds
            if self.legacy_rows.get(s, 0) != self.copied_rows.get(s, 0)
            or self.legacy_sums.get(s, 0) != self.copied_sums.get(s, 0)
        )


def compared_columns(conn: Any, spec: MigrationSpec) -> tuple[str, ...]:
    """Every legacy column in table order except the merged ones; each must be in the new
    table."""
    assert spec.legacy_copy is not None
    legacy = table_columns(conn, spec.legacy_copy.source_table)
    new = table_columns(conn, spec.mysql.target_table)
    merged = set(spec.mysql.update_columns)
    columns = tuple(c for c in legacy if c not in merged)
    missing = [c for c in columns if c not in new]
    if missing:
        raise SchemaConflictError(
            f"{spec.mysql.target_table!r} lacks the legacy columns {missing} of "
            f"{spec.legacy_copy.source_table!r}: drop it and materialize bigint_table_copy again"
        )
    return columns


def _time_ranges(day: dt.date, parts: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """The day cut into `parts` windows on whole seconds (a second is never cut)."""
    start, end = day_window(day)
    step = -(-86_400 // parts)
    edges = [start + dt.timedelta(seconds=s) for s in range(0, 86_400, step)] + [end]
    return list(zip(edges[:-1], edges[1:], strict=True))


def day_checksums(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    key: LegacyKey,
    *,
    connect: Connect | None = None,
    connections: int = 1,
) -> DayChecksums:
    """Both sides' per-second rows and hash sums for `day`, on up to `connections`
    connections at once (`conn` and more from `connect`): each side cut into time ranges,
    the tombstoned legacy rows as one more task."""
    assert spec.legacy_copy is not None
    source, target = spec.legacy_copy.source_table, spec.mysql.target_table
    columns = compared_columns(conn, spec)
    when, pk = q(spec.legacy_copy.time_column), q(key.column)

    def side(table: str, alias: str, extra: str) -> Callable[[Any, tuple], np.ndarray]:
        """A task for one time window of one side: the window's id span by the time index
        (index-only), then one grouped pass, along the primary key where the window's
        rows fill at least half of that span (the legacy ids follow time: sequential
        reads instead of a row lookup per index entry; ~0.4 s of 2 for a million rows
        here), else along the time index."""
        second = _bucket(
            f"{alias}.{when}", _whole_seconds(conn, table, spec.legacy_copy.time_column)
        )
        within = f"{alias}.{when} >= %s AND {alias}.{when} < %s{extra}"
        span = f"SELECT MIN({alias}.{pk}), MAX({alias}.{pk}), COUNT(*) FROM {q(table)} {alias} "
        grouped = (
            f"SELECT {second.select} AS c0, COUNT(*) AS c1, "
            f"{hash_sum(row_hash(alias, columns))} AS c2 FROM {q(table)} {alias} {{hint}}"
            f"WHERE {{ids}}{within} GROUP BY {second.group}"
        )

        def task(on: Any, window: tuple) -> np.ndarray:
            with on.cursor() as cur:
                cur.execute(span + f"WHERE {within}", window)
                low, high, rows = cur.fetchone()
            if not rows:
                return np.zeros((0, 3), dtype=np.int64)
            if high - low < 2 * rows:
                sql = grouped.format(
                    hint="FORCE INDEX (PRIMARY) ", ids=f"{alias}.{pk} BETWEEN %s AND %s AND "
                )
                return _grouped_rows(on, sql, (low, high, *window), 3)
            return _grouped_rows(on, grouped.format(hint="", ids=""), window, 3)

        return task

    legacy_side = side(source, "l", "")
    copied_side = side(target, "t", f" AND t.{pk} <= {int(key.limit)}")
    tombstones = q(tombstones_table(spec))
    second = _bucket(f"l.{when}", False)
    tombstoned_sql = (  # driven by the (few) tombstones of the day
        f"SELECT {second.select} AS c0, COUNT(*) AS c1, {hash_sum(row_hash('l', columns))} AS c2 "
        f"FROM {tombstones} d JOIN {q(source)} l ON l.{pk} = d.`legacy_id` "
        f"WHERE d.`event_time` >= %s AND d.`event_time` < %s "
        f"AND l.{when} >= %s AND l.{when} < %s GROUP BY c0"
    )
    ranges = _time_ranges(day, max(1, connections // 2))
    tasks: list[Callable[[Any], np.ndarray]] = []
    for run in (legacy_side, copied_side):
        tasks += [lambda on, run=run, r=r: run(on, r) for r in ranges]
    tasks.append(
        lambda on: _grouped_rows(on, tombstoned_sql, (*day_window(day), *day_window(day)), 3)
    )
    *parts, tombstoned = run_on_connections(conn, tasks, connect=connect, connections=connections)
    legacy = np.vstack([*parts[: len(ranges)], tombstoned * np.array([1, -1, -1])])
    copied = np.vstack(parts[len(ranges) :])
    return DayChecksums(
        legacy_rows=_sum_by(legacy[:, 0], legacy[:, 1]),
        legacy_sums=_sum_by(legacy[:, 0], legacy[:, 2]),
        copied_rows=_sum_by(copied[:, 0], copied[:, 1]),
        copied_sums=_sum_by(copied[:, 0], copied[:, 2]),
        columns=columns,
    )


def _rows_of_seconds(
    conn: Any,
    table: str,
    when: str,
    seconds: list[int],
    columns: tuple[str, ...],
    pk: str,
    extra: str = "",
    params: tuple = (),
) -> dict[Any, tuple[int, tuple, tuple]]:
    """{key: (second, values, QUOTEd values)} of a table's rows in `seconds` (one range of
    the time index, then the seconds themselves)."""
    listed = ", ".join(q(c) for c in columns)
    quoted = ", ".join(f"QUOTE({q(c)})" for c in columns)
    second = _SECOND.format(column=when)
    start = dt.datetime.fromtimestamp(seconds[0], dt.UTC).replace(tzinfo=None)
    end = dt.datetime.fromtimestamp(seconds[-1] + 1, dt.UTC).replace(tzinfo=None)
    among = ", ".join(str(int(s)) for s in seconds)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {q(pk)}, {second}, {listed}, {quoted} FROM {q(table)} "
            f"WHERE {when} >= %s AND {when} < %s AND {second} IN ({among}){extra}",
            (start, end, *params),
        )
        width = len(columns)
        return {
            row[0]: (int(row[1]), row[2 : 2 + width], row[2 + width :]) for row in cur.fetchall()
        }


def drill_down(
    conn: Any,
    spec: MigrationSpec,
    day: dt.date,
    seconds: list[int],
    key: LegacyKey,
    *,
    limit: int = DRILL_KEYS,
) -> list[dict[str, Any]]:
    """The keys behind the differing seconds (the first `DRILL_SECONDS`, read `_BATCH` at a
    time on each side), at most `limit`, first seconds first, with both sides' values of the
    columns that differ: `missing` for a legacy row the new table lacks, `extra` for a
    copied row the legacy table does not hold there, `changed` for other values."""
    assert spec.legacy_copy is not None
    columns = compared_columns(conn, spec)
    when = q(spec.legacy_copy.time_column)
    tombstoned = _tombstoned_ids(conn, spec, day)
    found: list[dict[str, Any]] = []
    chosen = seconds[:DRILL_SECONDS]
    for low in range(0, len(chosen), _BATCH):
        batch = chosen[low : low + _BATCH]
        legacy = _rows_of_seconds(
            conn, spec.legacy_copy.source_table, when, batch, columns, key.column
        )
        copied = _rows_of_seconds(
            conn,
            spec.mysql.target_table,
            when,
            batch,
            columns,
            key.column,
            f" AND {q(key.column)} <= %s",
            (key.limit,),
        )
        for pk in sorted(
            set(legacy) | set(copied), key=lambda k: ((legacy.get(k) or copied[k])[0], k)
        ):
            if pk in tombstoned and pk not in copied:
                continue  # deleted on purpose by the merge
            old, new = legacy.get(pk), copied.get(pk)
            if old is not None and new is not None and old[2] == new[2]:
                continue
            shown = [
                i
                for i in range(len(columns))
                if old is None or new is None or old[2][i] != new[2][i]
            ]
            found.append(
                {
                    "second": iso_second((old or new)[0]),  # type: ignore[index]
                    "key": {key.column: str(pk)},
                    "difference": "missing"
                    if new is None
                    else "extra"
                    if old is None
                    else "changed",
                    "legacy": {columns[i]: _shown(old[1][i]) for i in shown} if old else {},
                    "new": {columns[i]: _shown(new[1][i]) for i in shown} if new else {},
                }
            )
            if len(found) >= limit:
                return found
    return found


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)


def _tombstoned_ids(conn: Any, spec: MigrationSpec, day: dt.date) -> set[int]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT `legacy_id` FROM {q(tombstones_table(spec))} "
            "WHERE `event_time` >= %s AND `event_time` < %s",
            day_window(day),
        )
        return {int(row[0]) for row in cur.fetchall()}


def iso_second(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
