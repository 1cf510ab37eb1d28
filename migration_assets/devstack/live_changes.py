"""The demo's live application: updates and deletes on legacy rows whose day was already
copied, which change capture (the `bigint_change_capture` job) must carry to the new table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..identifiers import quote_identifier as q
from ..mysql.catalog import primary_key, table_columns
from ..mysql.connection import MySQLSettings, connection
from ..spec import MigrationSpec


@dataclass
class LiveChanges:
    updated: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)  # the time column moved a day later
    deleted: list[int] = field(default_factory=list)


def change_copied_rows(settings: MySQLSettings, spec: MigrationSpec, rows: int = 20) -> LiveChanges:
    """Update `rows` copied legacy rows (a value of each), move `rows // 4` to the next day
    (their time column), delete `rows // 2`: as the application does after a day's copy."""
    assert spec.legacy_copy is not None
    source, pk = q(spec.legacy_copy.source_table), q(_key(settings, spec))
    when = q(spec.legacy_copy.time_column)
    value = next(
        (
            c.column
            for c in spec.columns
            if c.type.kind in ("decimal", "double", "int", "bigint")
            and c.column not in (*spec.legacy_copy.bigint_columns, *spec.mysql.update_columns)
        ),
        None,
    )
    changes = LiveChanges()
    with connection(settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {pk} FROM {source} ORDER BY {pk} LIMIT %s", (rows * 2,))
        ids = [row[0] for row in cur.fetchall()]
        changes.updated = ids[:rows]
        changes.moved = ids[rows : rows + rows // 4]
        changes.deleted = ids[rows + rows // 4 : rows + rows // 4 + rows // 2]
        for row_id in changes.updated:
            if value is not None:
                cur.execute(
                    f"UPDATE {source} SET {q(value)} = COALESCE({q(value)}, 0) + 1000"
                    f" WHERE {pk} = %s",
                    (row_id,),
                )
        for row_id in changes.moved:
            cur.execute(
                f"UPDATE {source} SET {when} = {when} + INTERVAL 1 DAY WHERE {pk} = %s", (row_id,)
            )
        for row_id in changes.deleted:
            cur.execute(f"DELETE FROM {source} WHERE {pk} = %s", (row_id,))
        conn.commit()
    return changes


def changes_reached(settings: MySQLSettings, spec: MigrationSpec, changes: LiveChanges) -> dict:
    """How many of the changed rows are identical in the new table (every legacy column)."""
    assert spec.legacy_copy is not None
    source, target = spec.legacy_copy.source_table, spec.mysql.target_table
    pk = _key(settings, spec)
    with connection(settings) as conn, conn.cursor() as cur:
        names = ", ".join(q(name) for name in table_columns(conn, source))

        def image(table: str, row_id: int) -> tuple | None:
            cur.execute(f"SELECT {names} FROM {q(table)} WHERE {q(pk)} = %s", (row_id,))
            return cur.fetchone()

        def same(ids: list[int]) -> int:
            return sum(image(source, i) == image(target, i) for i in ids)

        return {
            "updated": f"{same(changes.updated)}/{len(changes.updated)}",
            "moved to the next day": f"{same(changes.moved)}/{len(changes.moved)}",
            "deleted": f"{sum(image(target, i) is None for i in changes.deleted)}"
            f"/{len(changes.deleted)}",
            "checked_at": dt.datetime.now(dt.UTC).strftime("%H:%M:%S"),
        }


def _key(settings: MySQLSettings, spec: MigrationSpec) -> str:
    assert spec.legacy_copy is not None
    with connection(settings) as conn:
        return primary_key(conn, spec.legacy_copy.source_table)[0]
