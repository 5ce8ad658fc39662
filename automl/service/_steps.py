"""The steps of a cycle, each a plain function with typed inputs and a frozen result.

:mod:`automl.service._cycle` calls them in order (read it first); the CLI's ``drift`` and
``tune`` commands call :func:`detect_drift` and :func:`search_and_log`. What a step writes to
MLflow is in :mod:`automl.service._record`.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from automl.config import DriftSpec, PipelineSpec
from automl.data import (
    BatchRecord,
    IngestResult,
    Schema,
    as_received,
    frame_sha256,
    ingest_source,
    load_batches,
    select_window,
    split_holdout,
    window_time_range,
    write_table,
)
from automl.drift import (
    DriftReport,
    DriftSignal,
    EvidentlyDriftDetector,
    Hysteresis,
    HysteresisDecision,
    performance_drift,
    render_drift_html,
    sensitivity_weights,
)
from automl.errors import AutomlError, ConfigError, DriftCheckError
from automl.service import _record as record
from automl.service._notify import notify
from automl.service._workspace import Workspace
from automl.tracking import (
    CHALLENGER,
    Action,
    MlflowTracker,
    ModelVersionInfo,
    Predictions,
    PromotionDecision,
    PromotionGate,
    ShadowBatch,
    ShadowState,
    decide_promotion,
    move_logged,
    predict_frame,
)

if TYPE_CHECKING:  # the search's libraries load when a re-tune runs, not with the service
    from automl.tuning import SearchConfig, TrialResult, TuningResult

log = logging.getLogger(__name__)


class CycleInterruptedError(AutomlError):
    """The service is stopping; the cycle ended early and its batches stay pending."""


# -- what the steps return -------------------------------------------------------------------
@dataclass(frozen=True)
class DriftOutcome:
    """A drift check and what the pipeline's hysteresis made of it.

    Attributes:
        report: The check's evidence (columns, signals, score).
        decision: The pipeline's state after it: ``level`` ``drift`` means re-tune now.
    """

    report: DriftReport
    decision: HysteresisDecision


@dataclass(frozen=True)
class Window:
    """The rows a re-tune trains on and the newest rows that judge it.

    Attributes:
        train: Tuning rows, oldest first.
        holdout: The newest ``training.holdout_fraction`` of the window.
        sha256: Content hash of ``train`` (a version trained on it is not trained again).
        data_from: When the oldest batch behind the window was received.
        data_to: When the newest was received.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    sha256: str
    data_from: str
    data_to: str


@dataclass(frozen=True)
class Registered:
    """The version a re-tune produced (or found already registered for the same window).

    Attributes:
        version: The registered version.
        tuning: The search behind it; None when it was registered by an earlier attempt.
    """

    version: ModelVersionInfo
    tuning: TuningResult | None = None

    @property
    def is_reused(self) -> bool:
        """Registered by an interrupted earlier cycle on the same window."""
        return self.tuning is None


@dataclass(frozen=True)
class Shadowed:
    """A challenger in shadow, scored beside the champion on this cycle's new rows.

    Attributes:
        version: The challenger.
        decision: The gate over every batch scored in shadow so far: ``outcome`` is
            ``shadow`` (keep waiting), ``promoted`` (now the champion) or ``rejected``
            (dropped after ``registry.shadow_max_batches``).
        n_batches: Cycles of new rows it has been scored on, this one included.
    """

    version: str
    decision: PromotionDecision
    n_batches: int


# -- ingest ----------------------------------------------------------------------------------
def ingest(ws: Workspace) -> IngestResult:
    """Validate and store every new delivery of the pipeline's ``data.source`` (the landing
    folder by default; an object-store prefix or a SQL table), bad ones quarantined.

    Raises:
        DataSourceError: The object store or database could not be read (after retries).
        ConfigError: The spec's ``data.target`` or ``data.task`` is not the one the pipeline's
            stored data was accepted with (its schema is fixed by the first batch).
    """
    data = ws.spec.data
    stored = ws.ledger.get_schema(ws.name)
    if stored is not None and (stored.target, stored.task) != (data.target, data.task):
        raise ConfigError(
            f"pipeline {ws.name!r}: the spec says data.target {data.target!r} ({data.task}), "
            f"but the data this workspace accepted has target {stored.target!r} "
            f"({stored.task}); the schema is fixed by the first batch. To learn another label, "
            "give the pipeline a new name (or a new workspace); to go on, restore data.target"
        )
    return ingest_source(ws.spec, paths=ws.paths, ledger=ws.ledger, labels=ws.label_policy)


