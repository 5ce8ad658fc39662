"""evidently's per-column drift statistics, computed once per column, vectorized.

evidently (``evidently.legacy.calculations.stattests``) picks a test per column by type and sample
size and runs it on pandas Series; ``DataDriftPreset`` then recomputes histograms, correlations and
plots around it. This module reproduces the same statistics on NumPy arrays, each column sorted
once, so that the same method and threshold give the same score and the same verdict:

===============  ==========================================================  ==================
method           statistic (as evidently defines it)                        drift when
===============  ==========================================================  ==================
``ks``           two-sample Kolmogorov-Smirnov p-value (scipy's ``auto``)    p <= threshold
``z``            two-proportion z-test p-value                               p < threshold
``chisquare``    chi-square goodness of fit of current to reference counts   p < threshold
``chisquare_2samp`` two-sample chi-square (homogeneity; automl's, see below)  p < threshold
``wasserstein``  Wasserstein-1 distance / max(std(reference), 0.001)         d >= threshold
``jensenshannon`` Jensen-Shannon distance of binned frequencies              d >= threshold
``psi``          population stability index of binned frequencies            d >= threshold
``kl_div``       Kullback-Leibler divergence of binned frequencies           d >= threshold
===============  ==========================================================  ==================

Any other evidently method (``anderson``, ``mannw``, ``t_test``, ``hellinger``, ...) is run by
evidently itself, once, on the cleaned column. The Wasserstein distance is computed from the two
quantile functions (one sort per side, no merged sort of both samples); the K-S statistic from
the reference's grid of bins (:class:`KsGrid`: the current side is binned, not sorted) or, for
small samples and columns with few distinct values, from the two sorted samples with one
``searchsorted`` each way; both are exact, not approximations, and give the same float. A
reference prepared once (:meth:`Sample.prepare`, ``automl.drift._reference``) is reused by every
check against it.

Two choices of the default test per column (:func:`default_method`):

* ``evidently``: the test evidently's ``DataDriftPreset`` picks. Up to 1,000 reference rows its
  ``chisquare`` fits the current counts to the reference *shares* as if those were exact, so the
  reference's own sampling noise counts as drift: with a batch as large as the reference the
  statistic is about twice what it should be (27% of no-drift checks flagged a column on the
  churn table at 800 vs 800 rows with Holm over 8 columns). Above 1,000 rows it switches to
  distances with fixed thresholds, whose noise on small batches exceeds the threshold (54% at
  3,000 vs 300 rows).
* ``two_sample`` (the pipeline default): p-value tests that compare two samples at every size,
  so that a multiple-testing correction bounds the false alarms: ``ks`` for numeric columns with
  more than 5 values, ``z`` for two values, ``chisquare_2samp`` (Pearson's test of homogeneity of
  the 2 x k table, cells with an expected count under 5 pooled) for the rest. On huge samples
  every shift is significant; the detector's effect floor decides there. Above an effective
  size of 10,000 the K-S p-value comes from the limiting Kolmogorov distribution (see
  :func:`ks_pvalue`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from automl.drift._ks import ks_2samp_pvalue, kstwo_sf, kstwobign_sf
from automl.vocab import ColumnKind, TestChoice

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

#: evidently methods computed here; every other evidently method is delegated to evidently.
FAST_METHODS = frozenset({"ks", "z", "chisquare", "wasserstein", "jensenshannon", "psi", "kl_div"})
#: Methods of automl's own, unknown to evidently (its HTML report falls back to its default).
AUTOML_METHODS = frozenset({"chisquare_2samp"})
#: evidently's default threshold of each fast method (checked against evidently in the tests).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "z": 0.05,
    "chisquare": 0.05,
    "chisquare_2samp": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
    "kl_div": 0.1,
}
#: evidently methods whose score is a p-value (drift when small); the rest are distances.
PVALUE_METHODS = frozenset(
    {
        "ks",
        "z",
        "chisquare",
        "chisquare_2samp",
        "anderson",
        "cramer_von_mises",
        "es",
        "mannw",
        "t_test",
        "fisher_exact",
        "g_test",
        "TVD",
        "empirical_mmd",
    }
)
_ALLOWED_KINDS: dict[str, tuple[ColumnKind, ...]] = {
    "ks": ("numeric",),
    "wasserstein": ("numeric",),
    "z": ("categorical",),
    "chisquare": ("categorical",),
    "chisquare_2samp": ("numeric", "categorical"),
    "jensenshannon": ("numeric", "categorical"),
    "psi": ("numeric", "categorical"),
    "kl_div": ("numeric", "categorical"),
}
#: scipy's ks_2samp computes exact p-values up to this sample size ('auto' mode).
_KS_EXACT_MAX_N = 10_000
#: Columns with at most this many distinct values count as low-cardinality (evidently's cut).
_FEW_VALUES = 5
#: Cells of a contingency table with a smaller expected count are pooled into one.
_MIN_EXPECTED = 5.0
#: Current samples above this size get their K-S statistic from the reference's grid.
_GRID_MIN_ROWS = 10_000
#: The grid's exactness argument (integer numerators, float order) holds while n * m <= this.
_GRID_MAX_PRODUCT = 2**49


class StatTestError(ValueError):
    """A method is unknown or does not apply to a column's kind."""


