"""The Kolmogorov-Smirnov distributions of the drift check, without ``scipy.stats``.

``scipy.stats`` costs a service about 50 MB of resident memory once imported (its ~1,200
modules), and the drift check would import it only for three numbers: the two-sample K-S
p-value up to 10,000 values a side (``ks_2samp``, exact), the one-sample distribution
``kstwo`` it falls back on beyond, and the limiting distribution ``kstwobign``. This module
computes the same numbers from ``scipy.special`` alone (14 MB: its ufuncs ``smirnov`` and
``kolmogorov``) and NumPy:

* :func:`ks_2samp_pvalue`: ``scipy.stats.ks_2samp(x, y).pvalue`` (two-sided, method
  ``auto``) from the statistic, for samples of at most 10,000 values a side: the same exact
  algorithms in the same floating-point operations, so the same float (the tests compare with
  scipy over many sizes, ties and the fallback cases).
* :func:`kstwo_sf`: ``scipy.stats.kstwo.sf(d, n)``, the same branches (Ruben-Gambino, the
  Durbin matrix, Pomeranz's recursion, Pelz-Good, ``2 * smirnov``) in the same operations.
* :func:`kstwobign_sf`: ``scipy.stats.kstwobign.sf(x)``, which is ``scipy.special.kolmogorov``.

One change of form, not of arithmetic: scipy computes the exact probability for samples of
different sizes (``_compute_outer_prob_inside_method``, compiled with Pythran) column by column
of a lattice, each cell ``(A[i - 1, j] * i + A[i, j - 1] * j) / (i + j)``; in pure Python that
loop would take up to a minute at 10,000 values a side. Here the same cells are computed one
anti-diagonal ``i + j = k`` at a time, vectorized (a cell's two inputs lie on the previous
anti-diagonal), each with the same two products, sum and division, in IEEE double precision:
the same value in every cell, hence the same result.

Ported from SciPy 1.17 (``scipy/stats/_stats_py.py``: ``ks_2samp``, ``_attempt_exact_2kssamp``,
``_compute_prob_outside_square``; ``scipy/stats/_stats_pythran.py``:
``_compute_outer_prob_inside_method``; ``scipy/stats/_ksstats.py``: ``_kolmogn`` and its
helpers; ``scipy/stats/_continuous_distns.py``: ``kstwo``, ``kstwobign``), under SciPy's
license:

    Copyright (c) 2001-2002 Enthought, Inc. 2003, SciPy Developers.
    All rights reserved.

    Redistribution and use in source and binary forms, with or without
    modification, are permitted provided that the following conditions
    are met:

    1. Redistributions of source code must retain the above copyright
       notice, this list of conditions and the following disclaimer.

    2. Redistributions in binary form must reproduce the above
       copyright notice, this list of conditions and the following
       disclaimer in the documentation and/or other materials provided
       with the distribution.

    3. Neither the name of the copyright holder nor the names of its
       contributors may be used to endorse or promote products derived
       from this software without specific prior written permission.

    THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
    "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
    LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR
    A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
    OWNER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
    SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
    LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
    DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
    THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
    (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
    OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

References (as in SciPy): Hodges, "The Significance Probability of the Smirnov Two-Sample
Test", Arkiv for Matematik 3 (1958); Viehmann, "Numerically more stable computation of the
p-values for the two-sample Kolmogorov-Smirnov test", arXiv:2102.08037; Simard and L'Ecuyer,
"Computing the Two-Sided Kolmogorov-Smirnov Distribution", J. Stat. Softw. 39(11) (2011);
Marsaglia, Tsang and Wang, "Evaluating Kolmogorov's Distribution", J. Stat. Softw. 8(18)
(2003); Pomeranz, "Algorithm 487", CACM 17(12) (1974); Pelz and Good, JRSS B 38(2) (1976).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: ``ks_2samp``'s method ``auto`` is exact up to this many values a side.
EXACT_MAX_N = 10_000

_E128 = 128
_EP128 = np.ldexp(np.longdouble(1), _E128)
_EM128 = np.ldexp(np.longdouble(1), -_E128)
_SQRT2PI = np.sqrt(2 * np.pi)
_LOG_2PI = np.log(2 * np.pi)
_MIN_LOG = -708
_SQRT3 = np.sqrt(3)
_PI_SQUARED = np.pi**2
_PI_FOUR = np.pi**4
_PI_SIX = np.pi**6
# Stirling coefficients B_{2j}/(2j)/(2j-1) for j = 8, ..., 1.
_STIRLING_COEFFS = [
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
]


# -- two samples: ks_2samp -------------------------------------------------------------------
def ks_2samp_pvalue(n1: int, n2: int, d: float) -> tuple[float, float]:
    """``scipy.stats.ks_2samp``'s two-sided p-value (method ``auto``) and statistic.

    Args:
        n1: Values in the first sample (1 to :data:`EXACT_MAX_N`).
        n2: Values in the second sample (1 to :data:`EXACT_MAX_N`).
        d: The K-S statistic ``sup |F1 - F2|`` of the two samples.

    Returns:
        ``(p_value, statistic)``; the statistic rounded, as scipy returns it, to the nearest
        multiple of ``1 / lcm(n1, n2)``.

    Raises:
        ValueError: A sample is empty or larger than :data:`EXACT_MAX_N` (above it scipy
            uses ``kstwo``: see :func:`kstwo_sf`).

    Example:
        Five values against four, the CDFs 0.75 apart at most (``scipy.stats.ks_2samp([1, 2,
        3, 4, 5], [3.5, 6, 7, 8])`` gives the same p-value):

        >>> ks_2samp_pvalue(5, 4, 0.75)
        (0.14285714285714285, 0.75)
    """
    if min(n1, n2) <= 0:
        raise ValueError("Data passed to ks_2samp must not be empty")
    if max(n1, n2) > EXACT_MAX_N:
        raise ValueError(f"exact K-S p-values are for at most {EXACT_MAX_N} values a side")
    g = math.gcd(n1, n2)
    is_exact, d, prob = _attempt_exact_2kssamp(n1, n2, g, d)
    if not is_exact:  # scipy warns and switches to the asymptotic method
        m, n = sorted([float(n1), float(n2)], reverse=True)
        prob = kstwo_sf(d, round(m * n / (m + n)))
    return float(np.clip(prob, 0, 1)), float(d)


def _attempt_exact_2kssamp(n1: int, n2: int, g: int, d: float) -> tuple[bool, float, float]:
    """scipy's ``_attempt_exact_2kssamp``, two-sided: ``(success, d, probability)``."""
    lcm = (n1 // g) * n2
    h = int(np.round(d * lcm))
    d = h * 1.0 / lcm
    if h == 0:
        return True, d, 1.0
    # scipy also catches floating-point errors raised here; neither two-sided computation
    # raises any (plain Python floats; compiled code in scipy, NumPy without errstate here).
    if n1 == n2:
        prob = _compute_prob_outside_square(n1, h)
    else:
        prob = _compute_outer_prob_inside_method(n1, n2, g, h)
    if not (0 <= prob <= 1):
        return False, d, prob
    return True, d, prob


def _compute_prob_outside_square(n: int, h: int) -> float:
    """Pr(D_{n,n} >= h/n): the share of paths that leave the lines ``x - y = +/-h``."""
    # P = 2 * A0 * (1 - A1*(1 - A2*(1 - A3*(1 - A4*(...))))), each Ai a ratio of binomials.
    p = 0.0
    k = int(np.floor(n / h))
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2 * p


def _compute_outer_prob_inside_method(m: int, n: int, g: int, h: int) -> float:
    """The share of lattice paths from (0, 0) to (m, n) that do not stay strictly inside
    ``|x/m - y/n| < h / lcm(m, n)`` (Hodges' inside method, with Viehmann's recursion for
    one minus the share), one anti-diagonal at a time.

    Cell ``(i, j)`` (``i`` along the longer side) holds the share of paths to it that left the
    band: 1 outside the band, 0 in column 0 inside it, else
    ``(A[i-1, j] * i + A[i, j-1] * j) / (i + j)``. Both inputs of a cell on anti-diagonal
    ``k = i + j`` lie on anti-diagonal ``k - 1``, so each anti-diagonal is one vector
    operation; the band's cells on it are a contiguous range of ``i``.
    """
    if m < n:
        m, n = n, m
    mg, ng = m // g, n // g
    i = np.arange(m + 1, dtype=np.int64)
    # The band of column i, as scipy computes it: float division, then floor / ceil.
    minj = np.minimum(np.maximum(np.floor((ng * i - h) / mg).astype(np.int64) + 1, 0), n)
    maxj = np.minimum(np.ceil((ng * i + h) / mg).astype(np.int64), n + 1)
    minj[0] = 0
    if np.any(maxj[1:] <= minj[1:]):  # a column without room: every path leaves the band
        return 1.0
    # Cell (i, k - i) is in the band iff i + minj[i] <= k < i + maxj[i]; both sides increase
    # with i, so on anti-diagonal k the band holds the columns lo[k] <= i < hi[k].
    diagonals = np.arange(m + n + 1)
    los = np.searchsorted(i + maxj, diagonals, side="right").tolist()
    his = np.searchsorted(i + minj, diagonals, side="right").tolist()
    # cell[i + 1]: this anti-diagonal's value in column i, 1.0 outside the band; cell[0]
    # stands for column -1 (multiplied by i = 0).
    cell = np.ones(m + 2)
    cell[1] = 0.0  # (0, 0)
    columns = i.astype(np.float64)
    lo_before = 0
    for k in range(1, m + n + 1):
        lo, hi = los[k], his[k]
        fi = columns[lo:hi]
        value = cell[lo:hi] * fi  # A[i - 1, j] * i
        value += cell[lo + 1 : hi + 1] * (k - fi)  # + A[i, j - 1] * j
        value /= k  # / (i + j)
        cell[lo + 1 : hi + 1] = value
        if lo == 0:  # column 0 inside the band
            cell[1] = 0.0
        if lo > lo_before:  # columns that left the band
            cell[lo_before + 1 : lo + 1] = 1.0
        lo_before = lo
    return float(cell[m + 1])


# -- one sample: kstwo, kstwobign -----------------------------------------------------------
def kstwobign_sf(x: float) -> float:
    """``scipy.stats.kstwobign.sf(x)``: the limiting distribution of ``sqrt(n) * D_n``.

    Example:
        >>> round(kstwobign_sf(1.36), 4)
        0.0495
    """
    from scipy.special import kolmogorov

    if math.isnan(x):
        return math.nan
    return float(kolmogorov(x)) if x > 0 else 1.0


def kstwo_sf(d: float, n: float) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: Pr(D_n >= d) for the two-sided one-sample K-S statistic
    of ``n`` values (what ``ks_2samp`` applies, with ``n = round(n1 * n2 / (n1 + n2))``,
    beyond its exact range).

    Args:
        d: The statistic.
        n: The sample size (an integer >= 1, else the result is NaN, as scipy's).

    Returns:
        The survival function.

    Example:
        >>> round(kstwo_sf(0.2, 50), 6)
        0.031439
    """
    if math.isnan(d) or math.isnan(n) or n < 1 or n != round(n):
        return math.nan
    if d <= 0.5 / n:  # at or below the support
        return 1.0
    if d >= 1.0:
        return 0.0
    # A 0-d array, as scipy's ``kolmogn`` hands it over (its first operations are ufuncs).
    return float(_kolmogn_sf(int(n), np.array(d, dtype=np.float64)))


def _clip(p: Any) -> Any:
    return np.clip(p, 0.0, 1.0)


def _log_nfactorial_div_n_pow_n(n: int) -> Any:
    # log(n! / n**n) by Stirling, with n * log(n) removed up-front.
    rn = 1.0 / n
    return np.log(n) / 2 - n + _LOG_2PI / 2 + rn * np.polyval(_STIRLING_COEFFS, rn / n)


def _kolmogn_sf(n: int, x: Any) -> Any:  # noqa: PLR0911 - scipy's branches, kept as they are
    """scipy's ``_kolmogn(n, x, cdf=False)`` (Simard and L'Ecuyer's choice of method)."""
    from scipy.special import smirnov

    if x >= 1.0:
        return _clip(0.0)
    if x <= 0.0:
        return _clip(1.0)
    t = n * x
    if t <= 1.0:  # Ruben-Gambino: 1/2n <= x <= 1/n
        if t <= 0.5:
            return _clip(1.0)
        if n <= 140:
            prob = np.prod(np.arange(1, n + 1) * (1.0 / n) * (2 * t - 1))
        else:
            prob = np.exp(_log_nfactorial_div_n_pow_n(n) + n * np.log(2 * t - 1))
        return _clip(1.0 - prob)
    if t >= n - 1:  # Ruben-Gambino
        return _clip(2 * (1.0 - x) ** n)
    if x >= 0.5:  # exact: 2 * smirnov
        return _clip(2 * smirnov(n, x))
    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            return _clip(1.0 - _kolmogn_dmtw(n, x))
        if nxsquared <= 4:
            return _clip(1.0 - _kolmogn_pomeranz(n, x))
        return _clip(2 * smirnov(n, x))  # Miller's approximation
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        return _clip(2 * smirnov(n, x))
    is_dmtw = n <= 100000 and n * x**1.5 <= 1.4
    return _clip(1.0 - (_kolmogn_dmtw(n, x) if is_dmtw else _kolmogn_pelz_good(n, x)))


def _kolmogn_dmtw(n: int, d: Any) -> Any:
    """Pr(D_n <= d) by the Durbin matrix, as Marsaglia, Tsang and Wang compute it."""
    if d >= 1.0:
        return _clip(1.0)
    nd = n * d
    if nd <= 0.5:
        return _clip(0.0)
    k = int(np.ceil(nd))
    h = k - nd
    m = 2 * k - 1
    big = np.zeros([m, m])
    # v: the first column (and, reversed, the last row); w[j] = 1 / j!
    intm = np.arange(1, m + 1)
    v = 1.0 - h**intm
    w = np.empty(m)
    fac = 1.0
    for j in intm:
        w[j - 1] = fac
        fac /= j  # may underflow, harmlessly
        v[j - 1] *= fac
    tt = max(2 * h - 1.0, 0) ** m - 2 * h**m
    v[-1] = (1.0 + tt) * fac
    for i in range(1, m):
        big[i - 1 :, i] = w[: m - i + 1]
    big[:, 0] = v
    big[-1, :] = np.flip(v, axis=0)
    power = np.eye(np.shape(big)[0])  # intermediate powers of the matrix
    nn = n
    expnt = 0  # scaling of power
    big_expnt = 0  # scaling of big
    while nn > 0:
        if nn % 2:
            power = np.matmul(power, big)
            expnt += big_expnt
        big = np.matmul(big, big)
        big_expnt *= 2
        if np.abs(big[k - 1, k - 1]) > _EP128:
            big /= _EP128
            big_expnt += _E128
        nn = nn // 2
    p = power[k - 1, k - 1]
    for i in range(1, n + 1):  # times n! / n**n
        p = i * p / n
        if np.abs(p) < _EM128:
            p *= _EP128
            expnt -= _E128
    if expnt != 0:
        p = np.ldexp(p, expnt)
    return _clip(p)


def _pomeranz_compute_j1j2(i: int, n: int, ll: int, ceilf: int, roundf: int) -> tuple[int, int]:
    """The ends of row ``i``'s non-zero interval in Pomeranz's recursion."""
    if i == 0:
        j1, j2 = -ll - ceilf - 1, ll + ceilf - 1
    else:
        ip1div2, ip1mod2 = divmod(i + 1, 2)
        if ip1mod2 == 0:  # i is odd
            if ip1div2 == n + 1:
                j1, j2 = n - ll - ceilf - 1, n + ll + ceilf - 1
            else:
                j1, j2 = ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1
        else:
            j1, j2 = ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1
    return max(j1 + 2, 0), min(j2, n)


def _kolmogn_pomeranz(n: int, x: Any) -> Any:
    """Pr(D_n <= x) by Pomeranz's recursion (two rows of convolutions with Poisson terms)."""
    t = n * x
    ll = int(np.floor(t))
    f = 1.0 * (t - ll)  # the fractional part of t
    g = min(f, 1.0 - f)
    ceilf = 1 if f > 0 else 0
    roundf = 1 if f > 0.5 else 0
    npwrs = 2 * (ll + 1)  # most powers a convolution needs
    gpower = np.empty(npwrs)  # (g/n)^m/m!
    twogpower = np.empty(npwrs)  # (2g/n)^m/m!
    onem2gpower = np.empty(npwrs)  # ((1-2g)/n)^m/m!
    gpower[0] = 1.0
    twogpower[0] = 1.0
    onem2gpower[0] = 1.0
    expnt = 0
    g_over_n, two_g_over_n, one_minus_two_g_over_n = g / n, 2 * g / n, (1 - 2 * g) / n
    for m in range(1, npwrs):
        gpower[m] = gpower[m - 1] * g_over_n / m
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m
    v0 = np.zeros([npwrs])
    v1 = np.zeros([npwrs])
    v1[0] = 1
    v0s, v1s = 0, 0  # where the two rows start
    j1, j2 = _pomeranz_compute_j1j2(0, n, ll, ceilf, roundf)
    for i in range(1, 2 * n + 2):
        k1 = j1
        v0, v1 = v1, v0
        v0s, v1s = v1s, v0s
        v1.fill(0.0)
        j1, j2 = _pomeranz_compute_j1j2(i, n, ll, ceilf, roundf)
        is_end = i == 1 or i == 2 * n + 1
        pwrs = gpower if is_end else (twogpower if i % 2 else onem2gpower)
        ln2 = j2 - k1 + 1
        if ln2 > 0:
            conv = np.convolve(v0[k1 - v0s : k1 - v0s + ln2], pwrs[:ln2])
            conv_start = j1 - k1
            conv_len = j2 - j1 + 1
            v1[:conv_len] = conv[conv_start : conv_start + conv_len]
            if 0 < np.max(v1) < _EM128:  # scale against underflow
                v1 *= _EP128
                expnt -= _E128
            v1s = v0s + j1 - k1
    ans = v1[n - v1s]
    for m in range(1, n + 1):  # times n!
        if np.abs(ans) > _EP128:
            ans *= _EM128
            expnt += _E128
        ans *= m
    if expnt != 0:
        ans = np.ldexp(ans, expnt)
    return _clip(ans)


def _kolmogn_pelz_good(n: int, x: Any) -> Any:
    """Pr(D_n <= x) by the Pelz-Good approximation (Li-Chien and Korolyuk's expansion,
    transformed with Jacobi theta functions for small ``z = x * sqrt(n)``)."""
    if x <= 0.0:
        return _clip(0.0)
    if x >= 1.0:
        return _clip(1.0)
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6
    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < _MIN_LOG:  # z ~ 0.041743441416853426
        return _clip(0.0)
    q = np.exp(qlog)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8
    k0to3 = np.zeros(4)
    # Horner's scheme for sum c_i q^(i^2), over odd integers.
    maxk = int(np.ceil(16 * z / np.pi))
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        msquared, mfour, msix = m**2, m**4, m**6
        qpower = np.power(q, 8 * k)
        coeffs = np.array(
            [
                1.0,
                k1a + k1b * msquared,
                k2a + k2b * msquared + k2c * mfour,
                k3a + k3b * msquared + k3c * mfour + k3d * msix,
            ]
        )
        k0to3 *= qpower
        k0to3 += coeffs
    k0to3 *= q
    k0to3 *= _SQRT2PI
    k0to3 /= np.array([z, 6 * zfour, 72 * z**7, 6480 * z**10])  # z**10 > 0: z > 0.04
    # The sums over all integers k of K_2 and K_3's other terms, directly.
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    ks = np.arange(maxk, 0, -1)
    ksquared = ks**2
    sqrt3z = _SQRT3 * z
    kspi = np.pi * ks
    qpwers = q**ksquared
    k2extra = np.sum(ksquared * qpwers)
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    k0to3[2] += k2extra
    k3extra = np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwers)
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    k0to3[3] += k3extra
    powers_of_n = np.power(n * 1.0, np.arange(len(k0to3)) / 2.0)
    k0to3 /= powers_of_n
    return sum(k0to3)
