"""The composite-key merge of a staged day into the target against a real MariaDB server."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml

from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets.spec import EXAMPLE_SPEC, parse_spec
from migration_assets_tests.helpers import (
    DAY,
    day_table,
    existing_target,
    fetch,
    on_connections,
    orders_spec,
    row,
    staged_day,
    target_rows,
)


@pytest.mark.parametrize("partitioning", ["day", "none"])
@pytest.mark.parametrize("connections", [1, 2, 3])
def test_upsert_merge_with_deletes_is_idempotent(mysql_db, connections, partitioning):
    spec = orders_spec(target_partitioning=partitioning)  # upsert, delete_row
    existing_target(mysql_db, spec)
    with connection(mysql_db) as conn:
        result = merge_day(conn, spec, DAY, chunk_rows=2, **on_connections(mysql_db, connections))
    assert (result.inserted, result.updated, result.deleted, result.chunks) == (2, 1, 1, 3)
    rows = target_rows(mysql_db, spec)
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        (1, 1, Decimal("99.0000"), "platinum"),  # only update_columns change on a match
        (1, 2, Decimal("12.3400"), "silver"),
        (4, 4, Decimal("12.3400"), "new"),
        (8, 8, Decimal("1.0000"), "keep"),
    ]
    with connection(mysql_db) as conn:
        again = merge_day(conn, spec, DAY, chunk_rows=2)
    assert target_rows(mysql_db, spec) == rows
    assert (again.inserted, again.updated, again.deleted) == (0, 3, 0)


@pytest.mark.parametrize("partitioning", ["day", "none"])
@pytest.mark.parametrize("connections", [1, 2])
def test_a_day_new_to_the_target_counts_every_put_as_inserted(mysql_db, connections, partitioning):
    """No target row of the day and the event time in the key: nothing can match, so the
    chunks skip counting matches and run on `connections` connections; a row of the day in
    the target turns both off (upserts of existing rows on two connections deadlock). The
    day's partition, or else the event-time index, tells whether the day is new."""
    spec = orders_spec(target_partitioning=partitioning)
    opened = []

    def connect():
        opened.append(1)
        return connection(mysql_db)

    with connection(mysql_db) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        cur.execute(  # the day before: not of DAY, so DAY is still new to the target
            "INSERT INTO orders (customer_id, order_id, created_at, loyalty_tier)"
            " VALUES (1, 1, '2024-02-29 23:59:59', 'yesterday')"
        )
        conn.commit()
        load_day(conn, spec, DAY, staged_day(spec))
        on = {"connect": connect, "connections": connections}
        fresh = merge_day(conn, spec, DAY, chunk_rows=1, **on)
        extra_connections = len(opened)
        again = merge_day(conn, spec, DAY, chunk_rows=1, **on)
    assert extra_connections == connections - 1 and fresh.connections == connections
    assert len(opened) == extra_connections and again.connections == 1  # the re-merge: one
    assert (fresh.inserted, fresh.updated, fresh.deleted) == (3, 0, 0)
    assert (again.inserted, again.updated) == (0, 3)
    assert len(target_rows(mysql_db, spec)) == 4


@pytest.mark.parametrize("connections", [1, 2])
def test_update_only_keeps_unmatched_rows_and_nulls_deleted_columns(mysql_db, connections):
    spec = orders_spec(mode="update_only", on_delete="null_columns")
    existing_target(mysql_db, spec)
    with connection(mysql_db) as conn:
        result = merge_day(conn, spec, DAY, chunk_rows=1, **on_connections(mysql_db, connections))
        again = merge_day(conn, spec, DAY, chunk_rows=1, **on_connections(mysql_db, connections))
    assert (result.inserted, result.updated, result.unmatched, result.deleted) == (0, 1, 2, 1)
    assert again.unmatched == 2  # recorded once per day, not once per run
    rows = {(r[0], r[1]): r[4] for r in target_rows(mysql_db, spec)}
    assert rows == {(1, 1): "platinum", (2, 1): None, (8, 8): "keep"}
    kept = fetch(mysql_db, "SELECT customer_id, order_id FROM orders_stage_unmatched ORDER BY 1")
    assert kept == ((1, 2), (4, 4))


def test_ignore_deletes_counts_them(mysql_db):
    spec = orders_spec(on_delete="ignore")
    existing_target(mysql_db, spec)
    with connection(mysql_db) as conn:
        result = merge_day(conn, spec, DAY)
    assert result.deletes_ignored == 2 and result.deleted == 0
    assert (2, 1) in {(r[0], r[1]) for r in target_rows(mysql_db, spec)}


def test_a_merge_interrupted_between_chunks_finishes_on_rerun(mysql_db):
    spec = orders_spec()
    existing_target(mysql_db, spec)

    def crash(chunk):
        if chunk == 1:
            raise RuntimeError("injected crash after the first chunk")

    with connection(mysql_db) as conn, pytest.raises(RuntimeError, match="injected"):
        merge_day(conn, spec, DAY, chunk_rows=2, after_chunk=crash)
    half = target_rows(mysql_db, spec)
    with connection(mysql_db) as conn:
        merge_day(conn, spec, DAY, chunk_rows=2)
    finished = target_rows(mysql_db, spec)
    assert half != finished
    assert [(r[0], r[1], r[4]) for r in finished] == [
        (1, 1, "platinum"),
        (1, 2, "silver"),
        (4, 4, "new"),
        (8, 8, "keep"),
    ]


def test_a_put_shadows_a_delete_of_the_same_key_in_one_day():
    from migration_assets.parquet.day_builder import _partition_table

    spec = orders_spec()
    rows = day_table(spec, [row(1, 1, 5, tier="alive"), row(2, 2, 6)]).drop_columns(["_change"])
    deletes = day_table(spec, [row(1, 1, 5, tier="old", change="delete"), row(3, 3, 7)])
    table, rejects = _partition_table(spec, DAY, rows, deletes.drop_columns(["_change"]))
    kept = [(r["customer_id"], r["_change"], r["loyalty_tier"]) for r in table.to_pylist()]
    assert kept == [(1, "put", "alive"), (2, "put", "gold"), (3, "delete", "gold")]
    assert not rejects


def test_a_delete_never_removes_a_row_of_another_day(mysql_db):
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.pop("legacy_copy")
    data["mysql"]["key"] = ["customer_id", "order_id"]  # the event time is not in the key
    spec = parse_spec(data)
    with connection(mysql_db) as conn, conn.cursor() as cur:
        ensure_tables(conn, spec)
        cur.execute(  # the item moved to OTHER and was merged there first
            "INSERT INTO orders (customer_id, order_id, created_at, loyalty_tier)"
            " VALUES (1, 1, '2024-03-02 08:00:00', 'moved')"
        )
        conn.commit()
        load_day(conn, spec, DAY, day_table(spec, [row(1, 1, 5, change="delete")]))
        result = merge_day(conn, spec, DAY)
    assert result.deleted == 0
    assert fetch(mysql_db, "SELECT loyalty_tier FROM orders") == (("moved",),)
