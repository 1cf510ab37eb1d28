"""A synthetic source shaped like the real problem, derived from any migration spec.

For each UTC day it generates a deterministic batch of rows: a composite business key,
an event time with realistic second-level burstiness (a diurnal curve plus heavy-tailed
bursts, and rows on both day edges), nullable attributes that are sometimes missing or
`NULL`, and ids at the edges of INT. The same batch is encoded as DynamoDB JSON items (for
exports), as incremental change lines, and as rows of the legacy `INT(11)` MySQL table.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ..spec import Column, MigrationSpec

INT_MAX = 2**31 - 1
SECONDS_PER_DAY = 86_400
MISSING = object()  # an attribute absent from the item (distinct from DynamoDB NULL)
_WORDS = ("bronze", "silver", "gold", "platinum", "web", "ios", "android", "store", "gift", "é✓")


@dataclass
class DayBatch:
    """One day's rows, column-wise: `values[column] = [python value | None | MISSING, ...]`."""

    day: dt.date
    seconds: np.ndarray  # epoch seconds of each row's event time
    values: dict[str, list]
    dynamodb_only: np.ndarray  # rows created after the legacy table stopped receiving writes

    def __len__(self) -> int:
        return len(self.seconds)

    def row(self, index: int) -> dict[str, object]:
        return {name: column[index] for name, column in self.values.items()}


def burst_seconds(rng: np.random.Generator, count: int) -> np.ndarray:
    """Second-of-day offsets for `count` events: diurnal load with bursts; both edges present."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    seconds = np.arange(SECONDS_PER_DAY)
    diurnal = 1.0 + 0.8 * np.sin((seconds / SECONDS_PER_DAY - 0.3) * 2 * np.pi)
    bursts = np.ones(SECONDS_PER_DAY)
    burst_starts = rng.integers(0, SECONDS_PER_DAY - 60, size=12)
    for start in burst_starts:
        bursts[start : start + rng.integers(1, 60)] *= rng.pareto(1.5) * 20 + 5
    weights = diurnal * bursts
    counts = rng.multinomial(count, weights / weights.sum())
    offsets = np.repeat(seconds, counts)
    if count >= 2:  # day edges: the first and the last second of the day always have rows
        offsets[0], offsets[-1] = 0, SECONDS_PER_DAY - 1
    return np.sort(offsets)


def _day_number(spec: MigrationSpec, day: dt.date) -> int:
    return (day - spec.partitions.start).days


def generate_day(spec: MigrationSpec, day: dt.date, count: int, seed: int = 7) -> DayBatch:
    """The deterministic batch of `count` rows for `day` (same inputs, same rows)."""
    rng = np.random.default_rng([seed, day.toordinal()])
    midnight = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())
    seconds = midnight + burst_seconds(rng, count)
    key_columns = {c.column for c in spec.key_columns}
    integer_keys = [c for c in spec.key_columns if c.type.is_integer]
    values: dict[str, list] = {}
    for column in spec.columns:
        if column is spec.event_time_column:
            values[column.column] = _event_times(column, seconds)
        elif integer_keys and column is integer_keys[-1]:
            # unique within a day and INT-sized: (day % 1000) * 2,000,000 + row number
            base = (_day_number(spec, day) % 1000) * 2_000_000
            values[column.column] = [base + i + 1 for i in range(count)]
        else:
            values[column.column] = _random_values(rng, column, count, column.column in key_columns)
    dynamodb_only = np.arange(count) % 499 == 250
    if integer_keys and count:
        first = values[integer_keys[0].column]
        first[0] = INT_MAX  # the largest id the legacy table can hold
        for index in np.flatnonzero(dynamodb_only):  # ids only BIGINT can hold
            first[index] = INT_MAX + 1 + int(rng.integers(0, 2**40))
    return DayBatch(day, seconds, values, dynamodb_only)


def _event_times(column: Column, seconds: np.ndarray) -> list:
    return [dt.datetime.fromtimestamp(int(s), dt.UTC) for s in seconds]


def _random_values(rng: np.random.Generator, column: Column, count: int, is_key: bool) -> list:
    kind = column.type.kind
    if column.type.is_integer:
        low, high = column.type.integer_bounds or (0, INT_MAX)
        raw = rng.integers(max(1, low), min(high, INT_MAX), size=count, endpoint=True).tolist()
    elif kind == "decimal":
        scale = column.type.scale or 0
        digits = min((column.type.precision or 10) - scale, 7)
        units = rng.integers(0, 10 ** (digits + scale), size=count)
        raw = [Decimal(int(u)).scaleb(-scale) for u in units]
    elif kind == "double":
        raw = rng.lognormal(3, 1.5, size=count).round(6).tolist()
    elif kind == "boolean":
        raw = rng.random(count).__lt__(0.5).tolist()
    elif kind in ("varchar", "text"):
        limit = column.type.length or 64
        raw = [_WORDS[i][:limit] for i in rng.integers(0, len(_WORDS), size=count)]
    elif kind == "json":
        raw = [
            {"channel": _WORDS[int(a)], "items": int(b), "flags": ["gift"] if c else []}
            for a, b, c in zip(
                rng.integers(4, 8, size=count),
                rng.integers(1, 9, size=count),
                rng.random(count) < 0.2,
                strict=True,
            )
        ]
    elif kind in ("varbinary", "blob"):
        raw = [
            bytes(rng.integers(0, 256, size=min(column.type.length or 8, 8), dtype=np.uint8))
            for _ in range(count)
        ]
    elif kind == "datetime":
        raw = [
            dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=int(s))
            for s in rng.integers(0, 10**8, size=count)
        ]
    elif kind == "date":
        raw = [
            dt.date(2020, 1, 1) + dt.timedelta(days=int(d))
            for d in rng.integers(0, 2000, size=count)
        ]
    else:  # pragma: no cover - spec.ColumnType admits no other kinds
        raise ValueError(f"no generator for {column.type}")
    if not is_key and column.nullable:
        draw = rng.random(count)
        raw = [
            MISSING if r < 0.04 else None if r < 0.05 else v for r, v in zip(draw, raw, strict=True)
        ]
    return raw


# --------------------------------------------------------------------------- DynamoDB encoding


def _typed(value: object) -> dict:
    """A Python value as a DynamoDB JSON typed value (N as a string: exact)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": format(value, "f") if isinstance(value, Decimal) else str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, bytes):
        return {"B": base64.b64encode(value).decode()}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {k: _typed(v) for k, v in value.items()}}
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            return {"SS": value}
        return {"L": [_typed(v) for v in value]}
    raise TypeError(f"cannot encode {type(value).__name__} as DynamoDB JSON")


