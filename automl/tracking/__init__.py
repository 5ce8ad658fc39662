"""Tracking: MLflow runs and artifacts, the model registry and the promotion rule."""

from __future__ import annotations

from automl.tracking._mlflow import MlflowTracker, ModelVersionInfo
from automl.tracking._promotion import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    PromotionDecision,
    apply_promotion,
    decide_promotion,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "MlflowTracker",
    "ModelVersionInfo",
    "PromotionDecision",
    "apply_promotion",
    "decide_promotion",
]
