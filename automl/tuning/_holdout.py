"""Metrics from stored predictions (labels, probabilities, values), for judging models."""

from __future__ import annotations

from typing import Any

import numpy as np

from automl.vocab import METRICS, PREDICTION_METRICS


def binary_roc_auc(is_positive: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> float:
    """ROC AUC as the Mann-Whitney U statistic (ties count half), equal to scikit-learn's.

    About 20x faster than ``sklearn.metrics.roc_auc_score`` on small arrays, which matters
    in the promotion gate's bootstrap (thousands of calls).

    Raises:
        ValueError: Only one class is present.

    Example:
        >>> binary_roc_auc(np.array([False, False, True, True]), np.array([0.1, 0.4, 0.35, 0.8]))
        0.75
    """
    from scipy.stats import rankdata

    positive = np.asarray(is_positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC is undefined when only one class is present")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def metric_from_predictions(  # noqa: PLR0911 (one return per metric reads best)
    metric: str,
    y_true: np.ndarray[Any, Any],
    values: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None = None,
    classes: np.ndarray[Any, Any] | None = None,
) -> float:
    """Compute a metric from what a model predicted.

    Binary metrics treat the second class of ``classes`` as positive; multiclass ones average
    over classes weighted by support (ROC AUC one-vs-rest).

    Args:
        metric: One of :data:`PREDICTION_METRICS`.
        y_true: True labels or values.
        values: Predicted labels or values.
        proba: Class probabilities (needed for ``roc_auc`` and ``log_loss``).
        classes: Class labels in ``proba``'s column order.

    Returns:
        The metric in its natural units.

    Raises:
        ValueError: Unknown metric, probabilities missing where needed, or a metric undefined
            on these rows (e.g. ROC AUC with one class present).

    Example:
        >>> y = np.array([0, 0, 1, 1])
        >>> metric_from_predictions("accuracy", y, np.array([0, 1, 1, 1]))
        0.75
        >>> metric_from_predictions("rmse", np.array([1.0, 3.0]), np.array([2.0, 2.0]))
        1.0
    """
    from sklearn import metrics as m

    if metric not in PREDICTION_METRICS:
        raise ValueError(f"metric must be one of {sorted(PREDICTION_METRICS)}, got {metric!r}")
    if METRICS[metric].task == "regression":
        y, v = np.asarray(y_true, dtype=float), np.asarray(values, dtype=float)
        if metric == "rmse":
            return float(np.sqrt(np.mean((y - v) ** 2)))
        if metric == "mae":
            return float(np.mean(np.abs(y - v)))
        return float(m.r2_score(y, v))
    labels = classes if classes is not None else np.unique(np.concatenate([y_true, values]))
    binary = len(labels) == 2
    if metric == "accuracy":
        return float(np.mean(np.asarray(values) == np.asarray(y_true)))
    if metric in ("f1", "precision", "recall"):
        fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[metric]
        if binary:
            return float(fn(y_true, values, pos_label=labels[1], zero_division=0))
        return float(fn(y_true, values, labels=labels, average="weighted", zero_division=0))
    if proba is None:
        raise ValueError(f"metric {metric!r} needs predicted probabilities")
    if metric == "log_loss":
        return float(m.log_loss(y_true, proba, labels=labels))
    if len(np.unique(y_true)) < 2:
        raise ValueError("ROC AUC is undefined when only one class is present")
    if binary:
        return binary_roc_auc(np.asarray(y_true) == labels[1], proba[:, 1])
    return float(
        m.roc_auc_score(y_true, proba, multi_class="ovr", average="weighted", labels=labels)
    )