def _typed_trimmed(value: object) -> dict:
    typed = _typed(value)
    if "N" in typed and "." in typed["N"]:  # DynamoDB trims trailing zeros of numbers
        typed["N"] = typed["N"].rstrip("0").rstrip(".")
    return typed


def encode_attribute(column: Column, value: object, unit: str | None) -> dict:
    """One column's value as the DynamoDB attribute the real table would hold."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, dt.datetime):
        if unit is None or unit == "iso8601":
            return {"S": value.isoformat().replace("+00:00", "Z")}
        factor = {"s": 1, "ms": 1_000, "us": 1_000_000}[unit]
        return {"N": str(int(value.timestamp()) * factor + value.microsecond * factor // 1_000_000)}
    if isinstance(value, dt.date):
        return {"S": value.isoformat()}
    return _typed_trimmed(value)


def dynamodb_item(spec: MigrationSpec, row: dict[str, object]) -> dict[str, dict]:
    """A row as a DynamoDB item (attribute names from the spec; missing ones left out)."""
    event_attribute = spec.dynamodb.event_time.attribute
    item = {}
    for column in spec.columns:
        value = row[column.column]
        if value is MISSING:
            continue
        unit = spec.dynamodb.event_time.unit if column.attribute == event_attribute else None
        item[column.attribute] = encode_attribute(column, value, unit)
    return item


def dynamodb_items(spec: MigrationSpec, batch: DayBatch) -> list[dict[str, dict]]:
    return [dynamodb_item(spec, batch.row(i)) for i in range(len(batch))]


def table_key_attributes(spec: MigrationSpec) -> tuple[Column, Column | None]:
    """The DynamoDB table's HASH and RANGE attributes: the first key columns after event time."""
    candidates = [c for c in spec.key_columns if c is not spec.event_time_column]
    candidates = candidates or list(spec.key_columns)
    return candidates[0], candidates[1] if len(candidates) > 1 else None


def item_keys(spec: MigrationSpec, item: dict[str, dict]) -> dict[str, dict]:
    hash_column, range_column = table_key_attributes(spec)
    keys = {hash_column.attribute: item[hash_column.attribute]}
    if range_column is not None:
        keys[range_column.attribute] = item[range_column.attribute]
    return keys


# --------------------------------------------------------------------------- legacy MySQL rows


def legacy_columns(spec: MigrationSpec) -> list[tuple[str, str]]:
    """(name, MySQL type) of the legacy table: INT(11) ids, no merged DynamoDB columns."""
    assert spec.legacy_copy is not None
    widened = set(spec.legacy_copy.bigint_columns)
    merged = set(spec.mysql.update_columns)
    result = [
        (name, "INT(11) NOT NULL")
        for name in spec.legacy_copy.bigint_columns
        if name not in {c.column for c in spec.columns}
    ]
    for column in spec.columns:
        if column.column in merged:
            continue
        sql = "INT(11)" if column.column in widened and column.type.is_integer else column.type.sql
        result.append((column.column, sql + ("" if column.nullable else " NOT NULL")))
    return result


def legacy_rows(spec: MigrationSpec, batch: DayBatch, first_id: int) -> list[tuple]:
    """Rows for the legacy table, ids counting up from `first_id` (as AUTO_INCREMENT would)."""
    names = [name for name, _ in legacy_columns(spec)]
    spec_names = {c.column for c in spec.columns}
    rows = []
    for index in np.flatnonzero(~batch.dynamodb_only):
        row = []
        for name in names:
            if name not in spec_names:
                row.append(first_id + len(rows))
                continue
            value = batch.values[name][index]
            if value is MISSING:
                value = None
            elif isinstance(value, dt.datetime):
                value = value.replace(tzinfo=None)
            elif isinstance(value, dict | list):
                value = json.dumps(value, separators=(",", ":"))
            row.append(value)
        rows.append(tuple(row))
    return rows
