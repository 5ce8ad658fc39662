"""A cached reference gives the same statistics and reports as the frame itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.drift import (
    REFERENCE_CACHE,
    ColumnTest,
    EvidentlyDriftDetector,
    ReferenceCache,
    ReferenceProfile,
)
from automl.drift._stats import KsGrid, Sample, ks_statistic, ks_statistic_sorted
from automl.errors import DriftCheckError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

Gen = Callable[[np.random.Generator, int, float], np.ndarray]
#: Column shapes that stress the grid: ties, heavy tails, values beyond the reference's range,
#: a point mass, rounding (fewer distinct values than bins), missing and infinite values.
KINDS: dict[str, Gen] = {
    "normal": lambda r, n, s: r.normal(s, 1.0, n),
    "lognormal": lambda r, n, s: r.lognormal(s, 0.5, n),
    "integers": lambda r, n, s: r.integers(0, 30, n).astype(float) + (s > 0),
    "rounded": lambda r, n, s: np.round(r.gamma(2.0 + s, 10.0, n), 1),
    "cauchy": lambda r, n, s: r.standard_cauchy(n) + s,
    "beyond_range": lambda r, n, s: r.normal(s * 50, 1.0, n),
    "zero_inflated": lambda r, n, s: np.where(r.random(n) < 0.5, 0.0, r.normal(s, 1.0, n)),
    "nan_and_inf": lambda r, n, s: np.where(
        r.random(n) < 0.05, np.nan, np.where(r.random(n) < 0.01, np.inf, r.normal(s, 1, n))
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ks_statistic_on_the_grid_is_the_sorted_one_to_the_bit(kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n, m in ((15_000, 40_000), (60_000, 12_000)):
        for shift in (0.0, 0.03, 1.0):
            ref_values = KINDS[kind](rng, n, 0.0)
            cur_values = KINDS[kind](rng, m, shift)
            ref = Sample(pd.Series(ref_values), "numeric").prepare(keep_order=False)
            cur = Sample(pd.Series(cur_values), "numeric")
            expected = ks_statistic_sorted(
                Sample(pd.Series(ref_values), "numeric"), Sample(pd.Series(cur_values), "numeric")
            )
            assert ks_statistic(ref, cur) == expected
            assert cur._sorted is None or ref.ks_grid() is None  # the grid path did not sort


def test_the_grid_is_used_on_continuous_columns_and_not_on_rounded_ones() -> None:
    rng = np.random.default_rng(0)
    continuous = Sample(pd.Series(rng.normal(size=50_000)), "numeric")
    rounded = Sample(pd.Series(np.round(rng.normal(size=50_000), 1)), "numeric")
    assert isinstance(continuous.ks_grid(), KsGrid)
    assert rounded.ks_grid() is None  # ~70 values: sorting is cheap, every bin would tie
    assert KsGrid.build(np.zeros(100)) is None


def _frames(n_ref: int, n_cur: int, *, shift: float, seed: int) -> tuple[pd.DataFrame, ...]:
    rng = np.random.default_rng(seed)

    def make(n: int, s: float) -> pd.DataFrame:
        x = rng.normal(s, 1.0, n)
        x[rng.random(n) < 0.02 + s / 5] = np.nan
        return pd.DataFrame(
            {
                "x": x,
                "ties": rng.integers(0, 40, n).astype(float),
                "few": rng.integers(0, 4, n).astype(float),
                "plan": rng.choice(
                    ["basic", "plus", "pro", "max"][: 3 + (s > 0)], n
                ),  # "max" unseen in the reference
                "is_member": rng.random(n) < 0.3 + s / 4,
                "label": rng.random(n) < 0.2 + s / 5,
            }
        )

    return make(n_ref, 0.0), make(n_cur, shift)


CHECK: dict[str, Any] = {
    "numeric": ["x", "ties", "few"],
    "categorical": ["plan", "is_member"],
    "target": "label",
}
DETECTORS: dict[str, Callable[[], EvidentlyDriftDetector]] = {
    "default": EvidentlyDriftDetector,
    "evidently_tests": lambda: EvidentlyDriftDetector(
        tests="evidently", drift_share=0.5, correction="bh"
    ),
    "psi_calibrated": lambda: EvidentlyDriftDetector(method="psi", calibration_resamples=5),
    "delegated_method": lambda: EvidentlyDriftDetector(per_column={"x": ColumnTest("mannw")}),
}


@pytest.mark.parametrize("detector_name", sorted(DETECTORS))
@pytest.mark.parametrize(
    ("n_ref", "n_cur", "shift", "seed"),
    [(400, 300, 0.0, 0), (30_000, 20_000, 0.3, 1), (25_000, 600, 0.0, 2)],
)
def test_cached_and_profiled_checks_report_exactly_what_the_frame_check_reports(
    detector_name: str, n_ref: int, n_cur: int, shift: float, seed: int
) -> None:
    reference, current = _frames(n_ref, n_cur, shift=shift, seed=seed)
    detector = DETECTORS[detector_name]()
    expected = repr(detector.detect(reference, current, **CHECK))
    cache = ReferenceCache()
    key = ("pipeline", "v1", detector_name, seed)
    cold = detector.detect(reference, current, **CHECK, reference_key=key, cache=cache)
    warm = detector.detect(reference, current, **CHECK, reference_key=key, cache=cache)
    profile = detector.profile(
        reference, numeric=CHECK["numeric"], categorical=CHECK["categorical"], target="label"
    )
    prepared = detector.detect(profile, current, **CHECK)
    assert (cache.misses, cache.hits) == (1, 1)
    assert repr(cold) == repr(warm) == repr(prepared) == expected
    if shift:
        assert cold.column("plan").unseen_categories == ("max",)


def test_a_warm_check_neither_copies_nor_sorts_the_reference_again() -> None:
    reference, current = _frames(30_000, 20_000, shift=0.0, seed=3)
    cache = ReferenceCache()
    detector = EvidentlyDriftDetector()
    detector.detect(reference, current, **CHECK, reference_key="k", cache=cache)
    profile = cache.get(("k", ("x", "ties", "few"), ("plan", "is_member"), "label", None, False))
    assert profile is not None
    x = profile.sample("x", "numeric")
    assert x.values is x.sorted  # only the sorted copy is kept without calibration
    reference["x"] = 0.0  # a changed frame under the same key is the caller's error: not read
    again = detector.detect(reference, current, **CHECK, reference_key="k", cache=cache)
    assert (
        again.column("x").raw_score
        == detector.detect(profile, current, **CHECK).column("x").raw_score
    )
    assert cache.hits == 1


def test_the_cache_evicts_the_least_recently_used_by_count_and_by_memory() -> None:
    frames = {
        k: pd.DataFrame({"x": np.random.default_rng(i).normal(size=20_000)})
        for i, k in enumerate("abc")
    }

    def build(k: str) -> Callable[[], ReferenceProfile]:
        return lambda: ReferenceProfile(frames[k], numeric=["x"], categorical=[])

    cache = ReferenceCache(max_entries=2)
    first = cache.get_or_build("a", build("a"))
    cache.get_or_build("b", build("b"))
    assert cache.get("a") is first  # "a" is now the most recent
    cache.get_or_build("c", build("c"))
    assert cache.get("b") is None and cache.get("a") is first and len(cache) == 2
    one = first.nbytes
    small = ReferenceCache(max_entries=5, max_bytes=one + one // 2)
    for k in "abc":
        small.get_or_build(k, build(k))
    assert len(small) == 1 and small.get("c") is not None  # the newest stays even alone
    with pytest.raises(ValueError, match="max_entries"):
        ReferenceCache(max_entries=0)
    assert isinstance(REFERENCE_CACHE, ReferenceCache)


def test_a_profile_that_lacks_what_the_check_needs_is_a_clear_error() -> None:
    reference, current = _frames(300, 300, shift=0.0, seed=4)
    plain = EvidentlyDriftDetector().profile(reference, numeric=["x"], categorical=["plan"])
    detector = EvidentlyDriftDetector()
    with pytest.raises(DriftCheckError, match="not prepared for numeric column 'ties'"):
        detector.detect(plain, current, numeric=["x", "ties"], categorical=["plan"])
    with pytest.raises(DriftCheckError, match="not prepared for target 'label'"):
        detector.detect(plain, current, numeric=["x"], categorical=["plan"], target="label")
    calibrating = EvidentlyDriftDetector(method="psi", calibration_resamples=3)
    with pytest.raises(DriftCheckError, match="without the values' order"):
        calibrating.detect(plain, current, numeric=["x"], categorical=["plan"])
    with pytest.raises(DriftCheckError, match="lacks columns"):
        detector.profile(reference, numeric=["nope"], categorical=[])
    text = reference.assign(x=["a"] * len(reference))
    with pytest.raises(DriftCheckError, match=r"'x'.*cannot be read as numeric"):
        detector.profile(text, numeric=["x"], categorical=[])
