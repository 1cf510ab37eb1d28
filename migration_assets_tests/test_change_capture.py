"""Change capture from the binlog against the session's real MariaDB (binlog on, ROW, FULL)."""

from __future__ import annotations

import datetime as dt

from migration_assets.mysql.apply import ChangeApplier
from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.legacy import copy_day
from migration_assets_tests.test_legacy_copy import (  # noqa: F401 (the fixture)
    COLUMNS,
    DAY,
    INT_MAX,
    connector,
    execute,
    legacy_spec,
    legacy_table,
    rows,
)


def everything(settings, table):
    return rows(settings, f"SELECT {COLUMNS} FROM {table} WHERE id <= {INT_MAX} ORDER BY id")


def test_updates_deletes_and_inserts_after_the_copy_reach_the_new_table(legacy_table):
    spec = legacy_spec(start="2024-02-29")
    with connection(legacy_table) as conn:
        ensure_tables(conn, spec)
    for offset in range(3):
        copy_day(connector(legacy_table), spec, spec.partitions.start + dt.timedelta(offset))
    execute(legacy_table, "UPDATE table01 SET amount = 42, attrs = '{\"b\": 2}' WHERE id = 1")
    execute(legacy_table, "UPDATE table01 SET created_at = '2024-02-29 10:00:00' WHERE id = 5")
    execute(legacy_table, "DELETE FROM table01 WHERE id = 2")
    execute(legacy_table, "INSERT INTO table01 VALUES (77, 1, 1, '2024-03-01 00:00:01', 1, NULL)")
    with ChangeApplier(legacy_table, spec) as applier:
        drained = applier.drain()
    assert drained.row_events == 4 and drained.caught_up
    assert everything(legacy_table, "orders") == everything(legacy_table, "table01")
