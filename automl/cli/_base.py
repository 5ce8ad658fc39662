"""The typer application every command registers on, and how errors end a command."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

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


#: Names of the commands registered with ``exits_at_once`` that ran: :func:`main` then ends
#: the process without tearing the interpreter down.
_ran_exiting_at_once: set[str] = set()


def _errors_to_exit(func: Callable[P, R], *, exits_at_once: bool) -> Callable[P, R]:
    """Turn an AutomlError into one line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if exits_at_once:
            _ran_exiting_at_once.add(func.__name__)
        try:
            return func(*args, **kwargs)
        except AutomlError as exc:
            err_console.print(f"error: {exc}", highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(code=1) from exc

    return wrapper


@overload
def command(func: Callable[P, R]) -> Callable[P, R]: ...
@overload
def command(*, exits_at_once: bool) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def command(
    func: Callable[P, R] | None = None, *, exits_at_once: bool = False
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a command whose AutomlErrors end as one line and exit code 1.

    Args:
        func: The command (``@command``), or None (``@command(exits_at_once=True)``).
        exits_at_once: The command leaves nothing behind but its output and committed rows
            (``status``, ``predict``, ...): once it is done, the process ends without the
            interpreter's teardown, which frees what the OS frees anyway and takes 0.1-0.5 s
            once pandas, scikit-learn or MLflow are loaded.
    """

    def register(f: Callable[P, R]) -> Callable[P, R]:
        return app.command(cls=_Command)(_errors_to_exit(f, exits_at_once=exits_at_once))

    return register(func) if func is not None else register


def main() -> None:
    """Console entry point."""
    try:
        app()
    except SystemExit as exc:
        if _ran_exiting_at_once and (exc.code is None or isinstance(exc.code, int)):
            _exit_now(exc.code or 0)
        raise


def _exit_now(code: int) -> None:
    """End the process now: flush what Python buffers, skip what the OS does anyway (freeing
    memory, closing files and connections; committed SQLite rows are on disk already)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to deliver
            stream.flush()
    os._exit(code)
