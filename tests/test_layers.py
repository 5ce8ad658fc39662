"""The package map of ARCHITECTURE.md, checked on every import statement in ``automl/``.

ruff's banned-api keeps each third-party library behind its door only as far as per-file
ignores allow; this reads every ``import`` (module level and inside functions) and checks both
rules: capabilities never import each other, and each library enters through one package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "automl"
CAPABILITIES = ("data", "drift", "tuning", "tracking")
BASE = ("_lazy", "config", "errors", "state", "vocab")
#: Third-party libraries and the one package each enters through.
DOORS = {"mlflow": "tracking", "evidently": "drift", "optuna": "tuning", "apscheduler": "service"}


def _package(path: Path) -> str:
    """``automl/tuning/_tuner.py`` -> ``tuning``; ``automl/config.py`` -> ``config``."""
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _allowed(importer: str, imported: str) -> bool:
    top = imported.split(".")
    if top[0] in DOORS:
        return importer == DOORS[top[0]]
    if top[0] != "automl" or len(top) == 1:
        return True
    target = top[1]
    if importer in BASE:
        return target in BASE
    if importer in CAPABILITIES:
        return target in BASE or target == importer
    if importer == "service":
        return target != "cli"
    return True  # cli and the package's entry points may use everything


MODULES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_follow_the_package_map(path: Path) -> None:
    importer = _package(path)
    wrong = [
        f"{path.relative_to(ROOT.parent)}:{line} imports {name}"
        for line, name in _imports(path)
        if not _allowed(importer, name)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rules_catch_a_sideways_import() -> None:
    assert not _allowed("tuning", "automl.tracking")
    assert not _allowed("tracking", "optuna.storages")
    assert not _allowed("service", "automl.cli._app")
    assert _allowed("tuning", "automl.tuning._space") and _allowed("drift", "automl.config")
    assert len(MODULES) > 40  # the walk found the package


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Edges importer -> imported between automl's modules (function-level imports too).

    ``from package import name`` points at the submodule when ``name`` is one, else at the
    package's ``__init__``.
    """
    modules = {_module_name(p): p for p in MODULES}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [s for s in subs if s in modules] or [node.module]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_inside_the_package() -> None:
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
