"""Dagster resources: S3 (dagster-aws), DynamoDB (boto3) and MySQL (pymysql).

Thin wrappers over `aws.py` and `mysql/connection.py`. All honour `AWS_ENDPOINT_URL` and the
standard AWS variables; the MySQL URL comes from `MIGRATION_MYSQL_URL` through `EnvVar`, so
the UI and run config never show it, and errors carry a redacted URL only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pymysql
from dagster_aws.s3 import S3Resource
from pydantic import Field

from .aws import RetryMode, aws_client, retry_config
from .mysql.connection import MySQLSettings, connection, parse_mysql_url


class DynamoDBResource(dg.ConfigurableResource):
    """A boto3 DynamoDB client with an explicit retry policy (exports, scans, describe)."""

    region_name: str | None = Field(
        default=None, description="Default: AWS_REGION / AWS_DEFAULT_REGION."
    )
    endpoint_url: str | None = Field(default=None, description="Default: AWS_ENDPOINT_URL.")
    max_attempts: int = Field(default=10, description="Attempts per call, first one included.")
    retry_mode: RetryMode = Field(default="standard", description="botocore retry mode.")
    connect_timeout_s: float = 10
    read_timeout_s: float = 60

    def get_client(self, max_attempts: int | None = None) -> Any:
        """`max_attempts=1` for scan mode: its rate controller must see every throttle."""
        return aws_client(
            "dynamodb",
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            config=retry_config(
                max_attempts or self.max_attempts,
                self.retry_mode,
                self.connect_timeout_s,
                self.read_timeout_s,
            ),
        )


class MySQLResource(dg.ConfigurableResource):
    """Connections to the target MySQL/Aurora database, always closed after use."""

    url: str = Field(
        description="mysql://user:password@host:port/database (MIGRATION_MYSQL_URL).", repr=False
    )
    connect_timeout_s: int = 10

    def __repr__(self) -> str:
        return f"MySQLResource(url={_redacted(self.url)!r})"

    __str__ = __repr__

    def settings(self) -> MySQLSettings:
        settings = parse_mysql_url(self.url)
        return MySQLSettings(
            settings.host,
            settings.port,
            settings.user,
            settings.password,
            settings.database,
            connect_timeout_s=self.connect_timeout_s,
        )

    @contextlib.contextmanager
    def connect(self) -> Iterator[pymysql.Connection]:
        """UTC session, local infile enabled, autocommit off; closed however the block ends."""
        with connection(self.settings()) as conn:
            yield conn


def _redacted(url: object) -> str:
    if not isinstance(url, str):
        return repr(url)  # an unresolved EnvVar: only the variable's name
    try:
        return parse_mysql_url(url).redacted_url
    except ValueError:
        return "(invalid URL)"


def default_resources() -> dict[str, Any]:
    """Resources configured from the environment (see the README's variable table)."""
    return {
        "s3": S3Resource(max_attempts=10),
        "dynamodb": DynamoDBResource(),
        "mysql": MySQLResource(url=dg.EnvVar("MIGRATION_MYSQL_URL")),
    }
