"""Export data files (gzip DynamoDB JSON lines) -> typed Arrow tables, vectorized.

A file is parsed by Arrow's JSON reader with an explicit schema derived from the spec (only
the mapped attributes, only the type keys each column accepts), then converted column by
column (`convert.py`). A file the reader refuses (a line that is not JSON, a number written
without quotes...) is screened line by line so that only the bad lines become bad records,
each with its file, line number, reason and raw text; the good lines still take the
vectorized path. Incremental lines (`Metadata`, `Keys`, `NewImage`, `OldImage`) become the
same columns plus the change kind and the write time.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from isal import isal_zlib

from ..days import epoch_day
from ..spec import Column, MigrationSpec
from . import shapes
from .convert import TimeRules, attribute_struct, convert
from .layout import corrupt_export
from .typed_json import TypedValueError, check_typed_value, to_json_text

LINE = "_line"  # 1-based line number in the data file
OP = "_op"  # incremental: "put" or "delete"
WRITE_MICROS = "_write_micros"  # incremental: Metadata.WriteTimestampMicros
KEYS_ONLY = "_keys_only"  # incremental delete without an image (NEW_IMAGE view)
PUT, DELETE = "put", "delete"
_BLOCK_SIZE = 1 << 20  # measured: 1 MiB blocks parse fastest on 2 cores
_SAMPLE_BYTES = 1 << 20  # the part of a file whose nested shapes fix the read schema
_NULL_LITERALS = (b":null", b": null", b",null", b", null", b"[null", b"[ null")


@dataclass(frozen=True)
class Reject:
    """A bad record, kept with everything needed to find and fix it."""

    file: str
    line: int
    reason: str
    raw: str
    day: dt.date | None = None  # the record's day, when its event time could be read
    second: int | None = None  # its epoch second (the per-second parity accounts for it)
    in_rows: bool = False  # also counted among the day's rows before being set aside

    @property
    def where(self) -> str:
        """`<file> line <n>`, or only the file part when no line holds the record (0)."""
        return f"{self.file} line {self.line}" if self.line else self.file

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "reason": self.reason,
            "raw": self.raw,
            "event_second": self.second,
        }


def epoch_second(moment: dt.datetime) -> int:
    return math.floor(moment.timestamp())


@dataclass
class DecodedFile:
    key: str
    rows: pa.Table  # spec columns + LINE (+ OP, WRITE_MICROS, KEYS_ONLY for incrementals)
    rejects: list[Reject] = field(default_factory=list)
    lines: int = 0
    key_attributes: tuple[str, ...] = ()  # incremental: the table key attributes in `Keys`


def gunzip(data: bytes, key: str) -> bytes:
    """All gzip members of a data file; a truncated or damaged file names its key."""
    chunks: list[bytes] = []
    remaining = data
    try:
        while remaining:
            inflater = isal_zlib.decompressobj(31)
            chunks.append(inflater.decompress(remaining))
            if not inflater.eof:
                raise corrupt_export(key, "gzip data ends early (truncated file)")
            remaining = inflater.unused_data
    except isal_zlib.error as exc:
        raise corrupt_export(key, f"not valid gzip data ({exc})") from None
    return b"".join(chunks)


def item_struct(spec: MigrationSpec) -> pa.StructType:
    return pa.struct([pa.field(c.attribute, attribute_struct(c.type)) for c in spec.columns])


def _time_rules(spec: MigrationSpec, column: Column) -> TimeRules:
    if column is spec.event_time_column:
        unit = spec.dynamodb.event_time.unit
        return TimeRules(epoch_unit="s" if unit == "iso8601" else unit, iso_only=unit == "iso8601")
    return TimeRules()


def _describe(column: Column) -> str:
    if column.attribute == column.column:
        return f"attribute {column.attribute!r}"
    return f"attribute {column.attribute!r} (column {column.column!r})"


# --------------------------------------------------------------------------- reading lines


class _Lines:
    """The decompressed text of one file and lazy access to single raw lines."""

    def __init__(self, text: bytes, key: str) -> None:
        self.text = text
        self.key = key
        self.count = text.count(b"\n")
        if text and not text.endswith(b"\n"):
            raise corrupt_export(
                key, f"the last line (line {self.count + 1}) has no trailing newline"
            )
        self._split: list[bytes] | None = None

    def raw(self, line: int) -> bytes:
        if self._split is None:
            self._split = self.text.split(b"\n")
        return self._split[line - 1]

    def all(self) -> list[bytes]:
        if self._split is None:
            self._split = self.text.split(b"\n")
        return self._split[: self.count]


def _read(text: bytes, schema: pa.Schema, unexpected: str = "ignore") -> pa.Table:
    # blocks small enough that every core parses a part of even a single file
    block_size = _BLOCK_SIZE
    return pj.read_json(
        io.BytesIO(text),
        read_options=pj.ReadOptions(block_size=block_size),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected),
    )


def _read_with_maps(lines: _Lines, schema: pa.Schema) -> pa.Table | None:
    """The whole file read with its maps and lists as Arrow structs and lists, so that json
    columns are written column-wise (`typed_arrow`); None to read it the plain way.

    The shapes come from the file's first MiB, with every DynamoDB leaf pinned to its JSON
    type (Arrow would otherwise read a date-like `S` as a timestamp); keys first seen later
    are inferred, and a row whose value Arrow read another way takes the exact path. A sample
    with too many distinct keys (maps keyed by data, not by name) is not widened.
    """
    end = lines.text.find(b"\n", _SAMPLE_BYTES)
    sample = lines.text if end < 0 else lines.text[: end + 1]
    try:
        widened = shapes.pinned(_read(sample, schema, "infer").schema)
        if widened is None:
            return None
        table = _read(lines.text, widened, "infer")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a bad line or shapes that clash
        return None
    return table if table.num_rows == lines.count else None


def _parse(
    lines: _Lines, schema: pa.Schema, screen: Any, with_maps: bool = False
) -> tuple[pa.Table, np.ndarray, list[Reject]]:
    """Parse every line; return the table, each row's line number, and screened-out lines."""
    if not lines.count:
        return schema.empty_table(), np.zeros(0, dtype=np.int64), []
    table = _read_with_maps(lines, schema) if with_maps else None
    if table is not None:
        return _without_null_literals(lines, table, screen)
    try:
        table = _read(lines.text, schema)
        if table.num_rows == lines.count:
            return _without_null_literals(lines, table, screen)
    except pa.ArrowInvalid:
        pass
    good: list[bytes] = []
    numbers: list[int] = []
    rejects: list[Reject] = []
    for number, raw in enumerate(lines.all(), start=1):
        problem = _screen_line(raw, screen)
        if problem is None:
            good.append(raw)
            numbers.append(number)
        else:
            rejects.append(Reject(lines.key, number, problem, raw.decode("utf-8", "replace")))
    if not good:
        return schema.empty_table(), np.zeros(0, dtype=np.int64), rejects
    try:
        table = _read(b"\n".join(good) + b"\n", schema)
    except pa.ArrowInvalid as exc:  # pragma: no cover - screened lines always parse
        raise corrupt_export(lines.key, f"cannot be parsed even line by line: {exc}") from None
    return table, np.asarray(numbers, dtype=np.int64), rejects


