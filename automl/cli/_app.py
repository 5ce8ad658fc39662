"""The ``automl`` command line: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from automl.cli._base import command, console, err_console
from automl.config import PipelineSpec, load_spec, load_specs
from automl.errors import ConfigError
from automl.vocab import (
    CLASSIFICATION_METRICS,
    MODEL_FAMILIES,
    REGRESSION_METRICS,
    STRATEGIES,
    TASKS,
)


def _setup_logging(level: str, *, as_json: bool = False) -> None:
    from automl.service._logging import configure_logging

    # MLflow configures its own loggers when first imported (after this runs); it reads this.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    configure_logging(level, as_json=as_json)
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
    console.print(f"Late labels: {written['late_spec']} scores rows whose labels come later:")
    console.print(
        f"  automl run {written['late_spec']}     # history rows + their labels: a champion"
    )
    console.print(
        f"  cp {written['late_samples']}/scored_02_drifted.csv {written['late_landing']}/"
    )
    console.print(
        f"  automl run {written['late_spec']}     # drift, but no labels: waiting_for_labels"
    )
    console.print(f"  cp {written['late_samples']}/outcomes_02.csv {written['late_labels']}/")
    console.print(f"  automl run {written['late_spec']}     # the labels came: re-tuned")


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


#: Rows of ``automl run``'s table: always, then each group only when the cycle has it.
_CYCLE_ROWS: tuple[str, ...] = (
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
)
_OPTIONAL_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("error", ("error",)),
    ("shadow_version", ("shadow_version", "shadow_outcome", "shadow_batches")),
    (
        "labelled_share",
        (
            "labels_joined",
            "labelled_rows",
            "labels_needed",
            "labelled_share",
            "rows_waiting_label",
            "label_lag_p50_s",
            "label_lag_p95_s",
        ),
    ),
    ("estimated_score", ("estimated_metric", "estimated_score", "estimated_reference")),
)


def _print_cycle(r: dict[str, Any]) -> None:
    """``automl run``'s table: the cycle's figures, plus the error, the shadow, the late-label
    and the label-free estimate rows when the cycle has them (``--json`` has every field)."""
    table = Table(title=f"cycle {r['cycle_id']} of {r['pipeline']}", show_header=False)
    keys = list(_CYCLE_ROWS)
    for marker, group in _OPTIONAL_ROWS:
        if r.get(marker) is not None:
            keys.extend(group)
    for key in keys:
        value = r.get(key)
        if isinstance(value, list | tuple):
            value = ", ".join(map(str, value)) or "-"
        table.add_row(key, _fmt(value))
    console.print(table)


@command
def serve(
    pipelines_dir: Annotated[Path, typer.Argument(help="Folder of pipeline specs (*.yaml).")],
    host: Annotated[str, typer.Option(help="Interface of the status endpoint.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Port of /healthz, /readyz, /metrics, /status (unset: off)."
        ),
    ] = None,
    jobstore: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the job store; default a SQLite file in the folder "
            "(one per host); 'memory' keeps jobs in memory."
        ),
    ] = None,
    reload_s: Annotated[float, typer.Option(help="Re-read the folder this often.")] = 10.0,
    stop_grace_s: Annotated[
        float, typer.Option(help="On SIGTERM, wait this long for running cycles.")
    ] = 60.0,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="Log JSON lines.")] = False,
    log_level: LogLevel = "INFO",
) -> None:
    """Run every pipeline in a folder on its schedule until SIGTERM or Ctrl-C."""
    from automl.service import AutomlService
    from automl.service._scheduler import default_jobstore_url

    _setup_logging(log_level, as_json=json_logs)
    if not pipelines_dir.is_dir():
        raise ConfigError(f"{pipelines_dir}: not a directory of pipeline specs")
    url = None if jobstore == "memory" else (jobstore or default_jobstore_url(pipelines_dir))
    AutomlService(
        pipelines_dir,
        jobstore_url=url,
        http_host=host,
        http_port=port,
        reload_interval_s=reload_s,
        stop_grace_s=stop_grace_s,
    ).run_forever()


@command
def worker(
    pipeline: Annotated[Path, typer.Option("--pipeline", help="Pipeline spec (.yaml).")],
    wait: Annotated[
        bool,
        typer.Option("--wait", help="After a study, wait for the next one (until SIGTERM)."),
    ] = False,
    wait_s: Annotated[
        float, typer.Option("--wait-s", help="Without --wait: how long to wait for a study.")
    ] = 60.0,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="Log JSON lines.")] = False,
    log_level: LogLevel = "INFO",
) -> None:
    """Evaluate trials of the pipeline's active tuning study until its budget is spent."""
    import signal
    import threading

    from automl.service._worker import run_worker

    _setup_logging(log_level, as_json=json_logs)
    spec = load_spec(pipeline)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # The running trial finishes (or, if the process is killed, is re-queued by the others).
        signal.signal(sig, lambda *_: stop.set())
    summary = run_worker(spec, wait=wait, wait_s=wait_s, stop=stop)
    typer.echo(
        json.dumps({"studies": list(summary.studies), "n_trials": summary.n_trials}),
    )


