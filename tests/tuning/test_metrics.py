"""The trial metrics are computed with NumPy; they must equal scikit-learn's on the same input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    mean_absolute_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from automl.tuning import TRIAL_METRICS
from automl.tuning._metrics import classification_scores, regression_scores


def _sklearn_classification(y: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    pred = proba.argmax(axis=1)
    labels = list(range(n_classes))
    average = "binary" if n_classes == 2 else "weighted"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, pred, labels=None if n_classes == 2 else labels, average=average, zero_division=0
        )
        loss = log_loss(y, proba, labels=labels)
    if n_classes == 2:
        auc = roc_auc_score(y, proba[:, 1])
    else:
        auc = roc_auc_score(y, proba, multi_class="ovr", average="weighted", labels=labels)
    return {
        "accuracy": accuracy_score(y, pred),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "log_loss": loss,
        "roc_auc": auc,
    }


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_scores_equal_sklearn(n_classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y]
    logits = np.round(logits, 1)  # ties in the scores, as shallow trees give
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba[:3] = np.eye(n_classes)[y[:3]]  # certain predictions: the log loss clips
    ours = classification_scores(y, proba, n_classes=n_classes)
    assert list(ours) == ["accuracy", "precision", "recall", "f1", "log_loss", "roc_auc"]
    assert set(ours) == set(TRIAL_METRICS["classification"])
    expected = _sklearn_classification(y, proba, n_classes)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_classification_edge_cases_follow_sklearn() -> None:
    # No predicted positives: precision 0 (zero_division=0), like scikit-learn.
    y = np.array([0, 1, 0, 1, 0])
    proba = np.tile([0.8, 0.2], (5, 1))
    proba[:, 1] += np.linspace(0, 0.1, 5)
    proba[:, 0] = 1 - proba[:, 1]
    ours = classification_scores(y, proba, n_classes=2)
    assert ours["precision"] == 0.0 and ours["f1"] == 0.0
    expected = _sklearn_classification(y, proba, 2)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, rel=1e-12), name
    # One class only in the rows: no AUC; a class absent from a multiclass fold: no AUC either.
    single = classification_scores(np.zeros(4, dtype=int), np.tile([0.6, 0.4], (4, 1)), n_classes=2)
    assert np.isnan(single["roc_auc"]) and single["accuracy"] == 1.0
    absent = classification_scores(
        np.array([0, 1, 0, 1]), np.tile([0.5, 0.3, 0.2], (4, 1)), n_classes=3
    )
    assert np.isnan(absent["roc_auc"])


def test_only_the_named_metrics() -> None:
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    assert classification_scores(y, proba, n_classes=2, names=["roc_auc"]) == {"roc_auc": 1.0}
    assert set(classification_scores(y, proba, n_classes=2, names=["f1"])) == {"f1"}
    assert regression_scores(np.array([1.0, 3.0]), np.array([2.0, 3.0]), names=["mae"]) == {
        "mae": 0.5
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_scores_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, 300)
    pred = y + rng.normal(0, 1, 300)
    ours = regression_scores(y, pred)
    assert list(ours) == ["rmse", "mae", "r2"]
    assert ours["rmse"] == pytest.approx(root_mean_squared_error(y, pred), rel=1e-12)
    assert ours["mae"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-12)
    assert ours["r2"] == pytest.approx(r2_score(y, pred), rel=1e-12)
    constant = np.full(5, 2.0)
    assert regression_scores(constant, constant)["r2"] == r2_score(constant, constant) == 1.0
    assert regression_scores(constant, constant + 1)["r2"] == r2_score(constant, constant + 1)
