"""Primary metrics: their direction, and scoring a fitted model on a frame."""

from __future__ import annotations

from typing import Any

import pandas as pd

#: Whether a larger value is better, per metric name.
GREATER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "accuracy": True,
    "f1": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}


def sklearn_scoring(metric: str, *, n_classes: int | None) -> str:
    """The scikit-learn scorer name for a metric (multiclass variants when ``n_classes`` > 2).

    Raises:
        ValueError: Unknown metric.
    """
    multiclass = n_classes is not None and n_classes > 2
    names = {
        "roc_auc": "roc_auc_ovr_weighted" if multiclass else "roc_auc",
        "accuracy": "accuracy",
        "f1": "f1_weighted" if multiclass else "f1",
        "log_loss": "neg_log_loss",
        "rmse": "neg_root_mean_squared_error",
        "mae": "neg_mean_absolute_error",
        "r2": "r2",
    }
    if metric not in names:
        raise ValueError(f"metric must be one of {sorted(names)}, got {metric!r}")
    return names[metric]


def to_metric_value(scorer_value: float, metric: str) -> float:
    """Turn a scikit-learn scorer value (negated for losses) into the metric's natural units."""
    return float(scorer_value) if GREATER_IS_BETTER[metric] else -float(scorer_value)


def score_model(model: Any, frame: pd.DataFrame, *, target: str, metric: str) -> float:
    """Score a fitted model on a labelled frame, in the metric's natural units.

    Args:
        model: A fitted scikit-learn compatible estimator taking the raw feature frame.
        frame: Rows with features and the target column.
        target: Label column.
        metric: One of :data:`GREATER_IS_BETTER`.

    Returns:
        The metric value (e.g. AUC, or RMSE as a positive number).
    """
    from sklearn.metrics import get_scorer

    y = frame[target]
    n_classes = int(y.nunique()) if metric in ("roc_auc", "f1", "accuracy", "log_loss") else None
    scorer = get_scorer(sklearn_scoring(metric, n_classes=n_classes))
    return to_metric_value(scorer(model, frame.drop(columns=[target]), y), metric)
