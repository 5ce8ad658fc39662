"""Judging a challenger and moving the registry aliases, with the promotion log and webhooks.

Used by the cycle (automatic decisions) and by the ``promote`` / ``rollback`` commands
(decisions by a person); both go through the same logged alias move.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl.config import PipelineSpec
from automl.data import Schema
from automl.errors import TrackingError
from automl.service._audit import Action, PromotionLog, current_actor
from automl.service._notify import notify
from automl.tracking import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    Guardrail,
    MlflowTracker,
    ModelVersionInfo,
    Predictions,
    PromotionDecision,
    decide_promotion,
    decision_tags,
    evaluate_gate,
    move_champion,
    predict_frame,
)
from automl.tuning import PREDICTION_METRICS, metric_from_predictions

log = logging.getLogger(__name__)


def _metric(name: str, y_true: np.ndarray[Any, Any], p: Predictions) -> float:
    return metric_from_predictions(name, y_true, p.values, p.proba, p.classes)


def _greater_is_better(name: str) -> bool:
    return PREDICTION_METRICS[name]


def predict_holdout(
    tracker: MlflowTracker, version: ModelVersionInfo, features: pd.DataFrame, *, task: str
) -> Predictions:
    """Load a version with ``mlflow.pyfunc`` and predict the holdout, timing and sizing it.

    Scores the loaded scikit-learn model with :func:`predict_frame` (what ``automl predict``
    and the served model's ``predict_proba`` method return) on the canonical holdout, which
    versions logged before and after signatures took the rows as sent both accept.
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


def _move(
    spec: PipelineSpec,
    tracker: MlflowTracker,
    audit: PromotionLog,
    *,
    action: Action,
    to_version: str,
    from_version: str | None,
    reason: str,
    actor: str,
    cycle_id: str | None = None,
    drop_challenger: bool = True,
    scores: dict[str, Any] | None = None,
) -> None:
    common: dict[str, Any] = {
        "pipeline": spec.name,
        "model_name": spec.model_name,
        "action": action,
        "actor": actor,
        "from_version": from_version,
        "to_version": to_version,
        "cycle_id": cycle_id,
        **(scores or {}),
    }
    intent = audit.append(status="intent", reason=reason, **common)
    try:
        move_champion(
            tracker,
            spec.model_name,
            to_version,
            current_version=from_version,
            drop_challenger=drop_challenger,
        )
    except Exception as exc:
        serving = _serving(tracker, spec)
        audit.append(
            status="applied" if serving == to_version else "aborted",
            intent_id=intent,
            reason=f"alias move failed: {exc}; champion is v{serving}",
            **common,
        )
        raise TrackingError(
            f"pipeline {spec.name!r}: moving @champion to v{to_version} failed ({exc}); "
            f"@champion is v{serving}"
        ) from exc
    audit.append(status="applied", intent_id=intent, reason=reason, **common)


def _serving(tracker: MlflowTracker, spec: PipelineSpec) -> str | None:
    try:
        champion = tracker.get_alias(spec.model_name, CHAMPION)
    except Exception:
        return None
    return champion.version if champion else None


def reconcile(spec: PipelineSpec, tracker: MlflowTracker, audit: PromotionLog) -> list[int]:
    """Close log intents left open by a crash, from what the registry shows now."""
    if not audit.open_intents(spec.name):
        return []
    return audit.reconcile(spec.name, lambda: _serving(tracker, spec))


def judge_and_promote(
    spec: PipelineSpec,
    tracker: MlflowTracker,
    audit: PromotionLog,
    *,
    schema: Schema,
    version: ModelVersionInfo,
    champion: ModelVersionInfo | None,
    holdout: pd.DataFrame,
    cycle_id: str,
) -> PromotionDecision:
    """Score challenger and champion (both loaded back from the registry) on the same holdout,
    run the gate, record the decision (version tags, promotion log, webhook) and apply it.
    """
    features, y_true = holdout[schema.feature_names], holdout[schema.target].to_numpy()
    metric = spec.metric
    challenger = predict_holdout(tracker, version, features, task=schema.task)
    challenger_score = _metric(metric, y_true, challenger)
    gate = champion_score = None
    if champion is not None:
        tracker.set_alias(spec.model_name, CHALLENGER, version.version)
        serving = predict_holdout(tracker, champion, features, task=schema.task)
        champion_score = _metric(metric, y_true, serving)
        registry = spec.registry
        gate = evaluate_gate(
            y_true,
            challenger,
            serving,
            metric=metric,
            metric_fn=_metric,
            greater_is_better=_greater_is_better,
            margin=registry.promotion_margin,
            test=registry.significance.test,
            alpha=registry.significance.alpha,
            n_resamples=registry.significance.n_resamples,
            guardrails=[
                Guardrail(g.metric, g.max_regression, g.max_ratio) for g in registry.guardrails
            ],
            seed=spec.tuning.seed,
        )
    decision = decide_promotion(
        metric=metric,
        greater_is_better=_greater_is_better(metric),
        margin=spec.registry.promotion_margin,
        challenger_version=version.version,
        challenger_score=challenger_score,
        champion_version=champion.version if champion else None,
        champion_score=champion_score,
        gate=gate,
        approval=spec.registry.approval,
    )
    tracker.set_version_tags(spec.model_name, version.version, decision_tags(decision))
    scores: dict[str, Any] = {
        "metric": metric,
        "challenger_score": challenger_score,
        "champion_score": champion_score,
    }
    if decision.is_promoted:
        _move(
            spec,
            tracker,
            audit,
            action="promote",
            to_version=version.version,
            from_version=decision.champion_version,
            reason=decision.reason,
            actor="service",
            cycle_id=cycle_id,
            scores=scores,
        )
    else:
        tracker.set_alias(spec.model_name, CHALLENGER, version.version)
        audit.append(
            pipeline=spec.name,
            model_name=spec.model_name,
            action="await_approval" if decision.awaiting_approval else "reject",
            status="recorded",
            actor="service",
            from_version=decision.champion_version,
            to_version=version.version,
            reason=decision.reason,
            cycle_id=cycle_id,
            **scores,
        )
    event = {"promoted": "promotion", "rejected": "rejection"}.get(decision.outcome, "approval")
    notify(spec, event, {"cycle_id": cycle_id, **decision.to_dict()})
    log.info("[%s %s] %s", spec.name, cycle_id, decision.reason)
    return decision


@dataclass(frozen=True)
class AliasMove:
    """What a manual promotion or rollback did."""

    pipeline: str
    model_name: str
    action: str
    from_version: str | None
    to_version: str


def _target(
    tracker: MlflowTracker,
    spec: PipelineSpec,
    version: str | None,
    *,
    default_alias: str,
    current: str | None,
) -> ModelVersionInfo:
    """The version to move @champion to: ``version``, else what ``default_alias`` names."""
    if version is None:
        aliased = tracker.get_alias(spec.model_name, default_alias)
        if aliased is None:
            raise TrackingError(
                f"model {spec.model_name!r} has no @{default_alias}; pass --version N"
            )
        version = aliased.version
    try:
        target = tracker.get_version(spec.model_name, version)
    except Exception as exc:
        raise TrackingError(f"model {spec.model_name!r} has no version {version}: {exc}") from exc
    if target.version == current:
        raise TrackingError(f"v{target.version} of {spec.model_name!r} is already the champion")
    return target


def promote_manually(
    spec: PipelineSpec, *, version: str | None = None, actor: str | None = None
) -> AliasMove:
    """Make ``version`` (default: the ``@challenger``) the champion, as a person decided.

    Raises:
        TrackingError: No such version, no challenger to promote, or it already serves.
    """
    from automl.service._cycle import make_tracker

    tracker, audit = make_tracker(spec), PromotionLog(spec.state_url)
    reconcile(spec, tracker, audit)
    current = _serving(tracker, spec)
    target = _target(tracker, spec, version, default_alias=CHALLENGER, current=current)
    who = actor or current_actor()
    reason = f"manual promotion of v{target.version} by {who}"
    tracker.set_version_tags(
        spec.model_name, target.version, {"automl.decision": "promoted", "automl.approved_by": who}
    )
    _move(
        spec,
        tracker,
        audit,
        action="manual_promote",
        to_version=target.version,
        from_version=current,
        reason=reason,
        actor=who,
    )
    notify(spec, "promotion", {"version": target.version, "previous": current, "actor": who})
    return AliasMove(spec.name, spec.model_name, "manual_promote", current, target.version)


def rollback(
    spec: PipelineSpec, *, version: str | None = None, actor: str | None = None
) -> AliasMove:
    """Point ``@champion`` back at ``@previous-champion`` (or at ``version``).

    The version rolled back from becomes ``@previous-champion``, so a second rollback rolls
    forward again. The drift reference follows the champion automatically.

    Raises:
        TrackingError: No champion, nothing to roll back to, or the target already serves.
    """
    from automl.service._cycle import make_tracker

    tracker, audit = make_tracker(spec), PromotionLog(spec.state_url)
    reconcile(spec, tracker, audit)
    current = _serving(tracker, spec)
    if current is None:
        raise TrackingError(f"model {spec.model_name!r} has no @champion to roll back")
    target = _target(tracker, spec, version, default_alias=PREVIOUS_CHAMPION, current=current)
    who = actor or current_actor()
    _move(
        spec,
        tracker,
        audit,
        action="rollback",
        to_version=target.version,
        from_version=current,
        reason=f"rollback from v{current} to v{target.version} by {who}",
        actor=who,
        drop_challenger=False,
    )
    notify(spec, "promotion", {"version": target.version, "previous": current, "rollback": True})
    return AliasMove(spec.name, spec.model_name, "rollback", current, target.version)
