"""Beyond one machine: the Pipes entry point, the engine wiring and the ECS instance config.

The entry point runs for real through Dagster Pipes (`PipesSubprocessClient`: a real
subprocess, the real protocol) from the shipped bundle, against the moto server. EMR Serverless
and Glue are only emulated by moto (a job run is recorded and reported finished; nothing runs),
so those tests prove what the Dagster side sends and that a run which reported nothing fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import configurable_class_data
from dagster_aws.pipes import (
    PipesEMRServerlessClient,
    PipesGlueClient,
    PipesS3ContextInjector,
    PipesS3MessageReader,
)
from dagster_aws.s3 import S3Resource

from migration_assets.defs.dynamodb.assets import build_dynamodb_export
from migration_assets.defs.parquet.assets import build_parquet_partitions
from migration_assets.defs.partitions import daily_partitions
from migration_assets.defs.resources import (
    DynamoDBResource,
    PipesParquetEngine,
    parquet_engine_from_env,
)
from migration_assets.devstack.seed import seed
from migration_assets.remote.bundle import build_bundle
from migration_assets.spec import EXAMPLE_SPEC, load_spec, parse_spec, spec_document

DAYS = ["2023-01-01", "2023-01-02"]
RANGE = {
    "dagster/asset_partition_range_start": DAYS[0],
    "dagster/asset_partition_range_end": DAYS[-1],
}
TIMING = {"run_seconds", "items_per_second"}  # the run's clock: differs between any two runs
PARQUET = dg.AssetKey("parquet_partitions")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_bundle(tmp_path_factory.mktemp("pipes-bundle"))


@pytest.fixture
def resources(stack) -> dict:
    return {
        "s3": S3Resource(endpoint_url=stack.aws_endpoint_url, max_attempts=3),
        "dynamodb": DynamoDBResource(endpoint_url=stack.aws_endpoint_url),
    }


def subprocess_engine(bundle, s3_client=None, bucket: str | None = None) -> PipesParquetEngine:
    """The entry point in a local subprocess, importing migration_assets from the bundle's zip;
    with `bucket`, context and messages go through S3 as on EMR Serverless and Glue."""

    def new_client() -> dg.PipesClient:
        channel = {}
        if bucket:
            channel = {
                "context_injector": PipesS3ContextInjector(
                    bucket=bucket, client=s3_client, key_prefix="dagster-pipes/"
                ),
                "message_reader": PipesS3MessageReader(
                    bucket=bucket, client=s3_client, interval=0.5
                ),
            }
        return dg.PipesSubprocessClient(env={"PYTHONPATH": str(bundle["package"])}, **channel)

    command = [sys.executable, str(bundle["entry_point"])]
    return PipesParquetEngine("a local subprocess", new_client, {"command": command})


def written(s3, spec) -> dict[str, str]:
    """sha256 of every object under the Parquet prefix that parquet_partitions writes (days,
    manifests, census, the export's split), not dynamodb_export's records."""
    prefix = spec.s3.parquet_prefix
    theirs = (f"{prefix}/_coverage/", f"{prefix}/_verified/")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=spec.s3.bucket, Prefix=f"{prefix}/"
    ):
        for item in page.get("Contents", []):
            if not item["Key"].startswith(theirs):
                body = s3.get_object(Bucket=spec.s3.bucket, Key=item["Key"])["Body"].read()
                found[item["Key"]] = hashlib.sha256(body).hexdigest()
    return found


def failure_description(result: dg.ExecuteInProcessResult) -> str:
    failure = result.failure_data_for_node("parquet_partitions")
    assert failure is not None and failure.user_failure_data is not None, failure
    return failure.user_failure_data.description


def test_the_pipes_entry_point_writes_what_the_local_path_writes(
    spec, resources, s3_client, dynamodb_client, bundle
):
    """Two days converted in-process, then again by the entry point through Pipes (S3
    context and messages, the package from the bundle's zip): the same objects byte for byte,
    and each day's materialization carries the same metadata."""
    seed(
        spec,
        s3=s3_client,
        dynamodb=dynamodb_client,
        mysql=None,
        days=[dt.date.fromisoformat(day) for day in DAYS],
        items_per_day=1500,
    )
    partitions = daily_partitions(spec)
    instance = dg.DagsterInstance.ephemeral()
    local = [build_dynamodb_export(spec, partitions), build_parquet_partitions(spec, partitions)]
    assert dg.materialize(local, resources=resources, tags=RANGE, instance=instance).success
    local_objects = written(s3_client, spec)
    assert sum("/dt=" in key and key.endswith(".parquet") for key in local_objects) >= 2
    assert any("/_split/" in key for key in local_objects)  # the full export's split too
    for key in local_objects:  # nothing left for the remote run to reuse
        s3_client.delete_object(Bucket=spec.s3.bucket, Key=key)

    remote = build_parquet_partitions(
        spec, partitions, subprocess_engine(bundle, s3_client, spec.s3.bucket)
    )
    result = dg.materialize([remote], resources=resources, tags=RANGE, instance=instance)
    assert result.success
    assert written(s3_client, spec) == local_objects

    by_day_seconds = {}
    logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("migration_assets.zip" in message for message in logs), "ran from the bundle"
    for day in DAYS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PARQUET, asset_partitions=[day]), limit=2
        ).records
        assert [r.run_id for r in records][0] == result.run_id and len(records) == 2
        by_pipes, in_process = (r.asset_materialization.metadata for r in records)
        by_day_seconds[day] = by_pipes["seconds"]
        assert set(by_pipes) == set(in_process)
        assert {k: v for k, v in by_pipes.items() if k not in TIMING} == {
            k: v for k, v in in_process.items() if k not in TIMING
        }
        assert by_pipes["rows"].value > 1000 and by_pipes["files_read"].value >= 1
        assert by_pipes["partition"] == dg.MetadataValue.path(
            f"s3://{spec.s3.bucket}/{spec.s3.parquet_prefix}/dt={day}/"
        )
        assert by_pipes["seconds"].data["first_second"] == f"{day}T00:00:00+00:00"

    # a one-day run reports the day's per-second summary too (the run's clock once replaced it)
    single = dg.materialize([remote], resources=resources, partition_key=DAYS[0])
    (event,) = single.asset_materializations_for_node("parquet_partitions")
    assert event.metadata["seconds"] == by_day_seconds[DAYS[0]]
    assert isinstance(event.metadata["run_seconds"].value, float)


