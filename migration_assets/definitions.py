"""The code location: `defs`, built from the migration spec(s).

- `MIGRATION_SPEC` a spec file: one migration with today's names (the contract);
- `MIGRATION_SPEC` a folder: one migration per `*.yaml` file, each prefixed by its spec's
  `name` (`defs/naming.py`), conflicts refused (`migrations.py`);
- unset: the `MigrationComponent`s declared under `migration_assets/tables/` (dg's defs
  folder), each prefixed by its name, if there is any; else the bundled example spec.

`bigint_table_copy` and its jobs (catch-up, cutover; with change capture the binlog drain
and its schedule) are present when a spec has a `legacy_copy` section.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from .defs.component import MigrationComponent
from .defs.location import build_assets, build_code_location, build_definitions
from .migrations import load_migrations
from .spec import SPEC_ENV_VAR

__all__ = ["build_assets", "build_code_location", "build_definitions", "defs"]


def declared_components() -> dg.Definitions | None:
    """The definitions of the components under `migration_assets/tables/` (None: there are
    none). Loaded from the module, not the project's pyproject.toml, so an installed package
    (a container image without the source tree) loads them the same way."""
    from . import tables

    tree = dg.ComponentTree.from_module(tables, project_root=Path(__file__).resolve().parents[1])
    if not tree.get_all_components(MigrationComponent):
        return None
    return tree.build_defs()


def build_defs() -> dg.Definitions:
    if not os.environ.get(SPEC_ENV_VAR):
        components = declared_components()
        if components is not None:
            return components
    return build_code_location(load_migrations())


defs = build_defs()
