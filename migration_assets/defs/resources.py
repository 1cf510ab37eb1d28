"""Dagster resources: S3 (dagster-aws), DynamoDB (boto3) and MySQL (pymysql), and where
`parquet_partitions` converts (in-process, or Dagster Pipes to EMR Serverless or Glue).

Thin wrappers over `aws.py` and `mysql/connection.py`. All honour `AWS_ENDPOINT_URL` and the
standard AWS variables; the MySQL URL comes from `MIGRATION_MYSQL_URL` through `EnvVar`, so
the UI and run config never show it, and errors carry a redacted URL only.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import dagster as dg
import pymysql
from dagster_aws.s3 import S3Resource
from pydantic import Field

from ..aws import RetryMode, aws_client, retry_config
from ..mysql.connection import MySQLSettings, connection, parse_mysql_url


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


_S3_CLIENTS: dict[str, Any] = {}
_S3_CLIENTS_LOCK = threading.Lock()


class SharedS3Resource(S3Resource):
    """dagster-aws's `S3Resource` with one client per process and settings. Building a client
    costs ~0.2 s of CPU (botocore parses its S3 model again for every session), and a run
    built one for every step and every `get_client` call: ~1 s of a one-day run, all of it
    on the run's critical path (py-spy, bench_e2e). boto3 clients are thread-safe."""

    def get_client(self) -> Any:
        aws_environment = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
        key = json.dumps([self.model_dump(mode="json"), aws_environment])
        with _S3_CLIENTS_LOCK:
            if key not in _S3_CLIENTS:
                _S3_CLIENTS[key] = super().get_client()
            return _S3_CLIENTS[key]


MYSQL_POOL = "mysql"  # limited in dagster_home/dagster.yaml (pools: default_limit)
CONNECTIONS_ENV_VAR = "MIGRATION_MYSQL_CONNECTIONS_PER_STEP"
DEFAULT_CONNECTIONS, MAX_CONNECTIONS = 2, 16


class MySQLResource(dg.ConfigurableResource):
    """Connections to the target MySQL/Aurora database, always closed after use."""

    url: str = Field(
        description="mysql://user:password@host:port/database (MIGRATION_MYSQL_URL).", repr=False
    )
    connections_per_step: int = Field(
        default=DEFAULT_CONNECTIONS,
        ge=1,
        le=MAX_CONNECTIONS,
        description=(
            "Connections a MySQL step uses at once for independent statements (a day's merge "
            "chunks, the halves of a check's join); MIGRATION_MYSQL_CONNECTIONS_PER_STEP."
        ),
    )
    connect_timeout_s: int = 10

    def __repr__(self) -> str:
        return f"MySQLResource(url={_redacted(self.url)!r})"

    __str__ = __repr__

    def settings(self) -> MySQLSettings:
        return replace(parse_mysql_url(self.url), connect_timeout_s=self.connect_timeout_s)

    def parallel(self) -> dict[str, Any]:
        """Keyword arguments that let a function run independent statements on more
        connections (`connect`, `connections`: `mysql/parallel.py`)."""
        return {"connect": self.connect, "connections": self.connections_per_step}

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


def connections_from_env(environ: Mapping[str, str] | None = None) -> int:
    """`MIGRATION_MYSQL_CONNECTIONS_PER_STEP` (default 2), refused by name when not within
    `MySQLResource.connections_per_step`'s bounds."""
    raw = (os.environ if environ is None else environ).get(CONNECTIONS_ENV_VAR)
    if raw is None:
        return DEFAULT_CONNECTIONS
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_CONNECTIONS:
        raise ValueError(
            f"{CONNECTIONS_ENV_VAR} must be a whole number from 1 to {MAX_CONNECTIONS}, not {raw!r}"
        )
    return int(raw)


def default_resources() -> dict[str, Any]:
    """Resources configured from the environment (see the README's variable table)."""
    return {
        "s3": SharedS3Resource(max_attempts=10),
        "dynamodb": DynamoDBResource(),
        "mysql": MySQLResource(
            url=dg.EnvVar("MIGRATION_MYSQL_URL"),
            connections_per_step=connections_from_env(),
        ),
    }