# -- drift -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedColumns:
    """What a drift check covers: the feature columns by kind, and the label.

    Attributes:
        numeric: Numeric columns to check.
        categorical: Categorical columns to check.
        target: The label column (checked when ``drift.target_drift`` is on), if known.
        is_classification: Whether the label is a class (chi-square) or a number.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str | None = None
    is_classification: bool = True

    @classmethod
    def select(
        cls,
        drift: DriftSpec,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        target: str | None = None,
        is_classification: bool = True,
    ) -> CheckedColumns:
        """The columns ``drift.columns`` names (all features when it names none).

        Raises:
            DriftCheckError: ``drift.columns`` or ``drift.per_column`` name columns that are
                not features.
        """
        features = [*numeric, *categorical]
        columns = drift.columns or tuple(features)
        unknown = [c for c in columns if c not in features]
        if unknown:
            raise DriftCheckError(
                f"drift.columns names unknown columns {unknown}; features: {features}"
            )
        stray = sorted(set(drift.per_column) - set(columns) - {target})
        if stray:
            raise DriftCheckError(
                f"drift.per_column names columns that are not checked: {stray}; "
                f"checked: {list(columns)}"
            )
        return cls(
            numeric=tuple(c for c in numeric if c in columns),
            categorical=tuple(c for c in categorical if c in columns),
            target=target,
            is_classification=is_classification,
        )

    @classmethod
    def of_schema(cls, drift: DriftSpec, schema: Schema) -> CheckedColumns:
        """The columns of a pipeline's stored schema that ``drift`` checks."""
        return cls.select(
            drift,
            numeric=schema.numeric,
            categorical=schema.categorical,
            target=schema.target,
            is_classification=schema.task == "classification",
        )


def detect_drift(
    drift: DriftSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: CheckedColumns,
    *,
    seed: int,
    weights: dict[str, float] | None = None,
    predictions: tuple[Any, Any] | None = None,
    signals: Sequence[DriftSignal] = (),
    html_path: Path | None = None,
    html_report: Literal["on_drift", "always", "never"] = "always",
    reference_key: Hashable | None = None,
) -> tuple[DriftReport, Path | None]:
    """Compare ``current`` with ``reference`` as the spec's ``drift`` section says.

    Args:
        drift: The spec's drift section (method, thresholds, policy, signals).
        reference: What "no drift" looks like.
        current: The new rows.
        columns: What to check (see :class:`CheckedColumns`).
        seed: Seed of the calibration resamples.
        weights: Column weights of the ``weighted`` policy (default: ``drift.weights``).
        predictions: The champion's outputs on reference and current rows.
        signals: Signals computed elsewhere (e.g. performance drift).
        html_path: Where to write evidently's HTML report.
        html_report: When to write it: ``always``, ``on_drift`` or ``never``.
        reference_key: Identity of ``reference``'s rows: when given, the reference is
            prepared once and reused by later checks with the same key (see
            :meth:`automl.drift.EvidentlyDriftDetector.detect`).

    Returns:
        The report, and the HTML report's path when one was written.
    """
    detector = EvidentlyDriftDetector.from_spec(drift, seed=seed)
    numeric, categorical = list(columns.numeric), list(columns.categorical)
    report = detector.detect(
        reference,
        current,
        numeric=numeric,
        categorical=categorical,
        weights=weights if weights is not None else drift.weights,
        target=columns.target if drift.target_drift else None,
        target_kind="categorical" if columns.is_classification else "numeric",
        predictions=predictions,
        signals=list(signals),
        reference_key=reference_key,
    )
    html = None
    if html_path is not None and (
        html_report == "always" or (html_report == "on_drift" and report.is_drifted)
    ):
        html = render_drift_html(
            reference,
            current,
            html_path,
            numeric=numeric,
            categorical=categorical,
            method=drift.method,
            threshold=drift.threshold,
            drift_share=drift.drift_share,
            per_column=detector.per_column,
        )
    return report, html


def check_drift(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    champion: ModelVersionInfo,
    pending: Sequence[BatchRecord],
    current: pd.DataFrame,
    *,
    extra_signals: Sequence[DriftSignal] = (),
) -> DriftOutcome:
    """Compare the new rows with the champion's training rows, then apply the hysteresis.

    Writes ``reports/<pipeline>/<cycle>/drift.json`` (and the HTML report when the spec asks
    for it) and logs both to the cycle's run. ``extra_signals`` join the check (the late-label
    pipeline's estimated performance). With late labels the new rows may have no labels: label
    drift is not checked, and the performance signal scores the labelled rows among them.
    """
    spec = ws.spec
    drift = spec.drift
    # Before the read: a file that appears meanwhile is not taken for the rows read without it.
    reference_key = reference_identity(ws, champion)
    reference = champion_reference(ws, champion, pending)
    weights, predictions, signals = champion_evidence(ws, schema, champion, reference, current)
    signals = [*signals, *extra_signals]
    columns = CheckedColumns.of_schema(drift, schema)
    if ws.labels is not None:  # rows come before their labels: no label drift to check
        columns = replace(columns, target=None)
    report_dir = ws.paths.reports / cycle_id
    report_dir.mkdir(parents=True, exist_ok=True)
    report, html = detect_drift(
        drift,
        reference,
        current,
        columns,
        seed=spec.tuning.seed,
        weights=weights,
        predictions=predictions,
        signals=signals,
        html_path=report_dir / "drift.html",
        html_report=drift.html_report,
        reference_key=reference_key,
    )
    # The check is evidence; the pipeline's state decides whether to re-tune.
    hysteresis = Hysteresis.from_spec(drift.hysteresis)
    state = hysteresis.rebase(ws.drift_states.load(ws.name), champion.version)
    decision = hysteresis.observe(
        state,
        is_drifted=report.is_drifted,
        is_warning=report.level == "warning",
        now=time.time(),
        batch_id=pending[0].id,
    )
    outcome = DriftOutcome(report, decision)
    payload = {"pipeline": ws.name, "cycle_id": cycle_id, **drift_event(outcome)}
    (report_dir / "drift.json").write_text(
        json.dumps(payload, indent=2, default=str), encoding="utf-8"
    )
    record.record_drift(ws.tracker, run_id, payload, report, decision)
    if html is not None:
        ws.tracker.log_artifact(run_id, html)
    return outcome


