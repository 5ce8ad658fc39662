"""The drift steps of a cycle: what a check covers (:class:`CheckedColumns`), the check
against the champion's reference rows and evidence (:func:`check_drift`), and the hysteresis
state it leaves (:func:`save_drift_state`). The CLI's ``drift`` command calls
:func:`detect_drift`. Re-exported by :mod:`automl.service._steps`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from automl.config import DriftSpec
from automl.data import BatchRecord, Schema, load_batches
from automl.drift import (
    DriftReport,
    DriftSignal,
    EvidentlyDriftDetector,
    Hysteresis,
    performance_drift,
    render_drift_html,
    sensitivity_weights,
)
from automl.errors import DriftCheckError
from automl.service import _record as record
from automl.service._steps_judge import stored_holdout
from automl.service._steps_types import DriftOutcome
from automl.service._workspace import Workspace
from automl.tracking import ModelVersionInfo

# The steps log under the name they had before the split into modules, so that log filters
# and the ``name`` field of the service's log lines stay as they were.
log = logging.getLogger("automl.service._steps")


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
