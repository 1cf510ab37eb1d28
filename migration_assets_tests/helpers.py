"""Small helpers shared by the tests."""

from __future__ import annotations

import dagster as dg

from migration_assets.definitions import build_assets


def assets_named(spec, *names: str, with_checks: bool = False) -> list:
    """The named assets of `spec` (and, if asked, the checks that target them)."""
    chosen = []
    for definition in build_assets(spec):
        if isinstance(definition, dg.AssetChecksDefinition):
            targets = {key.asset_key.to_user_string() for key in definition.check_keys}
            if with_checks and targets <= set(names):
                chosen.append(definition)
        elif definition.key.to_user_string() in names:
            chosen.append(definition)
    return chosen
