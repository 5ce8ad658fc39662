"""The K-S distributions ported from scipy (``automl.drift._ks``) give scipy's floats, and the
default drift check runs without importing ``scipy.stats``."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats._stats_py import _compute_outer_prob_inside_method as scipy_outer

from automl.drift._ks import (
    EXACT_MAX_N,
    _compute_outer_prob_inside_method,
    ks_2samp_pvalue,
    kstwo_sf,
    kstwobign_sf,
)
from automl.drift._stats import Sample, chisquare_2samp_pvalue, ks_pvalue, ks_statistic_sorted

ROOT = Path(__file__).resolve().parents[2]


def _scipy_ks(x: np.ndarray, y: np.ndarray) -> tuple[float, float, bool]:
    """scipy's p-value and statistic, and whether it fell back from the exact method."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stats.ks_2samp(x, y)
    fell_back = any("Exact calculation unsuccessful" in str(w.message) for w in caught)
    return float(result.pvalue), float(result.statistic), fell_back


def _ours(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ref, cur = Sample(pd.Series(x), "numeric"), Sample(pd.Series(y), "numeric")
    return ks_2samp_pvalue(ref.n, cur.n, ks_statistic_sorted(ref, cur))


SIZES = [1, 2, 3, 4, 5, 7, 8, 12, 30, 64, 97, 100, 128, 250, 333, 1000, 2400]


@pytest.mark.parametrize("n", SIZES)
def test_ks_2samp_pvalue_is_scipys_for_every_pair_of_sizes(n: int) -> None:
    rng = np.random.default_rng(n)
    for m in SIZES:
        samples = {
            "same": (rng.normal(size=n), rng.normal(size=m)),
            "shifted": (rng.normal(size=n), rng.normal(0.4, 1.3, size=m)),
            "ties": (rng.integers(0, 6, n).astype(float), rng.integers(0, 8, m).astype(float)),
            "apart": (rng.normal(size=n), rng.normal(50.0, size=m)),  # d = 1
            "identical": (np.arange(n, dtype=float), np.arange(n, dtype=float)),  # d = 0
        }
        for name, (x, y) in samples.items():
            p, d, _ = _scipy_ks(x, y)
            assert _ours(x, y) == (p, d), (n, m, name)


@pytest.mark.parametrize(
    ("n", "m", "shift"),
    [
        (10_000, 9_999, 0.02),  # the largest exact case of different sizes
        (10_000, 10_000, 0.02),  # the largest of equal sizes
        (9_973, 7_919, 0.0),  # coprime: lcm 79 million
        (10_000, 3, 0.5),
        (3_000, 1_000, 0.3),  # a tiny p-value
    ],
)
def test_ks_2samp_pvalue_is_scipys_at_the_exact_limit(n: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(n + m)
    x, y = rng.normal(size=n), rng.normal(shift, size=m)
    p, d, _ = _scipy_ks(x, y)
    assert _ours(x, y) == (p, d)


def test_ks_2samp_pvalue_falls_back_as_scipy_does() -> None:
    """Equal sizes one step apart: scipy's exact sum rounds above 1 and it switches to
    ``kstwo``; so does the port, to the same float."""
    cases = 0
    for n in (5, 7, 13, 30, 36, 101, 500, 1234):
        x = np.arange(n, dtype=float)
        for y in (x + 0.5, np.append(x[1:], n + 0.5)):
            p, d, fell_back = _scipy_ks(x, y)
            cases += fell_back
            assert _ours(x, y) == (p, d), n
    assert cases >= 6  # the fallback really ran


def test_the_lattice_count_is_scipys_compiled_one_cell_for_cell() -> None:
    rng = np.random.default_rng(0)
    for m in range(1, 40):
        for n in range(1, 40):
            if m == n:
                continue
            g = math.gcd(m, n)
            lcm = m // g * n
            hs = {
                1,
                2,
                lcm // 3 or 1,
                lcm // 2 or 1,
                lcm - 1 or 1,
                lcm,
                *rng.integers(1, lcm + 1, 3),
            }
            for h in map(int, hs):
                ours = _compute_outer_prob_inside_method(m, n, g, h)
                assert ours == scipy_outer(m, n, g, h), (m, n, h)


def test_ks_2samp_pvalue_rejects_what_scipy_would_not_compute_exactly() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        ks_2samp_pvalue(0, 5, 0.5)
    with pytest.raises(ValueError, match="at most 10000"):
        ks_2samp_pvalue(EXACT_MAX_N + 1, 5, 0.5)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scipy's, at n = 0
def test_kstwo_sf_is_scipys_on_every_branch() -> None:
    """Ruben-Gambino at both ends, the Durbin matrix, Pomeranz, Pelz-Good, ``2 * smirnov``
    (n up to 140 and beyond), the support's edges and invalid sizes."""
    rng = np.random.default_rng(1)
    sizes = [*range(1, 150), 141, 199, 500, 1_000, 4_999, 10_000, 99_999, 100_001, 400_000]
    for n in sizes:
        points = np.concatenate(
            (
                rng.random(12),
                rng.random(12) * 3 / math.sqrt(n),  # where the p-value is between 0 and 1
                [0.0, 0.5 / n, np.nextafter(0.5 / n, 1), 1 / n, 0.5, 1.0, 1.5, -0.1],
            )
        )
        for d in points:
            ours, theirs = kstwo_sf(float(d), n), float(stats.kstwo.sf(d, n))
            assert ours == theirs or (math.isnan(ours) and math.isnan(theirs)), (n, d)
    for n, d in [(0, 0.3), (2.5, 0.3), (5, math.nan), (math.nan, 0.3)]:
        assert math.isnan(kstwo_sf(d, n)) and math.isnan(float(stats.kstwo.sf(d, n)))


def test_kstwobign_sf_is_scipys() -> None:
    for x in [-1.0, 0.0, 1e-3, 0.3, 0.8, 1.0, 1.36, 2.0, 5.0, 20.0, math.inf]:
        assert kstwobign_sf(x) == float(stats.kstwobign.sf(x)), x
    assert math.isnan(kstwobign_sf(math.nan))


@pytest.mark.parametrize("exact", [True, False])
def test_ks_pvalue_beyond_the_exact_range_is_scipys(exact: bool) -> None:
    """Above 10,000 values a side: ``kstwo`` on the rounded effective size (as ``ks_2samp``),
    or ``kstwobign`` where the effective size exceeds 10,000 and ``exact`` is off."""
    rng = np.random.default_rng(2)
    for n, m in [(20_000, 500), (12_000, 11_000), (30_000, 25_000), (50_000, 3_000)]:
        x, y = rng.normal(size=n), rng.normal(0.03, size=m)
        ref, cur = Sample(pd.Series(x), "numeric"), Sample(pd.Series(y), "numeric")
        p, d = ks_pvalue(ref, cur, exact=exact)
        assert d == float(stats.ks_2samp(x, y).statistic)
        en = n * m / (n + m)
        if exact or en <= EXACT_MAX_N:
            assert p == float(stats.ks_2samp(x, y).pvalue)
        else:
            assert p == float(np.clip(stats.kstwobign.sf(math.sqrt(en) * d), 0, 1))


def test_z_and_two_sample_chi_square_are_scipy_stats_floats() -> None:
    """``z`` (``norm.cdf``) and ``chisquare_2samp`` (``chi2.sf``), now from scipy.special."""
    from automl.drift._stats import z_pvalue

    rng = np.random.default_rng(3)
    for n, m in [(5, 3), (400, 90), (2_000, 2_000), (10, 100_000)]:
        for share in (0.0, 0.3, 0.5, 1.0):
            ref = Sample(pd.Series(rng.random(n) < 0.4), "categorical")
            cur = Sample(pd.Series(rng.random(m) < share), "categorical")
            # evidently's arithmetic, with scipy.stats' normal CDF
            first = sorted(set(ref.counts) | set(cur.counts))[0]
            q1 = float(ref.n - ref.counts.get(first, 0)) / ref.n
            q2 = float(cur.n - cur.counts.get(first, 0)) / cur.n
            pooled = float(q1 * ref.n + q2 * cur.n) / (ref.n + cur.n)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (q1 - q2) / np.sqrt(pooled * (1 - pooled) * (1.0 / ref.n + 1.0 / cur.n))
            expected = float(2 * (1 - stats.norm.cdf(np.abs(z))))
            ours = z_pvalue(ref, cur)
            if ref.n_distinct == 1 and cur.n_distinct == 1 and set(ref.counts) == set(cur.counts):
                assert ours == 1.0
            else:
                assert ours == expected or (math.isnan(ours) and math.isnan(expected))
    for k in (2, 3, 7):
        ref = Sample(pd.Series(rng.integers(0, k, 500).astype(float)), "numeric")
        for tilt in (0.0, 0.1, 0.4):
            values = rng.integers(0, k, 300) + (rng.random(300) < tilt)
            cur = Sample(pd.Series(np.minimum(values, k - 1).astype(float)), "numeric")
            table = _table(ref, cur)
            if table.shape[1] < 2:
                continue
            expected = float(stats.chi2.sf(*_chi2(table)))
            assert chisquare_2samp_pvalue(ref, cur) == expected
    same = Sample(pd.Series([1.0, 2.0, 1.0, 2.0] * 50), "numeric")
    assert chisquare_2samp_pvalue(same, same) == float(stats.chi2.sf(0.0, 1)) == 1.0


def _table(ref: Sample, cur: Sample) -> np.ndarray:
    keys = sorted(set(ref.counts) | set(cur.counts))
    return np.array([[ref.counts.get(k, 0) for k in keys], [cur.counts.get(k, 0) for k in keys]])


def _chi2(table: np.ndarray) -> tuple[float, int]:
    """The statistic and degrees of freedom exactly as ``chisquare_2samp_pvalue`` sums them
    (no cell is pooled at these sizes)."""
    r, c = table.astype(float)
    n_r, n_c = r.sum(), c.sum()
    total = r + c
    e_r, e_c = total * (n_r / (n_r + n_c)), total * (n_c / (n_r + n_c))
    return float(np.sum((r - e_r) ** 2 / e_r) + np.sum((c - e_c) ** 2 / e_c)), len(total) - 1


def test_the_default_drift_check_does_not_import_scipy_stats() -> None:
    """A check with the pipeline's default tests (``ks``, ``z``, ``chisquare_2samp``) on
    numeric, binary and categorical columns, in a fresh interpreter."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, pandas as pd
        from automl.config import DriftSpec
        from automl.drift import EvidentlyDriftDetector

        rng = np.random.default_rng(0)
        def frame(n, shift):
            return pd.DataFrame({
                "amount": rng.normal(shift, size=n),
                "visits": rng.integers(0, 40, n).astype(float),
                "plan": rng.choice(["a", "b", "c"], n),
                "churned": rng.integers(0, 2, n),
                "rating": rng.integers(1, 4, n).astype(float),
            })
        for n_ref, n_cur, shift in [(3000, 1000, 0.0), (3000, 1000, 0.5), (40_000, 2_000, 0.1)]:
            report = EvidentlyDriftDetector.from_spec(DriftSpec(), seed=0).detect(
                frame(n_ref, 0.0), frame(n_cur, shift),
                numeric=["amount", "visits", "rating"], categorical=["plan", "churned"],
            )
            methods = sorted({c.method for c in report.columns})
            print(methods, report.is_drifted)
        print("scipy.stats" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "['chisquare_2samp', 'ks', 'z']" in lines[0] and lines[1].endswith("True")
    assert lines[-1] == "False", "the default drift check imported scipy.stats"
