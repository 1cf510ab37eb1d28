"""The layering the folders promise, read from the source (ast, nothing imported).

- Core modules (everything in `migration_assets/` but the Dagster shell `defs/` +
  `definitions.py` and the local stack `devstack/`) import no Dagster, no shell and no
  local stack. The one exception is the Pipes entry point that runs remotely: it speaks
  Pipes through `dagster_pipes` (a small client without Dagster) and nothing else of it.
- No two top-level parts of the package (subpackages and modules) import each other,
  directly or through others: the data path reads in one direction.
- No module holds more than 15 % of the package's lines; no test module imports another
  (shared helpers live in `helpers.py`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "migration_assets"
TESTS = Path(__file__).resolve().parent
ROOT = "migration_assets"
SHELL = ("defs", "definitions")  # the Dagster shell
LOCAL_STACK = ("devstack",)
PIPES_ENTRY = {f"{ROOT}.remote.convert_entry": ("dagster_pipes",)}
# `migration_assets.MigrationComponent`: the package's lazy (PEP 562) export of the YAML
# component type, imported on first access only; nothing else of the shell
LAZY_EXPORTS = {ROOT: (f"{ROOT}.defs.component",)}
MAX_SHARE = 0.15


def module_name(path: Path, base: Path = PACKAGE) -> str:
    parts = list(path.relative_to(base.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, base: Path = PACKAGE) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in the file, function bodies included."""
    name = module_name(path, base)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package[: len(package) - node.level + 1]
                module = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            if node.module is None:  # `from . import x`: x may be a module
                yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)


def top_part(module: str) -> str | None:
    """`dynamodb` for `migration_assets.dynamodb.scan`; None outside the package."""
    parts = module.split(".")
    return parts[1] if parts[0] == ROOT and len(parts) > 1 else None


def package_modules(base: Path = PACKAGE) -> list[Path]:
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def layering_violations(base: Path = PACKAGE) -> list[str]:
    """Every import of a core module that reaches Dagster, the shell or the local stack."""
    found = []
    for path in package_modules(base):
        name = module_name(path, base)
        if top_part(name) in SHELL + LOCAL_STACK:
            continue
        allowed = PIPES_ENTRY.get(name, ())
        for line, module in imported(path, base):
            first = module.split(".")[0]
            if first.startswith("dagster") and first not in allowed:
                found.append(f"{path.relative_to(base.parent)}:{line} imports {module} (Dagster)")
            elif top_part(module) in SHELL and module not in LAZY_EXPORTS.get(name, ()):
                found.append(f"{path.relative_to(base.parent)}:{line} imports {module} (shell)")
            elif top_part(module) in LOCAL_STACK:
                found.append(f"{path.relative_to(base.parent)}:{line} imports {module} (devstack)")
    return found


def part_graph(base: Path = PACKAGE) -> dict[str, dict[str, str]]:
    """part -> {part it imports: one place where it does}."""
    graph: dict[str, dict[str, str]] = {}
    for path in package_modules(base):
        source = top_part(module_name(path, base))
        if source is None:
            continue
        edges = graph.setdefault(source, {})
        for line, module in imported(path, base):
            target = top_part(module)
            if target is not None and target != source:
                edges.setdefault(target, f"{path.relative_to(base.parent)}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected groups of more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_core_imports_no_dagster_shell_or_local_stack():
    assert layering_violations() == []


def test_no_two_parts_of_the_package_import_each_other():
    graph = part_graph()
    found = [
        " <-> ".join(group)
        + ": "
        + "; ".join(
            f"{a}->{b} at {graph[a][b]}" for a in group for b in group if b in graph.get(a, {})
        )
        for group in cycles(graph)
    ]
    assert found == []


def test_the_rule_sees_what_it_forbids(tmp_path):
    """A core module importing Dagster, and two parts importing each other, are found."""
    base = tmp_path / ROOT
    (base / "core").mkdir(parents=True)
    (base / "defs").mkdir()
    for init in (base, base / "core", base / "defs"):
        (init / "__init__.py").write_text("")
    (base / "core" / "a.py").write_text("def f():\n    import dagster as dg\n")
    (base / "core" / "b.py").write_text("from ..defs import assets\nfrom ..other import x\n")
    (base / "other.py").write_text("from .core import a\n")
    (base / "defs" / "assets.py").write_text("import dagster\nfrom ..core import a\n")
    assert layering_violations(base) == [
        f"{ROOT}/core/a.py:2 imports dagster (Dagster)",
        f"{ROOT}/core/b.py:1 imports {ROOT}.defs (shell)",
    ]
    assert cycles(part_graph(base)) == [["core", "defs", "other"]]


def test_no_module_holds_more_than_15_percent_of_the_package():
    lines = {p: len(p.read_text().splitlines()) for p in package_modules()}
    total = sum(lines.values())
    largest = max(lines, key=lines.__getitem__)
    assert lines[largest] <= MAX_SHARE * total, (
        f"{largest.relative_to(PACKAGE.parent)} holds {lines[largest]} of {total} lines"
    )


def test_no_test_module_imports_another():
    found = [
        f"{path.name}:{line} imports {module}"
        for path in sorted(TESTS.glob("*.py"))
        for line, module in imported(path, TESTS)
        if module.split(".")[-1].startswith("test_")
    ]
    assert found == []
