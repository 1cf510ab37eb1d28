"""The per-second counts and row hashes the target checks compare (`mysql/seconds.py`)."""

from __future__ import annotations

import datetime as dt

import pytest

from migration_assets.mysql.connection import connection
from migration_assets.mysql.ddl import ensure_tables
from migration_assets.mysql.load import load_day
from migration_assets.mysql.merge import merge_day
from migration_assets_tests.helpers import (
    DAY,
    UTC,
    day_table,
    existing_target,
    on_connections,
    orders_spec,
    row,
)


@pytest.mark.parametrize("method", ["join", "auto"])
@pytest.mark.parametrize("connections", [1, 2, 3])
def test_merged_counts_see_rows_the_staged_puts_do_not_account_for(mysql_db, connections, method):
    """Before the merge: (1,1) matches with another tier, (2,1) is a delete whose row is still
    there, (8,8) no staged row has; (1,2) and (4,4) are not in the target yet. On several
    connections the join or the scans are cut into ranges: the same facts. Both count rows
    and leave values to the checksums (a put held with other values is there, not missing):
    the join the staged puts the target holds, the scans (`auto` here) the target's rows of
    the day; both see the deleted and the unstaged row."""
    from migration_assets.mysql.seconds import (
        merged_day,
        merged_second_counts,
        staged_second_counts,
    )

    spec = orders_spec()  # upsert + delete_row: every target row of the day must be staged
    existing_target(mysql_db, spec)
    start = int(dt.datetime.combine(DAY, dt.time(), UTC).timestamp())
    with connection(mysql_db) as conn:
        staged = staged_second_counts(conn, spec, DAY)
        on = {**on_connections(mysql_db, connections), "method": method}
        found = merged_day(conn, spec, DAY, **on)
        before = merged_second_counts(conn, spec, DAY, found)
        merge_day(conn, spec, DAY)
        facts = merged_day(conn, spec, DAY, **on)
        after = merged_second_counts(conn, spec, DAY, facts)
        assert facts == merged_day(conn, spec, DAY, method=method)  # one connection
        assert (
            staged_second_counts(conn, spec, DAY, **on_connections(mysql_db, connections)) == staged
        )
    assert facts.method == found.method == ("scans" if method == "auto" else "join")
    assert facts.staged == staged  # the same pass also counts the staged puts
    held = {start + 10: 1}  # (1,1), still bronze: a row all the same
    assert before == {**held, start + 30: 1, start + 50: 1}
    assert before != found.staged and after != facts.staged
    assert after == {**staged, start + 50: staged[start + 50] + 1}  # (8,8) is still extra


@pytest.mark.parametrize("mode", ["upsert", "update_only"])
def test_checksums_compare_only_what_the_merge_promises(mysql_db, mode):
    """Before the merge (1,1) holds another tier; after it both sides agree; update_only
    leaves the unmatched puts (1,2), (4,4) to the count check."""
    from migration_assets.mysql.seconds import merged_day

    spec = orders_spec(mode=mode)
    existing_target(mysql_db, spec)
    start = int(dt.datetime.combine(DAY, dt.time(), UTC).timestamp())
    with connection(mysql_db) as conn:
        before = merged_day(conn, spec, DAY, method="join")
        merge_day(conn, spec, DAY)
        after = merged_day(conn, spec, DAY, method="join")
    staged_before, target_before = before.staged_checksums, before.target_checksums
    staged_after, target_after = after.staged_checksums, after.target_checksums
    assert staged_before[start + 10] != target_before[start + 10]
    assert staged_after == target_after == staged_before
    matched = {start + 10} if mode == "update_only" else {start + 10, start + 20, start + 50}
    assert set(staged_after) == matched


def test_scanned_checksums_see_every_row_of_the_day(mysql_db):
    """Scans checksum the target's whole day: before the merge (1,1)'s other tier and the
    rows (2,1), (8,8) no put accounts for differ; after it, only the second of (8,8)."""
    from migration_assets.mysql.seconds import merged_day

    spec = orders_spec()
    existing_target(mysql_db, spec)
    start = int(dt.datetime.combine(DAY, dt.time(), UTC).timestamp())
    with connection(mysql_db) as conn:
        before = merged_day(conn, spec, DAY)
        merge_day(conn, spec, DAY)
        after = merged_day(conn, spec, DAY)
        joined = merged_day(conn, spec, DAY, method="join")
    assert before.method == after.method == "scans"
    assert set(before.target_checksums) == {start + 10, start + 30, start + 50}
    assert before.staged_checksums == after.staged_checksums == joined.staged_checksums
    differing = {
        second
        for second in set(after.staged_checksums) | set(after.target_checksums)
        if after.staged_checksums.get(second) != after.target_checksums.get(second)
    }
    assert differing == {start + 50}  # (4,4) and (8,8) there, only (4,4) staged
    for second in (start + 10, start + 20):  # the join finds the same rows there
        assert after.target_checksums[second] == joined.target_checksums[second]


def test_a_staged_put_outside_its_day_is_compared_by_the_join(mysql_db):
    """A staged put outside its day (parquet_partitions quarantines such records, but a
    staging table loaded by other means may hold one): the target's day window would not
    hold it, so the comparison falls back to the join, which finds it."""
    from migration_assets.mysql.seconds import merged_day, merged_second_counts

    spec = orders_spec()
    early = dt.datetime.combine(DAY, dt.time(), UTC) - dt.timedelta(seconds=5)
    rows = [row(1, 1, 7), row(2, 2, 0, created_at=early)]
    with connection(mysql_db) as conn:
        ensure_tables(conn, spec)
        load_day(conn, spec, DAY, day_table(spec, rows))
        merge_day(conn, spec, DAY)
        facts = merged_day(conn, spec, DAY)
        observed = merged_second_counts(conn, spec, DAY, facts)
    assert facts.method == "join"
    assert observed == facts.staged and int(early.timestamp()) in facts.staged
    assert facts.staged_checksums == facts.target_checksums


def test_therow_hash_tells_apart_rows_a_joined_text_would_confuse(mysql_db):
    """A value holding the separator, or a string reading like NULL, is not another row."""
    from migration_assets.mysql.seconds import row_hash

    rows = [("a|b", "c"), ("a", "b|c"), ("\\N", "z"), (None, "z"), ("NULL", "z"), ("a,b", "c")]
    rows += [("a", "b,c"), ("'a'", None), ("a", None), ("", None), (None, None)]
    with connection(mysql_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE pairs (n INT PRIMARY KEY, x VARCHAR(8), y VARCHAR(8))")
        cur.executemany(
            "INSERT INTO pairs VALUES (%s, %s, %s)", [(n, *r) for n, r in enumerate(rows)]
        )
        cur.execute(f"SELECT {row_hash('t', ('x', 'y'))} FROM pairs t ORDER BY n")
        hashes = [h for (h,) in cur.fetchall()]
    assert len(set(hashes)) == len(rows)
