"""Typed DynamoDB attribute values -> exact Arrow columns, vectorized, with per-row problems.

The JSON reader parses each attribute into a struct of its type keys (`N`, `S`, `BOOL`...).
This module turns such a struct array into the spec column's Arrow type without a Python
loop in the common case: plain numbers and ISO timestamps are cast by Arrow after a regex
proves the cast exact; the rare value outside that shape (an exponent, 19 digits, a naive
timestamp) takes an exact per-value path. Nothing is ever rounded or wrapped: a value that
does not fit becomes a problem text for its row, and the row becomes a bad record.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..spec import Column, ColumnType
from . import typed_arrow
from .typed_json import JSON_NUMBER

# makes (json text, problem) one value at a time for the given rows (a json column's rare path)
ExactJson = Callable[[np.ndarray], dict[int, tuple[str | None, str | None]]]

_STRING_LIST = pa.list_(pa.string())
# The type keys declared per column kind; anything else present leaves them all null,
# which is reported as a wrong type (the raw line is kept with the bad record).
_KEYS_BY_KIND: dict[str, tuple[str, ...]] = {
    "integer": ("N",),
    "decimal": ("N",),
    "double": ("N",),
    "boolean": ("BOOL",),
    "varchar": ("S", "N"),
    "text": ("S", "N"),
    "varbinary": ("B",),
    "blob": ("B",),
    "datetime": ("S", "N"),
    "date": ("S",),
    "json": ("S", "N", "B", "BOOL", "SS", "NS", "BS"),
}
KEY_TYPES = {  # the Arrow type of each scalar DynamoDB type key's value
    "S": pa.string(),
    "N": pa.string(),
    "B": pa.string(),
    "BOOL": pa.bool_(),
    "NULL": pa.bool_(),
    "SS": _STRING_LIST,
    "NS": _STRING_LIST,
    "BS": _STRING_LIST,
}
_UNIT_FACTOR = {"s": 1, "ms": 1_000, "us": 1_000_000}
_MYSQL_DATETIME_RANGE = (
    dt.datetime(1000, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
)
_TEXT_MAX_BYTES = 65_535  # MySQL TEXT / BLOB


def _kind(column_type: ColumnType) -> str:
    return "integer" if column_type.is_integer else column_type.kind


def attribute_struct(column_type: ColumnType) -> pa.StructType:
    """The struct the JSON reader parses one attribute of this column type into."""
    keys = _KEYS_BY_KIND[_kind(column_type)] + ("NULL",)
    return pa.struct([pa.field(key, KEY_TYPES[key]) for key in keys])


@dataclass
class Converted:
    values: pa.Array  # the column's Arrow type; null where missing, NULL or bad
    problems: pa.Array  # string; null where the row's value is fine


@dataclass(frozen=True)
class TimeRules:
    """How numbers and strings become datetimes for one column."""

    epoch_unit: str = "s"  # unit of an N value (the spec's event_time.unit for the event column)
    iso_only: bool = False  # event_time.unit = iso8601: only S values are accepted


def convert(
    typed: pa.StructArray,
    column: Column,
    time_rules: TimeRules = TimeRules(),
    exact_json: ExactJson | None = None,
) -> Converted:
    """Convert one attribute's typed struct array into the column's exact Arrow array.

    `exact_json` makes a json column's text one value at a time for the rows the
    column-wise path cannot vouch for (see `_json_column`), keyed by row index.
    """
    fields = dict(zip([f.name for f in typed.type], typed.flatten(), strict=True))
    kind = _kind(column.type)
    if kind == "json":
        values, problems = _json_column(typed, exact_json)
    else:
        values, problems = _CONVERTERS[kind](fields, column.type, time_rules)
    return Converted(values, _finish_problems(typed, fields, values, problems, column))


def _finish_problems(
    typed: pa.StructArray,
    fields: dict[str, pa.Array],
    values: pa.Array,
    problems: pa.Array,
    column: Column,
) -> pa.Array:
    """Add the rules every type shares: wrong type keys, NOT NULL."""
    is_null = fields["NULL"].fill_null(False)
    present = typed.is_valid()
    wrong_type = pc.and_(
        pc.and_(present, pc.invert(is_null)), pc.and_(values.is_null(), problems.is_null())
    )
    expected = "/".join(_KEYS_BY_KIND[_kind(column.type)])
    problems = pc.if_else(
        wrong_type, pa.scalar(f"has a DynamoDB type other than {expected}", pa.string()), problems
    )
    if not column.nullable:
        missing = pc.and_(values.is_null(), problems.is_null())
        problems = pc.if_else(
            missing, pa.scalar("is missing or NULL but the column is NOT NULL"), problems
        )
    return problems


# --------------------------------------------------------------------------- helpers


def _no_problems(length: int) -> pa.Array:
    return pa.nulls(length, pa.string())


def _matches(strings: pa.Array, pattern: str) -> np.ndarray:
    """A numpy bool mask: non-null strings that fully match `pattern`."""
    return pc.fill_null(pc.match_substring_regex(strings, f"^(?:{pattern})$"), False).to_numpy(
        zero_copy_only=False
    )


def _slow_path(
    strings: pa.Array,
    rows: np.ndarray,
    parse: Callable[[str], object],
    values: list,
    problems: list,
) -> None:
    """Apply an exact per-value parser to the few rows the vectorized path left out."""
    texts = strings.take(pa.array(rows)).to_pylist()
    for row, text in zip(rows.tolist(), texts, strict=True):
        try:
            values[row] = parse(text)
        except ValueError as exc:
            problems[row] = str(exc)


def _merge(
    fast: pa.Array,
    fast_rows: np.ndarray,
    slow_rows: np.ndarray,
    parse: Callable[[str], object],
    strings: pa.Array,
    arrow_type: pa.DataType,
) -> tuple[pa.Array, pa.Array]:
    """Fast-path values where `fast_rows`, exact per-value results where `slow_rows`."""
    length = len(strings)
    problems = _no_problems(length)
    if not slow_rows.any():
        return fast, problems
    values: list = [None] * length
    messages: list = [None] * length
    _slow_path(strings, np.flatnonzero(slow_rows), parse, values, messages)
    slow = pa.array(values, type=arrow_type)
    return pc.if_else(pa.array(fast_rows), fast, slow), pa.array(messages, type=pa.string())


# --------------------------------------------------------------------------- numbers


def _exact_integer(column_type: ColumnType) -> Callable[[str], int]:
    low, high = column_type.integer_bounds  # type: ignore[misc]

    def parse(text: str) -> int:
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a number") from None
        if number != number.to_integral_value():
            raise ValueError(f"{text} is not a whole number (column is {column_type})")
        value = int(number)
        if not low <= value <= high:
            raise ValueError(f"{text} does not fit {column_type} ({low}..{high})")
        return value

    return parse


def _whole_array_cast(strings: pa.Array, arrow_type: pa.DataType) -> pa.Array | None:
    """Arrow's checked cast of every value at once, or None if any value refuses it.

    The common case (every number plain and in range) then costs one kernel; a file with
    one odd value takes the per-row path below, which finds and names that value.
    """
    try:
        return pc.cast(strings, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _integer(fields, column_type: ColumnType, _rules) -> tuple[pa.Array, pa.Array]:
    numbers = fields["N"]
    low, high = column_type.integer_bounds  # type: ignore[misc]
    hexadecimal = pc.any(pc.match_substring(numbers, "x", ignore_case=True)).as_py()
    whole = None if hexadecimal else _whole_array_cast(numbers, pa.int64())  # Arrow reads 0x10
    if whole is not None:
        fits = pc.and_(pc.greater_equal(whole, low), pc.less_equal(whole, high))
        if pc.all(fits).as_py() is not False:
            return pc.cast(whole, column_type.arrow), _no_problems(len(numbers))
    plain = _matches(numbers, r"-?[0-9]{1,18}")
    as_int64 = pc.cast(pc.if_else(pa.array(plain), numbers, None), pa.int64())
    in_range = pc.fill_null(
        pc.and_(pc.greater_equal(as_int64, low), pc.less_equal(as_int64, high)), False
    ).to_numpy(zero_copy_only=False)
    fast_rows = plain & in_range
    slow_rows = numbers.is_valid().to_numpy(zero_copy_only=False) & ~fast_rows
    fast = pc.cast(pc.if_else(pa.array(fast_rows), as_int64, None), column_type.arrow)
    return _merge(
        fast, fast_rows, slow_rows, _exact_integer(column_type), numbers, column_type.arrow
    )


def _exact_decimal(column_type: ColumnType) -> Callable[[str], Decimal]:
    precision, scale = column_type.precision or 10, column_type.scale or 0
    quantum = Decimal(1).scaleb(-scale)

    def parse(text: str) -> Decimal:
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a number") from None
        exact = number.quantize(quantum) if number.adjusted() < precision else None
        if exact is None or exact != number:
            raise ValueError(f"{text} does not fit {column_type} exactly")
        if len(exact.as_tuple().digits) > precision and exact != 0:
            raise ValueError(f"{text} does not fit {column_type}")
        return exact

    return parse


def _decimal(fields, column_type: ColumnType, _rules) -> tuple[pa.Array, pa.Array]:
    numbers = fields["N"]
    exact = _whole_array_cast(numbers, column_type.arrow)  # refuses any rounding or overflow
    if exact is not None:
        return exact, _no_problems(len(numbers))
    precision, scale = column_type.precision or 10, column_type.scale or 0
    whole = precision - scale
    pattern = (rf"-?[0-9]{{1,{whole}}}" if whole else "-?0") + (
        rf"(\.[0-9]{{1,{scale}}})?" if scale else ""
    )
    fast_rows = _matches(numbers, pattern)
    slow_rows = numbers.is_valid().to_numpy(zero_copy_only=False) & ~fast_rows
    fast = pc.cast(pc.if_else(pa.array(fast_rows), numbers, None), column_type.arrow)
    return _merge(
        fast, fast_rows, slow_rows, _exact_decimal(column_type), numbers, column_type.arrow
    )


def _exact_double(text: str) -> float:
    if not JSON_NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is not a number")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of the range of a double")
    return value


def _double(fields, column_type: ColumnType, _rules) -> tuple[pa.Array, pa.Array]:
    numbers = fields["N"]
    if not pc.any(pc.match_substring_regex(numbers, "[^0-9.eE+-]")).as_py():
        parsed = _whole_array_cast(numbers, pa.float64())
        if parsed is not None and pc.all(pc.is_finite(parsed)).as_py() is not False:
            return parsed, _no_problems(len(numbers))
    fast_rows = _matches(numbers, r"-?[0-9]{1,15}(\.[0-9]{1,15})?")
    slow_rows = numbers.is_valid().to_numpy(zero_copy_only=False) & ~fast_rows
    fast = pc.cast(pc.if_else(pa.array(fast_rows), numbers, None), pa.float64())
    return _merge(fast, fast_rows, slow_rows, _exact_double, numbers, pa.float64())


def _boolean(fields, column_type: ColumnType, _rules) -> tuple[pa.Array, pa.Array]:
    values = fields["BOOL"]
    return values, _no_problems(len(values))


# --------------------------------------------------------------------------- text and bytes


def _string(fields, column_type: ColumnType, _rules) -> tuple[pa.Array, pa.Array]:
    values = pc.coalesce(fields["S"], fields["N"])
    if column_type.length is not None:
        too_long = pc.greater(pc.utf8_length(values), column_type.length)
        limit = f"is longer than {column_type.length} characters ({column_type})"
    else:
        too_long = pc.greater(pc.binary_length(values), _TEXT_MAX_BYTES)
        limit = f"is longer than {_TEXT_MAX_BYTES} bytes ({column_type})"
    too_long = pc.fill_null(too_long, False)
    problems = pc.if_else(too_long, pa.scalar(limit), _no_problems(len(values)))
    return pc.if_else(too_long, pa.scalar(None, pa.string()), values), problems


def _binary(fields, column_type: ColumnType, _rules) -> tuple[pa.Array, pa.Array]:
    encoded = fields["B"]
    limit = column_type.length or _TEXT_MAX_BYTES
    values: list[bytes | None] = []
    problems: list[str | None] = []
    for text in encoded.to_pylist():  # one C call per value: there is no Arrow base64 kernel
        if text is None:
            values.append(None)
            problems.append(None)
            continue
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            values.append(None)
            problems.append("is not valid base64")
            continue
        if len(data) > limit:
            values.append(None)
            problems.append(f"is {len(data)} bytes, longer than {column_type}")
        else:
            values.append(data)
            problems.append(None)
    return pa.array(values, pa.binary()), pa.array(problems, pa.string())


# --------------------------------------------------------------------------- time


def _floor_to(micros: pa.Array, column_type: ColumnType) -> pa.Array:
    """UTC microseconds -> the column's timestamp unit, flooring sub-precision digits."""
    arrow_type = column_type.arrow
    factor = 1_000_000 // _UNIT_FACTOR[arrow_type.unit]
    missing = micros.is_null().to_numpy(zero_copy_only=False)
    ints = pc.fill_null(micros, 0).to_numpy(zero_copy_only=False) // factor  # floor, also < 0
    return pa.array(ints, pa.int64(), mask=missing).cast(arrow_type)


