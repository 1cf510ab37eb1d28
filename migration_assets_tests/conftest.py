"""Real servers for the tests: one moto server and one MySQL server per test session.

MySQL comes from `MIGRATION_MYSQL_URL` when set, otherwise from a throwaway MariaDB that
the devstack starts; each test that needs the database gets a fresh database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.config import Config

from migration_assets.devstack.processes import exported
from migration_assets.devstack.stack import StackState, start_stack, stop_stack
from migration_assets.mysql.connection import MySQLSettings, connection, ensure_database
from migration_assets.spec import EXAMPLE_SPEC, MigrationSpec, parse_spec


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackState]:
    state = start_stack(tmp_path_factory.mktemp("devstack"))
    try:
        with exported(state.environment()):
            yield state
    finally:
        stop_stack(state)


@pytest.fixture(scope="session")
def aws_endpoint(stack: StackState) -> str:
    return stack.aws_endpoint_url


def _client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


@pytest.fixture(scope="session")
def s3_client(aws_endpoint: str):
    return _client("s3", aws_endpoint)


@pytest.fixture(scope="session")
def dynamodb_client(aws_endpoint: str):
    return _client("dynamodb", aws_endpoint)


@pytest.fixture
def bucket(s3_client) -> str:
    """A fresh, empty bucket on the moto server."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def mysql_db(stack: StackState) -> Iterator[MySQLSettings]:
    """A fresh database on the session's MySQL server, dropped afterwards."""
    settings = stack.mysql.with_database(f"t_{uuid.uuid4().hex[:12]}")
    ensure_database(settings)
    try:
        yield settings
    finally:
        with connection(settings, database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{settings.database}`")


@pytest.fixture
def spec(bucket: str) -> MigrationSpec:
    """The example spec, pointed at this test's own bucket and DynamoDB table."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["s3"]["bucket"] = bucket
    data["dynamodb"]["table"] = f"orders_{bucket[-8:]}"
    return parse_spec(data)


@pytest.fixture
def resources(stack: StackState, mysql_db: MySQLSettings) -> dict:
    """The code location's resources, pointed at the local stack and this test's database."""
    from dagster_aws.s3 import S3Resource

    from migration_assets.defs.resources import DynamoDBResource, MySQLResource

    return {
        "s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3),
        "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
        "mysql": MySQLResource(url=mysql_db.url),
    }


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