PARQUET_ENGINE_ENV_VAR = "MIGRATION_PARQUET_ENGINE"
PARQUET_ENGINES = ("local", "emr_serverless", "glue")


class PipesParquetEngine:
    """Runs `remote/convert_entry.py` through a Dagster Pipes client made by `new_client`, with
    the arguments of its `run` other than the context and the extras (they differ per client).

    A fresh client per step: dagster-aws's S3 message reader counts message chunks across
    sessions, so a reused one waits for chunk 2 of the next session and sees nothing (found
    by test_pipes: a second run in one process failed that way)."""

    def __init__(
        self,
        name: str,
        new_client: Callable[[], dg.PipesClient],
        run_args: Mapping[str, Any],
    ) -> None:
        self.name, self.new_client, self.run_args = name, new_client, dict(run_args)

    def run(
        self, context: dg.AssetExecutionContext, extras: dict[str, Any]
    ) -> dg.PipesClientCompletedInvocation:
        # the AWS clients add tags and arguments to the params they are given: a fresh copy
        return self.new_client().run(context=context, extras=extras, **copy.deepcopy(self.run_args))


def parquet_engine_from_env(environ: Mapping[str, str] | None = None) -> PipesParquetEngine | None:
    """`MIGRATION_PARQUET_ENGINE`: `local` (default: None, convert in-process), `emr_serverless`
    or `glue`. Remote engines exchange the Pipes context and messages through S3
    (`MIGRATION_PIPES_BUCKET`), which both services can reach without CloudWatch set-up."""
    environ = os.environ if environ is None else environ
    name = environ.get(PARQUET_ENGINE_ENV_VAR) or "local"
    if name not in PARQUET_ENGINES:
        raise ValueError(
            f"{PARQUET_ENGINE_ENV_VAR}={name!r} is not one of {', '.join(PARQUET_ENGINES)}"
        )
    if name == "local":
        return None
    from dagster_aws.pipes import (
        PipesEMRServerlessClient,
        PipesGlueClient,
        PipesS3ContextInjector,
        PipesS3MessageReader,
    )

    def required(*keys: str) -> list[str]:
        missing = [key for key in keys if not environ.get(key)]
        if missing:
            raise ValueError(
                f"{PARQUET_ENGINE_ENV_VAR}={name} needs {', '.join(missing)} (README: Running "
                "beyond one machine)"
            )
        return [environ[key] for key in keys]

    (bucket,) = required("MIGRATION_PIPES_BUCKET")

    def channel() -> dict[str, Any]:
        s3 = aws_client("s3", config=retry_config(10))
        return {
            "context_injector": PipesS3ContextInjector(
                bucket=bucket, client=s3, key_prefix="dagster-pipes/"
            ),
            "message_reader": PipesS3MessageReader(bucket=bucket, client=s3, interval=5),
        }

    if name == "glue":
        (job,) = required("MIGRATION_GLUE_JOB_NAME")
        return PipesParquetEngine(
            "Glue",
            lambda: PipesGlueClient(
                client=aws_client("glue", config=retry_config(10)), **channel()
            ),
            {"start_job_run_params": {"JobName": job}},
        )
    application, role, entry_point = required(
        "MIGRATION_EMR_APPLICATION_ID",
        "MIGRATION_EMR_EXECUTION_ROLE_ARN",
        "MIGRATION_PIPES_ENTRY_POINT",
    )
    params = {
        "applicationId": application,
        "executionRoleArn": role,
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": entry_point,
                "sparkSubmitParameters": environ.get("MIGRATION_EMR_SPARK_SUBMIT_PARAMETERS", ""),
            }
        },
    }
    return PipesParquetEngine(
        "EMR Serverless",
        lambda: PipesEMRServerlessClient(
            client=aws_client("emr-serverless", config=retry_config(10)), **channel()
        ),
        {"start_job_run_params": params},
    )
