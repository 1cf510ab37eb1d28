"""What every benchmark shares: the MySQL server it runs against (`MIGRATION_MYSQL_URL`, else a
throwaway MariaDB), timing, the server's CPU, results as JSON and RESULTS.md headers."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from migration_assets.devstack.mysql_server import start_throwaway_mysql
from migration_assets.devstack.processes import stop_pid
from migration_assets.mysql.connection import MySQLSettings, ensure_database, parse_mysql_url

REPO = Path(__file__).resolve().parents[1]


def write_json(result: object, path: Path | None) -> None:
    """A benchmark's result as JSON in `path` (when given), for RESULTS.md and comparisons."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")


def server_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process (the MySQL server) has used so far (Linux)."""
    if pid is None:
        return None
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def bench_database(name: str) -> Iterator[MySQLSettings]:
    """A database `name` on the configured server, or on a throwaway one stopped afterwards."""
    with bench_server(name) as (settings, _):
        yield settings


@contextmanager
def bench_server(name: str) -> Iterator[tuple[MySQLSettings, int | None]]:
    """`bench_database` and the server's process id (None for `MIGRATION_MYSQL_URL`)."""
    server = None
    try:
        if os.environ.get("MIGRATION_MYSQL_URL"):
            settings = parse_mysql_url(os.environ["MIGRATION_MYSQL_URL"]).with_database(name)
        else:
            server = start_throwaway_mysql(Path(tempfile.mkdtemp(prefix=f"{name}-")))
            settings = MySQLSettings("127.0.0.1", server.port, "root", "", name)
        ensure_database(settings)
        yield settings, server.pid if server is not None else None
    finally:
        if server is not None:
            stop_pid(server.pid, timeout_s=60)


def timed(function) -> float:
    """Seconds `function()` takes."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def median_time(function, repeat: int) -> float:
    """The median of `repeat` timings of `function()`."""
    return statistics.median(timed(function) for _ in range(repeat))
