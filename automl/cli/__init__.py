"""Entry layer: the typer application behind the ``automl`` command."""

from __future__ import annotations

# Each command module registers its commands on the app when imported.
from automl.cli import _app, _registry  # noqa: F401
from automl.cli._base import app, main

__all__ = ["app", "main"]
