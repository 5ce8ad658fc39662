"""``automl tune``: tune once on a file, log everything to MLflow, print the result."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from automl.errors import TuningError
from automl.vocab import DEFAULT_METRIC


@dataclass(frozen=True)
class TuneOptions:
    """The command's options, as parsed."""

    data: Path
    target: str
    task: str | None
    strategy: str
    models: tuple[str, ...]
    metric: str | None
    n_trials: int
    timeout_s: float | None
    cv: int
    seed: int
    n_jobs: int
    patience: int | None
    is_time_ordered: bool
    tracking_uri: str | None
    experiment: str
    grid: dict[str, dict[str, list[Any]]] | None = None


def infer_task(target: pd.Series) -> str:
    """``regression`` for a numeric target with fractional or many distinct values.

    Example:
        >>> infer_task(pd.Series([0, 1, 1, 0])), infer_task(pd.Series([0.5, 1.25, 3.0]))
        ('classification', 'regression')
    """
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    is_whole = bool((values == values.round()).all())
    many = values.nunique() > max(20, int(0.05 * len(values)))
    return "regression" if (not is_whole or many) else "classification"


def _progress(console: Console, total: int, metric: str, greater: bool) -> tuple[Any, Any]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]tuning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trials"),
        TextColumn("best {task.fields[best]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task_id = progress.add_task("tune", total=total, best="-")
    best: list[float] = []

    def advance(trial: Any) -> None:
        value = trial.cv_mean
        if math.isfinite(value) and (not best or (value > best[0] if greater else value < best[0])):
            best[:] = [value]
        shown = f"{metric} {best[0]:.4f}" if best else "-"
        progress.update(task_id, advance=1, best=shown)

    return progress, advance


def run_tune(options: TuneOptions, *, console: Console, as_json: bool) -> dict[str, Any]:
    """Tune on one CSV/Parquet file and log the search, its report and the model to MLflow.

    Returns:
        ``best_model``, ``best_params``, ``cv_score``, ``cv_score_std``, ``default_score``,
        ``metric``, ``task``, ``strategy``, ``n_trials``, ``n_pruned``, ``stop_reason``,
        ``model_uri`` (loadable with ``mlflow.pyfunc.load_model`` against ``tracking_uri``),
        ``run_id``, ``tracking_uri`` and ``experiment``.

    Raises:
        AutomlError: Unreadable data, unknown target column, family, strategy or metric, or
            MLflow failures.
    """
    from automl.data import as_received, coerce_features, infer_schema, read_table
    from automl.service import search_and_log
    from automl.service._record import COMMAND, DATA
    from automl.tracking import MlflowTracker
    from automl.tuning import (
        GREATER_IS_BETTER,
        MODEL_FAMILIES,
        TASK_METRICS,
        SearchConfig,
        check_strategy,
    )

    # Argument errors surface before any MLflow run is created (the cheap ones before the data
    # is read; the rest when the search is described, right after the schema is inferred).
    check_strategy(options.strategy)
    if options.strategy == "grid" and not options.grid:
        raise TuningError(
            "strategy 'grid' needs --grid, e.g. --grid '{\"xgboost\": {\"max_depth\": [3, 6]}}' "
            "(every combination after the defaults), or choose bayesian, gp, random, genetic "
            "or cmaes"
        )
    unknown = [m for m in options.models if m not in MODEL_FAMILIES]
    if unknown or not options.models:
        raise TuningError(
            f"unknown model family {(unknown or [''])[0]!r}; allowed: {', '.join(MODEL_FAMILIES)}"
        )
    if not options.data.is_file():
        raise TuningError(f"{options.data}: data file not found (expected .csv or .parquet)")
    frame = read_table(options.data)
    if options.target not in frame.columns:
        raise TuningError(
            f"target column {options.target!r} not in {options.data.name}; "
            f"columns: {list(frame.columns)}"
        )
    frame = frame[frame[options.target].notna()].reset_index(drop=True)
    task = options.task or infer_task(frame[options.target])
    if task not in TASK_METRICS:
        raise TuningError(f"unknown task {task!r}; allowed: classification, regression")
    schema = infer_schema(frame, target=options.target, task=task)  # type: ignore[arg-type]
    config = SearchConfig(
        target=options.target,
        task=schema.task,
        numeric=schema.numeric,
        categorical=schema.categorical,
        metric=options.metric or DEFAULT_METRIC[task],
        cv=options.cv,
        seed=options.seed,
        strategy=options.strategy,  # type: ignore[arg-type]
        models=options.models,
        grid=options.grid,
        is_time_ordered=options.is_time_ordered,
    )
    metric = config.metric
    features = coerce_features(frame, schema, source=options.data.name)
    table = features.assign(**{options.target: frame[options.target]})

    local = options.tracking_uri is None
    tracking_uri = options.tracking_uri or f"sqlite:///{(Path.cwd() / 'mlflow.db').resolve()}"
    tracker = MlflowTracker(
        tracking_uri,
        options.experiment,
        artifact_location=(Path.cwd() / "mlartifacts").resolve().as_uri() if local else None,
    )
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    run_id = tracker.start_run(
        f"tune-{options.data.stem}-{stamp}",
        tags={COMMAND: "tune", DATA: str(options.data)},
    )
    progress, advance = (None, None)
    if not as_json:
        progress, advance = _progress(console, options.n_trials, metric, GREATER_IS_BETTER[metric])

    try:
        tracker.log_params(
            run_id,
            {
                "data": str(options.data),
                "rows": len(table),
                "target": options.target,
                "task": task,
                "metric": metric,
                "strategy": options.strategy,
                "models": ",".join(options.models),
                "n_trials_budget": options.n_trials,
                "timeout_s": options.timeout_s,
                "cv": options.cv,
                "seed": options.seed,
                "split": "time" if options.is_time_ordered else "kfold",
            },
        )
        started = time.perf_counter()
        if progress is not None:
            progress.start()
        try:
            result = search_and_log(
                tracker,
                run_id,
                table,
                config,
                n_trials=options.n_trials,
                timeout_s=options.timeout_s,
                n_jobs=options.n_jobs,
                patience=options.patience,
                study_name=f"tune-{options.data.stem}-{stamp}",
                on_trial=advance,
                title=f"Tuning report: {options.data.name}",
            )
        finally:
            if progress is not None:
                progress.stop()
        example = as_received(features, schema).head(5)
        model_uri = tracker.log_model(run_id, result.model, input_example=example)
    except BaseException:
        tracker.end_run(run_id, "FAILED")
        raise
    tracker.end_run(run_id, "FINISHED")
    return {
        "best_model": result.model_family,
        "best_params": result.best_params,
        "cv_score": result.best_score,
        "cv_score_std": result.best_score_std,
        "default_score": result.default_score,
        "metric": metric,
        "greater_is_better": result.greater_is_better,
        "task": task,
        "strategy": options.strategy,
        "models": list(options.models),
        "n_trials": result.n_trials,
        "n_pruned": result.n_pruned,
        "stop_reason": result.stop_reason,
        "elapsed_s": round(time.perf_counter() - started, 2),
        "model_uri": model_uri,
        "run_id": run_id,
        "tracking_uri": tracking_uri,
        "experiment": options.experiment,
    }


def print_result(result: dict[str, Any], console: Console) -> None:
    """The human summary of ``automl tune``."""
    from rich.table import Table

    table = Table(title="automl tune", show_header=False)
    rows = {
        "best model": result["best_model"],
        f"CV {result['metric']}": f"{result['cv_score']:.4f} ± {result['cv_score_std']:.4f}",
        "library defaults": f"{result['default_score']:.4f}",
        "trials": f"{result['n_trials']} ({result['n_pruned']} pruned, "
        f"stopped by {result['stop_reason']})",
        "best params": json.dumps(result["best_params"], default=str),
        "model_uri": result["model_uri"],
        "run_id": result["run_id"],
    }
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)
    uri = result["tracking_uri"]
    console.print(f"Browse it: mlflow ui --backend-store-uri {uri}")
