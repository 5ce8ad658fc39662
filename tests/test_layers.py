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
BASE = ("config", "errors", "state")
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
