"""Search spaces: every model family's tuned hyperparameters, their ranges and defaults.

This module is the one place where ranges live. Each family's space is a function of the table's
shape (a fixed space can be worse than the library defaults: with ``colsample_bytree`` in
[0.4, 1] a 2-feature table loses one of its two features in every tree) and of the task, and it
always contains the library's own defaults, which the tuner enqueues as the family's first trial.

=========================  =====================================  ==========================
family                     tuned hyperparameters (range)          library default
=========================  =====================================  ==========================
``xgboost``                n_estimators [50, 1000] log, a cap:    100 (no early stopping)
                           tuned trials stop early (20 rounds)
                           learning_rate [0.01, 0.3] log          0.3
                           max_depth [2, 12]                      6
                           min_child_weight [1, rows/50] log      1
                           subsample [0.5, 1]                     1
                           colsample_bytree [max(0.3, 2/p), 1]    1
                           reg_lambda (L2) [1e-3, 10] log         1
                           reg_alpha (L1) [0, 5]                  0
``random_forest``,         n_estimators [50, 500] log             100
``extra_trees``            max_features (share) [~1/p, 1]         sqrt(p) (classification),
                                                                  all (regression)
                           min_samples_leaf [1, 32] log           1
``random_forest`` only     max_samples (bootstrap share) [0.5, 1] 1 (all rows)
``hist_gradient_boosting`` learning_rate [0.01, 0.3] log          0.1
                           max_iter [50, 1000] log, a cap:        100
                           tuned trials stop early (10 rounds)
                           max_leaf_nodes [7, 127] log            31
                           min_samples_leaf [2, ≥20] log          20
                           l2_regularization [0, 10]              0
                           max_features [max(0.3, 2/p), 1]        1
``linear``                 classification: logistic regression
                           C [1e-3, 1e3] log                      1
                           regression: ridge / lasso / elastic net
                           alpha [1e-4, 1e2] log                  1
                           penalty l2, l1, elasticnet             l2
                           l1_ratio [0.05, 0.95] (elasticnet)     0.5 (unused by l2)
``mlp``                    hidden_layers [1, 3]                   1
                           hidden_units per layer [16, 256] log   100
                           activation relu, tanh, logistic        relu
                           solver adam, sgd                       adam
                           batch_size [16, 256] log               min(200, rows)
                           learning_rate_init [1e-4, 0.1] log     0.001
                           alpha (L2) [1e-6, 0.1] log             0.0001
                           max_iter (epochs) [50, 500] log, a     200 (no early stopping)
                           cap: tuned trials stop early
                           (10 epochs)
=========================  =====================================  ==========================

``p`` is the number of columns after preprocessing (one-hot columns count). The MLP's solver
leaves out ``lbfgs``: it has no epochs, batches or early stopping, so half the space would be
dead for it. Users narrow or fix any of these in the spec (``tuning.search_space``); see
:func:`family_space`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from automl.errors import TuningError
from automl.vocab import MODEL_FAMILIES, Task, check_choice

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

#: Families trained in rounds or epochs: their learning curve feeds the pruner.
ITERATIVE_FAMILIES: frozenset[str] = frozenset({"xgboost", "hist_gradient_boosting", "mlp"})

#: XGBoost's own defaults for the tuned hyperparameters (xgboost 2.x/3.x), used as trial 0.
XGBOOST_DEFAULTS: dict[str, float | int] = {
    "n_estimators": 100,
    "learning_rate": 0.3,
    "max_depth": 6,
    "min_child_weight": 1.0,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "reg_lambda": 1.0,
    "reg_alpha": 0.0,
}

#: A user override of one hyperparameter: a fixed value, ``[low, high]`` for a numeric one or
#: the allowed choices for a categorical one, or a mapping (or ``automl.config.ParamRange``)
#: with ``low``/``high``/``log``/``step``/``choices``.
ParamOverride = object


@dataclass(frozen=True)
class FamilySpace:
    """One family's search space for one table.

    Attributes:
        family: Model family name.
        distributions: Tuned hyperparameter name to ``optuna.distributions`` object.
        defaults: The library's default for every tuned hyperparameter (clipped into the range
            when the user narrowed it past the default).
        fixed: Hyperparameters the user fixed; they are passed to the model, never searched.
    """

    family: str
    distributions: dict[str, BaseDistribution]
    defaults: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def default_config(self) -> dict[str, Any]:
        """The defaults trial's full configuration (tuned defaults and fixed values)."""
        return {**self.defaults, **self.fixed}