def drift_event(outcome: DriftOutcome) -> dict[str, Any]:
    """The check as JSON: the report, the pipeline's state and why."""
    return {
        **outcome.report.to_dict(state=outcome.decision.level),
        "state_reason": outcome.decision.reason,
    }


def champion_reference(
    ws: Workspace, champion: ModelVersionInfo, pending: Sequence[BatchRecord]
) -> pd.DataFrame:
    """The champion's training rows: what "no drift" looks like."""
    path = ws.paths.reference / f"v{champion.version}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    # The champion was not trained by this workspace (or its file is gone): compare with the
    # newest rows checked before, so drift still means "changed since last time".
    log.warning(
        "[%s] reference of champion v%s not found at %s; using recent checked rows",
        ws.name,
        champion.version,
        path,
    )
    pending_ids = {r.id for r in pending}
    accepted = ws.ledger.records(ws.name, status="accepted")
    earlier = [r for r in accepted if r.id not in pending_ids]
    return load_batches(earlier).tail(ws.spec.training.max_rows)


def reference_identity(ws: Workspace, champion: ModelVersionInfo) -> Hashable | None:
    """What identifies the champion's reference file's rows (for the drift cache): pipeline,
    version and the file's path, size and modification time; None when there is no file (the
    fallback window changes with every batch)."""
    path = ws.paths.reference / f"v{champion.version}.parquet"
    try:
        stat = path.stat()
    except OSError:
        return None
    return ("champion", ws.name, champion.version, str(path), stat.st_size, stat.st_mtime_ns)


def champion_evidence(
    ws: Workspace,
    schema: Schema,
    champion: ModelVersionInfo,
    reference: pd.DataFrame,
    current: pd.DataFrame,
) -> tuple[dict[str, float] | None, tuple[Any, Any] | None, list[DriftSignal]]:
    """What the champion adds to a drift check: column weights, its predictions on the
    reference and the new rows, and its performance on the new (labelled) rows."""
    spec = ws.spec
    drift, features, target = spec.drift, schema.feature_names, schema.target
    needs_weights = drift.policy == "weighted" and drift.weights is None
    if not (needs_weights or drift.prediction_drift or drift.performance_tolerance is not None):
        return drift.weights, None, []
    from automl.tuning import score_model
    from automl.vocab import GREATER_IS_BETTER

    model = ws.tracker.load_model(champion)
    classify = schema.task == "classification" and hasattr(model, "predict_proba")

    def predict(frame: pd.DataFrame) -> Any:
        rows = frame[features]
        return model.predict_proba(rows) if classify else model.predict(rows)

    weights = drift.weights
    if needs_weights:
        weights = sensitivity_weights(predict, reference, features, seed=spec.tuning.seed)
    predictions = None
    served = _served_predictions(spec.data.prediction_column, current, schema)
    # Late labels keep the champion's holdout: its predictions there are out of sample, as
    # served ones are (on its training rows they are more confident than anywhere else).
    predicted = stored_holdout(ws, champion) if ws.labels is not None else None
    if predicted is None:
        predicted = reference
    if drift.prediction_drift and served is not None:
        # What the model actually served, against what the champion predicts on its reference
        # (classes against classes, scores against the positive-class probability).
        if served.dtype == object:  # classes
            reference_classes = model.predict(predicted[features]).astype(str)
            predictions = (reference_classes, served.to_numpy())
        elif classify:  # the positive-class score
            predictions = (predict(predicted)[:, 1], served.to_numpy(dtype=float))
        else:
            predictions = (model.predict(predicted[features]), served.to_numpy(dtype=float))
    elif drift.prediction_drift:
        ref_out, cur_out = predict(predicted), predict(current)
        if classify and ref_out.shape[1] == 2:  # binary: the positive-class probability
            predictions = (ref_out[:, 1], cur_out[:, 1])
        elif classify:  # multiclass: the predicted class
            predictions = (model.predict(predicted[features]), model.predict(current[features]))
        else:
            predictions = (ref_out, cur_out)
    signals: list[DriftSignal] = []
    if target in current.columns:  # late labels: only the rows that came with their label
        current = current[current[target].notna()]
    validation = None
    if drift.performance_tolerance is not None and len(current):  # the CV score: one MLflow call
        validation = record.version_cv_score(ws.tracker, champion, spec.metric)
    if drift.performance_tolerance is not None and validation is not None:
        metric = spec.metric
        try:
            now_score = score_model(model, current, target=target, metric=metric)
        except ValueError as exc:  # e.g. one class only in the batch: no AUC to compare
            log.warning("[%s] no performance check: %s", ws.name, exc)
        else:
            signals.append(
                performance_drift(
                    reference_score=validation,
                    current_score=now_score,
                    tolerance=drift.performance_tolerance,
                    greater_is_better=GREATER_IS_BETTER[metric],
                    metric=metric,
                )
            )
    return weights, predictions, signals