def is_pvalue_method(method: str) -> bool:
    """Whether ``method``'s score is a p-value (drift when below the threshold)."""
    return method in PVALUE_METHODS


def default_method(
    n_reference: int, n_values: int, kind: ColumnKind, *, tests: TestChoice = "evidently"
) -> str:
    """The default test of a column.

    With ``tests="evidently"``, the test evidently picks (``_get_default_stattest`` in
    evidently 0.7); with ``"two_sample"``, a two-sample p-value test at every sample size.

    Args:
        n_reference: Non-missing reference values.
        n_values: Distinct non-missing values in reference and current together.
        kind: ``numeric`` or ``categorical``.
        tests: ``evidently`` or ``two_sample``.

    Returns:
        The method name.

    Example:
        >>> default_method(500, 40, "numeric"), default_method(5000, 40, "numeric")
        ('ks', 'wasserstein')
        >>> default_method(500, 2, "categorical"), default_method(5000, 3, "categorical")
        ('z', 'jensenshannon')
        >>> default_method(500, 3, "numeric", tests="two_sample")
        'chisquare_2samp'
        >>> default_method(5000, 40, "numeric", tests="two_sample")
        'ks'
    """
    if tests == "two_sample":
        if n_values <= 2:
            return "z"
        return "ks" if kind == "numeric" and n_values > _FEW_VALUES else "chisquare_2samp"
    if n_reference <= 1000:
        if n_values <= _FEW_VALUES:
            return "chisquare" if n_values > 2 else "z"
        return "ks" if kind == "numeric" else "chisquare"
    if kind == "numeric" and n_values > _FEW_VALUES:
        return "wasserstein"
    return "jensenshannon"


def check_method(method: str, kind: ColumnKind) -> None:
    """Raise :class:`StatTestError` when a fast ``method`` does not apply to ``kind``.

    Methods computed by evidently are checked by evidently itself.
    """
    allowed = _ALLOWED_KINDS.get(method)
    if allowed is not None and kind not in allowed:
        raise StatTestError(
            f"method {method!r} does not apply to {kind} columns (allowed: {', '.join(allowed)})"
        )


