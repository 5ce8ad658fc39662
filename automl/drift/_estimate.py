"""Label-free performance estimation: confidence-based performance estimation (CBPE).

While labels are late, a classifier's performance on new rows can still be estimated from its
own probabilities, as NannyML's CBPE does: calibrate the model's probabilities on a reference
set with labels, then take the metric's *expected* value on the new rows, treating each row's
calibrated probability as the chance that its label is that class.

* accuracy: the mean calibrated probability of the class the model predicts (the class of its
  largest uncalibrated probability, which is what it serves);
* ROC AUC: the area under the expected ROC curve. The rows are ranked by the model's
  uncalibrated scores (the realized AUC ranks by them too; an isotonic map would tie rows
  that the model tells apart), and at each threshold the expected true and false positives
  are the sums of the calibrated probabilities ``q`` and of ``1 - q`` above it. Multiclass:
  one-vs-rest per class, weighted by each class's expected prevalence (as
  ``roc_auc_ovr_weighted``, the tuner's multiclass AUC).

The estimate holds under covariate shift (the inputs move, ``P(y | x)`` stays): rows nearer
the decision boundary lower the estimate as they lower the realized metric, where the naive
estimate (the metric on the reference) stays put. It does not see concept drift (``P(y | x)``
changes), and it needs a reference the model did not train on (a holdout): probabilities on
training rows are overconfident, and a calibration fitted to them overestimates. Regression
is not done (NannyML's direct loss estimation would be the analogue).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from automl.drift._policy import performance_drift
from automl.drift._report import DriftSignal
from automl.errors import DriftCheckError

EstimatedMetric = Literal["roc_auc", "accuracy"]
Calibration = Literal["isotonic", "sigmoid", "none"]
#: Metrics the estimator estimates.
ESTIMATED_METRICS: tuple[EstimatedMetric, ...] = ("roc_auc", "accuracy")

_EPS = 1e-6


@dataclass(frozen=True)
class PerformanceEstimate:
    """A metric estimated without labels, beside the naive estimate.

    Attributes:
        metric: ``roc_auc`` or ``accuracy``.
        value: The estimate on the new rows.
        reference_value: The metric realized on the reference rows: the naive estimate
            ("performance has not changed").
        n_rows: Rows the estimate covers.
        calibration: ``isotonic``, ``sigmoid`` (Platt) or ``none``.
    """

    metric: EstimatedMetric
    value: float
    reference_value: float
    n_rows: int
    calibration: Calibration

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "metric": self.metric,
            "value": self.value,
            "reference_value": self.reference_value,
            "n_rows": self.n_rows,
            "calibration": self.calibration,
        }


def _proba_matrix(proba: Any, n_classes: int | None, name: str) -> np.ndarray:
    matrix = np.asarray(proba, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError(
            f"{name} must be a matrix of class probabilities (n_rows, n_classes >= 2), as "
            f"predict_proba returns; got shape {matrix.shape}"
        )
    if n_classes is not None and matrix.shape[1] != n_classes:
        raise ValueError(
            f"{name} has {matrix.shape[1]} columns but the estimator was fitted on "
            f"{n_classes} classes; pass the same model's predict_proba"
        )
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} holds non-finite probabilities; check the model's output")
    return matrix


def expected_roc_auc(scores: np.ndarray, expected: np.ndarray) -> float:
    """Area under the expected ROC curve of ``scores`` when row ``i`` is positive with
    probability ``expected[i]``.

    Ties in ``scores`` count half, as in the realized ROC AUC.

    Args:
        scores: The model's scores (any monotone scale), one per row.
        expected: Calibrated probabilities that each row is positive, in [0, 1].

    Returns:
        The expected AUC; NaN when the rows are expected to be all of one class.

    Example:
        >>> round(expected_roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1.0])), 2)
        0.75
    """
    order = np.argsort(-scores, kind="mergesort")
    s, q = scores[order], expected[order]
    positives, negatives = q.sum(), (1.0 - q).sum()
    if positives <= _EPS or negatives <= _EPS:
        return float("nan")
    # One point of the curve per distinct score: tied rows move the curve together.
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tpr = np.r_[0.0, np.cumsum(q)[last_of_tie] / positives]
    fpr = np.r_[0.0, np.cumsum(1.0 - q)[last_of_tie] / negatives]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def _realized(metric: EstimatedMetric, proba: np.ndarray, truth: np.ndarray) -> float:
    """The metric on labelled rows (``truth``: one-hot matrix of the true classes)."""
    if metric == "accuracy":
        return float(truth[np.arange(len(proba)), proba.argmax(axis=1)].mean())
    if proba.shape[1] == 2:
        return expected_roc_auc(proba[:, 1], truth[:, 1])
    weights = truth.mean(axis=0)
    aucs = [expected_roc_auc(proba[:, c], truth[:, c]) for c in range(proba.shape[1])]
    return float(sum(w * a for w, a in zip(weights, aucs, strict=True) if w > 0))


class ConfidenceBasedEstimator:
    """Estimates a classifier's ROC AUC and accuracy on unlabelled rows (CBPE).

    Fit it on the model's probabilities for reference rows with labels (rows the model did not
    train on: its holdout, or newer rows whose labels have arrived), then estimate on new rows.

    Args:
        calibration: ``isotonic`` (default, as NannyML; needs a few hundred reference rows),
            ``sigmoid`` (Platt scaling on the logit of the probability; steadier on small
            references) or ``none`` (trust the model's probabilities).

    Raises:
        ValueError: ``calibration`` is not one of these.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> def rows(n, spread):
        ...     x = rng.normal(scale=spread, size=n)
        ...     p = 1 / (1 + np.exp(-3 * x))  # the true P(y=1 | x), and the model's
        ...     return np.c_[1 - p, p], (rng.uniform(size=n) < p).astype(int)
        >>> ref_proba, ref_y = rows(2000, 1.5)
        >>> estimator = ConfidenceBasedEstimator().fit(ref_proba, ref_y, classes=[0, 1])
        >>> new_proba, new_y = rows(2000, 0.3)  # covariate shift towards the boundary
        >>> estimate = estimator.estimate(new_proba, metric="accuracy")
        >>> realized = float(((new_proba[:, 1] > 0.5) == new_y).mean())
        >>> round(estimate.reference_value, 2), round(estimate.value, 2), round(realized, 2)
        (0.88, 0.67, 0.66)
    """

    def __init__(self, *, calibration: Calibration = "isotonic") -> None:
        if calibration not in ("isotonic", "sigmoid", "none"):
            raise ValueError(
                f"calibration must be 'isotonic', 'sigmoid' or 'none', got {calibration!r}"
            )
        self.calibration = calibration
        self._calibrators: list[Any] = []
        self._classes: tuple[Any, ...] = ()
        self._reference: dict[EstimatedMetric, float] = {}

    @property
    def classes(self) -> tuple[Any, ...]:
        """The classes, in the order of the probability columns (empty before :meth:`fit`)."""
        return self._classes

    @property
    def reference_scores(self) -> dict[EstimatedMetric, float]:
        """The metrics realized on the reference rows (the naive estimates)."""
        return dict(self._reference)

    def fit(
        self, proba: Any, labels: Sequence[Any] | np.ndarray, *, classes: Sequence[Any]
    ) -> ConfidenceBasedEstimator:
        """Calibrate on reference rows with labels.

        Args:
            proba: The model's class probabilities for the reference rows, ``(n, k)``.
            labels: Their true labels.
            classes: The class of each probability column (the model's ``classes_``).

        Returns:
            The estimator itself.

        Raises:
            ValueError: Shapes or classes do not fit together, or a label is not a class.
            DriftCheckError: The reference has fewer than two of its classes among the labels
                (nothing to calibrate against).
        """
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        matrix = _proba_matrix(proba, None, "proba")
        truth_labels = np.asarray(labels)
        if len(truth_labels) != len(matrix):
            raise ValueError(
                f"labels has {len(truth_labels)} rows but proba has {len(matrix)}; pass the "
                "labels of the same rows"
            )
        if len(classes) != matrix.shape[1]:
            raise ValueError(
                f"classes names {len(classes)} classes but proba has {matrix.shape[1]} "
                "columns; pass the model's classes_"
            )
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({str(v) for v in truth_labels if v not in index})
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among classes {list(classes)}")
        truth = np.zeros_like(matrix)
        truth[np.arange(len(matrix)), [index[v] for v in truth_labels]] = 1.0
        if (truth.sum(axis=0) > 0).sum() < 2:
            raise DriftCheckError(
                f"the reference's {len(matrix)} labelled row(s) are all of one class; "
                "performance cannot be estimated from it. Use a reference with both outcomes"
            )
        calibrators: list[Any] = []
        columns = [1] if matrix.shape[1] == 2 else range(matrix.shape[1])
        for c in columns:
            if self.calibration == "isotonic":
                model: Any = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                model.fit(matrix[:, c], truth[:, c])
            elif self.calibration == "sigmoid":
                model = LogisticRegression(C=1e6)
                model.fit(_logit(matrix[:, c]), truth[:, c].astype(int))
            else:
                model = None
            calibrators.append(model)
        self._calibrators = calibrators
        self._classes = tuple(classes)
        self._reference = {m: _realized(m, matrix, truth) for m in ESTIMATED_METRICS}
        return self

    def calibrate(self, proba: Any) -> np.ndarray:
        """Calibrated class probabilities of new rows (rows sum to 1).

        Raises:
            ValueError: Called before :meth:`fit`, or ``proba`` has the wrong shape.
        """
        if not self._classes:
            raise ValueError("the estimator is not fitted: call fit() on a labelled reference")
        matrix = _proba_matrix(proba, len(self._classes), "proba")
        if self.calibration == "none":
            return np.asarray(matrix / matrix.sum(axis=1, keepdims=True).clip(_EPS), dtype=float)
        columns = [1] if matrix.shape[1] == 2 else range(matrix.shape[1])
        out = np.empty((len(matrix), len(columns)))
        for j, (c, model) in enumerate(zip(columns, self._calibrators, strict=True)):
            if self.calibration == "isotonic":
                out[:, j] = model.predict(matrix[:, c])
            else:
                out[:, j] = model.predict_proba(_logit(matrix[:, c]))[:, 1]
        if matrix.shape[1] == 2:
            return np.asarray(np.c_[1.0 - out[:, 0], out[:, 0]], dtype=float)
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.where(total > _EPS, out / np.where(total > _EPS, total, 1.0), uniform)

    def estimate(self, proba: Any, *, metric: EstimatedMetric) -> PerformanceEstimate:
        """Estimate ``metric`` on unlabelled rows from the model's probabilities for them.

        Args:
            proba: The model's class probabilities for the new rows, ``(n, k)``, ``n >= 1``.
            metric: ``roc_auc`` or ``accuracy``.

        Returns:
            The estimate and the naive one (the metric on the reference).

        Raises:
            ValueError: Unknown metric, not fitted, wrong shape or no rows.
        """
        if metric not in ESTIMATED_METRICS:
            raise ValueError(
                f"metric must be one of {', '.join(ESTIMATED_METRICS)}, got {metric!r} "
                "(other metrics, and regression, are not estimated without labels)"
            )
        calibrated = self.calibrate(proba)
        raw = _proba_matrix(proba, len(self._classes), "proba")
        if not len(raw):
            raise ValueError("proba has no rows; there is nothing to estimate")
        if metric == "accuracy":
            value = float(calibrated[np.arange(len(raw)), raw.argmax(axis=1)].mean())
        elif raw.shape[1] == 2:
            value = expected_roc_auc(raw[:, 1], calibrated[:, 1])
        else:
            prevalence = calibrated.mean(axis=0)
            value = float(
                sum(
                    w * expected_roc_auc(raw[:, c], calibrated[:, c])
                    for c, w in enumerate(prevalence)
                    if w > _EPS
                )
            )
        return PerformanceEstimate(
            metric=metric,
            value=value,
            reference_value=self._reference[metric],
            n_rows=len(raw),
            calibration=self.calibration,
        )


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(clipped / (1.0 - clipped)), dtype=float).reshape(-1, 1)


def estimated_performance_drift(estimate: PerformanceEstimate, *, tolerance: float) -> DriftSignal:
    """A drift signal from an estimate: the estimated metric fell beyond ``tolerance`` below
    the reference's.

    Args:
        estimate: From :meth:`ConfidenceBasedEstimator.estimate`.
        tolerance: Allowed worsening in the metric's units, >= 0
            (``drift.estimated_performance_tolerance``).

    Returns:
        A signal named ``estimated_performance`` (score: the estimated worsening).

    Example:
        >>> e = PerformanceEstimate("roc_auc", 0.71, 0.83, n_rows=500, calibration="isotonic")
        >>> s = estimated_performance_drift(e, tolerance=0.05)
        >>> s.name, s.is_drifted, round(s.score, 2)
        ('estimated_performance', True, 0.12)
    """
    signal = performance_drift(
        reference_score=estimate.reference_value,
        current_score=estimate.value,
        tolerance=tolerance,
        metric=estimate.metric,
    )
    return DriftSignal(
        name="estimated_performance",
        method=f"cbpe_{estimate.metric}",
        score=signal.score,
        threshold=signal.threshold,
        is_drifted=signal.is_drifted,
        detail=(
            f"estimated {estimate.metric} {estimate.value:.4f} on {estimate.n_rows} unlabelled "
            f"row(s) vs {estimate.reference_value:.4f} on the reference (worse by "
            f"{signal.score:+.4f}; tolerance {tolerance})"
        ),
    )
