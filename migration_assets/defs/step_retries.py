"""A step that failed for a transient MySQL reason is retried by Dagster; any other failure is
final for the run.

The MySQL steps already retry each statement's transient errors (`mysql/retry.py`: a lost
connection, a deadlock, a lock wait timeout) for about half a minute. A server restart or a
failover can take longer: then the step asks Dagster to run it again after a pause (the
step's work is idempotent: every asset replaces its days), at most `STEP_RETRIES` times. A
check that does not pass, bad input or a schema conflict is not transient and fails at once;
the run is then not retried either (`run_retries.retry_on_asset_or_op_failure: false` in the
instance), so a failed proof is never re-run in a loop.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import dagster as dg

from ..mysql.retry import error_code, transient_cause

STEP_RETRIES = 3
STEP_RETRY_WAIT_S = 20  # a MariaDB restart on this machine: ~5-15 s
F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def retried_when_transient(context: Any) -> Iterator[None]:
    """Turn a transient MySQL error escaping the block into a step retry (`RetryRequested`)."""
    try:
        yield
    except Exception as exc:
        cause = transient_cause(exc)
        if cause is None:
            raise
        context.log.warning(
            f"transient MySQL error {error_code(cause)} ({type(cause).__name__}) outlasted the "
            f"statement retries; the step runs again in {STEP_RETRY_WAIT_S} s (at most "
            f"{STEP_RETRIES} times)"
        )
        raise dg.RetryRequested(
            max_retries=STEP_RETRIES, seconds_to_wait=STEP_RETRY_WAIT_S
        ) from exc


def step_retries(body: F) -> F:
    """`retried_when_transient` around a step function whose first argument is its context."""

    @functools.wraps(body)
    def wrapped(context: Any, *args: Any, **kwargs: Any) -> Any:
        with retried_when_transient(context):
            return body(context, *args, **kwargs)

    return wrapped  # type: ignore[return-value]