class Sample:
    """One side (reference or current) of one column, cleaned as evidently cleans it.

    Missing and infinite values are dropped (their rate is kept); numeric values are sorted once,
    lazily, and every statistic reads the sorted copy.

    Args:
        series: The raw column.
        kind: ``numeric`` or ``categorical``.
    """

    def __init__(self, series: pd.Series, kind: ColumnKind) -> None:
        self.kind = kind
        self.n_total = len(series)
        if kind == "numeric":
            raw = series.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = np.isfinite(raw)
            self.values: FloatArray | pd.Series = raw if finite.all() else raw[finite]
        else:
            self.values = series.dropna()
        self.n = len(self.values)
        # Plain lazy attributes, not functools.cached_property: on Python 3.11 that one takes a
        # class-wide lock, which would serialize the column threads.
        self._sorted: FloatArray | None = None
        self._counts: dict[Any, int] | None = None
        self._n_distinct: int | None = None
        self._std: float | None = None
        self._grid: KsGrid | bool | None = None  # False: computed, does not apply

    def prepare(self, *, keep_order: bool = True) -> Sample:
        """Compute now what later checks read (sorted values, distinct values, std, counts, the
        K-S grid), so a cached reference costs nothing more per check.

        Args:
            keep_order: Keep the values in their original order. Only the reference
                resampling (``calibration_resamples``) and the methods evidently computes
                itself read that order; without it a numeric sample keeps only its sorted copy
                (half the memory). Every statistic computed here gives the same result either
                way (the standard deviation is taken before the order is dropped).

        Returns:
            This sample.
        """
        if self.kind == "numeric":
            _ = self.std, self.n_distinct
            self.ks_grid()
            if not keep_order:
                self.values = self.sorted
        else:
            _ = self.counts, self.n_distinct
            if not keep_order:
                assert isinstance(self.values, pd.Series)
                self.values = self.values.iloc[:0]  # the counts say everything the tests read
        return self

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the sample's arrays."""
        size = 0
        if isinstance(self.values, np.ndarray):
            size += self.values.nbytes
        else:
            size += int(self.values.memory_usage(deep=len(self.values) <= 100_000))
        if self._sorted is not None and self._sorted is not self.values:
            size += self._sorted.nbytes
        if isinstance(self._grid, KsGrid):
            size += self._grid.nbytes
        return size

    def ks_grid(self) -> KsGrid | None:
        """The K-S grid of this (reference) sample, built once; None when it does not apply."""
        if self._grid is None:
            # With fewer distinct values than bins, ties fill whole bins and every bin would be
            # resolved point by point; sorting such a sample is fast anyway (few distinct keys).
            grid = KsGrid.build(self.sorted)
            self._grid = grid if grid is not None and self.n_distinct > grid.bins else False
        return self._grid if isinstance(self._grid, KsGrid) else None

    @property
    def missing_rate(self) -> float:
        """Share of rows that were missing (or infinite)."""
        return 1.0 - self.n / self.n_total if self.n_total else 0.0

    @property
    def sorted(self) -> FloatArray:
        """The numeric values, sorted ascending (computed once)."""
        if self._sorted is None:
            self._sorted = np.sort(np.asarray(self.values, dtype=np.float64))
        return self._sorted

    @property
    def n_distinct(self) -> int:
        """Distinct values."""
        if self._n_distinct is None:
            if self.kind == "numeric":
                s = self.sorted
                self._n_distinct = int(np.count_nonzero(s[1:] != s[:-1])) + 1 if len(s) else 0
            else:
                self._n_distinct = len(self.counts)
        return self._n_distinct

    @property
    def counts(self) -> dict[Any, int]:
        """Count of every distinct value (``value_counts``, computed once)."""
        if self._counts is None:
            if self.kind == "numeric":
                s = self.sorted
                if len(s):
                    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
                    sizes = np.diff(np.append(starts, len(s)))
                    self._counts = dict(zip(s[starts].tolist(), sizes.tolist(), strict=True))
                else:
                    self._counts = {}
            else:
                assert isinstance(self.values, pd.Series)
                self._counts = {k: int(v) for k, v in self.values.value_counts().items()}
        return self._counts

    @property
    def std(self) -> float:
        """Population standard deviation (``np.std``, ddof 0)."""
        if self._std is None:
            self._std = float(np.std(self.values))
        return self._std

    def series(self) -> pd.Series:
        """The cleaned values as a Series, in their original order (for evidently)."""
        if isinstance(self.values, pd.Series):
            return self.values
        return pd.Series(self.values)


