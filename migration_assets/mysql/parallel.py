"""Independent statements of one step on more than one connection at once.

MySQL runs one statement on one core. A step alone on the server (a one-day run) leaves the
other cores idle while its statements run one after another; a day's merge chunks and the
halves of a check's join are independent, so they run on `connections` connections at once
(1.4x for a 1,000,000-row merge on two, `bench/RESULTS.md`). Each extra connection is opened
for the call and closed after it, whatever happens.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
Connect = Callable[[], contextlib.AbstractContextManager[Any]]


def run_on_connections(
    conn: Any,
    tasks: Sequence[Callable[[Any], T]],
    *,
    connect: Connect | None = None,
    connections: int = 1,
    setup: Callable[[Any], None] | None = None,
    after_each: Callable[[int], None] | None = None,
) -> list[T]:
    """Each of `tasks` called with a connection, results in task order: `conn` (this thread)
    and up to `connections - 1` connections from `connect` (threads) take the next task when
    they are free. The first failure stops the hand-out of tasks and is raised once every
    running task has ended (a task's own transaction is the unit of failure). `setup(conn)`
    runs once on every connection before its first task; `after_each(tasks done so far)`
    after each task, one call at a time (a failure there counts as the task's)."""
    if connections < 1:
        raise ValueError("connections must be at least 1")
    extra = min(connections, len(tasks)) - 1 if connect is not None else 0
    results: list[Any] = [None] * len(tasks)
    failures: list[BaseException] = []
    lock = threading.Lock()
    pending = iter(range(len(tasks)))
    done = [0]

    def next_task() -> int | None:
        with lock:
            return None if failures else next(pending, None)

    def work(on: Any) -> None:
        try:
            if setup is not None:
                setup(on)
            while (index := next_task()) is not None:
                results[index] = tasks[index](on)
                if after_each is not None:
                    with lock:
                        done[0] += 1
                        after_each(done[0])
        except BaseException as exc:  # raised in the caller's thread below
            with lock:
                failures.append(exc)

    def work_on_new_connection() -> None:
        assert connect is not None
        try:
            with connect() as own:
                work(own)
        except BaseException as exc:  # e.g. the connection was refused
            with lock:
                failures.append(exc)

    threads = [
        threading.Thread(target=work_on_new_connection, name=f"mysql-{n + 1}", daemon=True)
        for n in range(max(extra, 0))
    ]
    for thread in threads:
        thread.start()
    work(conn)
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results
