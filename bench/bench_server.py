"""The MySQL server a benchmark runs against: `MIGRATION_MYSQL_URL`, else a throwaway MariaDB."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from migration_assets.devstack.mysql_server import start_throwaway_mysql
from migration_assets.devstack.processes import stop_pid
from migration_assets.mysql.connection import MySQLSettings, ensure_database, parse_mysql_url


@contextmanager
def bench_database(name: str) -> Iterator[MySQLSettings]:
    """A database `name` on the configured server, or on a throwaway one stopped afterwards."""
    server = None
    try:
        if os.environ.get("MIGRATION_MYSQL_URL"):
            settings = parse_mysql_url(os.environ["MIGRATION_MYSQL_URL"]).with_database(name)
        else:
            server = start_throwaway_mysql(Path(tempfile.mkdtemp(prefix=f"{name}-")))
            settings = MySQLSettings("127.0.0.1", server.port, "root", "", name)
        ensure_database(settings)
        yield settings
    finally:
        if server is not None:
            stop_pid(server.pid, timeout_s=60)
