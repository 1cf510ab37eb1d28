"""The Dagster instance of the stack and the tests (`devstack/instance.py`): PostgreSQL in a
fresh database of its own with the URL only in the environment, SQLite otherwise; the shipped
settings (run retries, run monitoring); a step retried for a transient MySQL error only."""

import argparse
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pymysql
import pytest
import yaml
from dotenv import dotenv_values

from migration_assets.defs import step_retries as retries
from migration_assets.devstack.instance import (
    INSTANCE_URL_ENV,
    PG_URL_ENV,
    SHIPPED_INSTANCE,
    InstanceStorageError,
    connect,
    create_instance,
    remove_instance,
)
from migration_assets.devstack.processes import free_loopback_port

from .helpers import require_postgres

REPO = Path(__file__).resolve().parents[1]


def _databases(server: str) -> set[str]:
    connection = connect(server)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            return {name for (name,) in cursor.fetchall()}
    finally:
        connection.close()


def test_a_postgres_instance_has_its_own_database_and_no_url_in_its_file(tmp_path, monkeypatch):
    server = require_postgres()
    instance_dir = create_instance(tmp_path / "home", "postgres")
    try:
        assert instance_dir.database in _databases(server)
        text = (tmp_path / "home" / "dagster.yaml").read_text()
        config = yaml.safe_load(text)
        assert config["storage"] == {"postgres": {"postgres_url": {"env": INSTANCE_URL_ENV}}}
        assert "127.0.0.1" not in text and "postgresql://" not in text
        assert config["run_retries"]["enabled"] and config["run_monitoring"]["enabled"]
        for key, value in instance_dir.environment().items():
            monkeypatch.setenv(key, value)
        with dg.DagsterInstance.get() as instance:  # a run written lands in that database
            run = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), run_id=None)
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert instance.get_run_by_id(run.run_id) is not None
            assert instance.run_retries_max_retries == 3
            assert not instance.run_retries_retry_on_asset_or_op_failure
            assert instance.run_monitoring_enabled
    finally:
        remove_instance(instance_dir)
    assert instance_dir.database not in _databases(server)
    assert not (tmp_path / "home").exists()


def test_the_ecs_instance_storage_reaches_postgres_through_psycopg2(tmp_path, monkeypatch):
    """deploy/ecs/dagster.yaml's `storage` section, its variables pointed at this server."""
    server = require_postgres()
    scratch = create_instance(tmp_path / "scratch", "postgres")  # a fresh database to use
    try:
        parts = urlsplit(server)
        variables = {
            "DAGSTER_PG_HOST": parts.hostname or "",
            "DAGSTER_PG_PORT": str(parts.port or 5432),
            "DAGSTER_PG_USERNAME": parts.username or "",
            "DAGSTER_PG_PASSWORD": parts.password or "",
            "DAGSTER_PG_DB": scratch.database or "",
        }
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        ecs = yaml.safe_load((REPO / "deploy" / "ecs" / "dagster.yaml").read_text())
        home = tmp_path / "ecs"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": ecs["storage"]}))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert instance.get_runs_count() == 0
    finally:
        remove_instance(scratch)


def test_sqlite_when_asked_and_the_shipped_settings_kept(tmp_path):
    instance_dir = create_instance(tmp_path / "home", "sqlite")
    assert instance_dir.storage == "sqlite" and instance_dir.environment() == {
        "DAGSTER_HOME": str(tmp_path / "home")
    }
    config = yaml.safe_load((tmp_path / "home" / "dagster.yaml").read_text())
    assert "storage" not in config
    assert config == yaml.safe_load(SHIPPED_INSTANCE.read_text())
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
    with pytest.raises(InstanceStorageError, match="exists"):
        create_instance(tmp_path / "home", "sqlite")


def test_an_unreachable_configured_server_is_an_error_without_its_password(tmp_path, monkeypatch):
    port = free_loopback_port()  # nothing listens there
    monkeypatch.setenv(PG_URL_ENV, f"postgresql://dagster:s3cret@127.0.0.1:{port}/postgres")
    with pytest.raises(InstanceStorageError) as error:
        create_instance(tmp_path / "home", "auto")
    message = str(error.value)
    assert PG_URL_ENV in message and f"dagster:***@127.0.0.1:{port}" in message
    assert "s3cret" not in message
    assert not (tmp_path / "home" / "dagster.yaml").exists()


def _flaky(fail_with: Exception, attempts: list[int]) -> dg.AssetsDefinition:
    @dg.asset
    @retries.step_retries
    def flaky(context: dg.AssetExecutionContext) -> None:
        attempts.append(context.retry_number)
        if len(attempts) == 1:
            raise fail_with

    return flaky


def test_a_transient_mysql_error_retries_the_step_and_another_error_does_not(monkeypatch):
    monkeypatch.setattr(retries, "STEP_RETRY_WAIT_S", 0)
    attempts: list[int] = []
    lost = pymysql.err.OperationalError(2013, "Lost connection to server during query")
    result = dg.materialize([_flaky(lost, attempts)], instance=dg.DagsterInstance.ephemeral())
    assert result.success and attempts == [0, 1]

    attempts.clear()
    refused = pymysql.err.ProgrammingError(1146, "Table 'orders' doesn't exist")
    result = dg.materialize(
        [_flaky(refused, attempts)], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success and attempts == [0]


def test_stack_up_puts_the_instance_in_a_fresh_database_and_down_drops_it(tmp_path, monkeypatch):
    """`make stack-up` / `make stack-down` (`make dev` starts the same), in a scratch folder."""
    server = require_postgres()
    from migration_assets.devstack import __main__ as cli

    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(cli, "WORK_DIR", tmp_path / ".devstack")
    monkeypatch.setattr(cli, "STATE_PATH", tmp_path / ".devstack" / "state.json")
    monkeypatch.setattr(cli, "ENV_PATH", tmp_path / ".env")
    monkeypatch.delenv("MIGRATION_MYSQL_URL", raising=False)
    args = argparse.Namespace(days=0)
    state = cli.cmd_up(args)
    try:
        assert state.dagster_database in _databases(server)
        env = dotenv_values(tmp_path / ".env")
        home = tmp_path / ".devstack" / "dagster_home"
        assert env["DAGSTER_HOME"] == str(home)
        assert env[INSTANCE_URL_ENV].endswith(f"/{state.dagster_database}")
        written = (home / "dagster.yaml").read_text()
        assert f"env: {INSTANCE_URL_ENV}" in written and "127.0.0.1" not in written
        assert "postgresql" not in (tmp_path / ".devstack" / "state.json").read_text()
    finally:
        cli.cmd_down(args)
    assert state.dagster_database not in _databases(server)
    assert not (tmp_path / ".env").exists()