def test_a_conversion_error_fails_the_step_with_the_same_message(spec, resources, bundle):
    """A day without coverage, in-process and through Pipes (default protocol: temp files
    and environment variables): both fail with the conversion's own message."""
    partitions = daily_partitions(spec)
    outcomes = [
        dg.materialize(
            [build_parquet_partitions(spec, partitions, engine)],
            partition_key="2023-01-03",
            resources=resources,
            raise_on_error=False,
        )
        for engine in (None, subprocess_engine(bundle))
    ]
    assert [r.success for r in outcomes] == [False, False]
    local, remote = map(failure_description, outcomes)
    assert local == remote
    assert "no coverage is recorded for 2023-01-03" in remote


def test_the_entry_point_imports_no_dagster(bundle):
    """The remote side needs dagster-pipes, never dagster (not installed on EMR/Glue)."""
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('entry', {str(bundle['entry_point'])!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "import migration_assets\n"
        "print(migration_assets.__file__)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dagster_aws'}))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(bundle["package"]), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=bundle["package"].parent,
    ).stdout.splitlines()
    assert output == [f"{bundle['package']}/migration_assets/__init__.py", "[]"]
    assert bundle["requirements"].read_text().split() == [
        "pyarrow==26.0.1",
        "numpy==2.4.6",
        "isal==1.9.1",
        "PyYAML==6.0.3",
        "boto3==1.44.5",
        "dagster-pipes==1.13.27",
    ]


def test_the_spec_travels_as_a_document():
    """What the Dagster side puts in the Pipes extras parses back into the same spec."""
    example = load_spec(EXAMPLE_SPEC)
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data["partitions"]["end"] = "2024-01-01"
    data["dynamodb"].update(mode="scan", scan={"target_rcu_per_s": 500, "segments": 8})
    data["legacy_copy"] = {
        "source_table": "table01",
        "time_column": "created_at",
        "bigint_columns": ["customer_id"],
    }
    for spec in (example, parse_spec(data)):
        document = json.loads(json.dumps(spec_document(spec)))
        assert parse_spec(document) == spec


EMR_ENV = {
    "MIGRATION_PARQUET_ENGINE": "emr_serverless",
    "MIGRATION_PIPES_BUCKET": "pipes-bucket",
    "MIGRATION_EMR_APPLICATION_ID": "00fabc",
    "MIGRATION_EMR_EXECUTION_ROLE_ARN": "arn:aws:iam::111122223333:role/migration-emr",
    "MIGRATION_PIPES_ENTRY_POINT": "s3://code-bucket/pipes/convert_entry.py",
    "MIGRATION_EMR_SPARK_SUBMIT_PARAMETERS": "--py-files s3://code-bucket/pipes/migration_assets.zip",
}


def test_the_engine_is_chosen_and_built_from_the_environment(stack):
    """Construction only: the clients, their S3 channel and their job parameters."""
    assert parquet_engine_from_env({}) is None
    assert parquet_engine_from_env({"MIGRATION_PARQUET_ENGINE": "local"}) is None
    with pytest.raises(ValueError, match="MIGRATION_PARQUET_ENGINE='spark' is not one of"):
        parquet_engine_from_env({"MIGRATION_PARQUET_ENGINE": "spark"})
    incomplete = {**EMR_ENV, "MIGRATION_EMR_APPLICATION_ID": "", "MIGRATION_PIPES_ENTRY_POINT": ""}
    with pytest.raises(
        ValueError, match="needs MIGRATION_EMR_APPLICATION_ID, MIGRATION_PIPES_ENTRY_POINT"
    ):
        parquet_engine_from_env(incomplete)

    emr = parquet_engine_from_env(EMR_ENV)
    client = emr.new_client()
    assert isinstance(client, PipesEMRServerlessClient)
    assert client.client.meta.service_model.service_name == "emr-serverless"
    assert isinstance(client.context_injector, PipesS3ContextInjector)
    assert client.context_injector.bucket == "pipes-bucket"
    assert isinstance(client.message_reader, PipesS3MessageReader)
    assert client.message_reader.bucket == "pipes-bucket"
    assert emr.new_client().message_reader is not client.message_reader  # one per step
    params = emr.run_args["start_job_run_params"]
    assert params["applicationId"] == "00fabc"
    assert params["executionRoleArn"] == EMR_ENV["MIGRATION_EMR_EXECUTION_ROLE_ARN"]
    assert params["jobDriver"]["sparkSubmit"] == {
        "entryPoint": "s3://code-bucket/pipes/convert_entry.py",
        "sparkSubmitParameters": EMR_ENV["MIGRATION_EMR_SPARK_SUBMIT_PARAMETERS"],
    }

    with pytest.raises(ValueError, match="needs MIGRATION_GLUE_JOB_NAME"):
        parquet_engine_from_env({"MIGRATION_PARQUET_ENGINE": "glue", "MIGRATION_PIPES_BUCKET": "b"})
    glue = parquet_engine_from_env(
        {
            "MIGRATION_PARQUET_ENGINE": "glue",
            "MIGRATION_PIPES_BUCKET": "pipes-bucket",
            "MIGRATION_GLUE_JOB_NAME": "migration-convert",
        }
    )
    assert isinstance(glue.new_client(), PipesGlueClient)
    assert glue.run_args == {"start_job_run_params": {"JobName": "migration-convert"}}


def test_the_definitions_hand_parquet_to_the_configured_engine(spec, monkeypatch, stack):
    from migration_assets.definitions import build_definitions

    def description(defs: dg.Definitions) -> str:
        return defs.resolve_assets_def(PARQUET).specs_by_key[PARQUET].description or ""

    assert "through Dagster Pipes" not in description(build_definitions(spec))
    for name, value in EMR_ENV.items():
        monkeypatch.setenv(name, value)
    assert "Converted on EMR Serverless through Dagster Pipes" in description(
        build_definitions(spec)
    )


def test_emr_serverless_through_moto_records_the_job_run_and_fails_on_silence(
    spec, resources, stack, s3_client, monkeypatch
):
    """moto records StartJobRun and reports it SUCCESS at once, running nothing: the request
    our wiring sent is real (botocore validates it against the service model, the Pipes
    bootstrap included), and a job that reported no day fails the step instead of passing."""
    emr = _aws_client(stack, "emr-serverless")
    application = emr.create_application(name="migration", releaseLabel="emr-7.5.0", type="SPARK")
    env = {
        **EMR_ENV,
        "MIGRATION_PIPES_BUCKET": spec.s3.bucket,
        "MIGRATION_EMR_APPLICATION_ID": application["applicationId"],
        "MIGRATION_EMR_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/migration-emr",
    }  # moto's own account: it refuses to pass another account's role
    engine = parquet_engine_from_env(env)
    result = _fails_on_silence(spec, engine, resources)
    (run,) = emr.list_job_runs(applicationId=application["applicationId"])["jobRuns"]
    job = emr.get_job_run(applicationId=application["applicationId"], jobRunId=run["id"])["jobRun"]
    submit = job["jobDriver"]["sparkSubmit"]
    assert submit["entryPoint"] == EMR_ENV["MIGRATION_PIPES_ENTRY_POINT"]
    parameters = submit["sparkSubmitParameters"]
    assert parameters.startswith(env["MIGRATION_EMR_SPARK_SUBMIT_PARAMETERS"])
    assert "spark.emr-serverless.driverEnv.DAGSTER_PIPES_CONTEXT=" in parameters
    assert result.run_id in job["tags"].values()  # Pipes tags the job run with the Dagster run


def test_glue_through_moto_records_the_job_run_and_fails_on_silence(
    spec, resources, stack, monkeypatch
):
    glue = _aws_client(stack, "glue")
    glue.create_job(
        Name="migration-convert",
        Role="arn:aws:iam::111122223333:role/migration-glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://code-bucket/pipes/convert_entry.py"},
    )
    engine = parquet_engine_from_env(
        {
            "MIGRATION_PARQUET_ENGINE": "glue",
            "MIGRATION_PIPES_BUCKET": spec.s3.bucket,
            "MIGRATION_GLUE_JOB_NAME": "migration-convert",
        }
    )
    _fails_on_silence(spec, engine, resources)
    (run,) = glue.get_job_runs(JobName="migration-convert")["JobRuns"]
    assert {"--dagster-pipes-context", "--dagster-pipes-messages"} <= set(run["Arguments"])


