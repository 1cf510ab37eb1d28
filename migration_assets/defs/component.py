"""`MigrationComponent`: one table migration declared in YAML, a Dagster component.

```yaml
# <defs folder>/orders/defs.yaml (`dg scaffold defs migration_assets.MigrationComponent orders`)
type: migration_assets.MigrationComponent
attributes:        # the migration spec, exactly as in a spec file (docs/design.md section 3)
  name: orders
  ...
```

The attributes are parsed by `spec.parse_spec`, the same strict parser as `MIGRATION_SPEC`
files: every problem at once, each naming the `defs.yaml` and the key. A component's
definitions always carry its spec's `name` (`orders/target_table`, `orders__bigint_cutover`;
`naming.py`): a defs folder is the several-migrations layout. Before building, each component
refuses conflicts with every other `MigrationComponent` of the tree (`migrations.py`),
naming both files; all share one set of resources, so one `mysql` pool.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import dagster as dg
from dagster.components.component_scaffolding import scaffold_component
from dagster.components.scaffold.scaffold import ScaffoldRequest, scaffold_with
from pydantic import BaseModel, ConfigDict

from ..migrations import check_conflicts
from ..spec import EXAMPLE_SPEC, MigrationSpec, SpecError, parse_spec
from .location import migration_definitions, shared_definitions
from .naming import Naming


class SpecAttributes(BaseModel):
    """Any mapping: the spec parser, not pydantic, judges it (one source of the format)."""

    model_config = ConfigDict(extra="allow")


@functools.cache
def _shared() -> dg.Definitions:
    """One resources object per key for every component: `Definitions.merge` refuses two."""
    return shared_definitions()


def scaffold_spec(name: str) -> dict[str, Any]:
    """The bundled example as a starting point, renamed after the new folder so it conflicts
    with nothing: its own tables and Parquet prefix, no legacy copy."""
    import yaml

    spec = yaml.safe_load(EXAMPLE_SPEC.read_text())
    spec.pop("legacy_copy", None)
    spec["name"] = name
    spec["mysql"].update(temp_table=f"{name}_stage", target_table=name)
    spec["s3"].update(export_prefix=f"exports/{name}", parquet_prefix=f"parquet/{name}")
    spec["dynamodb"]["table"] = name
    return spec


class MigrationScaffolder(dg.Scaffolder):
    """`dg scaffold defs migration_assets.MigrationComponent <name>`: a valid spec to edit."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        name = Path(request.target_path).name.replace("-", "_")
        scaffold_component(request, scaffold_spec(name))


@scaffold_with(MigrationScaffolder)
class MigrationComponent(dg.Component):
    """One DynamoDB table's migration into Aurora MySQL; the attributes are the migration spec
    (docs/design.md section 3). Assets, checks, sensor, schedules and jobs carry the spec's
    `name` as prefix and group."""

    def __init__(self, spec: MigrationSpec):
        self.spec = spec

    @classmethod
    def get_model_cls(cls) -> type[BaseModel]:
        return SpecAttributes

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> Any:
        path = Path(context.path)
        path = path / "defs.yaml" if path.is_dir() else path
        with contextlib.suppress(ValueError):
            path = path.relative_to(Path(context.project_root))
        if attributes is None:
            raise SpecError(str(path), ["attributes: missing (they are the migration spec)"])
        return cls(parse_spec(attributes.model_dump(), f"{path} attributes"))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        check_conflicts([c.spec for c in context.component_tree.get_all_components(type(self))])
        return dg.Definitions.merge(
            migration_definitions(self.spec, Naming(self.spec.name)), _shared()
        )