def _without_null_literals(
    lines: _Lines, table: pa.Table, screen: Any
) -> tuple[pa.Table, np.ndarray, list[Reject]]:
    """Every line parsed. Arrow reads a JSON `null` where a typed value belongs (`"amount":
    null`, `{"M": {"k": null}}`) as an absent value; exports never write one, so lines that
    hold one are screened like unparseable lines, and a mapped attribute's null becomes a bad
    record naming it instead of a value silently missing."""
    numbers = np.arange(1, lines.count + 1, dtype=np.int64)
    if b"null" not in lines.text:  # one scan (~0.15 s per million lines); text may say null
        return table, numbers, []
    rejects = []
    for number, raw in enumerate(lines.all(), start=1):
        if b"null" in raw and any(literal in raw for literal in _NULL_LITERALS):
            problem = _screen_line(raw, screen)
            if problem is not None:
                rejects.append(Reject(lines.key, number, problem, raw.decode("utf-8", "replace")))
    if not rejects:
        return table, numbers, []
    keep = ~np.isin(numbers, [r.line for r in rejects])
    return table.filter(pa.array(keep)), numbers[keep], rejects


def _screen_line(raw: bytes, screen: Any) -> str | None:
    if not raw.strip():
        return "empty line"
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(record, dict):
        return "not a JSON object"
    try:
        screen(record)
    except TypedValueError as exc:
        return str(exc)
    return None


