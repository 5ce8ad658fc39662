from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from automl.config import RegistrySpec
from automl.tracking import Guardrail, Predictions, PromotionGate, evaluate_gate
from automl.tuning import PREDICTION_METRICS, metric_from_predictions


def _metric(name: str, y: np.ndarray[Any, Any], p: Predictions) -> float:
    return metric_from_predictions(name, y, p.values, p.proba, p.classes)


def _gate(y, chal, champ, **kw):  # type: ignore[no-untyped-def]
    args: dict[str, Any] = {
        "metric": "accuracy",
        "metric_fn": _metric,
        "greater_is_better": PREDICTION_METRICS.__getitem__,
        "margin": 0.0,
        "n_resamples": 300,
        "seed": 1,
    }
    args.update(kw)
    return evaluate_gate(y, chal, champ, **args)


def _flip(y: np.ndarray[Any, Any], every: int, offset: int = 0) -> np.ndarray[Any, Any]:
    wrong = (np.arange(len(y)) + offset) % every == 0
    return np.where(wrong, 1 - y, y)


Y = np.array([0, 1] * 200)


def test_clear_improvement_passes_margin_bootstrap_and_mcnemar() -> None:
    chal, champ = Predictions("2", _flip(Y, 20)), Predictions("1", _flip(Y, 4))
    boot = _gate(Y, chal, champ, margin=0.1)
    assert boot.passed and boot.improvement == pytest.approx(0.2)
    assert boot.ci_low is not None and boot.ci_low > 0.1
    mc = _gate(Y, chal, champ, test="mcnemar")
    assert mc.passed and mc.p_value is not None and mc.p_value < 1e-6


def test_improvement_below_margin_is_rejected() -> None:
    gate = _gate(Y, Predictions("2", _flip(Y, 20)), Predictions("1", _flip(Y, 4)), margin=0.3)
    assert not gate.passed and gate.passes_margin is False
    assert gate.reasons == ("improvement +0.2000 below margin 0.3",)


def test_small_noisy_improvement_is_not_credible() -> None:
    y = Y[:60]
    chal, champ = Predictions("2", _flip(y, 10)), Predictions("1", _flip(y, 8, offset=3))
    assert _gate(y, chal, champ, test="none").passed  # margin alone would promote it
    boot = _gate(y, chal, champ)
    assert boot.improvement > 0 and not boot.passed and not boot.is_credible
    assert "bootstrap interval" in boot.reasons[0] and boot.ci_low is not None and boot.ci_low <= 0
    mc = _gate(y, chal, champ, test="mcnemar")
    assert not mc.passed and "McNemar" in mc.reasons[0]


def test_quality_guardrail_blocks_a_better_model_that_regresses_elsewhere() -> None:
    # Challenger: more accurate overall, but it never predicts class 1 right when... recall drops.
    y = np.array([1] * 100 + [0] * 300)
    champ_values = np.concatenate([np.ones(90), np.zeros(10), np.zeros(240), np.ones(60)])
    chal_values = np.concatenate([np.ones(60), np.zeros(40), np.zeros(295), np.ones(5)])
    chal, champ = Predictions("2", chal_values), Predictions("1", champ_values)
    free = _gate(y, chal, champ)
    assert free.passed  # accuracy 0.888 vs 0.825
    guarded = _gate(y, chal, champ, guardrails=[Guardrail("recall", max_regression=0.05)])
    assert not guarded.passed
    (check,) = guarded.guardrails
    assert (check.champion_value, check.challenger_value) == (
        pytest.approx(0.9),
        pytest.approx(0.6),
    )
    assert "guardrail recall" in guarded.reasons[-1]


def test_resource_guardrails_compare_ratios() -> None:
    chal = Predictions("2", _flip(Y, 20), latency_ms=9.0, model_size_mb=30.0)
    champ = Predictions("1", _flip(Y, 4), latency_ms=2.0, model_size_mb=10.0)
    slow = _gate(Y, chal, champ, guardrails=[Guardrail("latency_ms", max_ratio=2.0)])
    assert not slow.passed and slow.guardrails[0].limit == "ratio <= 2.0"
    ok = _gate(Y, chal, champ, guardrails=[Guardrail("model_size_mb", max_ratio=5.0)])
    assert ok.passed


def test_roc_auc_gate_with_probabilities() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 500), 0, 1)
    weak = np.clip(y * 0.2 + rng.normal(0.4, 0.3, 500), 0, 1)
    classes = np.array([0, 1])

    def preds(version: str, p1: np.ndarray[Any, Any]) -> Predictions:
        return Predictions(version, (p1 > 0.5).astype(int), np.c_[1 - p1, p1], classes)

    gate = _gate(y, preds("2", good), preds("1", weak), metric="roc_auc", margin=0.05)
    assert gate.passed and gate.improvement > 0.1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"margin": -1}, "margin"),
        ({"alpha": 1.5}, "alpha"),
        ({"n_resamples": 10}, "n_resamples"),
        ({"test": "t-test"}, "test must be one of"),
    ],
)
def test_bad_arguments(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _gate(Y, Predictions("2", Y), Predictions("1", Y), **kw)


def test_fast_binary_auc_equals_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    from automl.tuning._holdout import binary_roc_auc

    rng = np.random.default_rng(3)
    for n in (10, 101, 1000):
        y = rng.integers(0, 2, n).astype(bool)
        scores = np.round(rng.random(n), 2)  # rounding makes ties
        assert binary_roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def _old_population(max_regression: float | None) -> PromotionGate:
    return PromotionGate.from_spec(RegistrySpec(old_population={"max_regression": max_regression}))


def test_old_population_guardrail_refuses_a_regression_beyond_its_tolerance() -> None:
    chal, champ = Predictions("2", _flip(Y, 20)), Predictions("1", _flip(Y, 4))
    won = _gate(Y, chal, champ)  # the challenger wins on the new holdout
    assert won.passed
    # ... and on the champion's old rows it is right 90% of the time, the champion 95%.
    old_chal, old_champ = Predictions("2", _flip(Y, 10)), Predictions("1", _flip(Y, 20))
    args: dict[str, Any] = {
        "metric": "accuracy",
        "metric_fn": _metric,
        "greater_is_better": PREDICTION_METRICS.__getitem__,
        "rows_note": "400 rows of v1's holdout",
    }
    check = _old_population(0.02).check_old_population(Y, old_chal, old_champ, **args)
    assert (check.metric, check.passed, check.skipped) == ("old_population_accuracy", False, False)
    assert (check.champion_value, check.challenger_value) == pytest.approx((0.95, 0.9))
    refused = won.with_check(check)
    assert not refused.passed and refused.guardrails[-1] is check
    assert refused.reasons == (
        "guardrail old_population_accuracy: 0.9000 vs champion 0.9500 on 400 rows of v1's "
        "holdout breaks regression <= 0.02",
    )
    assert _old_population(0.06).check_old_population(Y, old_chal, old_champ, **args).passed
    off = _old_population(None).check_old_population(Y, old_chal, old_champ, **args)
    assert off.passed  # off: recorded, never blocking


def test_a_skipped_old_population_check_is_recorded_and_does_not_block() -> None:
    won = _gate(Y, Predictions("2", _flip(Y, 20)), Predictions("1", _flip(Y, 4)))
    skipped = PromotionGate.skip_old_population("roc_auc", "champion v1 has no stored holdout")
    assert (skipped.skipped, skipped.passed, skipped.note) == (
        True,
        True,
        "champion v1 has no stored holdout",
    )
    judged = won.with_check(skipped)
    assert judged.passed and judged.reasons == () and judged.guardrails == (skipped,)
