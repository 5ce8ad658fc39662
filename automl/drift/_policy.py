"""Dataset-level decision: multiple-testing correction, policy scores and non-column signals.

Two dataset policies turn per-column verdicts into one score in [0, 1]:

* ``share`` (default, evidently's rule): the share of checked columns that drifted. Every column
  counts the same, so a batch where a few irrelevant columns moved can trigger a re-tune, and
  one where the single column the model relies on moved may not.
* ``weighted``: the share of the model's importance that sits in drifted columns (weights are
  e.g. the champion's feature importances). It reacts to what matters to the model, but needs a
  model (no weights before the first champion) and ignores columns the model does not use yet,
  which may start to matter after a re-tune.

With many columns, per-column p-value tests at 5% flag some column in most batches by chance,
so p-values are corrected for the number of p-value tests:

* ``bh`` (default, Benjamini-Hochberg): controls the expected share of falsely flagged columns
  among the flagged ones, which is what a share-of-columns rule counts; with no drift at all it
  flags any column with probability <= alpha, and when many columns move it keeps most of the
  power of uncorrected tests;
* ``holm`` (step-down) and ``bonferroni`` (alpha / m): control the chance of flagging any column
  at all; the right choice when one column can decide (``weighted`` with a dominant column, or a
  small ``drift_share``), at a clear cost in power when drift is broad;
* ``none``: evidently's behaviour.

Distances are not p-values and are not corrected; their thresholds can be calibrated from
reference-vs-reference resamples instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from automl.drift._report import DriftSignal
from automl.vocab import CORRECTIONS, Correction


def adjust_pvalues(
    p_values: Sequence[float], alphas: Sequence[float], correction: Correction
) -> list[float]:
    """Adjust p-values for multiple testing, each on the scale of its own threshold.

    A column with p-value ``p`` and threshold ``alpha`` is judged on ``p / alpha``; the ratios
    are adjusted (Bonferroni: times m; Holm: step-down, monotone) and mapped back, so a column
    drifts when its adjusted p-value is below its own alpha. With equal alphas these are the
    textbook procedures. Missing p-values (NaN) count as 1.

    Args:
        p_values: Raw p-values.
        alphas: Each test's threshold (> 0).
        correction: ``none``, ``bonferroni``, ``holm`` or ``bh`` (Benjamini-Hochberg).

    Returns:
        Adjusted p-values, in input order, capped at 1.

    Example:
        >>> [round(p, 3) for p in adjust_pvalues([0.01, 0.02, 0.04], [0.05] * 3, "holm")]
        [0.03, 0.04, 0.04]
        >>> [round(p, 3) for p in adjust_pvalues([0.01, 0.02, 0.04], [0.05] * 3, "bonferroni")]
        [0.03, 0.06, 0.12]
        >>> [round(p, 3) for p in adjust_pvalues([0.01, 0.02, 0.04], [0.05] * 3, "bh")]
        [0.03, 0.03, 0.04]
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    p = np.nan_to_num(np.asarray(p_values, dtype=np.float64), nan=1.0)
    a = np.asarray(alphas, dtype=np.float64)
    m = len(p)
    if m == 0 or correction == "none":
        return [float(x) for x in p]
    ratio = p / a
    order = np.argsort(ratio, kind="stable")
    adjusted = np.empty(m)
    if correction == "bonferroni":
        adjusted = ratio * m
    elif correction == "holm":
        adjusted[order] = np.maximum.accumulate(ratio[order] * (m - np.arange(m)))
    else:  # Benjamini-Hochberg step-up: p_(k) * m / k, made monotone from the largest down
        scaled = ratio[order] * m / np.arange(1, m + 1)
        adjusted[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    return [float(x) for x in np.minimum(adjusted * a, 1.0)]


def normalize_weights(
    weights: Mapping[str, float], columns: Sequence[str]
) -> tuple[dict[str, float], bool]:
    """Weights of ``columns`` scaled to sum to 1; columns without a weight get 0.

    Returns:
        ``(weights, is_uniform_fallback)``: when no checked column has a positive weight, every
        column gets the same weight and the flag is set.

    Raises:
        ValueError: A weight is negative or not finite.
    """
    bad = {k: v for k, v in weights.items() if not np.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"weights must be finite and >= 0, got {bad}")
    raw = {c: float(weights.get(c, 0.0)) for c in columns}
    total = sum(raw.values())
    if total <= 0:
        return {c: 1.0 / len(columns) for c in columns} if columns else {}, True
    return {c: w / total for c, w in raw.items()}, False


def performance_drift(
    *,
    reference_score: float,
    current_score: float,
    tolerance: float,
    greater_is_better: bool = True,
    metric: str = "score",
) -> DriftSignal:
    """Performance drift: the model's metric on labelled new rows fell beyond a tolerance.

    Args:
        reference_score: The model's validation score (e.g. its CV score when it was trained).
        current_score: Its score on the new labelled rows.
        tolerance: Allowed worsening, in the metric's units (>= 0).
        greater_is_better: Direction of the metric (False for losses such as rmse).
        metric: Metric name, for the report.

    Returns:
        A ``performance`` signal whose score is the worsening (positive = worse).

    Raises:
        ValueError: ``tolerance`` is negative.

    Example:
        >>> s = performance_drift(reference_score=0.84, current_score=0.78, tolerance=0.03,
        ...                       metric="roc_auc")
        >>> s.is_drifted, round(s.score, 2)
        (True, 0.06)
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    drop = reference_score - current_score if greater_is_better else current_score - reference_score
    return DriftSignal(
        name="performance",
        method=metric,
        score=float(drop),
        threshold=float(tolerance),
        is_drifted=bool(drop - tolerance > 1e-12),  # 0.90 - 0.85 is not "beyond" 0.05
        detail=(
            f"{metric} {current_score:.4f} on the new rows vs {reference_score:.4f} at "
            f"validation (worse by {drop:+.4f}; tolerance {tolerance})"
        ),
    )