@command(exits_at_once=True)
def status(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline spec, or a folder of specs.")] = Path(),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each pipeline's champion, last cycle and last drift verdict."""
    from automl.service import pipeline_status

    rows = [pipeline_status(spec) for spec in _specs_at(pipeline)]
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    # One small key/value table per pipeline: readable in an 80-column terminal.
    for r in rows:
        table = Table(title=f"pipeline {r['pipeline']}", show_header=False, title_justify="left")
        table.add_column("what", no_wrap=True)
        table.add_column("value", overflow="fold")
        champion = r["champion_version"]
        table.add_row("champion", f"{r['model']} v{champion}" if champion else "none")
        if r["last_status"] is None:
            table.add_row("last cycle", "never")
        else:
            table.add_row("last cycle", f"{r['last_status']} at {r['last_finished_at']}")
        if r["last_error"]:
            table.add_row("last error", r["last_error"][:300])
        drift = _fmt(r["last_drift_verdict"])
        if r["last_drift_share"] is not None:
            drift += f" ({r['last_drift_share']:.0%} of columns)"
        table.add_row("last drift check", drift)
        table.add_row("batches pending", str(r["pending_batches"]))
        if r.get("source", "directory") == "directory":
            table.add_row("files in landing", str(r.get("landing_files", 0)))
        else:
            table.add_row("source", r["source"])
        table.add_row("quarantined", str(r["quarantined_files"]))
        for reason in r.get("quarantine_reasons", []):
            table.add_row("  reason", reason[:300])
        if r.get("labels"):
            _label_rows(table, r["state"], r["labels"])
        console.print(table)


def _label_rows(table: Table, state: str, labels: dict[str, Any]) -> None:
    """Late labels in ``automl status``: the state, labelled share, rows waiting, label lag."""
    table.add_row("state", state)
    if "labels_needed" in labels:
        table.add_row(
            "labelled since drift", f"{labels['labelled_since_drift']} of {labels['labels_needed']}"
        )
    table.add_row(
        "labelled",
        f"{labels['labelled_share']:.0%} ({labels['labelled_rows']} of {labels['rows']} rows; "
        f"{labels['rows_waiting']} waiting)",
    )
    lag = "none yet"
    if labels["lag_p50_s"] is not None:
        lag = f"p50 {_duration(labels['lag_p50_s'])}, p95 {_duration(labels['lag_p95_s'])}"
    table.add_row("label lag", lag)
    if labels["labels_late"]:
        table.add_row("labels late", "no label for longer than data.labels.alert_after_s")
    if labels.get("realized") is not None:
        table.add_row(
            "last estimate",
            f"{labels['estimate_metric']} {labels['estimate']:.3f} estimated, "
            f"{labels['realized']:.3f} realized",
        )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


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


#: Strategies ``automl tune`` offers: ``grid`` needs a spec's ``tuning.grid``.
_CLI_STRATEGIES = ", ".join(STRATEGIES[:-1]) + f" or {STRATEGIES[-1]}."


@command
def tune(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file with features and target.")],
    target: Annotated[str, typer.Option("--target", help="Label column.")],
    task: Annotated[
        str | None,
        typer.Option(help=f"{' or '.join(TASKS)} (default: inferred from the target)."),
    ] = None,
    strategy: Annotated[
        str, typer.Option(help=f"{_CLI_STRATEGIES[:-1]}; grid needs --grid.")
    ] = "bayesian",
    grid: Annotated[
        str | None,
        typer.Option(
            help="Strategy grid: JSON {family: {param: [values]}}, e.g. "
            '\'{"xgboost": {"max_depth": [3, 6]}}\'.'
        ),
    ] = None,
    models: Annotated[
        str, typer.Option(help=f"Comma-separated families: {', '.join(MODEL_FAMILIES)}.")
    ] = "xgboost",
    metric: Annotated[
        str | None,
        typer.Option(
            help=f"{', '.join(CLASSIFICATION_METRICS)}; {', '.join(REGRESSION_METRICS)} "
            "(default by task)."
        ),
    ] = None,
    trials: Annotated[int, typer.Option(min=1, help="Trial budget.")] = 30,
    timeout: Annotated[float | None, typer.Option(help="Wall-time budget in seconds.")] = None,
    cv: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the search, folds and models.")] = 42,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Parallel trials.")] = 1,
    patience: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many trials without improvement.")
    ] = None,
    time_ordered: Annotated[
        bool,
        typer.Option("--time-ordered", help="Rows are in time order: validate on later rows only."),
    ] = False,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow tracking URI (default: ./mlflow.db)."),
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment.")] = "automl/tune",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    log_level: LogLevel = "WARNING",
) -> None:
    """Tune once on a data file and log the search, its report and the model to MLflow."""
    from automl.cli._tune import TuneOptions, print_result, run_tune

    _setup_logging(log_level)
    options = TuneOptions(
        data=data,
        target=target,
        task=task,
        strategy=strategy,
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        metric=metric,
        n_trials=trials,
        timeout_s=timeout,
        cv=cv,
        seed=seed,
        n_jobs=n_jobs,
        patience=patience,
        is_time_ordered=time_ordered,
        tracking_uri=tracking_uri,
        experiment=experiment,
        grid=_json_option("--grid", grid),
    )
    result = run_tune(options, console=err_console, as_json=as_json)
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    print_result(result, console)


def _json_option(name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} {value!r} is not valid JSON: {exc}") from exc


@command
def drift(
    reference: Annotated[
        Path, typer.Option("--reference", help="Reference rows (CSV or Parquet).")
    ],
    current: Annotated[Path, typer.Option("--current", help="New rows (CSV or Parquet).")],
    pipeline: Annotated[
        Path | None,
        typer.Option("--pipeline", help="Pipeline spec: its drift settings and target."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="Label column, left out of the check (default: the spec's target)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write evidently's HTML report here.")
    ] = None,
) -> None:
    """Check two files for drift once: per-column tests and the dataset decision."""
    from automl.cli._drift import DriftOptions, check_files, print_drift

    payload = check_files(
        DriftOptions(
            reference=reference, current=current, pipeline=pipeline, html=html, target=target
        )
    )
    if as_json:
        typer.echo(json.dumps(payload, default=str))
        return
    print_drift(payload, console)
