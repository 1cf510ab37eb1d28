"""`run_on_connections` against a real MariaDB server: tasks spread over connections."""

from __future__ import annotations

import threading

import pytest

from migration_assets.mysql.connection import connection
from migration_assets.mysql.parallel import run_on_connections


def _connection_id(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        return int(cur.fetchone()[0])


def _sleep_then_id(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("DO SLEEP(0.2)")
    return _connection_id(conn)


def test_tasks_run_on_several_connections_with_results_in_task_order(mysql_db):
    opened: list[int] = []

    def connect():
        opened.append(1)
        return connection(mysql_db)

    with connection(mysql_db) as conn:
        own = _connection_id(conn)
        results = run_on_connections(
            conn,
            [lambda c, n=n: (n, _sleep_then_id(c)) for n in range(4)],
            connect=connect,
            connections=2,
        )
    assert [n for n, _ in results] == [0, 1, 2, 3]
    used = {connection_id for _, connection_id in results}
    assert len(used) == 2 and own in used  # the caller's connection and one more
    assert len(opened) == 1


def test_one_connection_runs_every_task_on_the_callers(mysql_db):
    with connection(mysql_db) as conn:
        own = _connection_id(conn)
        results = run_on_connections(
            conn, [_connection_id] * 3, connect=lambda: connection(mysql_db), connections=1
        )
    assert results == [own] * 3


def test_setup_runs_once_on_every_connection(mysql_db):
    seen: list[int] = []
    lock = threading.Lock()

    def setup(conn) -> None:
        with lock:
            seen.append(_connection_id(conn))
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def isolation(conn) -> str:
        _sleep_then_id(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT @@session.tx_isolation")
            return cur.fetchone()[0]

    with connection(mysql_db) as conn:
        results = run_on_connections(
            conn,
            [isolation] * 4,
            connect=lambda: connection(mysql_db),
            connections=2,
            setup=setup,
        )
    assert results == ["READ-COMMITTED"] * 4
    assert len(seen) == len(set(seen)) == 2


def test_the_first_failure_stops_the_hand_out_and_is_raised(mysql_db):
    started: list[int] = []

    def task(n):
        def run(conn):
            started.append(n)
            if n == 0:
                raise ValueError("task 0 failed")
            return _sleep_then_id(conn)

        return run

    with connection(mysql_db) as conn, pytest.raises(ValueError, match="task 0 failed"):
        run_on_connections(
            conn, [task(n) for n in range(10)], connect=lambda: connection(mysql_db), connections=2
        )
    assert 0 in started and len(started) < 10  # the tasks after the failure never started


def test_a_refused_extra_connection_is_raised(mysql_db):
    def refuse():
        raise ConnectionRefusedError("no more connections")

    with connection(mysql_db) as conn, pytest.raises(ConnectionRefusedError):
        run_on_connections(conn, [_connection_id] * 2, connect=refuse, connections=2)


def test_connections_below_one_are_refused(mysql_db):
    with connection(mysql_db) as conn, pytest.raises(ValueError, match="at least 1"):
        run_on_connections(conn, [_connection_id], connections=0)


def test_after_each_sees_every_task_done_one_call_at_a_time(mysql_db):
    seen: list[int] = []
    with connection(mysql_db) as conn:
        run_on_connections(
            conn,
            [_sleep_then_id] * 5,
            connect=lambda: connection(mysql_db),
            connections=2,
            after_each=seen.append,
        )
    assert seen == [1, 2, 3, 4, 5]