def _served_predictions(
    column: str | None, current: pd.DataFrame, schema: Schema
) -> pd.Series[Any] | None:
    """The predictions served on the new rows (``data.prediction_column``) when every row has
    one, else None (the champion's own predictions are used).

    A binary classifier's float column is its positive-class score; any other classification
    column holds classes (compared as text); a regression column holds numbers.
    """
    if column is None or column not in current.columns:
        return None
    values = current[column]
    if not len(values) or values.isna().any():
        return None
    if schema.task == "classification":
        is_binary = schema.classes is not None and len(schema.classes) == 2
        if is_binary and pd.api.types.is_float_dtype(values):
            return values.astype(float)
        return values.astype(str).astype(object)
    numbers = pd.to_numeric(values, errors="coerce")
    return None if numbers.isna().any() else numbers.astype(float)


def save_drift_state(
    ws: Workspace,
    drift: DriftOutcome | None,
    *,
    is_retuned: bool,
    promoted: str | None,
    waiting_since: int | None = None,
) -> None:
    """Store the hysteresis state; a re-tune starts the cool-down, a promotion rebases.

    ``waiting_since`` (late labels): a confirmed drift whose re-tune waits for labels, kept
    until a re-tune (see :meth:`~automl.drift.Hysteresis.wait_for_labels`).
    """
    state = drift.decision.state if drift else ws.drift_states.load(ws.name)
    hysteresis = Hysteresis.from_spec(ws.spec.drift.hysteresis)
    if is_retuned:
        state = hysteresis.after_retune(state, now=time.time(), promoted_version=promoted)
    elif waiting_since is not None:
        state = hysteresis.wait_for_labels(state, waiting_since)
    ws.drift_states.save(ws.name, state)


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


# -- the old population: each version's own holdout, kept with it ------------------------------
@dataclass(frozen=True)
class StoredHoldout:
    """The champion's stored holdout: rows of the population it serves that it never trained
    on, the evidence of the old-population guardrail.

    Attributes:
        champion: The champion.
        rows: Its stored holdout rows (features and target), None when there are none.
        missing: Why there are none (e.g. registered before holdouts were stored).
    """

    champion: ModelVersionInfo
    rows: pd.DataFrame | None
    missing: str | None = None