def _check_family(family: str) -> None:
    check_choice(family, MODEL_FAMILIES, name="model family", error=TuningError)


def _share_low(n_features: int) -> float:
    # Keep at least two features per split or tree (all of them when there are two or fewer).
    return min(1.0, max(0.3, 2.0 / max(n_features, 1)))


def _sqrt_share(n_features: int) -> float:
    # A share that scikit-learn turns into exactly int(sqrt(p)) features (its "sqrt" default):
    # max(1, int(share * p)); the half keeps float rounding from landing one feature short.
    p = max(n_features, 1)
    return min(1.0, (int(math.sqrt(p)) + 0.5) / p)


def _base_space(family: str, task: Task, n_rows: int, n_features: int) -> FamilySpace:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dists: dict[str, BaseDistribution]
    defaults: dict[str, Any]
    if family == "xgboost":
        col_low = _share_low(n_features)
        # Leaves need enough rows: cap min_child_weight so small tables still split.
        mcw_high = max(2.0, min(50.0, n_rows / 50.0))
        dists = {
            "n_estimators": IntDistribution(50, 1000, log=True),
            "learning_rate": FloatDistribution(0.01, 0.3, log=True),
            "max_depth": IntDistribution(2, 12),
            "min_child_weight": FloatDistribution(1.0, mcw_high, log=True),
            "subsample": FloatDistribution(0.5, 1.0),
            "reg_lambda": FloatDistribution(1e-3, 10.0, log=True),
            "reg_alpha": FloatDistribution(0.0, 5.0),
        }
        if col_low < 1.0:
            dists["colsample_bytree"] = FloatDistribution(col_low, 1.0)
        defaults = {k: XGBOOST_DEFAULTS[k] for k in dists}
    elif family in ("random_forest", "extra_trees"):
        sqrt_share = _sqrt_share(n_features)
        feat_low = min(sqrt_share, max(0.05, 1.0 / max(n_features, 1)))
        dists = {
            "n_estimators": IntDistribution(50, 500, log=True),
            "min_samples_leaf": IntDistribution(1, 32, log=True),
        }
        defaults = {"n_estimators": 100, "min_samples_leaf": 1}
        if feat_low < 1.0:
            dists["max_features"] = FloatDistribution(feat_low, 1.0)
            defaults["max_features"] = sqrt_share if task == "classification" else 1.0
        if family == "random_forest":
            dists["max_samples"] = FloatDistribution(0.5, 1.0)
            defaults["max_samples"] = 1.0
    elif family == "hist_gradient_boosting":
        dists = {
            "learning_rate": FloatDistribution(0.01, 0.3, log=True),
            "max_iter": IntDistribution(50, 1000, log=True),
            "max_leaf_nodes": IntDistribution(7, 127, log=True),
            "min_samples_leaf": IntDistribution(2, max(20, min(200, n_rows // 10)), log=True),
            "l2_regularization": FloatDistribution(0.0, 10.0),
        }
        defaults = {
            "learning_rate": 0.1,
            "max_iter": 100,
            "max_leaf_nodes": 31,
            "min_samples_leaf": 20,
            "l2_regularization": 0.0,
        }
        if _share_low(n_features) < 1.0:
            dists["max_features"] = FloatDistribution(_share_low(n_features), 1.0)
            defaults["max_features"] = 1.0
    elif family == "linear":
        strength = "C" if task == "classification" else "alpha"
        dists = {
            strength: (
                FloatDistribution(1e-3, 1e3, log=True)
                if task == "classification"
                else FloatDistribution(1e-4, 1e2, log=True)
            ),
            "penalty": CategoricalDistribution(("l2", "l1", "elasticnet")),
            "l1_ratio": FloatDistribution(0.05, 0.95),
        }
        defaults = {strength: 1.0, "penalty": "l2", "l1_ratio": 0.5}
    else:  # mlp
        dists = {
            "hidden_layers": IntDistribution(1, 3),
            "hidden_units": IntDistribution(16, 256, log=True),
            "activation": CategoricalDistribution(("relu", "tanh", "logistic")),
            "solver": CategoricalDistribution(("adam", "sgd")),
            "batch_size": IntDistribution(16, 256, log=True),
            "learning_rate_init": FloatDistribution(1e-4, 1e-1, log=True),
            "alpha": FloatDistribution(1e-6, 1e-1, log=True),
            "max_iter": IntDistribution(50, 500, log=True),
        }
        defaults = {
            "hidden_layers": 1,
            "hidden_units": 100,
            "activation": "relu",
            "solver": "adam",
            # scikit-learn's "auto" is min(200, rows); 200 behaves the same (it is clipped).
            "batch_size": 200,
            "learning_rate_init": 1e-3,
            "alpha": 1e-4,
            "max_iter": 200,
        }
    for name, dist in dists.items():
        assert dist._contains(dist.to_internal_repr(defaults[name])), (
            f"{family}.{name} default {defaults[name]} outside its range"
        )
    return FamilySpace(family=family, distributions=dists, defaults=defaults)


def _clip_into(dist: BaseDistribution, value: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return value if value in dist.choices else dist.choices[0]
    low, high = dist.low, dist.high  # type: ignore[attr-defined]
    clipped = min(max(value, low), high)
    return int(clipped) if isinstance(dist, IntDistribution) else float(clipped)


def _override(family: str, name: str, dist: BaseDistribution, spec: ParamOverride) -> Any:
    """A new distribution for ``name`` from the user's override, or a fixed value."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    where = f"tuning.search_space.{family}.{name}"
    dump = getattr(spec, "model_dump", None)
    if callable(dump):  # automl.config.ParamRange
        spec = dump(exclude_none=True)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise TuningError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: low, high, log, step, choices"
            )
        if spec.get("choices") is not None:
            return CategoricalDistribution(tuple(spec["choices"]))
        if isinstance(dist, CategoricalDistribution):
            raise TuningError(
                f"{where} is categorical ({list(dist.choices)}): give `choices`, not a range"
            )
        low = spec.get("low", dist.low)  # type: ignore[attr-defined]
        high = spec.get("high", dist.high)  # type: ignore[attr-defined]
        log = bool(spec.get("log", dist.log))  # type: ignore[attr-defined]
        step = spec.get("step")
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        if isinstance(dist, CategoricalDistribution):
            if not spec:
                raise TuningError(f"{where}: give at least one choice")
            return CategoricalDistribution(tuple(spec))
        if len(spec) != 2:
            raise TuningError(f"{where}: give a numeric range as [low, high], got {list(spec)}")
        low, high = spec[0], spec[1]
        log, step = dist.log, None  # type: ignore[attr-defined]
    else:
        return spec  # a fixed value
    if not isinstance(low, int | float) or not isinstance(high, int | float) or low > high:
        raise TuningError(f"{where}: need numbers with low <= high, got low={low!r} high={high!r}")
    if log and low <= 0:
        log = False  # a log scale cannot reach 0: narrowing to [0, x] means linear
    try:
        if isinstance(dist, IntDistribution):
            return IntDistribution(int(low), int(high), log=log, step=int(step or 1))
        return FloatDistribution(float(low), float(high), log=log, step=step)
    except ValueError as exc:
        raise TuningError(f"{where}: {exc}") from exc


def family_space(
    family: str,
    *,
    task: Task,
    n_rows: int,
    n_features: int,
    overrides: Mapping[str, ParamOverride] | None = None,
) -> FamilySpace:
    """The curated search space of one family for a table of this shape.

    Args:
        family: One of :data:`MODEL_FAMILIES`.
        task: ``classification`` or ``regression``.
        n_rows: Training rows.
        n_features: Columns after preprocessing (one-hot columns count).
        overrides: Per hyperparameter: a fixed value; ``[low, high]`` to narrow a numeric range
            (keeping its int/float kind and log scale); a list of choices for a categorical one;
            or a mapping with any of ``low``, ``high``, ``log``, ``step``, ``choices``.

    Returns:
        The space; parameters whose range collapses for this shape are left out (they stay at
        the library default).

    Raises:
        TuningError: Unknown family, unknown hyperparameter or an invalid range.

    Example:
        >>> space = family_space("xgboost", task="classification", n_rows=1000, n_features=20)
        >>> space.distributions["colsample_bytree"].low, space.defaults["max_depth"]
        (0.3, 6)
        >>> narrowed = family_space(
        ...     "xgboost", task="classification", n_rows=1000, n_features=20,
        ...     overrides={"max_depth": [2, 4], "subsample": 0.8},
        ... )
        >>> narrowed.distributions["max_depth"].high, narrowed.defaults["max_depth"]
        (4, 4)
        >>> narrowed.fixed
        {'subsample': 0.8}
    """
    from optuna.distributions import BaseDistribution

    _check_family(family)
    base = _base_space(family, task, n_rows, n_features)
    if not overrides:
        return base
    dists, defaults, fixed = dict(base.distributions), dict(base.defaults), {}
    for name, spec in overrides.items():
        if name not in dists:
            allowed = ", ".join(base.distributions) or "(none for this table)"
            raise TuningError(
                f"tuning.search_space.{family}: unknown hyperparameter {name!r}; "
                f"tuned ones: {allowed}"
            )
        new = _override(family, name, dists[name], spec)
        if isinstance(new, BaseDistribution):
            dists[name] = new
            defaults[name] = _clip_into(new, defaults[name])
        else:
            fixed[name] = new
            del dists[name]
            del defaults[name]
    return FamilySpace(family=family, distributions=dists, defaults=defaults, fixed=fixed)


def grid_configs(space: FamilySpace, grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every configuration of an explicit grid; unlisted hyperparameters stay at the defaults.

    Args:
        space: The family's space (fixed values and defaults fill what the grid leaves out).
        grid: Hyperparameter name to the values to try.

    Returns:
        The cartesian product, one full configuration each, in the grid's order.

    Raises:
        TuningError: A name the family does not tune, or an empty list of values.

    Example:
        >>> space = family_space("linear", task="regression", n_rows=100, n_features=3)
        >>> [c["alpha"] for c in grid_configs(space, {"alpha": [0.1, 1.0, 10.0]})]
        [0.1, 1.0, 10.0]
    """
    import itertools

    known = {*space.distributions, *space.fixed}
    for name, values in grid.items():
        if name not in known:
            raise TuningError(
                f"tuning.grid.{space.family}: unknown hyperparameter {name!r}; "
                f"tuned ones: {', '.join(sorted(known))}"
            )
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise TuningError(
                f"tuning.grid.{space.family}.{name}: give a non-empty list of values, "
                f"got {values!r}"
            )
    names = list(grid)
    return [
        {**space.default_config, **dict(zip(names, combo, strict=True))}
        for combo in itertools.product(*(grid[n] for n in names))
    ]


def grid_space(space: FamilySpace, grid: Mapping[str, Sequence[Any]]) -> FamilySpace:
    """The space of an explicit grid: each grid hyperparameter becomes a choice among its grid
    values and its default (grid values may lie outside the curated range; the grid is the
    user's explicit choice), the others keep their distributions and defaults.

    Raises:
        TuningError: As :func:`grid_configs`.

    Example:
        >>> base = family_space("xgboost", task="regression", n_rows=500, n_features=10)
        >>> grid_space(base, {"n_estimators": [20, 40]}).distributions["n_estimators"].choices
        (100, 20, 40)
    """
    from optuna.distributions import CategoricalDistribution

    grid_configs(space, grid)  # validates names and values
    dists, defaults, fixed = dict(space.distributions), dict(space.defaults), dict(space.fixed)
    for name, values in grid.items():
        default = defaults.get(name, fixed.get(name))
        fixed.pop(name, None)
        dists[name] = CategoricalDistribution(tuple(dict.fromkeys([default, *values])))
        defaults[name] = default
    return FamilySpace(family=space.family, distributions=dists, defaults=defaults, fixed=fixed)


def xgboost_space(*, n_rows: int, n_features: int) -> dict[str, Any]:
    """Optuna distributions for XGBoost, adapted to the training table's shape.

    Kept for callers of the first release; :func:`family_space` covers every family.

    Example:
        >>> "colsample_bytree" in xgboost_space(n_rows=1000, n_features=2)
        False
        >>> xgboost_space(n_rows=1000, n_features=20)["colsample_bytree"].low
        0.3
    """
    return dict(
        family_space(
            "xgboost", task="classification", n_rows=n_rows, n_features=n_features
        ).distributions
    )
