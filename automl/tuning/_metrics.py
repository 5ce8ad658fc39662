"""Primary metrics: their direction, and scoring a fitted model on a frame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from automl.vocab import GREATER_IS_BETTER, METRICS, METRICS_BY_TASK, PERFECT_SCORE


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


def _binary_roc_auc(y_true: np.ndarray[Any, Any], score: np.ndarray[Any, Any]) -> float:
    """Area under the ROC curve of labels 0/1, by the trapezoidal rule over every distinct
    threshold (scikit-learn's ``roc_auc_score`` without its per-call input checks)."""
    order = np.argsort(score, kind="mergesort")[::-1]
    positive = np.asarray(y_true)[order] == 1
    ends = np.r_[np.flatnonzero(np.diff(np.asarray(score)[order])), positive.size - 1]
    tps = np.cumsum(positive)[ends]
    fps = ends + 1 - tps
    tpr = np.r_[0.0, tps] / tps[-1]
    fpr = np.r_[0.0, fps] / fps[-1]
    return float(np.trapezoid(tpr, fpr))


def _ratio(num: np.ndarray[Any, Any], den: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``num / den``, 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    out = np.zeros(len(num), dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


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
    primary metrics ``f1`` and ``roc_auc`` do. The values are scikit-learn's (``zero_division``
    0, probabilities clipped to machine epsilon for the log loss), computed from one confusion
    count with NumPy: a search scores every fold of every trial, and scikit-learn's checks on
    each call would cost more than the arithmetic.

    Args:
        y_true: Encoded labels.
        proba: Class probabilities, one column per class.
        n_classes: Number of classes.
        names: Only these metrics (None: all of ``METRICS_BY_TASK["classification"]``).

    Example:
        >>> y = np.array([0, 1, 1, 0])
        >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
        >>> s = classification_scores(y, p, n_classes=2)
        >>> s["accuracy"], s["recall"], s["roc_auc"]
        (0.75, 0.5, 1.0)
    """
    wanted = set(METRICS_BY_TASK["classification"] if names is None else names)
    y = np.asarray(y_true).astype(int, copy=False)
    proba = np.asarray(proba, dtype=float)
    pred = proba.argmax(axis=1)
    scores: dict[str, float] = {}
    if "accuracy" in wanted:
        scores["accuracy"] = float(np.mean(pred == y))
    if wanted & {"precision", "recall", "f1"}:
        hits = np.bincount(y[pred == y], minlength=n_classes).astype(float)
        predicted = np.bincount(pred, minlength=n_classes).astype(float)
        actual = np.bincount(y, minlength=n_classes).astype(float)
        per_class = {
            "precision": _ratio(hits, predicted),
            "recall": _ratio(hits, actual),
            "f1": _ratio(2 * hits, actual + predicted),
        }
        for name, values in per_class.items():
            if n_classes == 2:
                scores[name] = float(values[1])
            else:
                scores[name] = float(np.average(values, weights=actual))
    if "log_loss" in wanted:
        eps = np.finfo(float).eps
        chosen = np.clip(proba[np.arange(len(y)), y], eps, 1 - eps)
        scores["log_loss"] = float(np.mean(-np.log(chosen)))
    if "roc_auc" in wanted:
        scores["roc_auc"] = float("nan")
        present = np.unique(y)
        if len(present) > 1:
            if n_classes == 2:
                scores["roc_auc"] = _binary_roc_auc(y, proba[:, 1])
            elif len(present) == n_classes:
                from sklearn.metrics import roc_auc_score

                scores["roc_auc"] = float(
                    roc_auc_score(
                        y,
                        proba,
                        multi_class="ovr",
                        average="weighted",
                        labels=list(range(n_classes)),
                    )
                )
    return {k: v for k, v in scores.items() if k in wanted}


def regression_scores(
    y_true: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    *,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """RMSE, MAE and R2 (``names``: only these), as scikit-learn computes them.

    Example:
        >>> regression_scores(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))["mae"]
        0.3333333333333333
    """
    wanted = METRICS_BY_TASK["regression"] if names is None else names
    y = np.asarray(y_true, dtype=float)
    error = y - np.asarray(pred, dtype=float)
    scores: dict[str, float] = {}
    if "rmse" in wanted:
        scores["rmse"] = float(np.sqrt(np.mean(error**2)))
    if "mae" in wanted:
        scores["mae"] = float(np.mean(np.abs(error)))
    if "r2" in wanted:
        residual = float(np.sum(error**2))
        total = float(np.sum((y - y.mean()) ** 2))
        # scikit-learn's convention for a constant target: perfect (1) or not (0).
        scores["r2"] = 1.0 - residual / total if total else float(residual == 0.0)
    return scores


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
