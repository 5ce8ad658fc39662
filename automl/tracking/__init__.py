"""Tracking: MLflow runs and artifacts; the registry: versions, aliases, the promotion gate,
alias moves with their intent log, reconcile, rollback and the promotion history."""

from __future__ import annotations

from automl.tracking._aliases import (
    AliasMove,
    move_logged,
    promote_version,
    reconcile,
    rollback,
    serving_version,
)
from automl.tracking._gate import (
    GateResult,
    Guardrail,
    GuardrailCheck,
    Predictions,
    PromotionGate,
    evaluate_gate,
)
from automl.tracking._mlflow import MlflowTracker, ModelVersionInfo, RunSummary
from automl.tracking._promotion import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    PromotionDecision,
    decide_promotion,
    move_champion,
)
from automl.tracking._promotion_log import Action, LogEntry, PromotionLog, current_actor
from automl.tracking._pyfunc import predict_frame
from automl.tracking._shadow import ShadowBatch, ShadowState, ShadowStore
from automl.vocab import Approval, SignificanceTest

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "Action",
    "AliasMove",
    "Approval",
    "GateResult",
    "Guardrail",
    "GuardrailCheck",
    "LogEntry",
    "MlflowTracker",
    "ModelVersionInfo",
    "Predictions",
    "PromotionDecision",
    "PromotionGate",
    "PromotionLog",
    "RunSummary",
    "ShadowBatch",
    "ShadowState",
    "ShadowStore",
    "SignificanceTest",
    "current_actor",
    "decide_promotion",
    "evaluate_gate",
    "move_champion",
    "move_logged",
    "predict_frame",
    "promote_version",
    "reconcile",
    "rollback",
    "serving_version",
]
