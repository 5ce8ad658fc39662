"""The judging steps of a cycle: each version's stored holdout and the old-population
guardrail on the champion's, the gate on the window's holdout (:func:`judge`,
:func:`judge_challenger`) and carrying out its decision (:func:`promote`). Re-exported by
:mod:`automl.service._steps`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from automl.data import Schema, frame_sha256, write_table
from automl.errors import AutomlError
from automl.service import _record as record
from automl.service._notify import notify
from automl.service._steps_types import Window
from automl.service._workspace import Workspace
from automl.tracking import (
    CHALLENGER,
    Action,
    MlflowTracker,
    ModelVersionInfo,
    Predictions,
    PromotionDecision,
    PromotionGate,
    decide_promotion,
    move_logged,
    predict_frame,
)

# The steps log under the name they had before the split into modules, so that log filters
# and the ``name`` field of the service's log lines stay as they were.
log = logging.getLogger("automl.service._steps")


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
