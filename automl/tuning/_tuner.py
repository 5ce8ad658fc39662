"""Hyperparameter search with Optuna and k-fold cross-validation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from automl.errors import TuningError
from automl.tuning._estimators import XGBOOST_DEFAULTS, Task, build_model
from automl.tuning._metrics import GREATER_IS_BETTER, sklearn_scoring, to_metric_value
from automl.tuning._space import xgboost_space

log = logging.getLogger(__name__)

Strategy = Literal["bayesian", "random"]


@dataclass(frozen=True)
class TrialResult:
    """One finished trial.

    Attributes:
        number: Trial number in the study (0 is the library defaults).
        params: Hyperparameters tried.
        cv_mean: Mean validation score over folds, in the metric's units (NaN when failed).
        cv_std: Standard deviation over folds.
        train_mean: Mean training score over folds (the gap to ``cv_mean`` shows overfitting).
        fit_time_s: Wall time of the trial.
        state: ``COMPLETE`` or ``FAIL``.
        is_defaults: Whether this trial ran the library defaults.
        error: Failure message when ``state`` is ``FAIL``.
    """

    number: int
    params: dict[str, Any]
    cv_mean: float
    cv_std: float
    train_mean: float
    fit_time_s: float
    state: str
    is_defaults: bool
    error: str | None = None


@dataclass(frozen=True)
class TuningResult:
    """The outcome of a search, with the best model refit on all tuning rows.

    Attributes:
        model_family: Family of the best model (``xgboost``).
        metric: Primary metric.
        greater_is_better: Direction of ``metric``.
        best_params: Hyperparameters of the best trial.
        best_score: Its CV mean.
        best_score_std: Its CV standard deviation.
        default_score: CV mean of the library defaults (trial 0), NaN if it failed.
        n_trials: Trials run (complete and failed).
        trials: One row per trial: number, state, cv_mean, cv_std, train_mean, fit_time_s,
            is_defaults and one ``param_*`` column per hyperparameter.
        model: The best configuration refit on every tuning row.
        study_name: Optuna study name.
    """

    model_family: str
    metric: str
    greater_is_better: bool
    best_params: dict[str, Any]
    best_score: float
    best_score_std: float
    default_score: float
    n_trials: int
    trials: pd.DataFrame = field(repr=False)
    model: Any = field(repr=False)
    study_name: str = ""


def _sampler(strategy: Strategy, seed: int, n_trials: int) -> Any:
    import optuna

    if strategy == "bayesian":
        # Pin TPE's arguments: their defaults changed between Optuna 4 and 5.
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=False,
            n_startup_trials=max(3, min(10, n_trials // 3)),
        )
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise TuningError(f"unknown tuning strategy {strategy!r}; allowed: bayesian, random")


def _suggest(trial: Any, name: str, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def tune(
    frame: pd.DataFrame,
    *,
    target: str,
    task: Task,
    numeric: Sequence[str],
    categorical: Sequence[str],
    metric: str,
    n_trials: int,
    timeout_s: float | None = None,
    cv: int = 3,
    seed: int = 42,
    strategy: Strategy = "bayesian",
    storage: str | None = None,
    study_name: str = "automl",
    on_trial: Callable[[TrialResult], None] | None = None,
) -> TuningResult:
    """Search XGBoost hyperparameters by cross-validation and refit the best on all rows.

    Trial 0 is always the library defaults, so the tuned model is never worse than the
    untuned one on CV. Folds are stratified for classification. Failed configurations are
    recorded as failed trials; the search goes on.

    Args:
        frame: Tuning rows (features and target).
        target: Label column.
        task: ``classification`` or ``regression``.
        numeric: Numeric feature columns.
        categorical: Categorical feature columns.
        metric: Primary metric (see :data:`automl.tuning.GREATER_IS_BETTER`).
        n_trials: Trial budget (>= 1), trial 0 included.
        timeout_s: Wall-time budget; the running trial finishes.
        cv: Number of folds (>= 2).
        seed: Seeds the sampler, the folds and the model.
        strategy: ``bayesian`` (multivariate TPE) or ``random``.
        storage: Optuna storage URL (None keeps the study in memory).
        study_name: Name of the study in ``storage``.
        on_trial: Called after every trial (e.g. to log it to MLflow).

    Returns:
        The best configuration, its scores, the trials table and the refit model.

    Raises:
        TuningError: Bad arguments, too few rows for ``cv`` folds, or no trial completed.
    """
    import optuna
    from sklearn.model_selection import KFold, StratifiedKFold, cross_validate

    if metric not in GREATER_IS_BETTER:
        raise TuningError(f"unknown metric {metric!r}; allowed: {', '.join(GREATER_IS_BETTER)}")
    if target not in frame.columns:
        raise TuningError(f"target column {target!r} not in data; columns: {list(frame.columns)}")
    if n_trials < 1:
        raise TuningError(f"n_trials must be >= 1, got {n_trials}")
    X = frame[[*numeric, *categorical]]  # noqa: N806
    y = frame[target]
    n_classes = int(y.nunique()) if task == "classification" else None
    encode_labels = task == "classification" and not (
        pd.api.types.is_integer_dtype(y) and set(y.unique()) == set(range(n_classes or 0))
    )
    if task == "classification":
        if n_classes is not None and n_classes < 2:
            raise TuningError(f"target {target!r} has a single class; need at least two")
        min_class = int(y.value_counts().min())
        if min_class < cv:
            raise TuningError(
                f"the rarest class of {target!r} has {min_class} rows, fewer than cv={cv} folds"
            )
        splitter: Any = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    else:
        if len(frame) < cv * 2:
            raise TuningError(f"{len(frame)} rows are too few for cv={cv} folds")
        splitter = KFold(n_splits=cv, shuffle=True, random_state=seed)
    scoring = sklearn_scoring(metric, n_classes=n_classes)
    n_onehot = sum(int(frame[c].nunique()) for c in categorical)
    space = xgboost_space(n_rows=len(frame), n_features=len(numeric) + n_onehot)
    greater = GREATER_IS_BETTER[metric]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize" if greater else "minimize",
        sampler=_sampler(strategy, seed, n_trials),
        load_if_exists=True,
    )
    defaults = {k: v for k, v in XGBOOST_DEFAULTS.items() if k in space}
    study.enqueue_trial(defaults, user_attrs={"is_defaults": True}, skip_if_exists=True)
    results: list[TrialResult] = []

    def objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, dist) for name, dist in space.items()}
        model = build_model(
            task=task,
            numeric=numeric,
            categorical=categorical,
            params=params,
            seed=seed,
            encode_labels=encode_labels,
        )
        started = time.perf_counter()
        scores = cross_validate(
            model, X, y, cv=splitter, scoring=scoring, return_train_score=True, error_score="raise"
        )
        test = np.array([to_metric_value(s, metric) for s in scores["test_score"]])
        train = np.array([to_metric_value(s, metric) for s in scores["train_score"]])
        trial.set_user_attr("cv_std", float(test.std()))
        trial.set_user_attr("train_mean", float(train.mean()))
        trial.set_user_attr("fit_time_s", time.perf_counter() - started)
        return float(test.mean())

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        failed = trial.state != optuna.trial.TrialState.COMPLETE
        result = TrialResult(
            number=trial.number,
            params=dict(trial.params),
            cv_mean=float("nan") if failed else float(trial.value),  # type: ignore[arg-type]
            cv_std=float(trial.user_attrs.get("cv_std", float("nan"))),
            train_mean=float(trial.user_attrs.get("train_mean", float("nan"))),
            fit_time_s=float(trial.user_attrs.get("fit_time_s", float("nan"))),
            state=trial.state.name,
            is_defaults=bool(trial.user_attrs.get("is_defaults", False)),
            error=trial.system_attrs.get("fail_reason") if failed else None,
        )
        results.append(result)
        if on_trial is not None:
            on_trial(result)

    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout_s,
        callbacks=[callback],
        catch=(Exception,),
        gc_after_trial=False,
    )
    complete = [r for r in results if r.state == "COMPLETE"]
    if not complete:
        errors = {r.error for r in results if r.error}
        raise TuningError(f"no trial completed in study {study_name!r}; errors: {sorted(errors)}")
    best = (max if greater else min)(complete, key=lambda r: r.cv_mean)
    model = build_model(
        task=task,
        numeric=numeric,
        categorical=categorical,
        params=best.params,
        seed=seed,
        encode_labels=encode_labels,
    ).fit(X, y)
    default = next((r for r in results if r.is_defaults and r.state == "COMPLETE"), None)
    table = pd.DataFrame(
        [
            {
                "number": r.number,
                "state": r.state,
                "cv_mean": r.cv_mean,
                "cv_std": r.cv_std,
                "train_mean": r.train_mean,
                "fit_time_s": r.fit_time_s,
                "is_defaults": r.is_defaults,
                **{f"param_{k}": v for k, v in r.params.items()},
            }
            for r in results
        ]
    )
    return TuningResult(
        model_family="xgboost",
        metric=metric,
        greater_is_better=greater,
        best_params=best.params,
        best_score=best.cv_mean,
        best_score_std=best.cv_std,
        default_score=default.cv_mean if default else float("nan"),
        n_trials=len(results),
        trials=table,
        model=model,
        study_name=study_name,
    )
