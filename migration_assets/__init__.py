"""Migrate a live DynamoDB table into Aurora MySQL, one proven UTC day at a time.

`migration_assets.MigrationComponent` (the YAML component type, `defs/component.py`) is
imported on first access only, so importing the core (the Pipes entry point on EMR or Glue,
the tests of plain modules) loads no Dagster.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "MigrationComponent":
        from .defs.component import MigrationComponent

        return MigrationComponent
    raise AttributeError(f"module 'migration_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), "MigrationComponent"]
