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
    chisquare_2samp_pvalue,
    chisquare_pvalue,
    default_method,
    ks_pvalue,
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


# -- two-sample tests (tests="two_sample", the pipeline default) ----------------------------
def test_two_sample_default_picks_pvalue_tests_by_cardinality_at_every_size() -> None:
    for n_ref in (300, 5_000, 1_000_000):
        picks = {
            (kind, n_values): default_method(n_ref, n_values, kind, tests="two_sample")
            for kind in ("numeric", "categorical")
            for n_values in (2, 5, 6)
        }
        assert picks == {
            ("numeric", 2): "z",
            ("numeric", 5): "chisquare_2samp",
            ("numeric", 6): "ks",
            ("categorical", 2): "z",
            ("categorical", 5): "chisquare_2samp",
            ("categorical", 6): "chisquare_2samp",
        }


def test_chisquare_2samp_equals_scipys_contingency_test() -> None:
    from scipy.stats import chi2_contingency

    rng = np.random.default_rng(2)
    ref = pd.Series(rng.choice(list("abcd"), 400, p=[0.4, 0.3, 0.2, 0.1]))
    cur = pd.Series(rng.choice(list("abcd"), 250, p=[0.3, 0.3, 0.25, 0.15]))
    table = [[(ref == v).sum() for v in "abcd"], [(cur == v).sum() for v in "abcd"]]
    expected = chi2_contingency(table, correction=False).pvalue
    r, c = Sample(ref, "categorical"), Sample(cur, "categorical")
    assert chisquare_2samp_pvalue(r, c) == pytest.approx(expected, rel=1e-9)
    outcome = run_method("chisquare_2samp", None, r, c)
    assert (outcome.threshold, outcome.is_pvalue) == (0.05, True)
    assert outcome.is_drifted == (expected < 0.05)
    # The same counts as numbers: the test ignores the values' order.
    codes = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    numeric = Sample(ref.map(codes), "numeric"), Sample(cur.map(codes), "numeric")
    assert chisquare_2samp_pvalue(*numeric) == pytest.approx(expected, rel=1e-9)


def test_chisquare_2samp_pools_sparse_cells_and_needs_two() -> None:
    from scipy.stats import chi2_contingency

    ref = pd.Series(["a"] * 150 + ["b"] * 140 + ["x", "y", "z"] * 2 + ["w"] * 4)
    cur = pd.Series(["a"] * 60 + ["b"] * 80 + ["x", "q"] * 5)  # q: unseen
    pooled = [[150, 140, 10], [60, 80, 10]]  # x, y, z, w, q expect < 5 in the smaller sample
    r, c = Sample(ref, "categorical"), Sample(cur, "categorical")
    expected = chi2_contingency(pooled, correction=False).pvalue
    assert chisquare_2samp_pvalue(r, c) == pytest.approx(expected, rel=1e-9)
    one = Sample(pd.Series(["a"] * 50), "categorical")
    assert chisquare_2samp_pvalue(one, one) == 1.0


def test_two_sample_chi_square_is_calibrated_where_evidentlys_fit_is_not() -> None:
    """With no drift and a batch as large as the reference, evidently's chisquare (current
    counts against the reference shares taken as exact) rejects far more often than alpha."""
    rng = np.random.default_rng(0)
    shares = [0.5, 0.3, 0.2]
    two_sample = goodness_of_fit = 0
    for _ in range(400):
        ref = Sample(pd.Series(rng.choice([1.0, 2.0, 3.0], 500, p=shares)), "numeric")
        cur = Sample(pd.Series(rng.choice([1.0, 2.0, 3.0], 500, p=shares)), "numeric")
        two_sample += chisquare_2samp_pvalue(ref, cur) < 0.05
        goodness_of_fit += chisquare_pvalue(ref, cur) < 0.05
    assert 8 <= two_sample <= 32  # 5% of 400 = 20
    assert goodness_of_fit >= 2 * two_sample


def test_asymptotic_ks_is_close_to_exact_and_never_smaller_on_large_samples() -> None:
    rng = np.random.default_rng(6)
    ref = Sample(pd.Series(rng.normal(size=30_000)), "numeric")
    for shift in (0.0, 0.02, 0.05):
        cur = Sample(pd.Series(rng.normal(shift, size=25_000)), "numeric")
        exact, d_exact = ks_pvalue(ref, cur)
        fast, d_fast = ks_pvalue(ref, cur, exact=False)
        assert d_fast == d_exact
        assert exact <= fast <= exact * 1.04 + 1e-300
    small = Sample(pd.Series(rng.normal(size=20_000)), "numeric")
    cur = Sample(pd.Series(rng.normal(0.1, size=200)), "numeric")  # n*m/(n+m) < 10,000: exact
    assert ks_pvalue(small, cur, exact=False) == ks_pvalue(small, cur)
