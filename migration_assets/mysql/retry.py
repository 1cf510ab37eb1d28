"""Retry MySQL work that failed for a transient reason; everything else fails at once.

Transient: the connection was lost or refused (server restart, failover), a deadlock, a lock
wait timeout. The work passed in opens its own connection and must be idempotent (every
load and merge step here is), so running it again after a half-done attempt is safe.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import pymysql

from .connection import MySQLConnectError

T = TypeVar("T")
TRANSIENT_CODES = frozenset({1205, 1213, 2003, 2006, 2013, 2055})  # lock wait, deadlock, gone


def error_code(exc: BaseException) -> int | None:
    if isinstance(exc, MySQLConnectError):
        return exc.code
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _is_transient_itself(exc: BaseException) -> bool:
    return error_code(exc) in TRANSIENT_CODES or isinstance(
        exc, pymysql.err.InterfaceError | ConnectionError
    )


def transient_cause(exc: BaseException) -> BaseException | None:
    """The transient error `exc` is or was raised while handling, if any: when the server
    dies during LOAD DATA LOCAL INFILE, pymysql closes the socket on the "server has gone
    away" error and then fails writing to it (AttributeError), so the lost connection is
    only in the exception's context (found by the fault-injection suite)."""
    seen: BaseException | None = exc
    for _ in range(10):  # a bounded walk down the chain
        if seen is None:
            return None
        if _is_transient_itself(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def is_transient(exc: BaseException) -> bool:
    return transient_cause(exc) is not None


def with_retries(
    work: Callable[[], T],
    *,
    attempts: int = 5,
    base_s: float = 1.0,
    cap_s: float = 30.0,
    log: Callable[[str], None] = lambda message: None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `work`, retrying transient MySQL errors with full-jitter exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            pause = random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))
            cause = transient_cause(exc) or exc
            log(
                f"transient MySQL error {error_code(cause)} ({type(cause).__name__}: "
                f"{str(cause)[:200]}) (attempt {attempt}/{attempts}); retrying in {pause:.1f} s"
            )
            sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover
