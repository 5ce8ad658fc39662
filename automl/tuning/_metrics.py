"""Primary metrics: their direction, and scoring a fitted model on a frame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from automl.vocab import GREATER_IS_BETTER, METRICS, PERFECT_SCORE


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
    is_classification = metric in METRICS and METRICS[metric].task == "classification"
    n_classes = int(y.nunique()) if is_classification else None
    scorer = get_scorer(sklearn_scoring(metric, n_classes=n_classes))
    return to_metric_value(scorer(model, frame.drop(columns=[target]), y), metric)


def classification_scores(
    y_true: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any],
    *,
    n_classes: int,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC AUC and log loss from class probabilities.

    Labels are encoded 0..K-1 and ``proba`` has one column per class. Binary problems score the
    positive class (label 1); multiclass ones average per class weighted by support, as the
    primary metrics ``f1`` and ``roc_auc`` do.

    Args:
        y_true: Encoded labels.
        proba: Class probabilities, one column per class.
        n_classes: Number of classes.
        names: Only these metrics (None: all of :data:`TRIAL_METRICS` ``["classification"]``).

    Example:
        >>> y = np.array([0, 1, 1, 0])
        >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
        >>> s = classification_scores(y, p, n_classes=2)
        >>> s["accuracy"], s["recall"], s["roc_auc"]
        (0.75, 0.5, 1.0)
    """
    from sklearn.metrics import (
        accuracy_score,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    wanted = set(TRIAL_METRICS["classification"] if names is None else names)
    labels = list(range(n_classes))
    pred = np.asarray(proba).argmax(axis=1)
    scores: dict[str, float] = {}
    if "accuracy" in wanted:
        scores["accuracy"] = float(accuracy_score(y_true, pred))
    if wanted & {"precision", "recall", "f1"}:
        average = "binary" if n_classes == 2 else "weighted"
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true,
            pred,
            labels=None if n_classes == 2 else labels,
            average=average,
            zero_division=0,
        )
        scores |= {"precision": float(precision), "recall": float(recall), "f1": float(f1)}
    if "log_loss" in wanted:
        scores["log_loss"] = float(log_loss(y_true, proba, labels=labels))
    if "roc_auc" in wanted:
        scores["roc_auc"] = float("nan")
        if len(np.unique(y_true)) > 1:
            if n_classes == 2:
                scores["roc_auc"] = float(roc_auc_score(y_true, proba[:, 1]))
            elif len(np.unique(y_true)) == n_classes:
                scores["roc_auc"] = float(
                    roc_auc_score(
                        y_true, proba, multi_class="ovr", average="weighted", labels=labels
                    )
                )
    return {k: v for k, v in scores.items() if k in wanted}


def regression_scores(
    y_true: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    *,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """RMSE, MAE and R2 (``names``: only these).

    Example:
        >>> regression_scores(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))["mae"]
        0.3333333333333333
    """
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    functions = {"rmse": root_mean_squared_error, "mae": mean_absolute_error, "r2": r2_score}
    wanted = TRIAL_METRICS["regression"] if names is None else names
    return {k: float(f(y_true, pred)) for k, f in functions.items() if k in wanted}


def skill(score: float, *, metric: str, baseline: float) -> float:
    """Share of the way from a trivial model's score to a perfect one (1 perfect, 0 trivial).

    Example:
        >>> skill(0.75, metric="roc_auc", baseline=0.5)
        0.5
    """
    span = PERFECT_SCORE[metric] - baseline
    if not np.isfinite(span) or abs(span) < 1e-12:
        return float("nan")
    return float((score - baseline) / span)
