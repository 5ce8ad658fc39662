from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from automl.tuning._local_search import LOCAL_ATTR, LocalSearchSampler, _perturb


def test_steps_stay_in_range_on_the_distribution_scale() -> None:
    rng = np.random.default_rng(0)
    log_float = FloatDistribution(1e-3, 10.0, log=True)
    moved = [_perturb(log_float, 0.1, rng, 0.1) for _ in range(2000)]
    assert all(1e-3 <= v <= 10.0 for v in moved)
    # The step is 0.1 of the log range, so it is multiplicative around 0.1.
    logs = np.log(moved)
    assert abs(np.median(logs) - math.log(0.1)) < 0.1
    assert np.std(logs) == pytest.approx(0.1 * math.log(1e4), rel=0.15)

    log_int = IntDistribution(50, 1000, log=True)
    ints = [_perturb(log_int, 1000, rng, 0.1) for _ in range(500)]
    assert all(isinstance(v, int) and 50 <= v <= 1000 for v in ints)
    assert min(ints) < 1000  # reflected off the upper edge, not stuck on it

    stepped = FloatDistribution(0.0, 1.0, step=0.25)
    assert {_perturb(stepped, 0.5, rng, 0.2) for _ in range(200)} <= {0.0, 0.25, 0.5, 0.75, 1.0}

    choice = CategoricalDistribution(("l1", "l2"))
    assert {_perturb(choice, "l1", rng, 0.5) for _ in range(50)} == {"l1"}


def test_only_the_first_sampled_trials_are_local_and_they_follow_the_best() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = LocalSearchSampler(optuna.samplers.RandomSampler(seed=1), n_local=3, seed=1)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    study.enqueue_trial({"x": 8.0, "kind": "b"})
    study.enqueue_trial({"x": 1.0, "kind": "a"})

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 10.0)
        return abs(x - 2.0) + (trial.suggest_categorical("kind", ["a", "b"]) == "b")

    study.optimize(objective, n_trials=8)
    local = [t for t in study.trials if LOCAL_ATTR in t.user_attrs]
    assert [t.number for t in local] == [2, 3, 4]
    for t in local:
        best = min(study.trials[: t.number], key=lambda s: (s.value, s.number))
        assert t.user_attrs[LOCAL_ATTR] == best.number
        assert t.params["kind"] == best.params["kind"] == "a"
        assert abs(t.params["x"] - best.params["x"]) < 5.0


def test_bad_arguments_are_refused() -> None:
    base = optuna.samplers.RandomSampler(seed=0)
    with pytest.raises(ValueError, match="n_local must be >= 0, got -1"):
        LocalSearchSampler(base, n_local=-1, seed=0)
    with pytest.raises(ValueError, match="step must be > 0, got 0"):
        LocalSearchSampler(base, n_local=1, seed=0, step=0.0)
