"""Search spaces that fit the data they meet.

A fixed space can be worse than the library defaults: with ``colsample_bytree`` in [0.4, 1] a
2-feature table loses one of its two features in every tree. Ranges here adapt to the table's
shape and always contain the library defaults, which are enqueued as trial 0.
"""

from __future__ import annotations

from typing import Any

from automl.tuning._estimators import XGBOOST_DEFAULTS


def xgboost_space(*, n_rows: int, n_features: int) -> dict[str, Any]:
    """Optuna distributions for XGBoost, adapted to the training table's shape.

    Args:
        n_rows: Training rows.
        n_features: Columns after preprocessing (one-hot columns count).

    Returns:
        Parameter name to ``optuna.distributions`` object. Parameters whose range collapses to
        the default for this shape are left out (they stay at the library default).

    Example:
        >>> "colsample_bytree" in xgboost_space(n_rows=1000, n_features=2)
        False
        >>> xgboost_space(n_rows=1000, n_features=20)["colsample_bytree"].low
        0.3
    """
    from optuna.distributions import FloatDistribution, IntDistribution

    # Keep at least two features per tree (all of them when there are two or fewer).
    col_low = min(1.0, max(0.3, 2.0 / max(n_features, 1)))
    # Leaves need enough rows: cap min_child_weight so small tables still split.
    mcw_high = max(2.0, min(50.0, n_rows / 50.0))
    space: dict[str, Any] = {
        "n_estimators": IntDistribution(50, 1000, log=True),
        "learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "max_depth": IntDistribution(2, 12),
        "min_child_weight": FloatDistribution(1.0, mcw_high, log=True),
        "subsample": FloatDistribution(0.5, 1.0),
        "reg_lambda": FloatDistribution(1e-3, 10.0, log=True),
        "reg_alpha": FloatDistribution(0.0, 5.0),
    }
    if col_low < 1.0:
        space["colsample_bytree"] = FloatDistribution(col_low, 1.0)
    for name, dist in space.items():
        default = XGBOOST_DEFAULTS[name]
        assert dist.low <= default <= dist.high, f"{name} default {default} outside its range"
    return space