def _check_image(image: Any, where: str, spec: MigrationSpec) -> None:
    if not isinstance(image, dict):
        raise TypedValueError(f"{where}: expected an object of attributes")
    for column in spec.columns:
        if column.attribute in image:
            check_typed_value(image[column.attribute], f"{where}.{column.attribute}")


# --------------------------------------------------------------------------- conversion


def _convert_image(
    image: pa.StructArray,
    spec: MigrationSpec,
    lines: _Lines,
    line_numbers: np.ndarray,
    locate: Callable[[dict[str, Any]], dict[str, Any]],
    columns: tuple[Column, ...] | None = None,
) -> tuple[dict[str, pa.Array], pa.Array]:
    """Convert each spec column of an image struct; return columns and a per-row problem."""
    by_attribute = dict(zip([f.name for f in image.type], image.flatten(), strict=True))
    arrays: dict[str, pa.Array] = {}
    problem: pa.Array = pa.nulls(len(image), pa.string())
    for column in columns or spec.columns:
        typed = by_attribute[column.attribute]
        exact = _exact_json(column, lines, line_numbers, locate)
        converted = convert(typed, column, _time_rules(spec, column), exact)
        arrays[column.column] = converted.values
        if converted.problems.null_count < len(converted.problems):
            labelled = pc.binary_join_element_wise(f"{_describe(column)}: ", converted.problems, "")
            problem = pc.coalesce(problem, labelled)
    return arrays, problem


def _exact_json(
    column: Column,
    lines: _Lines,
    line_numbers: np.ndarray,
    locate: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[np.ndarray], dict[int, tuple[str | None, str | None]]]:
    """(text, problem) of a json column's value, one value at a time, from its own line: for
    the rows the column-wise path cannot vouch for (a malformed or unusual typed value)."""

    def exact(rows: np.ndarray) -> dict[int, tuple[str | None, str | None]]:
        found: dict[int, tuple[str | None, str | None]] = {}
        for row in rows.tolist():
            value = locate(json.loads(lines.raw(int(line_numbers[row]))))[column.attribute]
            try:
                check_typed_value(value, column.attribute)
            except TypedValueError as exc:
                found[row] = (None, str(exc))
            else:
                found[row] = (to_json_text(value), None)
        return found

    return exact


def _split_rejects(
    arrays: dict[str, pa.Array],
    extra: dict[str, pa.Array],
    problem: pa.Array,
    lines: _Lines,
    line_numbers: np.ndarray,
    event_column: str,
) -> tuple[pa.Table, list[Reject]]:
    """The good rows as a table; the rows with a problem as bad records (with their day)."""
    table = pa.table({**arrays, **extra, LINE: pa.array(line_numbers, pa.int64())})
    bad = problem.is_valid()
    if not pc.any(bad).as_py():
        return table, []
    bad_rows = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
    reasons = problem.take(pa.array(bad_rows)).to_pylist()
    times = arrays[event_column].take(pa.array(bad_rows)).to_pylist()
    rejects = [
        Reject(
            lines.key,
            int(line_numbers[row]),
            reason,
            lines.raw(int(line_numbers[row])).decode("utf-8", "replace"),
            moment.date() if moment is not None else None,
            epoch_second(moment) if moment is not None else None,
        )
        for row, reason, moment in zip(bad_rows.tolist(), reasons, times, strict=True)
    ]
    return table.filter(pc.invert(bad)), rejects


