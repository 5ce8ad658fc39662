"""Tracking: MLflow runs and artifacts, the model registry and the promotion rule."""

from __future__ import annotations

from automl.tracking._gate import (
    GateResult,
    Guardrail,
    GuardrailCheck,
    Predictions,
    SignificanceTest,
    evaluate_gate,
)
from automl.tracking._mlflow import MlflowTracker, ModelVersionInfo
from automl.tracking._promotion import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    Approval,
    PromotionDecision,
    apply_promotion,
    decide_promotion,
    decision_tags,
    move_champion,
)
from automl.tracking._pyfunc import predict_frame

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "Approval",
    "GateResult",
    "Guardrail",
    "GuardrailCheck",
    "MlflowTracker",
    "ModelVersionInfo",
    "Predictions",
    "PromotionDecision",
    "SignificanceTest",
    "apply_promotion",
    "decide_promotion",
    "decision_tags",
    "evaluate_gate",
    "move_champion",
    "predict_frame",
]