def _exact_epoch(unit: str) -> Callable[[str], int]:
    factor = Decimal(1_000_000 // _UNIT_FACTOR[unit])

    def parse(text: str) -> int:
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{text!r} is not a time")
        return int((number * factor).to_integral_value(rounding="ROUND_FLOOR"))

    return parse


def _exact_iso(text: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # a time without an offset is read as UTC
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _epoch_micros(numbers: pa.Array, unit: str) -> tuple[pa.Array, pa.Array]:
    factor = 1_000_000 // _UNIT_FACTOR[unit]
    hexadecimal = pc.any(pc.match_substring(numbers, "x", ignore_case=True)).as_py()
    whole = None if hexadecimal else _whole_array_cast(numbers, pa.int64())
    if whole is not None:
        try:
            return pc.multiply_checked(whole, factor), _no_problems(len(numbers))
        except pa.ArrowInvalid:  # overflow: the per-row path names the value
            pass
    fast_rows = _matches(numbers, r"-?[0-9]{1,16}")
    fast = pc.multiply(pc.cast(pc.if_else(pa.array(fast_rows), numbers, None), pa.int64()), factor)
    slow_rows = numbers.is_valid().to_numpy(zero_copy_only=False) & ~fast_rows
    return _merge(fast, fast_rows, slow_rows, _exact_epoch(unit), numbers, pa.int64())


def _iso_micros(strings: pa.Array) -> tuple[pa.Array, pa.Array]:
    with_offset = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    fast_rows = _matches(strings, with_offset + r"(Z|[+-][0-9]{2}:[0-9]{2})")
    candidates = pc.if_else(pa.array(fast_rows), strings, None)
    try:
        fast = pc.cast(pc.cast(candidates, pa.timestamp("us", tz="UTC")), pa.int64())
    except pa.ArrowInvalid:  # e.g. month 13: let the exact path name the value
        fast_rows = np.zeros(len(strings), dtype=bool)
        fast = pa.nulls(len(strings), pa.int64())
    slow_rows = strings.is_valid().to_numpy(zero_copy_only=False) & ~fast_rows
    return _merge(fast, fast_rows, slow_rows, _exact_iso, strings, pa.int64())


def _datetime(fields, column_type: ColumnType, rules: TimeRules) -> tuple[pa.Array, pa.Array]:
    numbers, strings = fields["N"], fields["S"]
    from_iso, iso_problems = _iso_micros(strings)
    if rules.iso_only:
        micros, problems = from_iso, iso_problems
        problems = pc.if_else(
            numbers.is_valid(), pa.scalar("is N but event_time.unit is iso8601"), problems
        )
    else:
        from_epoch, epoch_problems = _epoch_micros(numbers, rules.epoch_unit)
        micros = pc.coalesce(from_epoch, from_iso)
        problems = pc.coalesce(epoch_problems, iso_problems)
    low, high = (int(m.timestamp()) * 1_000_000 for m in _MYSQL_DATETIME_RANGE)
    out_of_range = pc.fill_null(
        pc.or_(pc.less(micros, low), pc.greater(micros, high + 999_999)), False
    )
    problems = pc.if_else(
        out_of_range,
        pa.scalar("is outside MySQL's DATETIME range (years 1000-9999)"),
        problems,
    )
    micros = pc.if_else(pc.or_(out_of_range, problems.is_valid()), None, micros)
    return _floor_to(micros, column_type), problems


def _exact_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _date(fields, column_type: ColumnType, _rules) -> tuple[pa.Array, pa.Array]:
    strings = fields["S"]
    fast_rows = _matches(strings, r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
    try:
        fast = pc.cast(pc.if_else(pa.array(fast_rows), strings, None), pa.date32())
    except pa.ArrowInvalid:
        fast_rows = np.zeros(len(strings), dtype=bool)
        fast = pa.nulls(len(strings), pa.date32())
    slow_rows = strings.is_valid().to_numpy(zero_copy_only=False) & ~fast_rows
    return _merge(fast, fast_rows, slow_rows, _exact_date, strings, pa.date32())


# --------------------------------------------------------------------------- json


def _json_column(typed: pa.StructArray, exact: ExactJson | None) -> tuple[pa.Array, pa.Array]:
    """JSON text, column-wise (`typed_arrow`); rows it flags take `exact`, which returns
    (text, problem) per row from the line itself. Without `exact`, flagged rows are bad."""
    encoded = typed_arrow.encode(typed)
    text = pc.if_else(pc.equal(encoded.text, "null"), pa.scalar(None, pa.string()), encoded.text)
    rows = np.flatnonzero(encoded.flagged)
    if not len(rows):
        return text, _no_problems(len(typed))
    found = exact(rows) if exact is not None else {}
    texts: list[str | None] = [None] * len(typed)
    problems: list[str | None] = [None] * len(typed)
    for row in rows.tolist():
        texts[row], problems[row] = found.get(row, (None, "is not a well-formed typed value"))
    patched = pa.array(encoded.flagged)
    return (
        pc.if_else(patched, pa.array(texts, pa.string()), text),
        pa.array(problems, pa.string()),
    )


_CONVERTERS = {
    "integer": _integer,
    "decimal": _decimal,
    "double": _double,
    "boolean": _boolean,
    "varchar": _string,
    "text": _string,
    "varbinary": _binary,
    "blob": _binary,
    "datetime": _datetime,
    "date": _date,
}
