"""Helpers shared by the tests: the definitions of a spec, the example spec's rows in MySQL,
the decoding tests' spec."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import yaml

from migration_assets.definitions import build_assets
from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.load import load_day
from migration_assets.parquet.store import partition_schema
from migration_assets.spec import EXAMPLE_SPEC, parse_spec


def assets_named(spec, *names: str, with_checks: bool = False) -> list:
    """The named assets of `spec` (and, if asked, the checks that target them)."""
    chosen = []
    for definition in build_assets(spec):
        if isinstance(definition, dg.AssetChecksDefinition):
            targets = {key.asset_key.to_user_string() for key in definition.check_keys}
            if with_checks and targets <= set(names):
                chosen.append(definition)
        elif definition.key.to_user_string() in names:
            chosen.append(definition)
    return chosen


# ---------------------------------------------------------------- the example spec in MySQL

UTC = dt.UTC


DAY, OTHER = dt.date(2024, 3, 1), dt.date(2024, 3, 2)


def orders_spec(**mysql_overrides):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    data["mysql"].update(mysql_overrides)
    return parse_spec(data)


def row(customer, order, second=0, tier="gold", change="put", day=DAY, **extra):
    values = {
        "customer_id": customer,
        "order_id": order,
        "created_at": dt.datetime.combine(day, dt.time(), UTC) + dt.timedelta(seconds=second),
        "amount": Decimal("12.3400"),
        "loyalty_tier": tier,
        "attrs": '{"k":[1,"x"]}',
        "_change": change,
    }
    values.update(extra)
    return values


def day_table(spec, rows):
    table = pa.Table.from_pylist(rows, schema=partition_schema(spec))
    return table.sort_by([(k, "ascending") for k in spec.mysql.key])


def fetch(settings, sql, params=()):
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def target_rows(settings, spec):
    names = ", ".join(f"`{c.column}`" for c in spec.columns)
    rows = fetch(settings, f"SELECT {names} FROM `{spec.mysql.target_table}` ORDER BY 1, 2, 3")
    return [tuple(r) for r in rows]


def staged_day(spec):
    """A staged day meeting `existing_target`'s rows: an update, an insert, two deletes."""
    return day_table(
        spec,
        [
            row(1, 1, 10, tier="platinum"),  # matches an existing row: updated
            row(1, 2, 20, tier="silver"),  # new
            row(2, 1, 30, change="delete"),  # matches: deleted / nulled
            row(3, 3, 40, change="delete"),  # matches nothing
            row(4, 4, 50, tier="new"),
        ],
    )


def existing_target(mysql_db, spec):
    """The target with three rows of DAY, and `staged_day` loaded into staging."""
    with connection(mysql_db) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        cur.executemany(
            "INSERT INTO orders (customer_id, order_id, created_at, amount, loyalty_tier, attrs)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (1, 1, dt.datetime(2024, 3, 1, 0, 0, 10), Decimal("99.0000"), "bronze", None),
                (2, 1, dt.datetime(2024, 3, 1, 0, 0, 30), Decimal("5.0000"), "gold", None),
                (8, 8, dt.datetime(2024, 3, 1, 0, 0, 50), Decimal("1.0000"), "keep", None),
            ],
        )
        conn.commit()
        load_day(conn, spec, DAY, staged_day(spec))


def on_connections(mysql_db, connections):
    """merge_day's / merged_day's arguments for `connections` connections at once."""
    return {"connect": lambda: connection(mysql_db), "connections": connections}


# ---------------------------------------------------------------- decoding


def decode_spec(unit: str = "s", on_bad_record: str = "quarantine", **extra_columns) -> object:
    """A spec with a column of every type, keyed (pk, sk, ts): the decoding tests' table."""
    columns = [
        {"attribute": "pk", "column": "pk", "type": "bigint", "nullable": False},
        {"attribute": "sk", "column": "sk", "type": "varchar(40)", "nullable": False},
        {"attribute": "ts", "column": "ts", "type": "datetime(6)", "nullable": False},
        {"attribute": "small", "column": "small", "type": "int"},
        {"attribute": "amount", "column": "amount", "type": "decimal(20,4)"},
        {"attribute": "ratio", "column": "ratio", "type": "double"},
        {"attribute": "flag", "column": "flag", "type": "boolean"},
        {"attribute": "name", "column": "name", "type": "text"},
        {"attribute": "sig", "column": "sig", "type": "varbinary(8)"},
        {"attribute": "born", "column": "born", "type": "date"},
        {"attribute": "seen", "column": "seen", "type": "datetime"},
        {"attribute": "doc", "column": "doc", "type": "json"},
        {"attribute": "Passenger ID", "column": "passenger_id", "type": "varchar(10)"},
    ]
    return parse_spec(
        {
            "name": "edge",
            "partitions": {"start": "2024-01-01"},
            "dynamodb": {
                "table": "edge",
                "event_time": {"attribute": "ts", "unit": unit},
                "on_bad_record": on_bad_record,
            },
            "s3": {"bucket": "edge-bucket", "export_prefix": "e", "parquet_prefix": "p"},
            "columns": columns,
            "mysql": {"temp_table": "t", "target_table": "u", "key": ["pk", "sk", "ts"]},
        }
    )


BASE_ITEM = {"pk": {"N": "1"}, "sk": {"S": "a"}, "ts": {"N": "1704067200"}}


def legacy_spec(start="2023-01-01", target="orders", **changes):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["legacy_copy"].update(changes)
    data["partitions"]["start"] = start
    data["mysql"]["target_table"] = target
    return parse_spec(data)


INT_MAX = 2**31 - 1  # the largest id of the legacy INT(11) tables
LEGACY_COLUMNS = "id, customer_id, order_id, created_at, amount, attrs"  # of those tables


def execute(settings, sql, params=()):
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        conn.commit()


def connector(settings):
    return lambda: connection(settings)


# ---------------------------------------------------------------- PostgreSQL (Dagster instance)

REQUIRE_POSTGRES_ENV = "MIGRATION_REQUIRE_POSTGRES"  # set by .ci/run: a missing server fails


def require_postgres() -> str:
    """The PostgreSQL server the instance tests use; skip (dev machine) or fail (CI) without."""
    import pytest

    from migration_assets.devstack.instance import postgres_server

    server = postgres_server()
    if server is None:
        reason = "no PostgreSQL server answers (MIGRATION_DAGSTER_PG_URL or 127.0.0.1:5432)"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_POSTGRES_ENV}=1 requires one")
        pytest.skip(reason)
    return server
