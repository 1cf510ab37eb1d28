"""The migration spec: the bundled example loads; bad files are refused with key paths."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from migration_assets.spec import EXAMPLE_SPEC, ColumnType, SpecError, load_spec, parse_spec


@pytest.fixture
def example() -> dict:
    return yaml.safe_load(EXAMPLE_SPEC.read_text())


def write(tmp_path: Path, data: object, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def problems_of(tmp_path: Path, data: object) -> str:
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as excinfo:
        load_spec(path)
    message = str(excinfo.value)
    assert all(line.startswith(f"{path}: ") for line in message.splitlines()), message
    return message


def test_bundled_example_derives_types_schema_and_ids():
    spec = load_spec(EXAMPLE_SPEC)
    assert spec.name == "orders"
    assert spec.partitions.start == dt.date(2023, 1, 1)
    assert spec.mysql.key == ("customer_id", "order_id", "created_at")
    assert spec.event_time_column.column == "created_at"
    assert [c.type.sql for c in spec.columns] == [
        "BIGINT",
        "BIGINT",
        "DATETIME",
        "DECIMAL(18,4)",
        "VARCHAR(32)",
        "JSON",
    ]
    schema = spec.arrow_schema
    assert schema.field("customer_id").type == pa.int64()
    assert not schema.field("customer_id").nullable
    assert schema.field("amount").type == pa.decimal128(18, 4)
    assert schema.field("created_at").type == pa.timestamp("s", tz="UTC")
    assert spec.id_columns == ("customer_id", "order_id", "id")


def test_spec_path_comes_from_environment(tmp_path, example, monkeypatch):
    example["name"] = "from_env"
    monkeypatch.setenv("MIGRATION_SPEC", str(write(tmp_path, example)))
    assert load_spec().name == "from_env"


@pytest.mark.parametrize(
    ("text", "sql", "arrow"),
    [
        ("bigint", "BIGINT", pa.int64()),
        ("int", "INT", pa.int32()),
        ("smallint", "SMALLINT", pa.int16()),
        ("tinyint", "TINYINT", pa.int8()),
        ("boolean", "TINYINT(1)", pa.bool_()),
        ("double", "DOUBLE", pa.float64()),
        ("decimal(38,10)", "DECIMAL(38,10)", pa.decimal128(38, 10)),
        ("decimal(65,2)", "DECIMAL(65,2)", pa.decimal256(65, 2)),
        ("varchar(255)", "VARCHAR(255)", pa.string()),
        ("text", "TEXT", pa.string()),
        ("datetime", "DATETIME", pa.timestamp("s", tz="UTC")),
        ("datetime(3)", "DATETIME(3)", pa.timestamp("ms", tz="UTC")),
        ("datetime(6)", "DATETIME(6)", pa.timestamp("us", tz="UTC")),
        ("date", "DATE", pa.date32()),
        ("json", "JSON", pa.string()),
        ("varbinary(16)", "VARBINARY(16)", pa.binary()),
        ("blob", "BLOB", pa.binary()),
    ],
)
def test_every_column_type_maps_to_mysql_and_arrow(text, sql, arrow):
    column_type = ColumnType.parse(text)
    assert column_type.sql == sql
    assert column_type.arrow == arrow
    assert ColumnType.parse(str(column_type)) == column_type


def test_integer_bounds_are_exact():
    assert ColumnType.parse("int").integer_bounds == (-2147483648, 2147483647)
    assert ColumnType.parse("bigint").integer_bounds == (-(2**63), 2**63 - 1)
    assert ColumnType.parse("varchar(3)").integer_bounds is None


@pytest.mark.parametrize(
    "bad",
    [
        "bigint2",
        "decimal(70,2)",
        "decimal(5,6)",
        "datetime(4)",
        "varchar(0)",
        "varchar",
        "varchar(1,2)",
        "int(11)",
    ],
)
def test_unknown_or_malformed_types_are_refused(bad):
    with pytest.raises(ValueError):
        ColumnType.parse(bad)


def test_unknown_column_type_names_file_and_key(tmp_path, example):
    example["columns"][3]["type"] = "bigint2"
    message = problems_of(tmp_path, example)
    assert "columns[3].type: unknown type 'bigint2'" in message


def test_sql_injection_in_table_name_is_refused(tmp_path, example):
    example["mysql"]["target_table"] = "orders`; DROP TABLE users; --"
    message = problems_of(tmp_path, example)
    assert "mysql.target_table:" in message and "not a safe SQL identifier" in message


def test_unsafe_column_and_key_names_are_refused(tmp_path, example):
    example["columns"][4]["column"] = "loyalty tier"
    example["mysql"]["key"] = ["customer_id", "order_id", "created_at; --"]
    message = problems_of(tmp_path, example)
    assert "columns[4].column:" in message
    assert "mysql.key[2]:" in message


def test_unknown_keys_and_wrong_types_are_each_reported(tmp_path, example):
    example["dynamodb"]["tabel"] = "typo"
    example["columns"][0]["nullable"] = "no"
    example["partitions"]["start"] = "2023-13-01"
    example["extra"] = 1
    message = problems_of(tmp_path, example)
    assert "dynamodb.tabel: unknown key" in message
    assert "columns[0].nullable: must be bool" in message
    assert "partitions.start: '2023-13-01' is not a date" in message
    assert "extra: unknown key" in message
    assert len(message.splitlines()) == 4


def test_cross_references_are_checked(tmp_path, example):
    broken = copy.deepcopy(example)
    broken["mysql"]["key"] = ["customer_id", "nope"]
    broken["mysql"]["update_columns"] = ["customer_id"]
    broken["dynamodb"]["event_time"]["attribute"] = "tier"
    broken["legacy_copy"]["source_table"] = "orders"
    message = problems_of(tmp_path, broken)
    assert "mysql.key[1]: 'nope' is not a column" in message
    assert "mysql.update_columns[0]: 'customer_id' is a key column" in message
    assert "dynamodb.event_time.attribute:" in message and "must be datetime" in message
    assert "legacy_copy.source_table: 'orders' is already used by mysql.target_table" in message


def test_nullable_key_column_is_refused(tmp_path, example):
    example["columns"][1]["nullable"] = True
    assert "mysql.key[1]: key column 'order_id' must be nullable: false" in problems_of(
        tmp_path, example
    )


def test_missing_sections_and_bad_enums(tmp_path, example):
    del example["s3"]
    example["mysql"]["mode"] = "merge"
    example["dynamodb"]["event_time"]["unit"] = "ns"
    message = problems_of(tmp_path, example)
    assert "s3: is required" in message
    assert "mysql.mode: must be one of upsert, update_only, not 'merge'" in message
    assert "dynamodb.event_time.unit: must be one of s, ms, us, iso8601" in message


def test_on_delete_default_follows_mode(example):
    example["mysql"].pop("on_delete")
    assert parse_spec(example).mysql.on_delete == "delete_row"
    example["mysql"]["mode"] = "update_only"
    assert parse_spec(example).mysql.on_delete == "null_columns"


def test_target_partitioning_is_by_day_wherever_it_can_be(tmp_path, example):
    assert parse_spec(example).mysql.target_partitioning == "none"  # legacy_copy's layout
    del example["legacy_copy"]
    assert parse_spec(example).mysql.target_partitioning == "day"  # auto, the default
    example["mysql"]["target_partitioning"] = "none"
    assert parse_spec(example).mysql.target_partitioning == "none"
    example["mysql"]["target_partitioning"] = "day"
    example["mysql"]["key"] = ["customer_id", "order_id"]
    message = problems_of(tmp_path, example)
    assert "mysql.target_partitioning: 'day' needs the event time column 'created_at'" in message
    example["mysql"]["target_partitioning"] = "auto"
    assert parse_spec(example).mysql.target_partitioning == "none"  # no event time in the key
    example["mysql"]["target_partitioning"] = "weekly"
    assert "must be one of day, none, auto, not 'weekly'" in problems_of(tmp_path, example)
    example["mysql"].update(target_partitioning="day", key=["customer_id", "created_at"])
    example["legacy_copy"] = {
        "source_table": "t1",
        "time_column": "created_at",
        "bigint_columns": ["id"],
    }
    assert "'day' cannot apply with legacy_copy" in problems_of(tmp_path, example)


def test_legacy_copy_is_optional(example):
    del example["legacy_copy"]
    spec = parse_spec(example)
    assert spec.legacy_copy is None
    assert spec.id_columns == ("customer_id", "order_id")


def test_invalid_yaml_and_missing_file(tmp_path):
    path = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(SpecError, match=r"spec.yaml: line \d+, column \d+: not valid YAML"):
        load_spec(path)
    with pytest.raises(SpecError, match="cannot read the spec file"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match=r"\(top level\): must be a mapping"):
        load_spec(write(tmp_path, "- just\n- a list\n"))


def test_bucket_and_prefixes_are_validated(tmp_path, example):
    example["s3"]["bucket"] = "Not_A_Bucket"
    example["s3"]["parquet_prefix"] = "exports/orders/parquet"
    message = problems_of(tmp_path, example)
    assert "s3.bucket:" in message
    assert "s3.parquet_prefix: must not overlap s3.export_prefix" in message


def test_trailing_newline_is_not_an_identifier(tmp_path, example):
    example["mysql"]["target_table"] = "orders\n"
    assert "mysql.target_table:" in problems_of(tmp_path, example)


def test_empty_file_and_timestamp_start_are_refused(tmp_path, example):
    assert "(top level): must be a mapping" in problems_of(tmp_path, "")
    example["partitions"]["start"] = dt.datetime(2023, 1, 1, 10)
    assert "partitions.start: must be a date, not a timestamp" in problems_of(tmp_path, example)


def test_legacy_copy_columns_are_checked(tmp_path, example):
    example["legacy_copy"]["time_column"] = "no_such_column"
    example["legacy_copy"]["bigint_columns"] = ["id", "loyalty_tier"]
    message = problems_of(tmp_path, example)
    assert "legacy_copy.time_column: 'no_such_column' must be a datetime column" in message
    assert "legacy_copy.bigint_columns[1]: 'loyalty_tier' is varchar(32)" in message
