"""Entry layer: the typer application behind the ``automl`` command."""

from __future__ import annotations

from automl.cli._app import app, main

__all__ = ["app", "main"]
