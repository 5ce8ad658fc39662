from __future__ import annotations

import pytest

from automl.config import HysteresisSpec
from automl.drift import DriftState, Hysteresis


def _run(h: Hysteresis, checks: list[bool], *, start: float = 0.0) -> tuple[list[str], DriftState]:
    state = h.rebase(DriftState(), "1")
    levels = []
    for i, drifted in enumerate(checks):
        decision = h.observe(state, is_drifted=drifted, now=start + i, batch_id=100 + i)
        state = decision.state
        levels.append(decision.level)
    return levels, state


def test_default_confirms_at_once() -> None:
    levels, _ = _run(Hysteresis(), [False, True, False])
    assert levels == ["ok", "drift", "ok"]


def test_drift_after_n_consecutive_drifted_checks() -> None:
    h = Hysteresis(confirm_checks=3)
    levels, state = _run(h, [True, True, False, True, True, True])
    assert levels == ["warning", "warning", "ok", "warning", "warning", "drift"]
    decision = h.observe(state, is_drifted=True, now=10.0, batch_id=999)
    assert decision.level == "drift" and decision.since_batch_id == 103  # start of the streak


def test_cumulative_window_tolerates_a_calm_check() -> None:
    h = Hysteresis(confirm_checks=3, window_checks=4, window_drifted=3)
    levels, _ = _run(h, [True, False, True, True])
    assert levels == ["warning", "ok", "warning", "drift"]
    state = h.rebase(DriftState(), "1")
    for i, drifted in enumerate([True, False, True]):
        state = h.observe(state, is_drifted=drifted, now=i, batch_id=10 + i).state
    decision = h.observe(state, is_drifted=True, now=4, batch_id=13)
    assert decision.since_batch_id == 10 and "3 of the last 4" in decision.reason


def test_warning_check_is_a_warning_without_counting_as_drift() -> None:
    h = Hysteresis(confirm_checks=2)
    state = h.rebase(DriftState(), "1")
    d1 = h.observe(state, is_drifted=False, is_warning=True, now=0.0)
    d2 = h.observe(d1.state, is_drifted=True, now=1.0)
    assert (d1.level, d2.level) == ("warning", "warning")


def test_cooldown_in_checks_suppresses_retunes() -> None:
    h = Hysteresis(cooldown_checks=2)
    state = h.after_retune(h.rebase(DriftState(), "1"), now=0.0, promoted_version=None)
    levels = []
    for i in range(3):
        decision = h.observe(state, is_drifted=True, now=float(i + 1))
        state = decision.state
        levels.append(decision.level)
    assert levels == ["warning", "warning", "drift"]
    assert "cool-down" in h.observe(h.after_retune(state, now=9.0), is_drifted=True, now=9.5).reason


def test_cooldown_in_seconds_uses_the_callers_clock() -> None:
    h = Hysteresis(cooldown_s=3600, cooldown_checks=0)  # seconds alone decide here
    state = h.after_retune(h.rebase(DriftState(), "1"), now=1000.0)
    assert h.observe(state, is_drifted=True, now=1000.0 + 3599).level == "warning"
    assert h.observe(state, is_drifted=True, now=1000.0 + 3600).level == "drift"


def test_promotion_rebases_and_clears_the_evidence() -> None:
    h = Hysteresis(confirm_checks=2)
    _, state = _run(h, [True])
    assert state.recent == ((True, 100),)
    after = h.after_retune(state, now=5.0, promoted_version="2")
    assert (after.reference_version, after.recent, after.checks_since_retune) == ("2", (), 0)
    kept = h.after_retune(state, now=5.0, promoted_version=None)  # challenger rejected
    assert kept.reference_version == "1" and kept.last_retune_at == 5.0


def test_a_champion_changed_elsewhere_rebases_too() -> None:
    h = Hysteresis(confirm_checks=2)
    _, state = _run(h, [True])
    assert h.rebase(state, "1") is state
    rolled_back = h.rebase(state, "0")
    assert rolled_back.recent == () and rolled_back.reference_version == "0"


def test_state_roundtrips_through_json() -> None:
    h = Hysteresis(confirm_checks=2, cooldown_s=10)
    _, state = _run(h, [True, False, True])
    state = h.after_retune(state, now=3.5, promoted_version="4")
    state = h.observe(state, is_drifted=True, now=4.0, batch_id=7).state
    assert DriftState.from_json(state.to_json()) == state


def test_spec_and_bad_parameters() -> None:
    h = Hysteresis.from_spec(HysteresisSpec(confirm_checks=2, window_checks=5, window_drifted=3))
    assert (h.confirm_checks, h.window_checks, h.window_drifted) == (2, 5, 3)
    with pytest.raises(ValueError, match="set together"):
        Hysteresis(window_checks=3)
    with pytest.raises(ValueError, match="window_drifted must be within"):
        Hysteresis(window_checks=3, window_drifted=4)
    with pytest.raises(ValueError, match="confirm_checks must be >= 1, got 0"):
        Hysteresis(confirm_checks=0)
