"""Column weights for the ``weighted`` policy, from any model's predictions.

Feature importances differ in meaning between model families (gain, split counts, one-hot
expanded columns). The weights here are model-agnostic and per raw column: how much the model's
output moves when one column's values are shuffled among the rows (permutation sensitivity, no
labels needed). A column the model ignores gets ~0, whatever its drift.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

Predict = Callable[[pd.DataFrame], Any]


def sensitivity_weights(
    predict: Predict,
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    n_rows: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """Mean absolute change of ``predict``'s output when each column is shuffled.

    Args:
        predict: Maps a frame of feature rows to predictions (values, or a matrix of class
            probabilities whose row changes are summed).
        frame: Rows to probe (e.g. the reference); at most ``n_rows`` are sampled.
        columns: Columns to weigh.
        n_rows: Sample size (>= 2).
        seed: Sampling and shuffling seed.

    Returns:
        Non-negative weight per column (not normalized).

    Raises:
        ValueError: ``n_rows`` < 2 or ``frame`` is empty.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
        >>> w = sensitivity_weights(lambda f: 3 * f["a"].to_numpy(), df, ["a", "b"])
        >>> w["a"] > 1.0, w["b"]
        (True, 0.0)
    """
    if n_rows < 2:
        raise ValueError(f"n_rows must be >= 2, got {n_rows}")
    if frame.empty:
        raise ValueError("cannot compute sensitivity weights on an empty frame")
    sample = frame.sample(min(n_rows, len(frame)), random_state=seed).reset_index(drop=True)
    base = np.asarray(predict(sample), dtype=np.float64)
    rng = np.random.default_rng(seed)
    weights: dict[str, float] = {}
    for column in columns:
        shuffled = sample.copy()
        shuffled[column] = rng.permutation(sample[column].to_numpy())
        moved = np.abs(np.asarray(predict(shuffled), dtype=np.float64) - base)
        weights[column] = float(moved.sum(axis=1).mean() if moved.ndim == 2 else moved.mean())
    return weights
