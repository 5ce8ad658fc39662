"""The typer application every command registers on, and how errors end a command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from automl.errors import AutomlError

app = typer.Typer(
    name="automl",
    help="Keep production models tuned while their data drifts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


P = ParamSpec("P")
R = TypeVar("R")


def _errors_to_exit(func: Callable[P, R]) -> Callable[P, R]:
    """Turn an AutomlError into one line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except AutomlError as exc:
            err_console.print(f"error: {exc}", highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(code=1) from exc

    return wrapper


def command(func: Callable[P, R]) -> Callable[P, R]:
    """Register a command whose AutomlErrors end as one line and exit code 1."""
    return app.command()(_errors_to_exit(func))


def main() -> None:
    """Console entry point."""
    app()
