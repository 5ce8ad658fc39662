"""The re-tune steps of a cycle: the training window, the version already registered for it,
the search (in this process or with the workers) and the registration of its model. The CLI's
``tune`` command calls :func:`search_and_log`. Re-exported by :mod:`automl.service._steps`.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from automl.config import PipelineSpec
from automl.data import (
    Schema,
    as_received,
    frame_sha256,
    select_window,
    split_holdout,
    window_time_range,
    write_table,
)
from automl.service import _record as record
from automl.service._steps_judge import store_holdout
from automl.service._steps_types import CycleInterruptedError, DriftOutcome, Registered, Window
from automl.service._workspace import Workspace
from automl.tracking import MlflowTracker

if TYPE_CHECKING:  # the search's libraries load when a re-tune runs, not with the service
    from automl.tuning import SearchConfig, TrialResult, TuningResult

# The steps log under the name they had before the split into modules, so that log filters
# and the ``name`` field of the service's log lines stay as they were.
log = logging.getLogger("automl.service._steps")


# -- tune and register -----------------------------------------------------------------------
def training_window(ws: Workspace, *, since_id: int | None) -> Window:
    """The rows to tune on and the newest ``holdout_fraction`` of them kept aside to judge.

    ``training.window`` says which: ``recent`` (the newest ``max_rows`` rows, before and after
    the drift: the model serves everybody) or ``since_drift`` (from the first drifted batch,
    filled up to ``min_rows``).
    """
    training = ws.spec.training
    accepted = ws.ledger.records(ws.name, status="accepted")
    rows = select_window(
        accepted,
        since_id=since_id,
        min_rows=training.min_rows,
        max_rows=training.max_rows,
        policy=training.window,
        labels=ws.labels,  # late labels: labelled rows only
    )
    train, holdout = split_holdout(rows, fraction=training.holdout_fraction)
    data_from, data_to = window_time_range(
        accepted, since_id=since_id, n_rows=len(rows), policy=training.window
    )
    return Window(train, holdout, frame_sha256(train), data_from, data_to)


def find_registered(ws: Workspace, run_id: str, window: Window) -> Registered | None:
    """Idempotence: the version already trained on this exact window, if any."""
    existing = record.find_by_window(ws.tracker, ws.spec.model_name, window.sha256)
    if not existing:
        return None
    version = existing[0]
    log.info(
        "[%s] v%s was already trained on this data window; not registering another",
        ws.name,
        version.version,
    )
    record.record_reused(ws.tracker, run_id, version.version)
    # Judged or not before the interruption, it is judged again: the gate is deterministic,
    # and a promotion whose alias move never happened is completed this way.
    return Registered(version)


def search_config(spec: PipelineSpec, schema: Schema) -> SearchConfig:
    """What a pipeline's re-tune searches: the schema's columns and the spec's ``tuning``.

    Raises:
        TuningError: The spec's tuning section does not fit the schema (e.g. a metric of the
            other task, the target among the features).
    """
    from automl.tuning import SearchConfig

    return SearchConfig.from_spec(spec.tuning, columns=schema, metric=spec.metric)


def tune_window(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    train: pd.DataFrame,
    *,
    stop: threading.Event | None,
) -> TuningResult:
    """Search the spec's model families on the window (warm-started from the last study), with
    the workers when the storage is shared, logging every trial and the report to the run."""
    from automl.tuning import latest_study, tune_distributed

    spec, tracker, tuning = ws.spec, ws.tracker, ws.spec.tuning
    storage = tuning.storage or f"sqlite:///{spec.workspace_dir / 'optuna.db'}"
    study_name = f"{spec.name}-{cycle_id}"
    # Warm start from the pipeline's previous study: its best configurations are re-run first
    # on the new window (their old scores are stale after drift).
    previous = (
        latest_study(storage, group=spec.name, exclude=study_name) if tuning.warm_start else None
    )
    record.record_search_params(
        tracker,
        run_id,
        {
            "metric": spec.metric,
            "strategy": tuning.strategy,
            "models": ",".join(tuning.models),
            "n_trials_budget": tuning.n_trials,
            "cv": tuning.cv,
            "split": tuning.split,
            "pruner": tuning.pruner,
            "patience": tuning.patience,
            "n_jobs": tuning.n_jobs,
            "study_name": study_name,
            "warm_start_from": previous or "",
        },
    )
    config = search_config(spec, schema)
    common: dict[str, Any] = {
        "n_trials": tuning.n_trials,
        "timeout_s": tuning.timeout_s,
        "storage": storage,
        "study_name": study_name,
        "study_group": spec.name,
        "warm_start_from": previous,
        "warm_start_top_k": tuning.warm_start_top_k,
    }
    report_dir = ws.paths.reports / cycle_id / "tuning"
    title = f"Tuning report: {spec.name}, cycle {cycle_id}"
    if not tuning.is_distributed:
        return search_and_log(
            tracker,
            run_id,
            train,
            config,
            n_jobs=tuning.n_jobs,
            patience=tuning.patience,
            on_trial=_stop_check(stop),
            report_dir=report_dir,
            title=title,
            **common,
        )
    # The rows go to the workers as an artifact of this cycle's run: every worker already
    # needs the tracking server (its trials are nested runs of this run), and the server
    # proxies artifacts to the object store, so no shared file system is needed.
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_table(train, Path(tmp) / record.ROWS_ARTIFACT.rsplit("/", 1)[-1])
        record.record_distributed(tracker, run_id, rows)
    log.info(
        "[%s] study %s open to workers (budget %d trials)",
        spec.name,
        study_name,
        tuning.n_trials,
    )
    result = tune_distributed(
        train,
        config,
        attrs={
            record.PARENT_RUN_ATTR: run_id,
            record.ROWS_ATTR: record.ROWS_ARTIFACT,
            record.CYCLE_ID: cycle_id,
        },
        heartbeat_s=tuning.heartbeat_s,
        grace_s=tuning.grace_s,
        should_stop=stop.is_set if stop is not None else (lambda: False),
        on_trial=_chain(record.trial_logger(tracker, run_id, spec.metric), _stop_check(stop)),
        **common,
    )
    record.log_tuning_result(tracker, run_id, result, report_dir=report_dir, title=title)
    return result


def search_and_log(
    tracker: MlflowTracker,
    run_id: str,
    train: pd.DataFrame,
    config: SearchConfig,
    *,
    n_trials: int,
    on_trial: Callable[[TrialResult], None] | None = None,
    report_dir: Path | None = None,
    title: str = "Tuning report",
    **options: Any,
) -> TuningResult:
    """Search in this process, each trial a nested run of ``run_id``, the result and its report
    on the run (the cycle's re-tune and ``automl tune``).

    Args:
        tracker: The MLflow adapter.
        run_id: The parent run.
        train: Rows to tune on.
        config: What to search.
        n_trials: Trial budget.
        on_trial: Called after each trial is logged (progress, stopping).
        report_dir: Where to keep the tuning report locally too.
        title: The report's title.
        **options: The other arguments of :func:`automl.tuning.tune` (timeout, storage, study
            name, warm start, ``n_jobs``, ``patience``).
    """
    from automl.tuning import tune

    each = _chain(record.trial_logger(tracker, run_id, config.metric), on_trial)
    result = tune(train, config, n_trials=n_trials, on_trial=each, **options)
    record.log_tuning_result(tracker, run_id, result, report_dir=report_dir, title=title)
    return result


def _chain(
    first: Callable[[TrialResult], None], then: Callable[[TrialResult], None] | None
) -> Callable[[TrialResult], None]:
    def both(trial: TrialResult) -> None:
        first(trial)
        if then is not None:
            then(trial)

    return both


def _stop_check(stop: threading.Event | None) -> Callable[[TrialResult], None]:
    """A trial callback that ends the search after this trial when the service is stopping."""

    def check(trial: TrialResult) -> None:
        if stop is not None and stop.is_set():
            raise CycleInterruptedError(
                f"the service is stopping; tuning stopped after trial {trial.number}"
            )

    return check


def register(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    window: Window,
    tuning: TuningResult,
    *,
    trigger: str | None,
    drift: DriftOutcome | None,
) -> Registered:
    """Log the tuned model with its lineage, register it, and keep its training rows as the
    drift reference it will have if promoted.

    Args:
        ws: The workspace.
        run_id: The cycle's run.
        cycle_id: The cycle.
        schema: The pipeline's schema.
        window: The rows it was tuned on.
        tuning: The search.
        trigger: Why it was tuned (``no_champion``, ``scheduled`` or the drift verdict).
        drift: The cycle's drift check, if any.
    """
    spec, tracker = ws.spec, ws.tracker
    example = as_received(window.train[schema.feature_names], schema).head(5)
    model_uri = tracker.log_model(run_id, tuning.model, input_example=example)
    report = drift.report if drift else None
    version = tracker.register(
        model_uri,
        spec.model_name,
        run_id=run_id,
        tags=record.record_lineage(
            tracker,
            pipeline=spec.name,
            cycle_id=cycle_id,
            run_id=run_id,
            trigger=trigger,
            drift_share=report.share_drifted if report else None,
            train_rows=len(window.train),
            holdout_rows=len(window.holdout),
            window_sha256=window.sha256,
            data_from=window.data_from,
            data_to=window.data_to,
            result=tuning,
        ),
        description=(
            f"{tuning.model_family} tuned by automl cycle {cycle_id} of pipeline "
            f"{spec.name!r} after {trigger or 'a scheduled check'}: "
            f"{tuning.n_trials} trials, CV {spec.metric} {tuning.best_score:.4f} "
            f"(defaults {tuning.default_score:.4f}), trained on {len(window.train)} rows "
            f"received {window.data_from} .. {window.data_to}; judged on the newest "
            f"{len(window.holdout)} rows."
        ),
    )
    write_table(window.train, ws.paths.reference / f"v{version.version}.parquet")
    store_holdout(ws, run_id, version, schema, window.holdout)
    return Registered(version, tuning)
