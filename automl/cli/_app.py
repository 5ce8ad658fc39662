"""The ``automl`` command line: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from automl.config import PipelineSpec, load_spec, load_specs
from automl.errors import AutomlError, ConfigError

app = typer.Typer(
    name="automl",
    help="Keep production models tuned while their data drifts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _setup_logging(level: str) -> None:
    # MLflow configures its own loggers when first imported (after this runs); it reads this.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("mlflow", "alembic", "optuna", "apscheduler.executors", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Models are saved with cloudpickle on purpose (XGBoost inside a scikit-learn pipeline is not
    # skops-safe without a trust list); MLflow warns about it on every save.
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)


def _specs_at(path: Path) -> list[PipelineSpec]:
    if path.is_dir():
        specs = load_specs(path)
        if not specs:
            raise ConfigError(f"{path}: no pipeline specs (*.yaml) found")
        return specs
    return [load_spec(path)]


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


LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]


@command
def init(
    directory: Annotated[Path, typer.Argument(help="Workspace folder to create.")],
    name: Annotated[str, typer.Option(help="Pipeline name.")] = "churn",
) -> None:
    """Create a workspace with an example pipeline spec, landing folder and sample data."""
    from automl.cli._workspace import init_workspace

    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory}: folder is not empty; choose a new or empty folder")
    written = init_workspace(directory, name=name)
    console.print(f"Workspace ready in [bold]{directory}[/bold]:")
    console.print(f"  spec      {written['spec']}")
    console.print(f"  landing   {written['landing']}  (history.csv waiting)")
    console.print(f"  samples   {written['samples']}  (copy them into the landing folder)")
    console.print("Next:")
    console.print(f"  automl run {written['spec']}          # one cycle: trains the first champion")
    console.print(f"  cp {written['samples']}/batch_03_drifted.csv {written['landing']}/")
    console.print(f"  automl serve {directory}              # every pipeline on its schedule")


@command
def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline spec (.yaml).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run exactly one cycle of a pipeline (ingest, drift, re-tune, promote) and exit."""
    from automl.service import run_cycle

    _setup_logging(log_level)
    spec = load_spec(pipeline)
    result = run_cycle(spec)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
        return
    _print_cycle(result.to_dict())


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _print_cycle(r: dict[str, Any]) -> None:
    table = Table(title=f"cycle {r['cycle_id']} of {r['pipeline']}", show_header=False)
    for key in (
        "status",
        "accepted_files",
        "rejected_files",
        "n_rows",
        "drift_verdict",
        "share_drifted",
        "drifted_columns",
        "n_trials",
        "best_cv_score",
        "challenger_score",
        "champion_score",
        "model_version",
        "is_promoted",
        "champion_version",
        "run_id",
    ):
        value = r.get(key)
        if isinstance(value, list | tuple):
            value = ", ".join(map(str, value)) or "-"
        table.add_row(key, _fmt(value))
    console.print(table)


@command
def serve(
    pipelines_dir: Annotated[Path, typer.Argument(help="Folder of pipeline specs (*.yaml).")],
    log_level: LogLevel = "INFO",
) -> None:
    """Run every pipeline in a folder on its schedule until SIGTERM or Ctrl-C."""
    from automl.service import AutomlService

    _setup_logging(log_level)
    specs = _specs_at(pipelines_dir)
    AutomlService(specs).run_forever()


@command
def status(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline spec, or a folder of specs.")] = Path(),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each pipeline's champion, last cycle and last drift verdict."""
    from automl.data import BatchLedger
    from automl.service import CycleHistory, make_tracker
    from automl.tracking import CHAMPION

    rows: list[dict[str, Any]] = []
    for spec in _specs_at(pipeline):
        history = CycleHistory(spec.state_url)
        ledger = BatchLedger(spec.state_url)
        champion = make_tracker(spec).get_alias(spec.model_name, CHAMPION)
        latest = history.last(spec.name)
        checked = history.last(spec.name, checked=True)
        rows.append(
            {
                "pipeline": spec.name,
                "model": spec.model_name,
                "champion_version": champion.version if champion else None,
                "champion_cv_score": champion.tags.get("automl.cv_score") if champion else None,
                "last_cycle": latest.cycle_id if latest else None,
                "last_status": latest.status if latest else None,
                "last_finished_at": latest.finished_at if latest else None,
                "last_error": latest.error if latest else None,
                "last_drift_verdict": checked.drift_verdict if checked else None,
                "last_drift_share": checked.share_drifted if checked else None,
                "pending_batches": len(ledger.pending(spec.name)),
                "quarantined_files": len(ledger.records(spec.name, status="rejected")),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    table = Table(title="automl status")
    for col in ("pipeline", "champion", "last cycle", "last drift check", "pending", "quarantined"):
        table.add_column(col)
    for r in rows:
        when = f"{r['last_status']} at {r['last_finished_at']}"
        seen = "never" if r["last_status"] is None else when
        if r["last_error"]:
            seen += f"\n{r['last_error'][:200]}"
        drift = _fmt(r["last_drift_verdict"])
        if r["last_drift_share"] is not None:
            drift += f" ({r['last_drift_share']:.0%} of columns)"
        table.add_row(
            r["pipeline"],
            f"{r['model']} v{r['champion_version']}" if r["champion_version"] else "none",
            seen,
            drift,
            str(r["pending_batches"]),
            str(r["quarantined_files"]),
        )
    console.print(table)


@command
def demo(
    workspace: Annotated[
        Path, typer.Option("--workspace", help="Folder to create (must be new or empty).")
    ] = Path("demo-workspace"),
    batches: Annotated[int, typer.Option(min=3, help="Batches after the history.")] = 7,
    drift_at: Annotated[int, typer.Option(min=2, help="First drifted batch (1-based).")] = 5,
    trials: Annotated[int, typer.Option(min=1, help="Tuning trials per re-tune.")] = 15,
    interval_s: Annotated[float, typer.Option(help="Service interval in seconds.")] = 2.0,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run the service on a generated churn stream that drifts at a known batch."""
    from automl.cli._demo import run_demo

    _setup_logging(log_level)
    # An interval shorter than a tuning cycle is the point of the demo: skipped runs are expected.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    if drift_at > batches:
        raise ConfigError(f"--drift-at ({drift_at}) must be at most --batches ({batches})")
    run_demo(
        workspace,
        n_batches=batches,
        drift_at=drift_at,
        n_trials=trials,
        interval_s=interval_s,
        console=console,
    )


def main() -> None:
    """Console entry point."""
    app()
