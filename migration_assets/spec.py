"""The migration spec: one YAML file, the single source of every table and column fact.

DDL, Arrow schemas, decoders, SQL and checks all derive from the validated model here, so
nothing about a particular table is written anywhere else. Loading is strict: unknown keys,
wrong types and unsafe identifiers are refused with a message that names the file and the
key path (`orders.yaml: columns[3].type: unknown type 'bigint2'`), all problems at once.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import yaml

from .identifiers import is_identifier

EXAMPLE_SPEC = Path(__file__).parent / "examples" / "orders.yaml"
SPEC_ENV_VAR = "MIGRATION_SPEC"

EventTimeUnit = Literal["s", "ms", "us", "iso8601"]
MergeMode = Literal["upsert", "update_only"]
TargetPartitioning = Literal["day", "none"]
OnDelete = Literal["delete_row", "null_columns", "ignore"]
ChangeCapture = Literal["binlog", "none"]


class SpecError(ValueError):
    """The spec file is invalid; the message lists every problem with its key path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


# --------------------------------------------------------------------------- column types

_INTEGER_BOUNDS = {
    "tinyint": (-(2**7), 2**7 - 1),
    "smallint": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_ARROW_INTEGER = {
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "int": pa.int32(),
    "bigint": pa.int64(),
}
_TIMESTAMP_UNIT = {0: "s", 3: "ms", 6: "us"}
_SIMPLE_TYPES = {
    "bigint",
    "int",
    "smallint",
    "tinyint",
    "boolean",
    "double",
    "text",
    "datetime",
    "date",
    "json",
    "blob",
}
_PARAMETERISED = re.compile(
    r"^(?P<kind>decimal|varchar|varbinary|datetime)\((?P<a>\d+)(?:,\s*(?P<b>\d+))?\)$"
)


@dataclass(frozen=True)
class ColumnType:
    """A column type from the spec, with its MySQL and Arrow forms derived in one place."""

    kind: str
    precision: int | None = None  # decimal
    scale: int | None = None  # decimal
    length: int | None = None  # varchar, varbinary
    fsp: int = 0  # datetime fractional-second precision

    @classmethod
    def parse(cls, text: str) -> ColumnType:
        """Parse `bigint`, `decimal(18,4)`, `varchar(32)`, `datetime(6)`... or raise ValueError."""
        normalized = text.strip().lower()
        if normalized in _SIMPLE_TYPES:
            return cls(kind=normalized)
        match = _PARAMETERISED.match(normalized)
        if not match:
            raise ValueError(f"unknown type {text!r}")
        kind, first, second = match["kind"], int(match["a"]), match["b"]
        if kind == "decimal":
            scale = int(second) if second is not None else 0
            if not 1 <= first <= 65 or not 0 <= scale <= min(first, 30):
                raise ValueError(
                    f"decimal({first},{scale}) needs 1 <= p <= 65 and 0 <= s <= min(p, 30)"
                )
            return cls(kind="decimal", precision=first, scale=scale)
        if second is not None:
            raise ValueError(f"unknown type {text!r}")
        if kind == "datetime":
            if first not in _TIMESTAMP_UNIT:
                raise ValueError(
                    f"datetime({first}) is not supported; use datetime, datetime(3) or datetime(6)"
                )
            return cls(kind="datetime", fsp=first)
        if not 1 <= first <= 65535:
            raise ValueError(f"{kind}({first}) needs a length between 1 and 65535")
        return cls(kind=kind, length=first)

    def __str__(self) -> str:
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.length is not None:
            return f"{self.kind}({self.length})"
        if self.kind == "datetime" and self.fsp:
            return f"datetime({self.fsp})"
        return self.kind

    @property
    def sql(self) -> str:
        """The MySQL column type used in DDL."""
        if self.kind == "boolean":
            return "TINYINT(1)"
        return str(self).upper()

    @property
    def arrow(self) -> pa.DataType:
        """The Arrow type of this column in Parquet partitions (exact: no float round trips)."""
        if self.kind in _ARROW_INTEGER:
            return _ARROW_INTEGER[self.kind]
        if self.kind == "decimal":
            assert self.precision is not None and self.scale is not None
            if self.precision <= 38:
                return pa.decimal128(self.precision, self.scale)
            return pa.decimal256(self.precision, self.scale)
        if self.kind == "datetime":
            return pa.timestamp(_TIMESTAMP_UNIT[self.fsp], tz="UTC")
        return {
            "boolean": pa.bool_(),
            "double": pa.float64(),
            "date": pa.date32(),
            "varchar": pa.string(),
            "text": pa.string(),
            "json": pa.string(),
            "varbinary": pa.binary(),
            "blob": pa.binary(),
        }[self.kind]

    @property
    def is_integer(self) -> bool:
        return self.kind in _INTEGER_BOUNDS

    @property
    def integer_bounds(self) -> tuple[int, int] | None:
        """Inclusive range of an integer column, so decoding can refuse values that do not fit."""
        return _INTEGER_BOUNDS.get(self.kind)


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Column:
    attribute: str  # DynamoDB attribute name (never reaches SQL)
    column: str  # MySQL column name (validated identifier)
    type: ColumnType
    nullable: bool = True


@dataclass(frozen=True)
class EventTime:
    attribute: str
    unit: EventTimeUnit = "s"


@dataclass(frozen=True)
class ScanSpec:
    """`dynamodb.scan`: how hard scan mode may read the live table (see dynamodb/scan.py)."""

    target_share: float = 0.5  # share of the provisioned RCUs (or of the on-demand maximum)
    target_rcu_per_s: float | None = None  # absolute RCU/s: required on-demand, a cap otherwise
    segments: int | None = None  # TotalSegments; None: one per 2 GiB, at least `workers`
    workers: int = 4  # threads scanning segments at once


@dataclass(frozen=True)
class DynamoDBSpec:
    table: str
    event_time: EventTime
    mode: Literal["export", "scan"] = "export"
    request: bool = False
    on_bad_record: Literal["fail", "quarantine"] = "fail"
    scan: ScanSpec = ScanSpec()


@dataclass(frozen=True)
class S3Spec:
    bucket: str
    export_prefix: str
    parquet_prefix: str


@dataclass(frozen=True)
class MySQLSpec:
    temp_table: str
    target_table: str
    key: tuple[str, ...]
    update_columns: tuple[str, ...]
    mode: MergeMode = "upsert"
    on_delete: OnDelete = "delete_row"
    # "day": the target is RANGE-partitioned by the event time, one partition per day
    # (mysql/partitioning.py); "none": one B-tree plus an index on the event time
    target_partitioning: TargetPartitioning = "none"


@dataclass(frozen=True)
class LegacyCopySpec:
    source_table: str
    time_column: str
    bigint_columns: tuple[str, ...]
    # "binlog": every insert, update and delete after the copy began is read from the
    # row-based binlog and applied (mysql/binlog.py, mysql/apply.py); "none": an append-only
    # table, whose late rows the insert-only tail copies by id
    change_capture: ChangeCapture = "binlog"


@dataclass(frozen=True)
class PartitionsSpec:
    start: dt.date
    end: dt.date | None = None  # exclusive; None = open-ended, up to and including today


@dataclass(frozen=True)
class MigrationSpec:
    name: str
    partitions: PartitionsSpec
    dynamodb: DynamoDBSpec
    s3: S3Spec
    columns: tuple[Column, ...]
    mysql: MySQLSpec
    legacy_copy: LegacyCopySpec | None = None
    source: str = field(default="<memory>", compare=False)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.column == name:
                return column
        raise KeyError(name)

    @property
    def event_time_column(self) -> Column:
        """The column that places a row in a day and a second."""
        return next(c for c in self.columns if c.attribute == self.dynamodb.event_time.attribute)

    @property
    def json_columns(self) -> tuple[str, ...]:
        """The columns typed json (stored as checked text: their exact text is compared)."""
        return tuple(c.column for c in self.columns if c.type.kind == "json")

    @property
    def key_columns(self) -> tuple[Column, ...]:
        return tuple(self.column(name) for name in self.mysql.key)

    @property
    def id_columns(self) -> tuple[str, ...]:
        """Columns that must be BIGINT everywhere: typed `bigint`, plus the legacy widened ones."""
        names = [c.column for c in self.columns if c.type.kind == "bigint"]
        if self.legacy_copy:
            names += [n for n in self.legacy_copy.bigint_columns if n not in names]
        return tuple(names)

    @property
    def arrow_schema(self) -> pa.Schema:
        """The explicit schema of every Parquet partition."""
        return pa.schema(
            [pa.field(c.column, c.type.arrow, nullable=c.nullable) for c in self.columns],
            metadata={"migration_spec": self.name},
        )


# --------------------------------------------------------------------------- loading


class _Problems:
    """Collects every problem with its key path, so a user fixes a spec in one pass."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_MISSING = object()


class _Section:
    """A mapping from the YAML with typed, path-aware getters and unknown-key detection."""

    def __init__(self, data: Any, path: str, problems: _Problems):
        self.path = path
        self.problems = problems
        self.ok = isinstance(data, dict)
        if not self.ok and (data is not None or not path):
            problems.add(path or "(top level)", f"must be a mapping, not {type(data).__name__}")
        self.data: dict[str, Any] = data if self.ok else {}

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.problems.add(
                    self.key_path(str(key)), f"unknown key (allowed: {', '.join(sorted(allowed))})"
                )

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                if self.ok:
                    self.problems.add(self.key_path(key), "is required")
                return None
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = (
                kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            )
            self.problems.add(
                self.key_path(key), f"must be {expected}, not {type(value).__name__} ({value!r})"
            )
            return None if default is _MISSING else default
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        value = self.get(key, str, default)
        if value is not None and value not in choices:
            self.problems.add(
                self.key_path(key), f"must be one of {', '.join(choices)}, not {value!r}"
            )
            return None if default is _MISSING else default
        return value

    def identifier(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, str, default)
        if value is not None and not is_identifier(value):
            self.problems.add(
                self.key_path(key),
                f"{value!r} is not a safe SQL identifier "
                "(letters, digits, underscores; starts with a letter or underscore; ≤ 64)",
            )
            return None
        return value

    def identifier_list(self, key: str, default: Any = _MISSING) -> tuple[str, ...] | None:
        values = self.get(key, list, default)
        if values is None:
            return None
        good: list[str] = []
        for index, value in enumerate(values):
            if not is_identifier(value):
                self.problems.add(
                    f"{self.key_path(key)}[{index}]", f"{value!r} is not a safe SQL identifier"
                )
            elif value in good:
                self.problems.add(f"{self.key_path(key)}[{index}]", f"{value!r} is listed twice")
            else:
                good.append(value)
        return tuple(good)

    def section(self, key: str, required: bool = True) -> _Section | None:
        if key not in self.data or self.data[key] is None:
            if required and self.ok:
                self.problems.add(self.key_path(key), "is required")
            return None
        return _Section(self.data[key], self.key_path(key), self.problems)


def _date(section: _Section, key: str, required: bool = True) -> dt.date | None:
    value = section.get(key, (str, dt.date), _MISSING if required else None)
    if isinstance(value, dt.datetime):
        section.problems.add(section.key_path(key), f"must be a date, not a timestamp ({value})")
        return None
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        section.problems.add(section.key_path(key), f"{value!r} is not a date (YYYY-MM-DD)")
        return None


def _prefix(section: _Section, key: str) -> str | None:
    value = section.get(key, str)
    if value is None:
        return None
    cleaned = value.strip("/")
    if not cleaned or any(part in ("", ".", "..") for part in cleaned.split("/")):
        section.problems.add(section.key_path(key), f"{value!r} is not a usable S3 prefix")
        return None
    return cleaned


def _scan(section: _Section | None) -> ScanSpec:
    """`dynamodb.scan`, every bound checked so a typo cannot hammer a live table."""
    if section is None:
        return ScanSpec()
    section.check_keys({"target_share", "target_rcu_per_s", "segments", "workers"})
    share = section.get("target_share", (int, float), 0.5)
    if isinstance(share, bool) or not 0 < share <= 1:
        section.problems.add(section.key_path("target_share"), f"must be > 0 and <= 1, not {share}")
        share = 0.5
    rate = section.get("target_rcu_per_s", (int, float), None)
    if rate is not None and (isinstance(rate, bool) or rate <= 0):
        section.problems.add(section.key_path("target_rcu_per_s"), f"must be > 0, not {rate}")
        rate = None
    segments = section.get("segments", int, None)
    if segments is not None and not 1 <= segments <= 1_000_000:
        section.problems.add(
            section.key_path("segments"), f"must be between 1 and 1000000, not {segments}"
        )
        segments = None
    workers = section.get("workers", int, 4)
    if not 1 <= workers <= 256:
        section.problems.add(
            section.key_path("workers"), f"must be between 1 and 256, not {workers}"
        )
        workers = 4
    return ScanSpec(float(share), None if rate is None else float(rate), segments, workers)


def _columns(top: _Section) -> tuple[tuple[Column, ...], set[str]]:
    """The valid columns, and the names of columns that had problems (to avoid cascades)."""
    raw = top.get("columns", list)
    if raw is None:
        return (), set()
    if not raw:
        top.problems.add("columns", "must list at least one column")
    columns: list[Column] = []
    seen_columns: set[str] = set()
    seen_attributes: set[str] = set()
    broken: set[str] = set()
    for index, item in enumerate(raw):
        entry = _Section(item, f"columns[{index}]", top.problems)
        if not entry.ok:
            continue
        entry.check_keys({"attribute", "column", "type", "nullable"})
        attribute = entry.get("attribute", str)
        column = entry.identifier("column")
        type_text = entry.get("type", str)
        problems_before = len(top.problems.items)
        nullable = entry.get("nullable", bool, True)
        column_type = None
        if type_text is not None:
            try:
                column_type = ColumnType.parse(type_text)
            except ValueError as exc:
                top.problems.add(entry.key_path("type"), str(exc))
        if attribute is not None and not attribute:
            top.problems.add(entry.key_path("attribute"), "must not be empty")
        if column is not None and column in seen_columns:
            top.problems.add(entry.key_path("column"), f"column {column!r} is defined twice")
        if attribute is not None and attribute in seen_attributes:
            top.problems.add(
                entry.key_path("attribute"), f"attribute {attribute!r} is mapped twice"
            )
        if len(top.problems.items) > problems_before and column:
            broken.add(column)
        elif attribute and column and column_type and column not in seen_columns:
            columns.append(Column(attribute, column, column_type, nullable))
        seen_columns.add(column)
        seen_attributes.add(attribute)
    return tuple(columns), broken


def _check_references(spec_parts: dict[str, Any], problems: _Problems) -> None:
    """Cross-field rules: every named column exists and has a type that makes sense."""
    columns: tuple[Column, ...] = spec_parts["columns"]
    broken: set[str] = spec_parts["broken_columns"]
    by_name = {c.column: c for c in columns}
    by_attribute = {c.attribute: c for c in columns}
    event_time: EventTime | None = spec_parts.get("event_time")
    if event_time and columns:
        column = by_attribute.get(event_time.attribute)
        if column is None:
            problems.add(
                "dynamodb.event_time.attribute",
                f"{event_time.attribute!r} is not the attribute of any column",
            )
        elif column.type.kind != "datetime":
            problems.add(
                "dynamodb.event_time.attribute",
                f"its column {column.column!r} must be datetime(/3/6), not {column.type}",
            )
        elif column.nullable:
            problems.add(
                "dynamodb.event_time.attribute",
                f"its column {column.column!r} must be nullable: false (every row needs a day)",
            )
    mysql: dict[str, Any] = spec_parts.get("mysql_parts", {})
    if not columns:
        return
    for index, name in enumerate(mysql.get("key") or ()):
        if name in broken:
            continue
        if name not in by_name:
            problems.add(f"mysql.key[{index}]", f"{name!r} is not a column")
        elif by_name[name].nullable:
            problems.add(f"mysql.key[{index}]", f"key column {name!r} must be nullable: false")
        elif by_name[name].type.kind in ("text", "blob", "json"):
            problems.add(
                f"mysql.key[{index}]", f"key column {name!r} cannot be {by_name[name].type}"
            )
    for index, name in enumerate(mysql.get("update_columns") or ()):
        if name in broken:
            continue
        if name not in by_name:
            problems.add(f"mysql.update_columns[{index}]", f"{name!r} is not a column")
        elif name in (mysql.get("key") or ()):
            problems.add(
                f"mysql.update_columns[{index}]",
                f"{name!r} is a key column; keys are matched, not updated",
            )
    if mysql.get("target_partitioning") == "day":
        event = by_attribute.get(event_time.attribute) if event_time else None
        if spec_parts.get("legacy_copy") is not None:
            problems.add(
                "mysql.target_partitioning",
                "'day' cannot apply with legacy_copy: the target then takes the legacy table's "
                "layout, whose id is a key without the event time",
            )
        elif event is not None and event.column not in (mysql.get("key") or ()):
            problems.add(
                "mysql.target_partitioning",
                f"'day' needs the event time column {event.column!r} in mysql.key (a "
                "partitioned table's keys must hold its partitioning column)",
            )
    tables = [
        ("mysql.temp_table", mysql.get("temp_table")),
        ("mysql.target_table", mysql.get("target_table")),
    ]
    legacy: LegacyCopySpec | None = spec_parts.get("legacy_copy")
    if legacy:
        tables.append(("legacy_copy.source_table", legacy.source_table))
        time_column = by_name.get(legacy.time_column)
        if legacy.time_column not in broken and (
            time_column is None or time_column.type.kind != "datetime"
        ):
            problems.add(
                "legacy_copy.time_column",
                f"{legacy.time_column!r} must be a datetime column of the spec",
            )
        for index, name in enumerate(legacy.bigint_columns):
            if name in by_name and not by_name[name].type.is_integer:
                problems.add(
                    f"legacy_copy.bigint_columns[{index}]",
                    f"{name!r} is {by_name[name].type}, not an integer column",
                )
    seen: dict[str, str] = {}
    for path, name in tables:
        if name and name.lower() in seen:
            problems.add(path, f"{name!r} is already used by {seen[name.lower()]}")
        elif name:
            seen[name.lower()] = path


def _default_partitioning(
    mysql: dict[str, Any],
    event_time: EventTime | None,
    columns: tuple[Column, ...],
    legacy: LegacyCopySpec | None,
) -> TargetPartitioning:
    """What `auto` (the default) means: `day` wherever it is possible. A unique key of a
    partitioned table must hold the partitioning column, so the key must hold the event
    time; and with legacy_copy the target is the legacy table's own layout (its
    AUTO_INCREMENT id is a key of its own)."""
    event = next(
        (c.column for c in columns if event_time and c.attribute == event_time.attribute), None
    )
    possible = legacy is None and event is not None and event in (mysql.get("key") or ())
    return "day" if possible else "none"


def parse_spec(data: Any, source: str = "<memory>") -> MigrationSpec:
    """Validate an already-parsed YAML document; raise SpecError listing every problem."""
    problems = _Problems()
    top = _Section(data, "", problems)
    top.check_keys({"name", "partitions", "dynamodb", "s3", "columns", "mysql", "legacy_copy"})
    name = top.identifier("name")

    partitions = None
    if section := top.section("partitions"):
        section.check_keys({"start", "end"})
        start, end = _date(section, "start"), _date(section, "end", required=False)
        if start and end and end <= start:
            problems.add("partitions.end", f"{end} must be after partitions.start {start}")
        partitions = PartitionsSpec(start, end) if start else None

    dynamodb, event_time = None, None
    if section := top.section("dynamodb"):
        section.check_keys({"table", "mode", "request", "event_time", "on_bad_record", "scan"})
        if (event := section.section("event_time")) is not None:
            event.check_keys({"attribute", "unit"})
            attribute = event.get("attribute", str)
            unit = event.choice("unit", ("s", "ms", "us", "iso8601"), "s")
            event_time = EventTime(attribute, unit) if attribute else None
        table = section.get("table", str)
        if table is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]{3,255}", table):
            problems.add("dynamodb.table", f"{table!r} is not a valid DynamoDB table name")
        mode = section.choice("mode", ("export", "scan"), "export")
        request = section.get("request", bool, False)
        on_bad = section.choice("on_bad_record", ("fail", "quarantine"), "fail")
        scan = _scan(section.section("scan", required=False))
        if table and event_time:
            dynamodb = DynamoDBSpec(table, event_time, mode, request, on_bad, scan)

    s3 = None
    if section := top.section("s3"):
        section.check_keys({"bucket", "export_prefix", "parquet_prefix"})
        bucket = section.get("bucket", str)
        if bucket is not None and not _BUCKET.fullmatch(bucket):
            problems.add("s3.bucket", f"{bucket!r} is not a valid S3 bucket name")
            bucket = None
        export_prefix, parquet_prefix = (
            _prefix(section, "export_prefix"),
            _prefix(section, "parquet_prefix"),
        )
        if (
            export_prefix
            and parquet_prefix
            and (
                export_prefix.startswith(parquet_prefix + "/")
                or parquet_prefix.startswith(export_prefix + "/")
                or export_prefix == parquet_prefix
            )
        ):
            problems.add("s3.parquet_prefix", "must not overlap s3.export_prefix")
        if bucket and export_prefix and parquet_prefix:
            s3 = S3Spec(bucket, export_prefix, parquet_prefix)

    columns, broken_columns = _columns(top)

    mysql, mysql_parts = None, {}
    if section := top.section("mysql"):
        section.check_keys(
            {
                "temp_table",
                "target_table",
                "key",
                "update_columns",
                "mode",
                "on_delete",
                "target_partitioning",
            }
        )
        mode = section.choice("mode", ("upsert", "update_only"), "upsert")
        default_on_delete = "null_columns" if mode == "update_only" else "delete_row"
        mysql_parts = {
            "temp_table": section.identifier("temp_table"),
            "target_table": section.identifier("target_table"),
            "key": section.identifier_list("key"),
            "update_columns": section.identifier_list("update_columns", []),
            "mode": mode,
            "on_delete": section.choice(
                "on_delete", ("delete_row", "null_columns", "ignore"), default_on_delete
            ),
            "target_partitioning": section.choice(
                "target_partitioning", ("day", "none", "auto"), "auto"
            ),
        }
        if mysql_parts["key"] is not None and not mysql_parts["key"]:
            problems.add("mysql.key", "must name at least one column")
        if all(value is not None for value in mysql_parts.values()):
            mysql = MySQLSpec(**mysql_parts)

    legacy = None
    if section := top.section("legacy_copy", required=False):
        section.check_keys({"source_table", "time_column", "bigint_columns", "change_capture"})
        source_table = section.identifier("source_table")
        time_column = section.identifier("time_column")
        bigint_columns = section.identifier_list("bigint_columns")
        capture = section.choice("change_capture", ("binlog", "none"), "binlog")
        if source_table and time_column and bigint_columns is not None and capture:
            legacy = LegacyCopySpec(source_table, time_column, bigint_columns, capture)

    if mysql_parts.get("target_partitioning") == "auto":
        mysql_parts["target_partitioning"] = _default_partitioning(
            mysql_parts, event_time, columns, legacy
        )
        if mysql is not None:
            mysql = replace(mysql, target_partitioning=mysql_parts["target_partitioning"])
    _check_references(
        {
            "columns": columns,
            "broken_columns": broken_columns,
            "event_time": event_time,
            "mysql_parts": mysql_parts,
            "legacy_copy": legacy,
        },
        problems,
    )
    if problems.items:
        raise SpecError(source, problems.items)
    if not (name and partitions and dynamodb and s3 and mysql):  # pragma: no cover - defensive
        raise SpecError(source, ["(top level): incomplete spec"])
    return MigrationSpec(name, partitions, dynamodb, s3, columns, mysql, legacy, source)


def load_spec(path: str | os.PathLike[str] | None = None) -> MigrationSpec:
    """Load the spec from `path`, else `$MIGRATION_SPEC`, else the bundled example."""
    spec_path = Path(path or os.environ.get(SPEC_ENV_VAR) or EXAMPLE_SPEC)
    source = str(spec_path)
    try:
        text = spec_path.read_text()
    except OSError as exc:
        raise SpecError(str(spec_path), [f"cannot read the spec file ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(
            source, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_spec(data, source)


def spec_document(spec: MigrationSpec) -> dict[str, Any]:
    """The spec as the plain document `parse_spec` reads (JSON/YAML-safe): how a spec travels
    to a process without the file, e.g. the Pipes entry point on EMR Serverless or Glue.

    The model's field names are the YAML keys, so a walk over the dataclasses is the inverse of
    `parse_spec`; a field that is not a YAML key would be refused there, never silently lost.
    """

    def plain(value: Any) -> Any:
        if isinstance(value, ColumnType):
            return str(value)
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, tuple | list):
            return [plain(item) for item in value]
        if hasattr(value, "__dataclass_fields__"):
            return {
                name: plain(getattr(value, name))
                for name in value.__dataclass_fields__
                if name != "source" and getattr(value, name) is not None
            }
        return value

    return plain(spec)
