"""The Dagster instance of the local stack, the benchmarks and the tests: its runs, events and
schedules in PostgreSQL when a server is reachable, in SQLite files otherwise.

PostgreSQL is what a deployment uses (`deploy/ecs/dagster.yaml`): many run workers, a daemon
and a webserver write at once, which SQLite serialises. The server is `MIGRATION_DAGSTER_PG_URL`
(`postgresql://user[:password]@host:port/maintenance_db`) when set, else the machine's own
server at 127.0.0.1:5432 if it answers. Each instance gets a fresh database of its own (so two
stacks or tests never mix their runs), dropped when the instance is removed.

The instance's `dagster.yaml` is the shipped one (`dagster_home/dagster.yaml`: pools, run
queue, run retries, run monitoring) plus `storage: postgres: postgres_url: {env: ...}`: the URL
reaches Dagster through the environment only, never through a file or a log line.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml

SHIPPED_INSTANCE = Path(__file__).resolve().parents[2] / "dagster_home" / "dagster.yaml"
PG_URL_ENV = "MIGRATION_DAGSTER_PG_URL"  # the server (any database on it; trust or password)
INSTANCE_URL_ENV = "MIGRATION_DAGSTER_PG_INSTANCE_URL"  # this instance's own database
LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
Storage = Literal["auto", "postgres", "sqlite"]
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class InstanceStorageError(RuntimeError):
    """The PostgreSQL server asked for cannot be used (the message names the setting)."""


def masked(url: str) -> str:
    """`url` with its password replaced by ***, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=netloc[0].split(":", 1)[0] + ":***@" + netloc[1]))


def sqlalchemy_url(url: str, database: str) -> str:
    """The libpq URL `url` on `database`, for Dagster: SQLAlchemy 2.1 reads a bare
    `postgresql://` as the psycopg 3 driver, and dagster-postgres ships psycopg2."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql+psycopg2", path="/" + database))


def connect(url: str, timeout_s: int = 3) -> Any:
    """An autocommit psycopg2 connection to the server `url` (libpq form)."""
    import psycopg2  # dagster-postgres's driver; imported late (only when PostgreSQL is used)

    connection = psycopg2.connect(url, connect_timeout=timeout_s)
    connection.autocommit = True  # CREATE / DROP DATABASE cannot run in a transaction
    return connection


def _execute(url: str, statement: str) -> None:
    connection = connect(url)  # not `with connection`: that opens a transaction (psycopg2 2.9)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def postgres_server(storage: Storage = "auto") -> str | None:
    """The server URL to use, or None for SQLite. `MIGRATION_DAGSTER_PG_URL` must answer when
    set (a typo must not silently fall back to SQLite); the local server is used if it does."""
    if storage == "sqlite":
        return None
    configured = os.environ.get(PG_URL_ENV)
    url = configured or LOCAL_SERVER_URL
    try:
        connect(url).close()
    except Exception as exc:
        if configured or storage == "postgres":
            setting = PG_URL_ENV if configured else f"the local server ({LOCAL_SERVER_URL})"
            raise InstanceStorageError(
                f"PostgreSQL for the Dagster instance: cannot connect to {masked(url)} "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}); check "
                f"{setting}, or unset {PG_URL_ENV} to use SQLite"
            ) from None
        return None
    return url


@dataclass(frozen=True)
class InstanceDir:
    """A Dagster instance directory; `environment()` is what its processes need."""

    home: Path
    database: str | None = None  # PostgreSQL database; None: SQLite files under `home`
    server_url: str | None = field(default=None, repr=False)

    @property
    def storage(self) -> str:
        return "postgres" if self.database else "sqlite"

    def environment(self) -> dict[str, str]:
        env = {"DAGSTER_HOME": str(self.home)}
        if self.database and self.server_url:
            env[INSTANCE_URL_ENV] = sqlalchemy_url(self.server_url, self.database)
        return env


def instance_yaml(postgres: bool, base: Path = SHIPPED_INSTANCE) -> str:
    config = yaml.safe_load(base.read_text())
    header = f"# written from {base.name} by migration_assets.devstack.instance"
    if postgres:
        config["storage"] = {"postgres": {"postgres_url": {"env": INSTANCE_URL_ENV}}}
        header += f"; PostgreSQL: the database URL is in ${INSTANCE_URL_ENV}"
    return header + "\n" + yaml.safe_dump(config, sort_keys=False)


def create_instance(home: Path, storage: Storage = "auto", name: str | None = None) -> InstanceDir:
    """A fresh instance in `home` (created; must not hold an instance yet) and, with
    PostgreSQL, a fresh database `dagster_<name>` for it."""
    server = postgres_server(storage)
    home.mkdir(parents=True, exist_ok=True)
    if (home / "dagster.yaml").exists():
        raise InstanceStorageError(f"{home / 'dagster.yaml'} exists; remove the instance first")
    database = None
    if server is not None:
        database = f"dagster_{name or uuid.uuid4().hex[:12]}".lower()
        if not _DATABASE_NAME.match(database):
            raise InstanceStorageError(f"instance name {name!r}: letters, digits and _ only")
        _execute(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _execute(server, f'CREATE DATABASE "{database}"')
    (home / "dagster.yaml").write_text(instance_yaml(postgres=database is not None))
    return InstanceDir(home, database, server)


def remove_instance(instance: InstanceDir) -> None:
    """Drop the instance's database (sessions still connected are ended) and its directory."""
    if instance.database and instance.server_url:
        _execute(instance.server_url, f'DROP DATABASE IF EXISTS "{instance.database}" WITH (FORCE)')
    shutil.rmtree(instance.home, ignore_errors=True)
