"""The typer application every command registers on, and how errors end a command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup, TyperOption

from automl.errors import AutomlError


def _no_type_after_flags(params: list[Any]) -> list[Any]:
    # Typer's help prints a value type after every option, ``<bool>`` after flags too, which
    # reads as if ``--json`` wanted a value. An empty metavar leaves the column blank.
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and not param.count:
            param.metavar = param.metavar or ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _no_type_after_flags(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _no_type_after_flags(super().get_params(ctx))


app = typer.Typer(
    name="automl",
    help="Keep production models tuned while their data drifts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
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
    return app.command(cls=_Command)(_errors_to_exit(func))


def main() -> None:
    """Console entry point."""
    app()
