"""How one migration's definitions are named in the code location: the one place that decides.

With one spec (`MIGRATION_SPEC` a file, or the bundled example) every name is today's
(`target_table`, `bigint_cutover`, `dynamodb_export_sensor`): the contract. With several
(a folder of specs, or `MigrationComponent`s), each migration carries its spec's `name`:
asset keys get it as a prefix (`orders/target_table`) and it is the assets' group; jobs,
ops, sensors and schedules cannot hold a `/` (Dagster names are `[A-Za-z0-9_]+`), so theirs
are `<name>__<today's name>` (`orders__bigint_cutover`). Check names stay as they are: a
check is named within its asset's key. The `mysql` pool is not named per migration: one
pool for all, so its limit protects the one server.

Every builder takes a `Naming` and asks it for each key, group and name it declares or
looks up (a dependency, a sensor's selection, a job by name), so no name is renamed after
the fact and nothing that finds another definition by key can miss it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

SEPARATOR = "__"
VALID_PREFIX = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Naming:
    """`prefix`: None for the one-spec code location (today's names), else the spec's name."""

    prefix: str | None = None

    def __post_init__(self) -> None:
        if self.prefix is not None and not VALID_PREFIX.match(self.prefix):
            raise ValueError(
                f"{self.prefix!r} cannot prefix Dagster names: use letters, digits and _"
            )

    @property
    def key_prefix(self) -> list[str]:
        """For `@dg.asset(key_prefix=...)`."""
        return [self.prefix] if self.prefix else []

    def key(self, asset: str) -> dg.AssetKey:
        """The key of one of the migration's assets (`target_table`, `orders/target_table`)."""
        return dg.AssetKey([*self.key_prefix, asset])

    def group(self, domain: str) -> str:
        """One group per migration when there are several; the domain's group otherwise."""
        return self.prefix or domain

    def name(self, name: str) -> str:
        """A job, op, sensor or schedule name (`bigint_cutover`, `orders__bigint_cutover`)."""
        return f"{self.prefix}{SEPARATOR}{name}" if self.prefix else name

    def tags(self) -> dict[str, str]:
        """Tags that tell one migration's runs from another's (none with one spec)."""
        return {MIGRATION_TAG: self.prefix} if self.prefix else {}


MIGRATION_TAG = "migration/name"
SINGLE = Naming()
