"""Confidence-based performance estimation on a seeded covariate shift: the estimate tracks the
realized metric where the naive estimate (the reference's score) does not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from threadpoolctl import threadpool_limits

from automl.drift import (
    ConfidenceBasedEstimator,
    PerformanceEstimate,
    estimated_performance_drift,
    expected_roc_auc,
)
from automl.errors import DriftCheckError


def _concept(x: np.ndarray) -> np.ndarray:
    """P(y = 1 | x): fixed, so a shift of x is a covariate shift only."""
    z = 2.0 * x[:, 0] - 1.5 * x[:, 1] + 0.8 * x[:, 0] * x[:, 1]
    return 1.0 / (1.0 + np.exp(-z))


def _draw(rng: np.random.Generator, n: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(scale=scale, size=(n, 3))
    return x, (rng.uniform(size=n) < _concept(x)).astype(int)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The boosted model's OpenMP threads compete with the other processes on a shared machine.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    """A gradient-boosted model (overconfident), its holdout as reference, and two batches:
    one like the reference, one whose rows crowd the decision boundary (accuracy falls)."""
    rng = np.random.default_rng(0)
    x_train, y_train = _draw(rng, 3000, 1.5)
    with threadpool_limits(1):
        model = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train)
        x_ref, y_ref = _draw(rng, 2000, 1.5)
        return {
            "model": model,
            "reference": (model.predict_proba(x_ref), y_ref),
            "same": _draw(rng, 1000, 1.5),
            "shifted": _draw(rng, 1000, 0.5),
        }


def _realized(model: Any, batch: tuple[np.ndarray, np.ndarray], metric: str) -> float:
    x, y = batch
    proba = model.predict_proba(x)
    if metric == "accuracy":
        return float(accuracy_score(y, proba.argmax(axis=1)))
    return float(roc_auc_score(y, proba[:, 1]))


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc"])
@pytest.mark.parametrize("calibration", ["isotonic", "sigmoid"])
def test_the_estimate_tracks_the_realized_metric_under_covariate_shift(
    world: dict[str, Any], metric: str, calibration: str
) -> None:
    model = world["model"]
    estimator = ConfidenceBasedEstimator(calibration=calibration)  # type: ignore[arg-type]
    estimator.fit(*world["reference"], classes=[0, 1])

    shifted = estimator.estimate(model.predict_proba(world["shifted"][0]), metric=metric)  # type: ignore[arg-type]
    realized = _realized(model, world["shifted"], metric)
    naive_error = abs(shifted.reference_value - realized)
    estimate_error = abs(shifted.value - realized)
    assert naive_error > 0.15  # the shift costs the model a lot: the naive estimate misses it
    assert estimate_error < 0.035 and estimate_error < naive_error / 5

    # On rows like the reference the estimate stays where the metric is (no false alarm).
    same = estimator.estimate(model.predict_proba(world["same"][0]), metric=metric)  # type: ignore[arg-type]
    assert abs(same.value - _realized(model, world["same"], metric)) < 0.02
    assert same.n_rows == 1000 and same.calibration == calibration


def test_calibrating_an_overconfident_model_beats_trusting_its_probabilities(
    world: dict[str, Any],
) -> None:
    model = world["model"]
    proba = model.predict_proba(world["shifted"][0])
    realized = _realized(model, world["shifted"], "accuracy")
    errors = {
        calibration: abs(
            ConfidenceBasedEstimator(calibration=calibration)
            .fit(*world["reference"], classes=[0, 1])
            .estimate(proba, metric="accuracy")
            .value
            - realized
        )
        for calibration in ("none", "sigmoid", "isotonic")
    }
    assert errors["sigmoid"] < errors["none"] / 3
    assert errors["isotonic"] < errors["none"]


def test_multiclass_accuracy_and_auc_are_estimated(world: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)

    def draw(n: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(scale=scale, size=(n, 2))
        logits = np.c_[2 * x[:, 0], 2 * x[:, 1], -2 * x[:, 0] - 2 * x[:, 1]]
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return x, np.array([rng.choice(3, p=row) for row in p])

    model = LogisticRegression().fit(*draw(3000, 1.5))
    x_ref, y_ref = draw(2000, 1.5)
    estimator = ConfidenceBasedEstimator().fit(model.predict_proba(x_ref), y_ref, classes=[0, 1, 2])
    x_new, y_new = draw(1500, 0.4)
    proba = model.predict_proba(x_new)
    accuracy = estimator.estimate(proba, metric="accuracy")
    realized = accuracy_score(y_new, proba.argmax(axis=1))
    assert abs(accuracy.value - realized) < 0.03 < abs(accuracy.reference_value - realized)
    auc = estimator.estimate(proba, metric="roc_auc")
    realized_auc = roc_auc_score(y_new, proba, multi_class="ovr", average="weighted")
    assert abs(auc.value - realized_auc) < 0.03 < abs(auc.reference_value - realized_auc)
    assert np.allclose(estimator.calibrate(proba).sum(axis=1), 1.0)


def test_expected_auc_with_certain_labels_is_the_realized_auc() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 20, size=300) / 20  # many ties
    labels = (rng.uniform(size=300) < scores).astype(float)
    assert expected_roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(expected_roc_auc(scores, np.ones(300)))


def test_an_estimate_becomes_a_drift_signal() -> None:
    estimate = PerformanceEstimate("accuracy", 0.70, 0.86, n_rows=800, calibration="isotonic")
    signal = estimated_performance_drift(estimate, tolerance=0.05)
    assert (signal.name, signal.method, signal.is_drifted) == (
        "estimated_performance",
        "cbpe_accuracy",
        True,
    )
    assert signal.score == pytest.approx(0.16)
    assert "estimated accuracy 0.7000 on 800 unlabelled row(s) vs 0.8600" in signal.detail
    assert not estimated_performance_drift(estimate, tolerance=0.2).is_drifted


def test_bad_input_is_refused_with_what_to_do() -> None:
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    with pytest.raises(ValueError, match="calibration must be 'isotonic', 'sigmoid' or 'none'"):
        ConfidenceBasedEstimator(calibration="beta")  # type: ignore[arg-type]
    with pytest.raises(DriftCheckError, match="all of one class"):
        ConfidenceBasedEstimator().fit(proba, [0, 0, 0], classes=[0, 1])
    with pytest.raises(ValueError, match=r"labels \['7'\] are not among classes \[0, 1\]"):
        ConfidenceBasedEstimator().fit(proba, [0, 7, 1], classes=[0, 1])
    with pytest.raises(ValueError, match="not fitted"):
        ConfidenceBasedEstimator().estimate(proba, metric="accuracy")
    fitted = ConfidenceBasedEstimator().fit(proba, [0, 1, 0], classes=[0, 1])
    with pytest.raises(ValueError, match="has 3 columns but the estimator was fitted on 2"):
        fitted.estimate(np.full((2, 3), 1 / 3), metric="accuracy")
    with pytest.raises(ValueError, match="metric must be one of roc_auc, accuracy, got 'f1'"):
        fitted.estimate(proba, metric="f1")  # type: ignore[arg-type]