def _with_spec_types(table: pa.Table, spec: MigrationSpec) -> pa.Table:
    """Cast to the spec's column types (all nullable here) plus the bookkeeping columns.

    NOT NULL is enforced per row as a bad record above, and for the written partition by
    its schema; a keys-only delete legitimately has nulls until it is matched.
    """
    fields = [pa.field(c.column, c.type.arrow) for c in spec.columns] + [
        pa.field(name, table.schema.field(name).type)
        for name in table.column_names
        if name not in spec.arrow_schema.names
    ]
    return table.select([f.name for f in fields]).cast(pa.schema(fields))


# --------------------------------------------------------------------------- public


def _rows_for_days(item: pa.StructArray, spec: MigrationSpec, days: frozenset[int]) -> np.ndarray:
    """Rows worth converting for a run over `days` (epoch day numbers): its days' rows, and
    every row that becomes a bad record someone may answer for (no Item, an event time that
    is missing, unreadable or outside the partitions). Other days' rows would be routed
    nowhere; skipping them spares the costly per-value path (`json` maps) for them."""
    column = spec.event_time_column
    typed = dict(zip([f.name for f in item.type], item.flatten(), strict=True))[column.attribute]
    converted = convert(typed, column, _time_rules(spec, column))
    epoch = pa.scalar(dt.datetime(1970, 1, 1, tzinfo=dt.UTC), type=converted.values.type)
    numbers = pc.days_between(epoch, converted.values)
    outside = pc.less(numbers, epoch_day(spec.partitions.start))
    if spec.partitions.end is not None:
        outside = pc.or_(outside, pc.greater_equal(numbers, epoch_day(spec.partitions.end)))
    ours = pc.is_in(numbers, value_set=pa.array(sorted(days), numbers.type))
    wanted = pc.or_kleene(ours, outside)
    wanted = pc.or_kleene(wanted, converted.problems.is_valid())
    wanted = pc.or_(pc.fill_null(wanted, True), item.is_null())
    return wanted.to_numpy(zero_copy_only=False)


def decode_full_file(
    data: bytes, key: str, spec: MigrationSpec, days: frozenset[int] | None = None
) -> DecodedFile:
    """Decode one full-export data file (`{"Item": {...}}` per line). With `days` (epoch day
    numbers), rows of other days are dropped unconverted (see `_rows_for_days`)."""
    lines = _Lines(gunzip(data, key), key)
    schema = pa.schema([pa.field("Item", item_struct(spec))])

    def screen(record: dict[str, Any]) -> None:
        _check_image(record.get("Item"), "Item", spec)

    with_maps = any(c.type.kind == "json" for c in spec.columns)
    table, line_numbers, rejects = _parse(lines, schema, screen, with_maps)
    item = table.column("Item").combine_chunks()
    if days is not None and len(item):
        wanted = _rows_for_days(item, spec, days)
        item, line_numbers = item.filter(pa.array(wanted)), line_numbers[wanted]
    missing_item = item.is_null()
    arrays, problem = _convert_image(item, spec, lines, line_numbers, lambda r: r["Item"])
    problem = pc.if_else(missing_item, pa.scalar("the line has no Item object"), problem)
    good, bad = _split_rejects(
        arrays, {}, problem, lines, line_numbers, spec.event_time_column.column
    )
    return DecodedFile(key, _with_spec_types(good, spec), rejects + bad, lines.count)


