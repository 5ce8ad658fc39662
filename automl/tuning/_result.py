"""What a search returns: one :class:`TrialResult` per trial and the :class:`TuningResult`.

Plain dataclasses in a module of their own, so a process that only reads a result (the
service, which gets it from its re-tune process) does not import the search's libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class TrialResult:
    """One finished trial.

    Attributes:
        number: Trial number in the study.
        params: Hyperparameters of ``model_family`` (plain names; fixed ones included).
        cv_mean: Mean validation score over folds, in the metric's units (NaN unless complete).
        cv_std: Standard deviation over folds.
        train_mean: Mean training score over folds.
        fit_time_s: Wall time of the trial.
        state: ``COMPLETE``, ``PRUNED`` or ``FAIL``.
        is_defaults: Whether this trial ran the family's library defaults.
        error: Failure message when ``state`` is ``FAIL`` (the reason when ``PRUNED``).
        model_family: Model family of the trial.
        metrics: Mean validation value of every secondary metric (accuracy, precision, recall,
            F1, ROC AUC, log loss; or RMSE, MAE, R2).
        fit_gap: Training minus validation score, signed so that positive means the model
            does better on rows it has seen.
        fit_status: ``overfit``, ``underfit`` or ``ok`` (the thresholds are
            ``OVERFIT_SKILL_GAP`` and ``UNDERFIT_TRAIN_SKILL`` in ``automl.tuning._tuner``);
            empty unless complete.
        peak_memory_mb: Peak rise of the process's resident memory during the trial.
        is_warm_start: Whether this trial re-evaluated a previous study's best configuration.
        fitted_rounds: Boosting rounds kept by early stopping (XGBoost), else None.
        started_at: When the trial started (Optuna's ``datetime_start``, local time as Optuna
            records it), None if unknown.
        finished_at: When it ended (``datetime_complete``), None if unknown.
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
    model_family: str = "xgboost"
    metrics: dict[str, float] = field(default_factory=dict)
    fit_gap: float = float("nan")
    fit_status: str = ""
    peak_memory_mb: float = float("nan")
    is_warm_start: bool = False
    fitted_rounds: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class TuningResult:
    """The outcome of a search, with the best model refit on all tuning rows.

    Attributes:
        model_family: Family of the best model.
        metric: Primary metric.
        greater_is_better: Direction of ``metric``.
        best_params: Hyperparameters of the best trial (as searched).
        best_score: Its CV mean.
        best_score_std: Its CV standard deviation.
        default_score: CV mean of the best library-defaults trial (one per family), NaN if none
            completed.
        n_trials: Trials run (complete, pruned and failed).
        trials: One row per trial (see :func:`trials_table`).
        model: The best configuration refit on every tuning row; takes the raw feature frame.
        study_name: Optuna study name.
        strategy: Search strategy.
        refit_params: What the refit used (XGBoost: ``n_estimators`` is the early-stopped
            number of rounds averaged over folds).
        default_scores: CV mean of each family's library defaults.
        family_defaults: Each family's library-default configuration.
        param_importances: fANOVA importance of each hyperparameter of the best family.
        baseline_score: CV score of a trivial model (class priors or the mean).
        stop_reason: ``n_trials``, ``timeout``, ``patience`` or ``grid_exhausted``.
        warm_start_from: The previous study whose best configurations opened the search.
        n_warm_start: How many of them were re-evaluated.
        n_pruned: Trials stopped by the pruner.
        elapsed_s: Wall time of the search and refit.
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
    strategy: str = "bayesian"
    refit_params: dict[str, Any] = field(default_factory=dict)
    default_scores: dict[str, float] = field(default_factory=dict)
    family_defaults: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    param_importances: dict[str, float] = field(default_factory=dict)
    baseline_score: float = float("nan")
    stop_reason: str = "n_trials"
    warm_start_from: str | None = None
    n_warm_start: int = 0
    n_pruned: int = 0
    elapsed_s: float = 0.0
