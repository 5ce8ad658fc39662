"""Search strategies (Optuna samplers) and the pruner, every argument pinned.

Optuna 5 changed defaults that matter here (TPE's ``multivariate`` and ``constant_liar``), so
every sampler argument that changes the search is set explicitly rather than inherited.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from automl.errors import TuningError
from automl.vocab import PRUNERS, STRATEGIES, check_choice, unknown_choice


def check_strategy(strategy: str) -> None:
    """Fail early, naming what is missing, when a strategy cannot run here.

    Raises:
        TuningError: Unknown strategy, or ``gp`` without PyTorch.
    """
    check_choice(strategy, STRATEGIES, name="tuning strategy", error=TuningError)
    if strategy == "gp" and importlib.util.find_spec("torch") is None:
        raise TuningError(
            "strategy 'gp' (Gaussian-process Bayesian optimization) needs PyTorch, which is "
            "not installed; install the extra with `pip install 'automl[gp]'` (CPU torch) "
            "or choose strategy 'bayesian'"
        )


def n_startup_trials(n_trials: int) -> int:
    """Random trials before a model-based sampler takes over: a third of the budget, 3 to 10."""
    return max(3, min(10, n_trials // 3))


def make_sampler(
    strategy: str,
    *,
    seed: int,
    n_trials: int,
    n_jobs: int = 1,
    is_conditional: bool = False,
    n_informed: int = 0,
) -> Any:
    """The seeded Optuna sampler of a strategy.

    Args:
        strategy: One of :data:`STRATEGIES`.
        seed: Sampler seed (a search with ``n_jobs=1`` is then reproducible).
        n_trials: Trial budget; sizes the random start and the genetic population.
        n_jobs: Parallel trials; TPE then penalizes running trials (constant liar) so parallel
            workers do not sample the same point.
        is_conditional: Several model families in one study: TPE decomposes the space into
            groups of parameters that appear together instead of falling back to independent
            sampling.
        n_informed: Warm-start trials opening the study (with the defaults after them). They
            are informed guesses, not random ones, so the random start of model-based
            samplers ends right after them instead of adding more random trials, and the
            first :func:`~automl.tuning._local_search.n_local_trials` sampled trials of
            ``bayesian``, ``gp`` and ``cmaes`` perturb the best trial so far (see
            :class:`~automl.tuning._local_search.LocalSearchSampler`) before the model-based
            sampler takes over.

    Returns:
        An ``optuna.samplers.BaseSampler``. ``grid`` returns a random sampler: the grid's
        configurations are enqueued up front, so nothing is left to sample.

    Raises:
        TuningError: Unknown strategy, or ``gp`` without PyTorch.

    Example:
        >>> make_sampler("bayesian", seed=1, n_trials=30).__class__.__name__
        'TPESampler'
    """
    check_strategy(strategy)
    startup = n_startup_trials(n_trials)
    if n_informed > 0:
        startup = min(startup, n_informed + 1)
    sampler = _model_sampler(
        strategy,
        seed=seed,
        startup=startup,
        n_jobs=n_jobs,
        is_conditional=is_conditional,
        n_trials=n_trials,
    )
    if n_informed > 0 and strategy in ("bayesian", "gp", "cmaes"):
        from automl.tuning._local_search import LocalSearchSampler, n_local_trials

        return LocalSearchSampler(sampler, n_local=n_local_trials(n_trials), seed=seed)
    return sampler


def _model_sampler(
    strategy: str, *, seed: int, startup: int, n_jobs: int, is_conditional: bool, n_trials: int
) -> Any:
    import optuna

    if strategy == "bayesian":
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=is_conditional,
            constant_liar=n_jobs > 1,
            n_startup_trials=startup,
            n_ei_candidates=24,
        )
    if strategy == "gp":
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=startup,
            deterministic_objective=False,  # CV scores are noisy
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )
    if strategy == "genetic":
        # NSGA-II's default population of 50 would make a 30-trial search one random
        # generation; a fifth of the budget gives it several generations to evolve.
        return optuna.samplers.NSGAIISampler(
            seed=seed,
            population_size=max(4, min(50, n_trials // 5)),
            crossover_prob=0.9,
            swapping_prob=0.5,
        )
    if strategy == "cmaes":
        # Categorical parameters (and other families' parameters in a conditional space) are
        # outside CMA-ES's continuous model; they are sampled at random.
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            n_startup_trials=startup,
            with_margin=True,  # integer parameters do not collapse onto one value
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(name: str, *, n_trials: int) -> Any:
    """The pruner: ``median`` stops a trial whose learning curve is below the median of the
    completed trials of its family at the same round; ``none`` never prunes.

    Raises:
        TuningError: Unknown pruner.
    """
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials(n_trials), n_warmup_steps=0, n_min_trials=2
        )
    raise TuningError(unknown_choice(name, PRUNERS, name="pruner"))