def _fails_on_silence(spec, engine, resources) -> dg.ExecuteInProcessResult:
    """moto records a job run and runs nothing: the step must fail, saying no day came back."""
    result = dg.materialize(
        [build_parquet_partitions(spec, daily_partitions(spec), engine)],
        partition_key="2023-01-01",
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    assert "ended without reporting the days 2023-01-01" in failure_description(result)
    return result


def _aws_client(stack, service: str):
    import boto3

    return boto3.client(service, endpoint_url=stack.aws_endpoint_url, region_name="us-east-1")


def test_the_ecs_instance_config_loads(tmp_path, monkeypatch, stack):
    """deploy/ecs/dagster.yaml validates against Dagster's instance schema with its variables
    set, its run launcher and compute log manager build, and its limits load into an instance.
    Not tested: Postgres (dagster-postgres is not installed here) and anything on ECS."""
    variables = {
        "DAGSTER_PG_HOST": "dagster-db.internal",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USERNAME": "dagster",
        "DAGSTER_PG_PASSWORD": "not-a-secret",
        "DAGSTER_PG_DB": "dagster",
        "DAGSTER_COMPUTE_LOGS_BUCKET": "compute-logs",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    shutil.copy(REPO / "deploy" / "ecs" / "dagster.yaml", tmp_path / "dagster.yaml")
    config, custom_instance = dagster_instance_config(str(tmp_path))
    assert custom_instance is None
    assert config["storage"]["postgres"]["postgres_db"]["hostname"] == {"env": "DAGSTER_PG_HOST"}

    from dagster._core.launcher import RunLauncher
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    launcher = configurable_class_data(config["run_launcher"]).rehydrate(RunLauncher)
    assert isinstance(launcher, EcsRunLauncher)
    assert launcher.run_resources == {"cpu": "4096", "memory": "16384", "ephemeral_storage": 100}
    assert "MIGRATION_PARQUET_ENGINE" in launcher.env_vars
    logs = configurable_class_data(config["compute_logs"]).rehydrate(S3ComputeLogManager)
    assert logs._s3_bucket == "compute-logs"  # the variable was resolved

    aws_only = ("storage", "run_launcher", "compute_logs")
    local = {key: value for key, value in config.items() if key not in aws_only}
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(local))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 2 and pools.pool_granularity.value == "op"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 10
        assert queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 6}]
        assert instance.run_retries_max_retries == 2
