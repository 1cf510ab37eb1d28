"""Dagster Pipes entry point: `parquet_partitions`' conversion on EMR Serverless or Glue.

Runs the exact function the in-process asset runs (`parquet/convert_day.convert_days`) and sends its
result back over Pipes, one custom message per day plus one for the run
(`Conversion.messages`); the Dagster side turns them into the per-day materializations.
Imports nothing from Dagster but `dagster_pipes`: it needs Python 3.11+, pyarrow, numpy, isal,
PyYAML, boto3, dagster-pipes and the `migration_assets` package (`remote/bundle.py` builds
the zip and the requirements file).

Pipes parameters arrive as environment variables (EMR Serverless: `spark.emr-serverless.
driverEnv.*`; a local subprocess) or as `--dagster-pipes-*` arguments (Glue); the context and
the messages go through S3 when the launching side says so (`PipesS3ContextInjector`,
`PipesS3MessageReader`), else through the defaults (files, stdio).

Extras: `spec` (the spec document, `spec.spec_document`) or `spec_path` (a YAML file readable
here), and `days` (`YYYY-MM-DD`, the run's partition keys: Pipes sends no partition key
for a range of days). Each day's coverage (which exports) is read from S3, where
`dynamodb_export` recorded it, exactly as in-process.
"""

from __future__ import annotations

import sys
from typing import Any

from dagster_pipes import (
    PipesCliArgsParamsLoader,
    PipesContext,
    PipesContextLoader,
    PipesDefaultContextLoader,
    PipesDefaultMessageWriter,
    PipesEnvVarParamsLoader,
    PipesMessageWriter,
    PipesParamsLoader,
    PipesS3ContextLoader,
    PipesS3MessageWriter,
    open_dagster_pipes,
)

import migration_assets
from migration_assets.aws import aws_client, retry_config
from migration_assets.days import parse_day
from migration_assets.parquet.convert_day import CONVERSION_ERRORS, convert_days
from migration_assets.spec import MigrationSpec, load_spec, parse_spec


def params_loader() -> PipesParamsLoader:
    """Command-line arguments when given (Glue), else environment variables."""
    cli = PipesCliArgsParamsLoader()
    return cli if cli.is_dagster_pipes_process() else PipesEnvVarParamsLoader()


def open_pipes(s3: Any) -> PipesContext:
    """Open Pipes with the S3 loader/writer when the launching side uses S3, else defaults."""
    loader = params_loader()
    if not loader.is_dagster_pipes_process():
        raise SystemExit("convert_entry.py runs under Dagster Pipes (parquet_partitions)")
    context_loader: PipesContextLoader = (
        PipesS3ContextLoader(s3)
        if "bucket" in loader.load_context_params()
        else PipesDefaultContextLoader()
    )
    message_writer: PipesMessageWriter = (
        PipesS3MessageWriter(s3, interval=5)
        if "bucket" in loader.load_messages_params()
        else PipesDefaultMessageWriter()
    )
    return open_dagster_pipes(
        context_loader=context_loader, message_writer=message_writer, params_loader=loader
    )


def spec_from_extras(pipes: PipesContext) -> MigrationSpec:
    if "spec" in pipes.extras:
        return parse_spec(pipes.get_extra("spec"), source="Pipes extras: spec")
    return load_spec(pipes.get_extra("spec_path"))


def main() -> int:
    s3 = aws_client("s3", config=retry_config(10))  # what S3Resource(max_attempts=10) makes
    with open_pipes(s3) as pipes:
        spec = spec_from_extras(pipes)
        days = [parse_day(day) for day in pipes.get_extra("days")]
        pipes.log.info(
            f"converting {len(days)} day(s) of {spec.name} with migration_assets from "
            f"{migration_assets.__file__}"
        )
        try:
            conversion = convert_days(s3, spec, days, log=pipes.log.info)
        except CONVERSION_ERRORS as exc:
            # the job did its work: Dagster fails the step with this message, as in-process
            pipes.report_custom_message({"failure": str(exc)})
            return 0
        for message in conversion.messages():
            pipes.report_custom_message(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