def decode_incremental_file(data: bytes, key: str, spec: MigrationSpec) -> DecodedFile:
    """Decode one incremental-export data file into puts and deletes with write times.

    A put carries its NewImage; a delete carries its OldImage when the view has one
    (NEW_AND_OLD_IMAGES) or only the key attributes (NEW_IMAGE view, `KEYS_ONLY`).
    """
    lines = _Lines(gunzip(data, key), key)
    image_type = item_struct(spec)
    micros_type = pa.struct([pa.field("WriteTimestampMicros", pa.struct([("N", pa.string())]))])
    schema = pa.schema(
        [
            pa.field("Metadata", micros_type),
            pa.field("Keys", image_type),
            pa.field("NewImage", image_type),
            pa.field("OldImage", image_type),
        ]
    )

    def screen(record: dict[str, Any]) -> None:
        micros = (record.get("Metadata") or {}).get("WriteTimestampMicros")
        check_typed_value(micros, "Metadata.WriteTimestampMicros")
        _check_image(record.get("Keys"), "Keys", spec)
        for name in ("NewImage", "OldImage"):
            if name in record:
                _check_image(record[name], name, spec)

    with_maps = any(c.type.kind == "json" for c in spec.columns)
    table, line_numbers, rejects = _parse(lines, schema, screen, with_maps)
    images = _images(table)
    if images is None:  # the images' maps were read into clashing types: read it plainly
        table, line_numbers, rejects = _parse(lines, schema, screen)
        images = _images(table)
        assert images is not None  # the plain read gives every image the same type
    keys, new, old = images
    is_put = new.is_valid()
    has_old = old.is_valid()
    keys_only = pc.and_(pc.invert(is_put), pc.invert(has_old))
    key_attributes = _key_attributes(keys, key)
    image = pc.if_else(is_put, new, pc.if_else(has_old, old, keys))

    # a keys-only delete can only be checked on its key columns: it is matched, not loaded
    arrays, problem = _convert_image(image, spec, lines, line_numbers, _incremental_image)
    identity_columns = tuple(c for c in spec.columns if c.attribute in key_attributes)
    _, key_problem = _convert_image(
        keys, spec, lines, line_numbers, lambda r: r["Keys"], identity_columns
    )
    problem = pc.if_else(keys_only, key_problem, problem)
    for name, child in zip([f.name for f in keys.type], keys.flatten(), strict=True):
        if name in key_attributes:
            lacking = pc.and_(keys.is_valid(), child.is_null())
            problem = pc.if_else(lacking, pa.scalar(f"Keys lacks key attribute {name!r}"), problem)
    micros_text = pc.struct_field(table.column("Metadata").combine_chunks(), [0, 0])
    plain = pc.fill_null(pc.match_substring_regex(micros_text, r"^[0-9]{1,18}$"), False)
    micros = pc.cast(pc.if_else(plain, micros_text, None), pa.int64())
    problem = pc.coalesce(
        pc.if_else(plain, None, pa.scalar("Metadata.WriteTimestampMicros is missing or invalid")),
        pc.if_else(keys.is_valid(), None, pa.scalar("the line has no Keys object")),
        problem,
    )
    extra = {
        OP: pc.if_else(is_put, PUT, DELETE),
        WRITE_MICROS: micros,
        KEYS_ONLY: keys_only,
    }
    good, bad = _split_rejects(
        arrays, extra, problem, lines, line_numbers, spec.event_time_column.column
    )
    decoded = DecodedFile(key, _with_spec_types(good, spec), rejects + bad, lines.count)
    decoded.key_attributes = key_attributes
    return decoded


def _images(table: pa.Table) -> tuple[pa.StructArray, ...] | None:
    """`Keys`, `NewImage` and `OldImage` conformed to one type (each was read with its own),
    or None when they cannot be."""
    arrays = [table.column(name).combine_chunks() for name in ("Keys", "NewImage", "OldImage")]
    shape: pa.DataType | None = arrays[0].type
    for array in arrays[1:]:
        shape = shapes.common_type(shape, array.type) if shape is not None else None
    if shape is None:
        return None
    return tuple(shapes.conform(array, shape) for array in arrays)


def _incremental_image(record: dict[str, Any]) -> dict[str, Any]:
    return record.get("NewImage") or record.get("OldImage") or record["Keys"]


def _key_attributes(keys: pa.StructArray, key: str) -> tuple[str, ...]:
    """The mapped attributes every `Keys` object carries: the table's key, as far as mapped."""
    if not len(keys) or keys.null_count == len(keys):
        return ()
    present = tuple(
        name
        for name, child in zip([f.name for f in keys.type], keys.flatten(), strict=True)
        if child.null_count < len(keys)
    )
    if not present:
        raise corrupt_export(
            key,
            "no line's Keys object holds a key attribute mapped in the spec's columns, so "
            "changes cannot be matched to rows",
        )
    return present
