"""Start, describe and stop the whole local stack; write the environment Dagster needs.

`up` records what it started in `.devstack/state.json` and writes `.env` (which
`dagster dev` reads), so `down` — from any later process — stops exactly those servers.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ..mysql.connection import MySQLSettings, ensure_database, parse_mysql_url
from .moto_server import start_moto
from .mysql_server import start_throwaway_mysql
from .processes import pid_alive, stop_pid

LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class StackState:
    moto_pid: int
    aws_endpoint_url: str
    mysql_url: str
    mysql_pid: int | None = None  # None when MIGRATION_MYSQL_URL pointed at an existing server
    mysql_dir: str | None = None
    dagster_home: str | None = None  # set by `up` when the instance is in PostgreSQL
    dagster_database: str | None = None  # that instance's database (devstack/instance.py)

    @property
    def mysql(self) -> MySQLSettings:
        return parse_mysql_url(self.mysql_url)

    def environment(self) -> dict[str, str]:
        """Variables a process needs to run the pipeline against this stack."""
        return {
            **LOCAL_AWS_ENV,
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "MIGRATION_MYSQL_URL": self.mysql_url,
        }


def start_stack(work_dir: Path, database: str = "migration") -> StackState:
    """Start moto and (unless `MIGRATION_MYSQL_URL` is set) a throwaway MySQL server."""
    work_dir.mkdir(parents=True, exist_ok=True)
    moto = start_moto(work_dir / "logs")
    try:
        configured = os.environ.get("MIGRATION_MYSQL_URL")
        if configured:
            settings = parse_mysql_url(configured)
            state = StackState(moto.pid, moto.endpoint_url, settings.url)
        else:
            mysql_dir = work_dir / "mysql"
            server = start_throwaway_mysql(mysql_dir)
            settings = server.settings(database)
            state = StackState(
                moto.pid, moto.endpoint_url, settings.url, server.pid, str(mysql_dir)
            )
        ensure_database(settings)
    except BaseException:
        stop_pid(moto.pid)
        if "server" in locals():
            stop_pid(server.pid)
        raise
    return state


def stop_stack(state: StackState, *, remove_data: bool = True) -> None:
    if pid_alive(state.moto_pid):
        stop_pid(state.moto_pid)
    if state.mysql_pid is not None:
        stop_pid(state.mysql_pid, timeout_s=60)
        if remove_data and state.mysql_dir:
            shutil.rmtree(state.mysql_dir, ignore_errors=True)


def save_state(state: StackState, state_path: Path) -> None:
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(asdict(state), indent=2))
    state_path.chmod(0o600)


def load_state(state_path: Path) -> StackState | None:
    if not state_path.exists():
        return None
    state = StackState(**json.loads(state_path.read_text()))
    alive = pid_alive(state.moto_pid) or (
        state.mysql_pid is not None and pid_alive(state.mysql_pid)
    )
    return state if alive else None


def write_env_file(path: Path, variables: dict[str, str]) -> None:
    """A dotenv file (`dagster dev` loads it); owner-readable only, it holds a DB URL."""
    lines = [f"{key}={_dotenv_quote(value)}" for key, value in sorted(variables.items())]
    path.write_text(
        "# written by `python -m migration_assets.devstack up`; do not commit\n"
        + "\n".join(lines)
        + "\n"
    )
    path.chmod(0o600)


def _dotenv_quote(value: str) -> str:
    if all(ch.isalnum() or ch in "-_./:@%+=," for ch in value):
        return value
    return "'" + value.replace("'", "\\'") + "'"
