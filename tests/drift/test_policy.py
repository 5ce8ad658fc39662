from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.config import DriftSpec
from automl.drift import adjust_pvalues, performance_drift, sensitivity_weights
from automl.drift._policy import normalize_weights


def test_bonferroni_multiplies_by_the_number_of_tests() -> None:
    assert adjust_pvalues([0.01, 0.2], [0.05, 0.05], "bonferroni") == [0.02, 0.4]
    assert adjust_pvalues([0.6, 0.7], [0.05, 0.05], "bonferroni") == [1.0, 1.0]


def test_holm_is_step_down_and_never_stricter_than_bonferroni() -> None:
    p = [0.04, 0.001, 0.012, 0.9]
    holm = adjust_pvalues(p, [0.05] * 4, "holm")
    bonf = adjust_pvalues(p, [0.05] * 4, "bonferroni")
    assert holm == pytest.approx([0.08, 0.004, 0.036, 0.9])
    assert all(h <= b for h, b in zip(holm, bonf, strict=True))
    assert sum(x < 0.05 for x in holm) == 2 and sum(x < 0.05 for x in bonf) == 2


def test_benjamini_hochberg_is_step_up_and_never_stricter_than_holm() -> None:
    p = [0.04, 0.001, 0.012, 0.9]
    bh = adjust_pvalues(p, [0.05] * 4, "bh")
    holm = adjust_pvalues(p, [0.05] * 4, "holm")
    assert bh == pytest.approx([0.16 / 3, 0.004, 0.024, 0.9])
    assert all(b <= h for b, h in zip(bh, holm, strict=True))
    # Many moderately small p-values (broad drift): BH keeps them, Holm keeps one.
    broad = [0.011, 0.012, 0.013, 0.014, 0.015]
    assert sum(x < 0.05 for x in adjust_pvalues(broad, [0.05] * 5, "bh")) == 5
    assert sum(x < 0.05 for x in adjust_pvalues(broad, [0.05] * 5, "holm")) == 0


def test_columns_with_their_own_alpha_are_judged_on_their_scale() -> None:
    # 0.004 at alpha 0.01 is as strong as 0.02 at alpha 0.05.
    adjusted = adjust_pvalues([0.004, 0.02], [0.01, 0.05], "bonferroni")
    assert adjusted == pytest.approx([0.008, 0.04])


def test_none_and_missing_pvalues() -> None:
    assert adjust_pvalues([0.03, float("nan")], [0.05, 0.05], "none") == [0.03, 1.0]
    with pytest.raises(ValueError, match="correction must be one of"):
        adjust_pvalues([0.1], [0.05], "fdr")  # type: ignore[arg-type]


def test_weights_are_normalized_and_fall_back_to_uniform() -> None:
    assert normalize_weights({"a": 3.0, "b": 1.0, "zz": 9.0}, ["a", "b", "c"]) == (
        {"a": 0.75, "b": 0.25, "c": 0.0},
        False,
    )
    assert normalize_weights({}, ["a", "b"]) == ({"a": 0.5, "b": 0.5}, True)
    with pytest.raises(ValueError, match="finite and >= 0"):
        normalize_weights({"a": -1.0}, ["a"])


def test_performance_drift_tolerance_boundary() -> None:
    at = performance_drift(reference_score=0.9, current_score=0.85, tolerance=0.05)
    assert not at.is_drifted  # "beyond" the tolerance, not at it
    loss = performance_drift(
        reference_score=1.0, current_score=0.9, tolerance=0.0, greater_is_better=False
    )
    assert not loss.is_drifted and loss.score == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        performance_drift(reference_score=1, current_score=1, tolerance=-1)


def test_sensitivity_weights_follow_the_model() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "c": ["x"] * 300})

    def predict(f: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-(2 * f["a"].to_numpy() + 0.2 * f["b"].to_numpy())))
        return np.column_stack([1 - p, p])

    w = sensitivity_weights(predict, frame, ["a", "b", "c"], n_rows=200)
    assert w["a"] > 5 * w["b"] > 0 and w["c"] == 0.0


def test_spec_defaults_are_validated() -> None:
    spec = DriftSpec()
    # Any one column, Holm-corrected two-sample tests (issue 11; before: 0.5, bh, evidently).
    assert (spec.method, spec.threshold, spec.drift_share, spec.columns) == (None, None, 0.01, None)
    assert (spec.policy, spec.correction, spec.hysteresis.confirm_checks) == ("share", "holm", 1)
    assert (spec.tests, spec.min_effect) == ("two_sample", 0.04)
    # Three checks of cool-down after a re-tune (issue 11's stream benchmark; before: 0).
    assert (spec.hysteresis.cooldown_checks, spec.hysteresis.cooldown_s) == (3, 0.0)
    with pytest.raises(ValueError, match="warning_share"):
        DriftSpec(drift_share=0.3, warning_share=0.4)
    with pytest.raises(ValueError, match="set together"):
        DriftSpec.model_validate({"hysteresis": {"window_checks": 3}})
