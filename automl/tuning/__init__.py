"""Tuning: search spaces, model pipelines, metrics and the Optuna search."""

from __future__ import annotations

from automl.tuning._estimators import XGBOOST_DEFAULTS, LabelEncodedClassifier, build_model
from automl.tuning._metrics import GREATER_IS_BETTER, score_model
from automl.tuning._space import xgboost_space
from automl.tuning._tuner import TrialResult, TuningResult, tune

__all__ = [
    "GREATER_IS_BETTER",
    "XGBOOST_DEFAULTS",
    "LabelEncodedClassifier",
    "TrialResult",
    "TuningResult",
    "build_model",
    "score_model",
    "tune",
    "xgboost_space",
]
