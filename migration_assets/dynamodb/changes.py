"""Apply incremental-export changes to a day's full-export rows.

A day's final state is its rows in the full export, with every later change applied: the
latest write per item (by `WriteTimestampMicros`, then window order, then line) wins. An
item whose latest change is a delete, or a put that moved its event time to another day,
leaves the day as a delete row carrying its last known values, so the merge into MySQL can
apply `mysql.on_delete` to the row it matches. Items are identified by the table's key
attributes as they appear in the incremental lines' `Keys`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..days import epoch_day
from .decode import DELETE, KEYS_ONLY, LINE, OP, PUT, WRITE_MICROS

CHANGE = "_change"  # in written partitions: "put" or "delete"
ORDER = "_window"  # position of the change's export in the chain
_ID = "_identity"


@dataclass
class Changes:
    """Every change of an incremental chain, newest state per item resolved once."""

    table: pa.Table  # spec columns + OP, WRITE_MICROS, KEYS_ONLY, LINE, ORDER
    identity_columns: tuple[str, ...]

    @classmethod
    def empty(cls) -> Changes:
        return cls(pa.table({}), ())

    def __len__(self) -> int:
        return self.table.num_rows


def identity(table: pa.Table, columns: tuple[str, ...]) -> pa.Array:
    """One comparable string per row from the item's key columns."""
    parts = [pc.cast(table.column(name), pa.string()) for name in columns]
    if len(parts) == 1:
        return parts[0].combine_chunks() if isinstance(parts[0], pa.ChunkedArray) else parts[0]
    joined = pc.binary_join_element_wise(*parts, "\x1f")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 10**9}


def epoch_seconds(times: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Epoch second of each timestamp, floored (the second a row is counted in)."""
    raw = pc.fill_null(pc.cast(times, pa.int64()), 0).to_numpy()
    return np.floor_divide(raw, _PER_SECOND[times.type.unit])


def event_days(table: pa.Table, event_column: str) -> np.ndarray:
    """Epoch day number of each row's event time (-1 where it is null)."""
    column = table.column(event_column)
    per_day = 86_400 * _PER_SECOND[column.type.unit]
    raw = pc.fill_null(pc.cast(column, pa.int64()), -per_day).to_numpy()
    return np.floor_divide(raw, per_day)


def _last_per_identity(table: pa.Table, ids: pa.Array, order: list[str]) -> pa.Table:
    """The row with the greatest `order` values for each identity."""
    keyed = table.append_column(_ID, ids)
    ordered = keyed.sort_by([(_ID, "ascending")] + [(name, "ascending") for name in order])
    sorted_ids = ordered.column(_ID).to_numpy(zero_copy_only=False)
    last = np.ones(len(sorted_ids), dtype=bool)
    if len(sorted_ids) > 1:
        last[:-1] = sorted_ids[:-1] != sorted_ids[1:]
    return ordered.filter(pa.array(last))


def apply_changes(
    day: dt.date,
    snapshot: pa.Table,
    changes: Changes,
    event_column: str,
    key_columns: tuple[str, ...],
) -> tuple[pa.Table, pa.Table]:
    """(rows, deletes) of `day`: the snapshot with the chain's changes applied.

    `snapshot` holds the day's rows from the full export (spec columns); `key_columns` are
    the MySQL key. Both results have the snapshot's columns. Every MySQL key a changed item
    had in this day (its snapshot row, its images here) other than the key of its final put
    here leaves as a delete row carrying the last values it had under that key: the item
    was deleted, moved to another day, or had a key column changed.
    """
    columns = snapshot.column_names
    if not len(changes):
        return snapshot, snapshot.schema.empty_table()
    day_number = epoch_day(day)
    id_columns = changes.identity_columns
    change_ids = identity(changes.table, id_columns)
    latest = _last_per_identity(changes.table, change_ids, [WRITE_MICROS, ORDER, LINE])
    latest_ids = latest.column(_ID)

    snapshot_ids = identity(snapshot, id_columns)
    untouched = snapshot.filter(pc.invert(pc.is_in(snapshot_ids, value_set=latest_ids)))
    latest_days = event_days(latest, event_column)
    is_put = pc.equal(latest.column(OP), PUT).to_numpy(zero_copy_only=False)
    put_here = latest.filter(pa.array(is_put & (latest_days == day_number)))
    rows = pa.concat_tables([untouched, put_here.select(columns).cast(snapshot.schema)])

    images = changes.table.filter(pc.invert(changes.table.column(KEYS_ONLY)))
    images_here = images.filter(pa.array(event_days(images, event_column) == day_number))
    states = pa.concat_tables(
        [
            snapshot.append_column(WRITE_MICROS, pa.array(np.full(snapshot.num_rows, -1))),
            images_here.select(columns)
            .cast(snapshot.schema)
            .append_column(WRITE_MICROS, pc.fill_null(images_here.column(WRITE_MICROS), -1)),
        ]
    )
    state_ids = identity(states, id_columns)
    changed = pc.is_in(state_ids, value_set=latest_ids)
    states, state_ids = states.filter(changed), state_ids.filter(changed)
    if not states.num_rows:
        return rows, snapshot.schema.empty_table()
    state_keys = identity(states, key_columns)
    final_keys = identity(put_here, key_columns).take(
        pc.index_in(state_ids, value_set=identity(put_here, id_columns))
    )
    gone = pc.fill_null(pc.not_equal(state_keys, final_keys), True)
    states = states.filter(gone)
    if not states.num_rows:
        return rows, snapshot.schema.empty_table()
    per_key = pc.binary_join_element_wise(
        identity(states, id_columns), identity(states, key_columns), "\x1e"
    )
    last_states = _last_per_identity(states, per_key, [WRITE_MICROS])
    return rows, last_states.select(columns)


__all__ = ["CHANGE", "DELETE", "ORDER", "PUT", "Changes", "apply_changes", "event_days"]