class KsGrid:
    """A reference sample's counts on a fixed grid of bins, for the K-S statistic without
    sorting the other sample.

    The bins are ``(x - lo) * scale`` clipped to ``[-1, bins]`` and truncated, over the
    reference's 0.1%-99.9% range: a monotone map (whatever the rounding, the same for both
    samples), so every bin is an interval and the two empirical CDFs at
    each bin's end come from two ``bincount`` calls. Inside a bin holding values of both samples
    the gap between the CDFs moves by at most that bin's counts, which bounds it; only the bins
    whose bound reaches the largest gap at the bins' ends are resolved point by point (their
    current values sorted, a few thousand at most on smooth data). The gaps are compared as
    integers ``a * m - b * n`` and the supremum returned as the same float ``a / n - b / m``
    that :func:`ks_statistic_sorted` computes at the same point, so both give the same number
    (while ``n * m <= 2**49``, where distinct integer gaps stay distinct as floats).

    Args:
        sorted_values: The reference's finite values, sorted.
        lo: Left end of the grid.
        scale: Bins per unit.
        bins: Interior bins.
    """

    def __init__(self, sorted_values: FloatArray, lo: float, scale: float, bins: int) -> None:
        self.u = sorted_values
        self.n = len(sorted_values)
        self.lo, self.scale, self.bins = lo, scale, bins
        counts = np.bincount(self.bin_of(sorted_values), minlength=bins + 2)
        self.counts: IntArray = counts.astype(np.int64)
        self.cum: IntArray = np.cumsum(self.counts)

    @classmethod
    def build(cls, sorted_values: FloatArray) -> KsGrid | None:
        """The grid of a sorted sample; None when its central range is a single value."""
        n = len(sorted_values)
        if n < 2:
            return None
        cut = n // 1000
        lo, hi = float(sorted_values[cut]), float(sorted_values[n - 1 - cut])
        bins = int(min(2**16, max(16, n // 32)))
        scale = bins / (hi - lo) if hi > lo else math.inf
        if not math.isfinite(scale):
            return None
        return cls(sorted_values, lo, scale, bins)

    @property
    def nbytes(self) -> int:
        """Memory of the grid's own arrays (the sorted values belong to the sample)."""
        return int(self.counts.nbytes + self.cum.nbytes)

    def applies_to(self, m: int) -> bool:
        """Whether a current sample of ``m`` values can be compared exactly on this grid."""
        return m > 0 and self.n * m <= _GRID_MAX_PRODUCT

    def bin_of(self, x: FloatArray) -> IntArray:
        """Bin of each value, 0 (below the grid) to ``bins + 1`` (above); monotone in ``x``."""
        t = x - self.lo
        t *= self.scale
        np.clip(t, -1.0, float(self.bins), out=t)  # in float: no int overflow, monotone
        b: IntArray = t.astype(np.int64)
        b += 1
        return b

    def statistic(self, v: FloatArray) -> float:
        """sup |F_ref - F_cur| against the (unsorted, finite) current values ``v``."""
        n, m = self.n, len(v)
        b = self.bin_of(v)
        c = np.bincount(b, minlength=self.bins + 2).astype(np.int64)
        cum_c = np.cumsum(c)
        r, cum_r = self.counts, self.cum
        ends = cum_r * m - cum_c * n  # n*m times F_ref - F_cur at each bin's end
        floor = int(np.max(np.abs(ends)))
        starts = ends - (r * m - c * n)
        bound = np.maximum(np.abs(starts + r * m), np.abs(starts - c * n))
        # Bins holding one sample only move the gap monotonically: their ends bound them.
        candidates = np.flatnonzero((r > 0) & (c > 0) & (bound >= floor))
        gaps = [cum_r / n - cum_c / m]
        if len(candidates):
            pick = np.zeros(self.bins + 2, dtype=bool)
            pick[candidates] = True
            sel = np.sort(v[pick[b]])
            offset = np.zeros(self.bins + 2, dtype=np.int64)
            offset[candidates] = np.cumsum(c[candidates]) - c[candidates]
            first_c = cum_c - c
            lengths = r[candidates]
            first_r = cum_r[candidates] - lengths
            idx = np.repeat(first_r - (np.cumsum(lengths) - lengths), lengths) + np.arange(
                int(lengths.sum())
            )
            # Each side's points are sorted; the gap changes only at the last copy of a value.
            ref_points = self.u[idx]
            ref_where = np.repeat(candidates, lengths)
            keep_r = np.append(ref_points[1:] != ref_points[:-1], True)
            keep_c = np.append(sel[1:] != sel[:-1], True)
            cur_points = sel[keep_c]
            points = np.concatenate((cur_points, ref_points[keep_r]))
            where = np.concatenate((self.bin_of(cur_points), ref_where[keep_r]))
            a = np.searchsorted(self.u, points, side="right")
            below = first_c[where] + np.searchsorted(sel, points, side="right") - offset[where]
            gaps.append(a / n - below / m)
        return float(max(np.max(np.abs(g)) for g in gaps))


def union_distinct(ref: Sample, cur: Sample, *, cap: int = 5) -> int:
    """Distinct values of both samples together, exact up to ``cap`` (more means ``cap + 1``).

    evidently only asks whether a column has at most 2 or at most 5 values; counting the union
    exactly would hash millions of values, so a side with more than ``cap`` values ends it.
    """
    if ref.n_distinct > cap or cur.n_distinct > cap:
        return cap + 1
    return len(set(ref.counts) | set(cur.counts))


# -- numeric statistics on sorted samples --------------------------------------------------
@lru_cache(maxsize=4)
def _quantile_grid(n: int, m: int) -> tuple[IntArray, IntArray, FloatArray]:
    """Merged breakpoints of two empirical quantile functions with ``n`` and ``m`` steps.

    Returns, for every interval of the merged grid of ``{i/n}`` and ``{j/m}``, the index of the
    step of each quantile function on it and the interval's width. Built without sorting: in
    units of ``1/(n*m)`` the breakpoints are ``i*m`` and ``j*n``, and each one's position in the
    merged order is its rank in its own grid plus the count of the other grid's points before it.
    """
    i = np.arange(1, n + 1, dtype=np.int64)
    j = np.arange(1, m + 1, dtype=np.int64)
    a, b = i * m, j * n
    grid = np.empty(n + m, dtype=np.int64)
    grid[(i - 1) + (a - 1) // n] = a  # v-points strictly before a
    grid[(j - 1) + b // m] = b  # u-points at or before b (ties: u first)
    width = np.diff(grid, prepend=0).astype(np.float64) / float(n * m)
    u_index = (grid + m - 1) // m - 1
    v_index = (grid + n - 1) // n - 1
    return u_index, v_index, width


def wasserstein_norm(ref: Sample, cur: Sample) -> float:
    """evidently's ``wasserstein``: W1(reference, current) / max(std(reference), 0.001).

    W1 is the area between the two quantile functions, which equals the area between the two
    CDFs that scipy integrates; only each side's own sort is needed.
    """
    u, v = ref.sorted, cur.sorted
    if len(u) == len(v):
        distance = float(np.mean(np.abs(u - v)))
    else:
        u_index, v_index, width = _quantile_grid(len(u), len(v))
        distance = float(np.dot(np.abs(u[u_index] - v[v_index]), width))
    return distance / max(ref.std, 0.001)


def ks_statistic(ref: Sample, cur: Sample) -> float:
    """The two-sample K-S statistic sup |F_ref - F_cur| (scipy's ``ks_2samp`` statistic).

    Large samples go through the reference's :class:`KsGrid` (no sort of the current side);
    the result is the same float as the two-sort computation (:func:`ks_statistic_sorted`).
    """
    grid = ref.ks_grid() if cur.n > _GRID_MIN_ROWS and cur._sorted is None else None
    if grid is not None and grid.applies_to(cur.n):
        return grid.statistic(np.asarray(cur.values, dtype=np.float64))
    return ks_statistic_sorted(ref, cur)


def ks_statistic_sorted(ref: Sample, cur: Sample) -> float:
    """The K-S statistic from both sorted samples (one ``searchsorted`` each way)."""
    u, v = ref.sorted, cur.sorted
    n, m = len(u), len(v)
    # Both CDFs are right-continuous steps, so the supremum sits at the last copy of a value.
    u_last = np.flatnonzero(np.append(u[1:] != u[:-1], True))
    v_last = np.flatnonzero(np.append(v[1:] != v[:-1], True))
    at_u = (u_last + 1) / n - np.searchsorted(v, u[u_last], side="right") / m
    at_v = np.searchsorted(u, v[v_last], side="right") / n - (v_last + 1) / m
    return float(max(np.max(np.abs(at_u)), np.max(np.abs(at_v))))


def ks_pvalue(ref: Sample, cur: Sample, *, exact: bool = True) -> tuple[float, float]:
    """evidently's ``ks``: the two-sided p-value of scipy's ``ks_2samp`` (method ``auto``).

    Up to 10,000 values a side scipy's exact distribution is used; above, the statistic is
    computed here and scipy's ``kstwo`` survival function applied to it, exactly as
    ``ks_2samp`` does, or, with ``exact=False`` and an effective size ``n * m / (n + m)`` above
    10,000, the limiting Kolmogorov distribution (``kstwobign``): there at most 4% larger than
    ``kstwo`` (down to p = 1e-30), never smaller, and about 1,000 times faster (``kstwo`` takes
    up to 2 s per column at a million rows). All three come from :mod:`automl.drift._ks`, a
    port of scipy's code that gives scipy's floats without importing ``scipy.stats``.

    Returns:
        ``(p_value, statistic)``.
    """
    n, m = ref.n, cur.n
    if max(n, m) <= _KS_EXACT_MAX_N:
        return ks_2samp_pvalue(n, m, ks_statistic_sorted(ref, cur))
    d = ks_statistic(ref, cur)
    big, small = sorted([float(n), float(m)], reverse=True)
    en = big * small / (big + small)
    if exact or en <= _KS_EXACT_MAX_N:
        p = float(np.clip(kstwo_sf(d, float(np.round(en))), 0.0, 1.0))
    else:
        p = float(np.clip(kstwobign_sf(math.sqrt(en) * d), 0.0, 1.0))
    return p, d


# -- frequency statistics -------------------------------------------------------------------
def _keyed(ref: Sample, cur: Sample) -> tuple[FloatArray, FloatArray]:
    keys = list(set(ref.counts) | set(cur.counts))
    r = np.array([ref.counts.get(k, 0) for k in keys], dtype=np.float64)
    c = np.array([cur.counts.get(k, 0) for k in keys], dtype=np.float64)
    return r, c


def _histogram(sample: Sample, edges: FloatArray) -> FloatArray:
    # np.histogram with explicit edges, on data that is already sorted (last bin closed).
    s = sample.sorted
    cum = np.concatenate(
        (np.searchsorted(s, edges[:-1], side="left"), np.searchsorted(s, edges[-1:], "right"))
    )
    return np.diff(cum).astype(np.float64)


def binned_frequencies(
    ref: Sample, cur: Sample, *, fill_zeroes: bool
) -> tuple[FloatArray, FloatArray]:
    """evidently's ``get_binned_data``: shares per value, or per Sturges bin for numeric columns
    with more than 20 reference values; zero shares replaced by a tiny one when ``fill_zeroes``.
    """
    if ref.kind == "numeric" and ref.n_distinct > 20:
        combined = np.concatenate((np.asarray(ref.values), np.asarray(cur.values)))
        edges = np.histogram_bin_edges(combined, bins="sturges")
        del combined
        r, c = _histogram(ref, edges) / ref.n, _histogram(cur, edges) / cur.n
    else:
        r_counts, c_counts = _keyed(ref, cur)
        r, c = r_counts / ref.n, c_counts / cur.n
    if fill_zeroes:
        for p in (r, c):
            smallest = float(np.min(p[p != 0]))
            np.place(p, p == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return r, c


def total_variation(ref: Sample, cur: Sample) -> float:
    """Total variation distance of the two value distributions (half the L1 distance)."""
    r, c = _keyed(ref, cur)
    return float(0.5 * np.sum(np.abs(r / ref.n - c / cur.n)))


def z_pvalue(ref: Sample, cur: Sample) -> float:
    """evidently's ``z``: two-proportion z-test of "not the smallest value" between the sides.

    The normal CDF is ``scipy.special.ndtr``, which ``scipy.stats.norm.cdf`` calls (without
    importing ``scipy.stats``: see :mod:`automl.drift._ks`).
    """
    from scipy.special import ndtr

    if ref.n_distinct == 1 and cur.n_distinct == 1 and set(ref.counts) == set(cur.counts):
        return 1.0
    first = sorted(set(ref.counts) | set(cur.counts))[0]
    n1, n2 = ref.n, cur.n
    # Same arithmetic, in the same order, as evidently's proportions_diff_z_stat_ind.
    p1 = float(n1 - ref.counts.get(first, 0)) / n1
    p2 = float(n2 - cur.counts.get(first, 0)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - ndtr(np.abs(z))))


def chisquare_pvalue(ref: Sample, cur: Sample) -> float:
    """evidently's ``chisquare``: current counts against reference shares scaled to its size."""
    from scipy.stats import chisquare

    r, c = _keyed(ref, cur)
    expected = r * (cur.n / ref.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(c, expected)[1])


def chisquare_2samp_pvalue(ref: Sample, cur: Sample) -> float:
    """Two-sample chi-square: Pearson's test of homogeneity of the 2 x k table of counts.

    Unlike evidently's ``chisquare`` (current counts against the reference shares taken as
    exact), both samples' noise is in the expected counts, so with no drift the p-value is
    uniform whatever the two sizes. Values whose expected count in the smaller sample is under 5
    are pooled into one cell (the chi-square approximation needs it; unseen values have their own
    check); with fewer than two cells left the p-value is 1. The chi-square survival function is
    ``scipy.special.chdtrc``, which ``scipy.stats.chi2.sf`` calls.
    """
    from scipy.special import chdtrc

    r, c = _keyed(ref, cur)
    n_r, n_c = float(ref.n), float(cur.n)
    total = r + c
    rare = total * (min(n_r, n_c) / (n_r + n_c)) < _MIN_EXPECTED
    if rare.any():
        r = np.append(r[~rare], r[rare].sum())
        c = np.append(c[~rare], c[rare].sum())
        total = r + c
    keep = total > 0
    r, c, total = r[keep], c[keep], total[keep]
    if len(total) < 2:
        return 1.0
    e_r, e_c = total * (n_r / (n_r + n_c)), total * (n_c / (n_r + n_c))
    statistic = float(np.sum((r - e_r) ** 2 / e_r) + np.sum((c - e_c) ** 2 / e_c))
    return float(chdtrc(len(total) - 1, statistic))


def jensenshannon(ref: Sample, cur: Sample) -> float:
    """evidently's ``jensenshannon``: scipy's Jensen-Shannon distance (natural log)."""
    from scipy.spatial import distance

    r, c = binned_frequencies(ref, cur, fill_zeroes=False)
    return float(distance.jensenshannon(r, c, None))


def psi(ref: Sample, cur: Sample) -> float:
    """evidently's ``psi``: sum((ref - cur) * ln(ref / cur)) over filled binned shares."""
    r, c = binned_frequencies(ref, cur, fill_zeroes=True)
    return float(np.sum((r - c) * np.log(r / c)))


def kl_div(ref: Sample, cur: Sample) -> float:
    """evidently's ``kl_div``: scipy's entropy of reference relative to current shares."""
    from scipy import stats

    r, c = binned_frequencies(ref, cur, fill_zeroes=True)
    return float(stats.entropy(r, c))


@dataclass(frozen=True)
class StatOutcome:
    """One column's statistic, as evidently would report it.

    Attributes:
        method: The method's evidently name.
        score: p-value or distance.
        threshold: The threshold applied.
        is_drifted: The method's own verdict (its comparison, at ``threshold``).
        is_pvalue: Whether ``score`` is a p-value.
        effect: Effect size when already at hand (the K-S statistic), else None.
    """

    method: str
    score: float
    threshold: float
    is_drifted: bool
    is_pvalue: bool
    effect: float | None = None


def _evidently_outcome(
    method: str, threshold: float | None, ref: Sample, cur: Sample
) -> StatOutcome:
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    ctype = ColumnType.Numerical if ref.kind == "numeric" else ColumnType.Categorical
    test = get_registered_stattest(method, ctype)
    result = test(ref.series().copy(), cur.series().copy(), ctype, threshold)
    return StatOutcome(
        method=test.name,
        score=float(result.drift_score),
        threshold=float(result.actual_threshold),
        is_drifted=bool(result.drifted),
        is_pvalue=is_pvalue_method(test.name),
    )


def run_method(
    method: str, threshold: float | None, ref: Sample, cur: Sample, *, exact_ks: bool = True
) -> StatOutcome:
    """Compute one method on one column, the way evidently's ``StatTest`` would.

    Args:
        method: evidently method name (or ``chisquare_2samp``).
        threshold: None uses the method's default.
        ref: Reference side.
        cur: Current side.
        exact_ks: Above 10,000 values a side, the K-S p-value from scipy's ``kstwo`` (as
            evidently) or, when False, from the limiting distribution (see :func:`ks_pvalue`).

    Returns:
        The outcome.

    Raises:
        StatTestError: The method does not apply to the column kind (fast methods).
        ValueError: evidently rejects the method (unknown name, wrong kind).
    """
    if method not in FAST_METHODS and method not in AUTOML_METHODS:
        return _evidently_outcome(method, threshold, ref, cur)
    t = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    effect: float | None = None
    if method == "ks":
        score, effect = ks_pvalue(ref, cur, exact=exact_ks)
        drifted = score <= t
    elif method == "z":
        score = z_pvalue(ref, cur)
        drifted = score < t
    elif method == "chisquare":
        score = chisquare_pvalue(ref, cur)
        drifted = score < t
    elif method == "chisquare_2samp":
        score = chisquare_2samp_pvalue(ref, cur)
        drifted = score < t
    else:
        distance = {"wasserstein": wasserstein_norm, "jensenshannon": jensenshannon}.get(method)
        score = (distance or {"psi": psi, "kl_div": kl_div}[method])(ref, cur)
        drifted = score >= t
    return StatOutcome(method, score, t, bool(drifted), method in PVALUE_METHODS, effect)


def effect_size(ref: Sample, cur: Sample) -> float:
    """Size of the shift, in [0, 1]: the K-S statistic for numeric columns (largest gap between
    the CDFs), the total variation distance for categorical ones (share of mass that moved)."""
    if ref.kind == "numeric" and ref.n and cur.n:
        return ks_statistic(ref, cur)
    return total_variation(ref, cur)


def two_proportion_pvalue(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value that two proportions ``k1/n1`` and ``k2/n2`` are equal (pooled z)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))
