"""Several migrations in one code location: the specs of a folder, and the conflicts refused.

`MIGRATION_SPEC` naming a folder means one migration per `*.yaml` file in it (sorted by file
name; subfolders are not read). Before anything is defined, let alone run, two migrations
that would step on each other are refused, naming both files:

- one MySQL table written by both: the target, the staging table, or the bookkeeping tables
  derived from them (`<staging>_unmatched`, `<target>_capture`, `<target>_changed_days`);
- one legacy table copied by both, or one's legacy table written by the other (the cutover
  renames the new table to the legacy table's name);
- one S3 Parquet prefix in the same bucket, or one inside the other (`parquet/orders` and
  `parquet/orders/eu`: a day's listing or cleanup of one would see the other's files);
- one `name` (it prefixes the asset keys, jobs and groups of its migration).

Reading one DynamoDB table's exports for two MySQL tables is allowed: both only read there.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from .mysql.binlog import capture_table, changed_days_table
from .mysql.ddl import unmatched_table
from .spec import SPEC_ENV_VAR, MigrationSpec, SpecError, load_spec


class MigrationConflictError(ValueError):
    """Two migrations of one code location would write the same place."""


@dataclass(frozen=True)
class Migrations:
    """The code location's migrations; `several` says whether names carry the spec's name."""

    specs: tuple[MigrationSpec, ...]
    several: bool


def written_tables(spec: MigrationSpec) -> set[str]:
    """Every MySQL table the migration creates or writes (lower case: MySQL on a
    case-insensitive file system, and Aurora's default, treat `Orders` and `orders` alike)."""
    tables = {spec.mysql.temp_table, unmatched_table(spec), spec.mysql.target_table}
    if spec.legacy_copy is not None:
        tables |= {capture_table(spec), changed_days_table(spec)}
    return {table.lower() for table in tables}


def _legacy(spec: MigrationSpec) -> str | None:
    return spec.legacy_copy.source_table.lower() if spec.legacy_copy else None


def _inside(a: str, b: str) -> bool:
    """Whether S3 prefix `a` is `b` or lies under it, path segment by path segment."""
    a_parts, b_parts = a.strip("/").split("/"), b.strip("/").split("/")
    return a_parts[: len(b_parts)] == b_parts


def conflicts(a: MigrationSpec, b: MigrationSpec) -> list[str]:
    """Why migrations `a` and `b` cannot share a code location (empty: they can)."""
    found = []
    if a.name == b.name:
        found.append(f"both are named {a.name!r} (name prefixes each migration's assets)")
    shared = sorted(written_tables(a) & written_tables(b))
    if shared:
        found.append(f"both write MySQL table(s) {', '.join(shared)}")
    legacy_a, legacy_b = _legacy(a), _legacy(b)
    if legacy_a and legacy_a == legacy_b:
        found.append(f"both copy legacy table {legacy_a} (legacy_copy.source_table)")
    for legacy, spec, other in ((legacy_a, b, a), (legacy_b, a, b)):
        if legacy and legacy in written_tables(spec):
            found.append(
                f"{spec.source} writes {legacy}, the legacy table {other.source} copies "
                "and cuts over"
            )
    pa, pb = a.s3.parquet_prefix, b.s3.parquet_prefix
    if a.s3.bucket == b.s3.bucket and (_inside(pa, pb) or _inside(pb, pa)):
        same = "the same" if _inside(pa, pb) and _inside(pb, pa) else "overlapping"
        found.append(
            f"{same} s3.parquet_prefix in bucket {a.s3.bucket}: {pa!r} and {pb!r} "
            "(give each migration its own prefix)"
        )
    return found


def check_conflicts(specs: list[MigrationSpec] | tuple[MigrationSpec, ...]) -> None:
    """Refuse, naming both files of every conflicting pair, all problems at once."""
    problems = [
        f"{a.source} and {b.source}: {why}"
        for a, b in itertools.combinations(specs, 2)
        for why in conflicts(a, b)
    ]
    if problems:
        raise MigrationConflictError(
            "these migrations cannot share a code location:\n  " + "\n  ".join(problems)
        )


def spec_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".yaml" and p.is_file())
    if not files:
        raise SpecError(str(folder), ["no *.yaml spec file in the folder"])
    return files


def load_migrations(path: str | os.PathLike[str] | None = None) -> Migrations:
    """`path`, else `$MIGRATION_SPEC`, else the bundled example: a file is one migration with
    today's names; a folder is one migration per `*.yaml` file, each named by its spec."""
    raw = path or os.environ.get(SPEC_ENV_VAR)
    if raw and Path(raw).is_dir():
        errors: list[SpecError] = []
        specs = []
        for file in spec_files(Path(raw)):
            try:
                specs.append(load_spec(file))
            except SpecError as exc:  # every file's problems at once
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:  # each line names the folder, then its file and key
            raise SpecError(str(raw), [line for e in errors for line in str(e).splitlines()])
        check_conflicts(specs)
        return Migrations(tuple(specs), several=True)
    return Migrations((load_spec(raw),), several=False)
