"""The vectorized statistics equal evidently's own stattest functions, score and verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.registry import (
    get_registered_stattest,
    get_stattest,
)
from evidently.legacy.core import ColumnType

from automl.drift._stats import (
    DEFAULT_THRESHOLDS,
    FAST_METHODS,
    PVALUE_METHODS,
    Sample,
    StatTestError,
    check_method,
    default_method,
    run_method,
    union_distinct,
    wasserstein_norm,
)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _columns(n: int, m: int, seed: int) -> dict[str, tuple[str, pd.Series, pd.Series]]:
    rng = np.random.default_rng(seed)
    with_nan = rng.normal(size=n)
    with_nan[::7] = np.nan
    with_inf = rng.normal(0.3, size=m)
    with_inf[::11] = np.inf
    return {
        "continuous": (
            "numeric",
            pd.Series(rng.normal(size=n)),
            pd.Series(rng.normal(0.1, 1.2, m)),
        ),
        "ties": (
            "numeric",
            pd.Series(rng.integers(0, 30, n).astype(float)),
            pd.Series(rng.integers(0, 32, m).astype(float)),
        ),
        "few_values": (
            "numeric",
            pd.Series(rng.integers(0, 4, n).astype(float)),
            pd.Series(rng.integers(0, 4, m).astype(float)),
        ),
        "binary_numeric": (
            "numeric",
            pd.Series(rng.integers(0, 2, n).astype(float)),
            pd.Series((rng.random(m) < 0.6).astype(float)),
        ),
        "missing_and_inf": ("numeric", pd.Series(with_nan), pd.Series(with_inf)),
        "categorical_unseen": (
            "categorical",
            pd.Series(rng.choice(list("abcd"), n, p=[0.4, 0.3, 0.2, 0.1])),
            pd.Series(rng.choice(list("abcde"), m)),
        ),
        "binary_categorical": (
            "categorical",
            pd.Series(rng.choice(["yes", "no"], n)),
            pd.Series(rng.choice(["yes", "no"], m, p=[0.65, 0.35])),
        ),
    }


def _evidently(method: str | None, kind: str, ref: pd.Series, cur: pd.Series) -> tuple:
    ctype = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    ref = ref.replace([np.inf, -np.inf], np.nan).dropna()
    cur = cur.replace([np.inf, -np.inf], np.nan).dropna()
    test = (
        get_stattest(ref, cur, ctype, None)
        if method is None
        else get_registered_stattest(method, ctype)
    )
    result = test(ref.copy(), cur.copy(), ctype, None)
    return test.name, float(result.drift_score), bool(result.drifted), result.actual_threshold


@pytest.mark.parametrize(("n", "m"), [(300, 200), (1500, 900), (12_000, 10_500)])
def test_every_fast_method_equals_evidently_on_every_column_type(n: int, m: int) -> None:
    for name, (kind, ref, cur) in _columns(n, m, seed=n).items():
        r, c = Sample(ref, kind), Sample(cur, kind)  # type: ignore[arg-type]
        default = default_method(r.n, union_distinct(r, c), kind)  # type: ignore[arg-type]
        assert _evidently(None, kind, ref, cur)[0] == default, name
        extra = ["ks", "wasserstein"] if kind == "numeric" else ["chisquare", "z"]
        for method in {default, "jensenshannon", "psi", "kl_div", *extra}:
            # evidently applies its default even where the name is not registered for the kind
            # (chisquare/z on a numeric column with few values): ask for it as the default.
            theirs = _evidently(None if method == default else method, kind, ref, cur)
            ours = run_method(method, None, r, c)
            assert ours.score == pytest.approx(theirs[1], rel=1e-9, abs=1e-300), (name, method)
            assert (ours.is_drifted, ours.threshold) == (theirs[2], theirs[3]), (name, method)


def test_wasserstein_on_unequal_large_samples_equals_scipy_definition() -> None:
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(5)
    x, y = rng.lognormal(size=40_001), rng.lognormal(0.05, size=33_333)
    ours = wasserstein_norm(Sample(pd.Series(x), "numeric"), Sample(pd.Series(y), "numeric"))
    assert ours == pytest.approx(wasserstein_distance(x, y) / np.std(x), rel=1e-10)


def test_a_delegated_method_runs_through_evidently() -> None:
    rng = np.random.default_rng(2)
    ref, cur = pd.Series(rng.normal(size=200)), pd.Series(rng.normal(0.5, size=200))
    ours = run_method("mannw", None, Sample(ref, "numeric"), Sample(cur, "numeric"))
    theirs = _evidently("mannw", "numeric", ref, cur)
    assert (ours.method, ours.score, ours.is_drifted) == ("mannw", theirs[1], True)
    assert ours.is_pvalue


def test_defaults_and_pvalue_flags_match_evidently_registry() -> None:
    for method in FAST_METHODS:
        ctype = ColumnType.Categorical if method in ("z", "chisquare") else ColumnType.Numerical
        test = get_registered_stattest(method, ctype)
        assert test.default_threshold == DEFAULT_THRESHOLDS[method], method
        assert (method in PVALUE_METHODS) == ("p_value" in test.display_name), method


def test_fast_methods_refuse_the_wrong_column_kind() -> None:
    with pytest.raises(StatTestError, match="'ks' does not apply to categorical"):
        check_method("ks", "categorical")
    check_method("psi", "categorical")