def _row_keys(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray[Any, Any]:
    """One hash per row of ``columns`` by content, the same for a row read back from the
    stored parquet file as for the row in a training window (values compared as text)."""
    return pd.util.hash_pandas_object(frame[list(columns)].astype(str), index=False).to_numpy()


def store_holdout(
    ws: Workspace,
    run_id: str,
    version: ModelVersionInfo,
    schema: Schema,
    holdout: pd.DataFrame,
) -> None:
    """Keep a seeded sample (at most ``registry.old_population.max_rows``) of a new version's
    labelled holdout rows with it, as an artifact of its run, and a copy in the workspace's
    reference folder (read by :func:`stored_holdout`)."""
    limit = ws.spec.registry.old_population.max_rows
    rows = holdout[[*schema.feature_names, schema.target]]
    rows = rows[rows[schema.target].notna()]
    if len(rows) > limit:
        rows = rows.sample(limit, random_state=ws.spec.tuning.seed).sort_index()
    rows = rows.reset_index(drop=True)
    record.record_holdout(ws.tracker, run_id, ws.spec.model_name, version.version, rows)
    write_table(rows, ws.paths.reference / f"v{version.version}.holdout.parquet")


def stored_holdout(ws: Workspace, version: ModelVersionInfo) -> pd.DataFrame | None:
    """A version's stored holdout rows (:func:`store_holdout`): the workspace's copy
    (``reference/<pipeline>/v<N>.holdout.parquet``), else its run's artifact, copied there.

    These are the rows the guardrail, the CBPE calibration and prediction drift read. None when
    the version has none (registered before holdouts were stored).

    Raises:
        AutomlError: The stored file cannot be read or downloaded.
    """
    from automl.data import read_table

    path = ws.paths.reference / f"v{version.version}.holdout.parquet"
    if not path.exists():
        if record.HOLDOUT_STORED not in version.tags or version.run_id is None:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            downloaded = ws.tracker.download_artifact(version.run_id, record.HOLDOUT_ARTIFACT, tmp)
            write_table(read_table(downloaded), path)
    return read_table(path)


def champion_holdout(
    ws: Workspace, schema: Schema, champion: ModelVersionInfo | None
) -> StoredHoldout | None:
    """The champion's stored holdout (:func:`stored_holdout`) when the old-population guardrail
    is on (``registry.old_population.max_regression``) and there is a champion; else None.

    A champion without one (registered before holdouts were stored, its file unreadable or
    without the schema's columns) gives ``rows`` None and the reason: the guardrail is then
    skipped, never the cycle failed.
    """
    if champion is None or ws.spec.registry.old_population.max_regression is None:
        return None
    try:
        rows = stored_holdout(ws, champion)
    except AutomlError as exc:
        log.warning("[%s] old-population guardrail skipped: %s", ws.name, exc)
        why = f"champion v{champion.version}'s stored holdout could not be read: {exc}"
        return StoredHoldout(champion, None, why)
    if rows is None:
        why = f"champion v{champion.version} has no stored holdout (registered before holdouts"
        return StoredHoldout(champion, None, f"{why} were kept with each version)")
    absent = [c for c in (*schema.feature_names, schema.target) if c not in rows.columns]
    if absent:
        why = f"champion v{champion.version}'s stored holdout lacks the columns {absent}"
        return StoredHoldout(champion, None, why)
    return StoredHoldout(champion, rows)


def keep_out(ws: Workspace, schema: Schema, window: Window, stored: StoredHoldout | None) -> Window:
    """The window without the champion's stored holdout rows in its training part, so that
    they stay rows neither model trained on; unchanged when that would leave fewer than
    ``training.min_rows`` training rows (the judge then drops the overlap instead)."""
    if stored is None or stored.rows is None or stored.rows.empty:
        return window
    columns = [*schema.feature_names, schema.target]
    seen = np.isin(_row_keys(window.train, columns), _row_keys(stored.rows, columns))
    if not seen.any() or (~seen).sum() < ws.spec.training.min_rows:
        return window
    train = window.train[~seen].reset_index(drop=True)
    return replace(window, train=train, sha256=frame_sha256(train))


def guard_old_population(
    ws: Workspace,
    schema: Schema,
    decision: PromotionDecision,
    version: ModelVersionInfo,
    stored: StoredHoldout | None,
    train: pd.DataFrame,
) -> PromotionDecision:
    """The old-population guardrail of the gate: score challenger and champion on the
    champion's stored holdout rows the challenger did not train on; a challenger worse there
    by more than ``registry.old_population.max_regression`` is refused. The check (or why it
    was skipped) joins the gate's guardrails and the decision's reason.

    Args:
        ws: The workspace.
        schema: The pipeline's schema.
        decision: The gate's decision on the new holdout (:func:`judge`).
        version: The challenger.
        stored: The champion's stored holdout (:func:`champion_holdout`); None: guardrail off.
        train: The rows the challenger trained on (their overlap is dropped).

    Returns:
        The decision with the check; refused when the check fails.
    """
    gate = decision.gate
    if stored is None or gate is None or decision.champion_version != stored.champion.version:
        return decision
    spec, metric = ws.spec, decision.metric
    registry = spec.registry
    skip = PromotionGate.skip_old_population
    if stored.rows is None:
        check = skip(metric, stored.missing or "no stored holdout")
    else:
        columns = [*schema.feature_names, schema.target]
        rows = stored.rows[stored.rows[schema.target].notna()]
        unseen = rows[~np.isin(_row_keys(rows, columns), _row_keys(train, columns))]
        note = (
            f"{len(unseen)} of the {len(rows)} stored holdout rows of champion "
            f"v{stored.champion.version} the challenger did not train on"
        )
        if len(unseen) < registry.old_population.min_rows:
            check = skip(metric, f"{note}, fewer than min_rows {registry.old_population.min_rows}")
        else:
            features, y_true = unseen[schema.feature_names], unseen[schema.target].to_numpy()
            champion = stored.champion
            try:
                check = PromotionGate.from_spec(registry).check_old_population(
                    y_true,
                    predict_holdout(ws.tracker, version, features, task=schema.task),
                    predict_holdout(ws.tracker, champion, features, task=schema.task),
                    metric=metric,
                    metric_fn=_score,
                    greater_is_better=_greater_is_better,
                    rows_note=note,
                )
            except ValueError as exc:  # e.g. one class only: no ROC AUC on these rows
                check = skip(metric, f"{note}: {exc}")
    judged = decide_promotion(
        metric=metric,
        greater_is_better=decision.greater_is_better,
        margin=decision.margin,
        challenger_version=decision.challenger_version,
        challenger_score=decision.challenger_score,
        champion_version=decision.champion_version,
        champion_score=decision.champion_score,
        gate=gate.with_check(check),
        approval=registry.approval,
    )
    if check.skipped:
        judged = replace(
            judged, reason=f"{judged.reason}; old-population guardrail skipped: {check.note}"
        )
    return judged


# -- judge and promote -----------------------------------------------------------------------
def predict_holdout(
    tracker: MlflowTracker, version: ModelVersionInfo, features: pd.DataFrame, *, task: str
) -> Predictions:
    """Load a version with ``mlflow.pyfunc`` and predict the holdout, timing and sizing it.

    Scores the loaded scikit-learn model with :func:`~automl.tracking.predict_frame` (what
    ``automl predict`` and the served model's ``predict_proba`` method return) on the canonical
    holdout, which versions logged before and after signatures took the rows as sent accept.
    """
    model, size_mb = tracker.load_pyfunc(version.uri)
    raw = model.get_raw_model()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        predict_frame(raw, features, with_proba=False)
        timings.append(time.perf_counter() - started)
    latency_ms = float(np.median(timings)) * 1000.0 * 1000.0 / max(len(features), 1)
    with_proba = task == "classification" and hasattr(raw, "predict_proba")
    scored = predict_frame(raw, features, with_proba=with_proba)
    return Predictions(
        version=version.version,
        values=scored["prediction"].to_numpy(),
        proba=scored.iloc[:, 1:].to_numpy() if with_proba else None,
        classes=np.asarray(raw.classes_) if with_proba else None,
        latency_ms=latency_ms,
        model_size_mb=size_mb,
    )


def _score(name: str, y_true: np.ndarray[Any, Any], p: Predictions) -> float:
    from automl.tuning import metric_from_predictions

    return metric_from_predictions(name, y_true, p.values, p.proba, p.classes)


def _greater_is_better(name: str) -> bool:
    from automl.vocab import PREDICTION_METRICS

    return PREDICTION_METRICS[name]


def judge(
    ws: Workspace,
    schema: Schema,
    version: ModelVersionInfo,
    champion: ModelVersionInfo | None,
    holdout: pd.DataFrame,
) -> PromotionDecision:
    """Score challenger and champion (both loaded back from the registry) on the same holdout
    and run the gate: margin, significance and guardrails."""
    spec = ws.spec
    features, y_true = holdout[schema.feature_names], holdout[schema.target].to_numpy()
    metric, registry = spec.metric, spec.registry
    challenger = predict_holdout(ws.tracker, version, features, task=schema.task)
    challenger_score = _score(metric, y_true, challenger)
    gate = champion_score = None
    if champion is not None:
        serving = predict_holdout(ws.tracker, champion, features, task=schema.task)
        champion_score = _score(metric, y_true, serving)
        gate = PromotionGate.from_spec(registry).evaluate(
            y_true,
            challenger,
            serving,
            metric=metric,
            metric_fn=_score,
            greater_is_better=_greater_is_better,
            seed=spec.tuning.seed,
        )
    return decide_promotion(
        metric=metric,
        greater_is_better=_greater_is_better(metric),
        margin=registry.promotion_margin,
        challenger_version=version.version,
        challenger_score=challenger_score,
        champion_version=champion.version if champion else None,
        champion_score=champion_score,
        gate=gate,
        approval=registry.approval,
    )


def judge_challenger(
    ws: Workspace,
    schema: Schema,
    version: ModelVersionInfo,
    champion: ModelVersionInfo | None,
    window: Window,
    stored: StoredHoldout | None,
) -> PromotionDecision | None:
    """The gate's decision on a re-tune's version: :func:`judge` on the window's holdout, then
    :func:`guard_old_population` on the champion's stored holdout; None when the version is
    the champion already (nothing to judge).

    The scoring loads both models (scikit-learn, XGBoost): by default it runs in the re-tune's
    child process (see :mod:`automl.service._retune`), and only the decision comes back.
    """
    if champion is not None and version.version == champion.version:
        return None
    decision = judge(ws, schema, version, champion, window.holdout)
    return guard_old_population(ws, schema, decision, version, stored, window.train)


def promote(ws: Workspace, decision: PromotionDecision, cycle_id: str) -> None:
    """Carry out the gate's decision: version tags and the promotion log first, then the
    alias move (``@champion`` moves in one registry call), then the webhook."""
    spec, tracker = ws.spec, ws.tracker
    version = decision.challenger_version
    if decision.champion_version is not None:
        tracker.set_alias(spec.model_name, CHALLENGER, version)
    tracker.set_version_tags(spec.model_name, version, record.decision_tags(decision))
    scores: dict[str, Any] = {
        "metric": decision.metric,
        "challenger_score": decision.challenger_score,
        "champion_score": decision.champion_score,
    }
    if decision.is_promoted:
        move_logged(
            spec,
            tracker,
            ws.promotions,
            action="promote",
            to_version=version,
            from_version=decision.champion_version,
            reason=decision.reason,
            actor="service",
            cycle_id=cycle_id,
            scores=scores,
        )
    else:  # the version waits as @challenger: in shadow, for a person, or rejected
        tracker.set_alias(spec.model_name, CHALLENGER, version)
        actions: dict[str, Action] = {"shadow": "shadow", "awaiting_approval": "await_approval"}
        ws.promotions.append(
            pipeline=spec.name,
            model_name=spec.model_name,
            action=actions.get(decision.outcome, "reject"),
            status="recorded",
            actor="service",
            from_version=decision.champion_version,
            to_version=version,
            reason=decision.reason,
            cycle_id=cycle_id,
            **scores,
        )
    if decision.in_shadow:  # no webhook until the shadow ends
        log.info("[%s %s] %s", spec.name, cycle_id, decision.reason)
        return
    event = {"promoted": "promotion", "rejected": "rejection"}.get(decision.outcome, "approval")
    notify(spec, event, {"cycle_id": cycle_id, **decision.to_dict()})
    log.info("[%s %s] %s", spec.name, cycle_id, decision.reason)


# -- shadow mode -----------------------------------------------------------------------------
#: Late labels: a batch that arrived in shadow counts toward ``registry.shadow_batches`` once
#: at least this share of its rows is labelled (its labelled rows are evidence before that).
SHADOW_LABELLED_SHARE = 0.5


def start_shadow(ws: Workspace, decision: PromotionDecision, cycle_id: str) -> PromotionDecision:
    """Hold back a challenger that passed the holdout gate: it waits as ``@challenger`` for
    the evidence of the next batches (a challenger already in shadow is superseded)."""
    spec = ws.spec
    previous = ws.shadows.load(ws.name)
    if previous is not None and previous.version != decision.challenger_version:
        _drop_shadow(ws, previous, f"superseded by v{decision.challenger_version}", cycle_id)
    assert decision.champion_version is not None
    accepted = ws.ledger.records(ws.name, status="accepted")
    ws.shadows.save(
        ws.name,
        ShadowState(
            version=decision.challenger_version,
            champion_version=decision.champion_version,
            started_cycle=cycle_id,
            since_batch_id=max((r.id for r in accepted), default=0),
        ),
    )
    need = spec.registry.shadow_batches
    return replace(
        decision,
        is_promoted=False,
        in_shadow=True,
        reason=f"in shadow: {decision.reason.split(': ', 1)[-1]}; promoted once the gate "
        f"passes on the next {need} batch(es) together",
    )


def score_shadow(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    champion: ModelVersionInfo,
    current: pd.DataFrame,
) -> Shadowed | None:
    """Score the challenger in shadow and the champion on the new rows, then decide on all
    rows scored in shadow so far: promote, keep waiting, or drop.

    With late labels (``data.id_column``) ``current`` is not used: the evidence is every row
    of the batches that arrived after the shadow started that has a label now, scored again
    whenever new labels came for them (:func:`_score_shadow_late`). None when nothing was
    scored (no shadow, no new labelled row, or the shadow ended because the champion moved).
    """
    spec, tracker, registry = ws.spec, ws.tracker, ws.spec.registry
    state = ws.shadows.load(ws.name)
    if state is None:
        return None
    if state.champion_version != champion.version:
        _drop_shadow(
            ws, state, f"@champion moved to v{champion.version} while it was in shadow", cycle_id
        )
        return None
    if ws.labels is not None:
        return _score_shadow_late(ws, run_id, cycle_id, schema, champion, state)
    rows = current[current[schema.target].notna()]
    if rows.empty:
        return None
    version = tracker.get_version(spec.model_name, state.version)
    now = judge(ws, schema, version, champion, rows)
    pending_ids = tuple(r.id for r in ws.ledger.pending(ws.name))
    state = state.with_batch(
        ShadowBatch(
            batch_ids=pending_ids,
            n_rows=len(rows),
            challenger_score=now.challenger_score,
            champion_score=now.champion_score if now.champion_score is not None else math.nan,
        )
    )
    record.record_shadow(tracker, run_id, state, now)
    accepted = ws.ledger.records(ws.name, status="accepted")
    scored = set(state.batch_ids)
    evidence = load_batches([r for r in accepted if r.id in scored])
    evidence = evidence[evidence[schema.target].notna()].reset_index(drop=True)
    decision = judge(ws, schema, version, champion, evidence)
    n = len(state.batches)
    shown = f"over {n} batch(es) in shadow ({len(evidence)} rows)"
    decision = _settle_shadow(
        ws, state, decision, cycle_id, n=n, is_over=n >= registry.shadow_max_batches, shown=shown
    )
    return Shadowed(state.version, decision, n)


@dataclass(frozen=True)
class _LateShadow:
    """Where a late-label shadow stands: the batches that arrived since it started and their
    labels now."""

    state: ShadowState
    arrived: list[BatchRecord]
    labelled: dict[int, int]
    n_labelled_batches: int
    is_overdue: bool

    @property
    def has_news(self) -> bool:
        """New labels came since the last evaluation, or the wait for them is over."""
        return self.labelled != dict(self.state.labelled) or self.is_overdue


def _late_shadow(ws: Workspace, state: ShadowState) -> _LateShadow:
    """The late-label evidence of ``state``.

    The wait is over (``is_overdue``) once ``registry.shadow_max_batches`` batches arrived
    since the start and ``data.max_label_wait_s`` passed since the last of them came: labels
    that could decide the shadow are not coming any more.
    """
    assert ws.labels is not None
    accepted = ws.ledger.records(ws.name, status="accepted")
    if state.since_batch_id is None:  # saved before the start was kept: from what was checked
        pending = {r.id for r in ws.ledger.pending(ws.name)}
        since = max((r.id for r in accepted if r.id not in pending), default=0)
        state = replace(state, since_batch_id=since)
    arrived = [r for r in accepted if r.id > (state.since_batch_id or 0)]
    per_batch = ws.labels.labelled_per_batch(ws.name)
    labelled = {r.id: per_batch[r.id] for r in arrived if per_batch.get(r.id)}
    n_labelled_batches = sum(
        1 for r in arrived if r.n_rows and labelled.get(r.id, 0) >= SHADOW_LABELLED_SHARE * r.n_rows
    )
    most = ws.spec.registry.shadow_max_batches
    is_overdue = False
    if len(arrived) >= most:
        came = datetime.fromisoformat(arrived[most - 1].received_at)
        waited_s = (datetime.now(UTC) - came).total_seconds()
        is_overdue = waited_s >= ws.spec.data.max_label_wait_s
    return _LateShadow(state, arrived, labelled, n_labelled_batches, is_overdue)


def shadow_has_news(ws: Workspace) -> bool:
    """Late labels: whether the challenger in shadow has something new to be judged on in a
    cycle without new batches (labels came for its rows, or its wait for them is over).

    False without shadow mode, without late labels, or without a challenger in shadow.
    """
    if ws.labels is None or not ws.spec.registry.shadow_batches:
        return False
    state = ws.shadows.load(ws.name)
    return state is not None and _late_shadow(ws, state).has_news


def _score_shadow_late(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    champion: ModelVersionInfo,
    state: ShadowState,
) -> Shadowed | None:
    """:func:`score_shadow` with late labels.

    Each cycle in which new labels came for rows of batches that arrived after the shadow
    started, every labelled row of those batches is scored by both models (paired) and the
    gate runs over all of them. A batch counts toward ``registry.shadow_batches`` once
    :data:`SHADOW_LABELLED_SHARE` of its rows is labelled. The challenger is promoted when the
    gate passes with enough such batches; it is dropped when ``shadow_max_batches`` batches
    are labelled without a pass, or when ``shadow_max_batches`` batches arrived and
    ``data.max_label_wait_s`` passed since the last of them without a pass.
    """
    spec, tracker, registry = ws.spec, ws.tracker, ws.spec.registry
    late = _late_shadow(ws, state)
    if not late.has_news:
        if late.state != state:  # keep the start found for a state saved without one
            ws.shadows.save(ws.name, late.state)
        return None
    state = late.state
    version = tracker.get_version(spec.model_name, state.version)
    records = [r for r in late.arrived if r.id in late.labelled]
    evidence = ws.labels.load_labelled(records) if ws.labels is not None else pd.DataFrame()
    n = late.n_labelled_batches
    shown = (
        f"over {n} labelled batch(es) of {len(late.arrived)} in shadow "
        f"({len(evidence)} labelled rows)"
    )
    if evidence.empty:  # overdue without a single label: nothing to judge on
        _drop_shadow(ws, state, f"no labels came for its rows {shown}", cycle_id)
        tracker.delete_alias(spec.model_name, CHALLENGER)
        tracker.set_version_tags(
            spec.model_name,
            state.version,
            {record.DECISION: "rejected", record.REASON: f"no labels came in shadow {shown}"},
        )
        return None
    decision = judge(ws, schema, version, champion, evidence)
    previous = dict(state.labelled)
    if late.labelled != previous:
        state = replace(
            state.with_batch(
                ShadowBatch(
                    batch_ids=tuple(b for b, k in late.labelled.items() if previous.get(b) != k),
                    n_rows=len(evidence),
                    challenger_score=decision.challenger_score,
                    champion_score=(
                        decision.champion_score if decision.champion_score is not None else math.nan
                    ),
                )
            ),
            labelled=tuple(sorted(late.labelled.items())),
        )
        record.record_shadow(tracker, run_id, state, decision)
    is_over = n >= registry.shadow_max_batches or late.is_overdue
    decision = _settle_shadow(ws, state, decision, cycle_id, n=n, is_over=is_over, shown=shown)
    return Shadowed(state.version, decision, n)


def _settle_shadow(
    ws: Workspace,
    state: ShadowState,
    decision: PromotionDecision,
    cycle_id: str,
    *,
    n: int,
    is_over: bool,
    shown: str,
) -> PromotionDecision:
    """Act on the gate over the shadow's evidence: promote (or hand to a person) once ``n``
    batches reach ``registry.shadow_batches``, drop when ``is_over``, else keep waiting."""
    spec, tracker, registry = ws.spec, ws.tracker, ws.spec.registry
    if decision.is_promoted and n >= registry.shadow_batches:
        ws.shadows.clear(ws.name)
        decision = replace(decision, reason=f"{decision.reason} {shown}")
        promote(ws, decision, cycle_id)
    elif decision.awaiting_approval and n >= registry.shadow_batches:
        ws.shadows.clear(ws.name)
        promote(ws, decision, cycle_id)
    elif is_over:
        decision = replace(
            decision,
            is_promoted=False,
            awaiting_approval=False,
            reason=f"{decision.reason} {shown}",
        )
        _drop_shadow(ws, state, f"no credible gain {shown}", cycle_id)
        promote(ws, decision, cycle_id)
        tracker.delete_alias(spec.model_name, CHALLENGER)
    else:
        ws.shadows.save(ws.name, state)
        decision = replace(
            decision, is_promoted=False, in_shadow=True, reason=f"in shadow: {decision.reason}"
        )
    return decision


def _drop_shadow(ws: Workspace, state: ShadowState, why: str, cycle_id: str) -> None:
    ws.shadows.clear(ws.name)
    ws.promotions.append(
        pipeline=ws.name,
        model_name=ws.spec.model_name,
        action="shadow_drop",
        status="recorded",
        actor="service",
        from_version=state.champion_version,
        to_version=state.version,
        reason=f"v{state.version} left shadow: {why}",
        cycle_id=cycle_id,
    )
    log.info("[%s %s] v%s left shadow: %s", ws.name, cycle_id, state.version, why)
