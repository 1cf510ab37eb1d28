"""The local stack's bookkeeping: the env file Dagster reads, state that survives processes."""

from __future__ import annotations

import subprocess
import sys

from dotenv import dotenv_values

from migration_assets.devstack.processes import port_accepts
from migration_assets.devstack.stack import (
    StackState,
    load_state,
    save_state,
    start_stack,
    stop_stack,
    write_env_file,
)
from migration_assets.mysql.connection import connection


def test_env_file_round_trips_through_dotenv_and_is_private(tmp_path):
    path = tmp_path / ".env"
    variables = {
        "MIGRATION_MYSQL_URL": "mysql://u:p%40ss@127.0.0.1:3306/db",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "ODD": "it's a value",
    }
    write_env_file(path, variables)
    assert dotenv_values(path) == variables
    assert path.stat().st_mode & 0o777 == 0o600


def test_stack_state_survives_and_stop_kills_what_started(tmp_path, monkeypatch):
    monkeypatch.delenv("MIGRATION_MYSQL_URL", raising=False)
    state = start_stack(tmp_path / "stack")
    try:
        assert state.mysql_pid is not None  # the throwaway server path
        save_state(state, tmp_path / "state.json")
        loaded = load_state(tmp_path / "state.json")
        assert loaded == state
        assert port_accepts(state.mysql.port)
        assert port_accepts(int(state.aws_endpoint_url.rsplit(":", 1)[1]))
    finally:
        stop_stack(state)
    assert not port_accepts(state.mysql.port)
    assert not (tmp_path / "stack" / "mysql").exists()  # throwaway data removed
    assert load_state(tmp_path / "state.json") is None  # moto is gone, so the state is stale


def test_existing_server_from_mysql_url_is_used_not_started(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRATION_MYSQL_URL", stack.mysql.with_database("from_url").url)
    state: StackState = start_stack(tmp_path / "stack")
    try:
        assert state.mysql_pid is None
        assert state.mysql.database == "from_url" and state.mysql.port == stack.mysql.port
    finally:
        stop_stack(state)
        with connection(state.mysql, database=False) as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS `from_url`")
    assert port_accepts(stack.mysql.port)  # an existing server is never stopped


def test_cli_help_lists_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "migration_assets.devstack", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("up", "down", "env", "demo", "dev", "seed"):
        assert command in result.stdout
