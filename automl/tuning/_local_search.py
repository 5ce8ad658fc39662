"""Local search: the first sampled trials of a warm study perturb the best trial so far.

A warm study opens with the previous study's best configurations, re-evaluated on the drifted
rows, and the library defaults. After drift the optimum has usually moved, but not far; the best
of those trials on the *new* rows is the best guess there is, and the next few trials refine it
(a (1+1) hill climb in a small box around the best trial so far: every numeric hyperparameter
moves by a Gaussian step in the normalized space, on the log scale where the range has one,
categorical ones keep their value). The base sampler (TPE) then takes over, modelling those
trials with the others. Cold studies never use it: without an informed start there is nothing to
refine.

Which trials are local is decided from the study alone (the ``n_local`` first trials that were
not enqueued), so every process of a distributed study agrees, and the step of a trial is drawn
from ``(seed, trial number)``, so a search with ``n_jobs=1`` is reproducible.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.samplers import BaseSampler  # this module is imported only when a study is made

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial, TrialState

#: User attribute of a local trial: the number of the trial it perturbed.
LOCAL_ATTR = "local_search_of"
#: Step (standard deviation) in the normalized [0, 1] range of each numeric hyperparameter.
LOCAL_STEP = 0.1


def n_local_trials(n_trials: int) -> int:
    """Local trials of a warm study: a sixth of the budget, at most 3.

    Enough to refine the best opening trial; more of them took trials from the model-based
    sampler and made the end of the search worse (``benchmarks/tuning_quality.py``).
    """
    return max(0, min(3, n_trials // 6))


def _perturb(dist: BaseDistribution, value: Any, rng: np.random.Generator, step: float) -> Any:
    """``value`` moved by a Gaussian step (std ``step`` of the range) inside ``dist``."""
    from optuna.distributions import FloatDistribution, IntDistribution

    if not isinstance(dist, FloatDistribution | IntDistribution):
        return value  # categorical: kept
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        low, high, x = math.log(low), math.log(high), math.log(float(value))
    else:
        x = float(value)
    width = high - low
    if width <= 0:
        return value
    u = (x - low) / width + rng.normal(0.0, step)
    u = abs(u) % 2.0  # reflect at both ends, so the box edges are not over-sampled
    u = 2.0 - u if u > 1.0 else u
    moved = low + u * width
    if dist.log:
        moved = math.exp(moved)
    if dist.step is not None:
        moved = float(dist.low) + round((moved - float(dist.low)) / dist.step) * dist.step
    moved = min(max(moved, float(dist.low)), float(dist.high))
    if isinstance(dist, IntDistribution):
        return round(moved)
    return float(moved)


class LocalSearchSampler(BaseSampler):
    """A sampler that perturbs the best trial so far for ``n_local`` trials, then delegates.

    Args:
        base: The sampler of every other trial (and of hyperparameters the best trial lacks,
            such as another family's in a conditional space).
        n_local: How many of the first non-enqueued trials are local (>= 0).
        seed: Seeds the steps, together with the trial number.
        step: Standard deviation of a step, as a share of each normalized range (> 0).

    Raises:
        ValueError: ``n_local`` < 0 or ``step`` <= 0.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> sampler = LocalSearchSampler(optuna.samplers.RandomSampler(seed=0), n_local=2, seed=0)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.enqueue_trial({"x": 3.0})
        >>> study.optimize(lambda t: (t.suggest_float("x", -10, 10) - 2.0) ** 2, n_trials=3)
        >>> [t.user_attrs.get(LOCAL_ATTR) for t in study.trials]
        [None, 0, 0]
        >>> all(abs(t.params["x"] - 3.0) < 6 for t in study.trials)
        True
    """

    def __init__(
        self, base: BaseSampler, *, n_local: int, seed: int, step: float = LOCAL_STEP
    ) -> None:
        if n_local < 0:
            raise ValueError(f"n_local must be >= 0, got {n_local}")
        if not step > 0:
            raise ValueError(f"step must be > 0, got {step}")
        self._base = base
        self._n_local = n_local
        self._seed = seed
        self._step = step
        self._lock = threading.Lock()
        # trial id -> (the best trial it perturbs, its step generator); local trials only.
        self._local: dict[int, tuple[FrozenTrial, np.random.Generator]] = {}

    def __str__(self) -> str:
        return f"LocalSearchSampler({self._base}, n_local={self._n_local})"

    def _incumbent(self, study: Study, trial: FrozenTrial) -> FrozenTrial | None:
        """The best complete trial, when ``trial`` is one of the local ones; else None."""
        from optuna.study import StudyDirection
        from optuna.trial import TrialState

        if self._n_local == 0 or "fixed_params" in trial.system_attrs:
            return None
        trials = study.get_trials(deepcopy=False)
        # Enqueued trials get their numbers when they are queued, so they come first.
        n_enqueued = sum(
            "fixed_params" in t.system_attrs for t in trials if t.number < trial.number
        )
        if trial.number - n_enqueued >= self._n_local:
            return None
        complete = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]
        if not complete:
            return None  # parallel workers got here before any opening trial finished
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        return min(complete, key=lambda t: (sign * float(t.value or 0.0), t.number))

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        incumbent = self._incumbent(study, trial)
        if incumbent is not None:
            rng = np.random.default_rng([self._seed, trial.number])
            with self._lock:
                self._local[trial._trial_id] = (incumbent, rng)
            study._storage.set_trial_user_attr(trial._trial_id, LOCAL_ATTR, incumbent.number)
        self._base.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if trial._trial_id in self._local:
            return {}  # every hyperparameter goes through sample_independent
        return dict(self._base.infer_relative_search_space(study, trial))

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial._trial_id in self._local:
            return {}
        return dict(self._base.sample_relative(study, trial, search_space))

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        local = self._local.get(trial._trial_id)
        if local is not None:
            incumbent, rng = local
            dist = incumbent.distributions.get(param_name)
            if dist is not None and dist == param_distribution:
                return _perturb(dist, incumbent.params[param_name], rng, self._step)
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._local.pop(trial._trial_id, None)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
