"""Evaluating one configuration: cross-validation, learning curves for the pruner, metrics.

The objective runs its own fold loop rather than ``cross_validate`` because it needs what that
helper does not give: an early-stopping split carved from each training fold (never the
validation fold, which would leak), the learning curve of the first fold for the pruner, every
secondary metric from one prediction per fold, and the peak memory of the trial. What does not
depend on the configuration (each fold's early-stopping split, preprocessed rows and XGBoost's
quantile matrices) is made once per search, so a trial costs little more than its fits.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from automl.errors import TuningError
from automl.tuning._estimators import make_estimator, make_preprocessor
from automl.tuning._metrics import classification_scores, regression_scores
from automl.tuning._space import ITERATIVE_FAMILIES
from automl.vocab import GREATER_IS_BETTER, MODEL_FAMILIES, Task

#: Learning curves are reported to the pruner every this many rounds (epochs for the MLP), at
#: the same steps in every trial so the pruner compares like with like.
CURVE_REPORT_EVERY = {"xgboost": 10, "hist_gradient_boosting": 10, "mlp": 5}
#: Each family reports to its own range of pruner steps, so trials of one family are only ever
#: compared with trials of the same family (round 10 of XGBoost is not epoch 10 of an MLP).
STEP_OFFSET_PER_FAMILY = 1_000_000
_EARLY_STOP_SHARE = 0.1
#: Preprocessed folds are kept across trials while all of a family's folds fit in this much
#: memory (beyond it every trial preprocesses its folds again).
FOLD_CACHE_BYTES = 256 * 2**20

#: Reports a learning curve (steps and values, greater is better) and says whether to prune.
CurveReporter = Callable[[Sequence[int], Sequence[float]], bool]
#: Trial user attribute saying why a trial failed: Optuna only logs the exception (it stopped
#: recording it on the trial), so the objective records it where every reader of the study,
#: in any process, finds it.
ERROR_ATTR = "error"
#: Longest failure message kept per trial (a trial table cell, an MLflow tag).
ERROR_MAX_CHARS = 500


class TrialPrunedError(Exception):
    """Raised inside the fold loop when the pruner stops a trial (turned into Optuna's)."""


@dataclass(frozen=True)
class CVSetup:
    """Everything fixed across the trials of one search.

    Attributes:
        X: Feature frame.
        y: Target; classification labels encoded as 0..K-1.
        task: ``classification`` or ``regression``.
        n_classes: Number of classes (classification) or None.
        metric: Primary metric.
        folds: ``(train_index, validation_index)`` per fold.
        numeric: Numeric feature columns.
        categorical: Categorical feature columns.
        seed: Random state for models and early-stopping splits.
        is_time_ordered: Rows are in time order (early-stopping rows are the newest).
    """

    X: pd.DataFrame
    y: np.ndarray[Any, Any]
    task: Task
    n_classes: int | None
    metric: str
    folds: tuple[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]], ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    seed: int
    is_time_ordered: bool = False
    #: What every trial would compute alike (early-stopping splits, preprocessed folds),
    #: computed by the first trial that needs it.
    cache: dict[tuple[Any, ...], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )


@dataclass(frozen=True)
class Evaluation:
    """Cross-validated scores of one configuration.

    Attributes:
        cv_mean: Mean validation score of the primary metric.
        cv_std: Its standard deviation over folds.
        train_mean: Mean score on the training folds.
        metrics: Mean validation value of every secondary metric.
        fit_time_s: Wall time of the whole evaluation.
        peak_memory_mb: Peak resident memory of the process above its level at the start.
        fitted_rounds: Mean rounds kept by early stopping (XGBoost), else None.
    """

    cv_mean: float
    cv_std: float
    train_mean: float
    metrics: dict[str, float]
    fit_time_s: float
    peak_memory_mb: float
    fitted_rounds: int | None = None
    fold_scores: tuple[float, ...] = field(default=())


def describe_error(exc: BaseException, *, max_chars: int = ERROR_MAX_CHARS) -> str:
    """Why a trial failed, in one line: the exception's type and message, whitespace folded,
    at most ``max_chars`` characters.

    Example:
        >>> describe_error(ValueError("Input contains NaN.\\n  Check the column."))
        'ValueError: Input contains NaN. Check the column.'
        >>> len(describe_error(RuntimeError("x" * 1000)))
        500
    """
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= max_chars else line[: max(max_chars - 3, 0)] + "..."


def _rss_bytes() -> int | None:
    try:
        fields = Path("/proc/self/statm").read_text(encoding="ascii").split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Samples the process's resident memory in a thread; ``peak_mb`` is the rise above start.

    Linux only (``/proc``); elsewhere ``peak_mb`` is NaN. With parallel trials (``n_jobs`` > 1)
    the figure includes the memory of trials running at the same time.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.peak_mb = float("nan")
        self._stop = threading.Event()
        self._start: int | None = None
        self._peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = _rss_bytes()
            if rss is not None:
                self._peak = max(self._peak, rss)

    def __enter__(self) -> PeakMemory:
        self._start = _rss_bytes()
        if self._start is not None:
            self._peak = self._start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._start is None:
            return
        self._stop.set()
        self._thread.join()
        end = _rss_bytes() or self._start
        self.peak_mb = max(self._peak, end) / 2**20 - self._start / 2**20


def xgboost_eval_metric(task: Task, metric: str, n_classes: int | None) -> tuple[str, bool]:
    """XGBoost's early-stopping metric matching the primary metric, and whether larger is better.

    Example:
        >>> xgboost_eval_metric("classification", "roc_auc", 2)
        ('auc', True)
        >>> xgboost_eval_metric("regression", "r2", None)
        ('rmse', False)
    """
    if task == "regression":
        return ("mae", False) if metric == "mae" else ("rmse", False)
    if metric == "roc_auc":
        return "auc", True
    return ("mlogloss" if (n_classes or 2) > 2 else "logloss"), False


def _early_stop_split(
    y: np.ndarray[Any, Any], *, task: Task, seed: int, is_time_ordered: bool
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    n_stop = max(1, round(len(y) * _EARLY_STOP_SHARE))
    if is_time_ordered:
        return index[:-n_stop], index[-n_stop:]
    stratify = None
    if task == "classification" and np.bincount(y.astype(int)).min() >= 2:
        stratify = y
    fit, stop = train_test_split(index, test_size=n_stop, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(stop)


def _predict(model: Any, X: Any, setup: CVSetup) -> np.ndarray[Any, Any]:  # noqa: N803
    if setup.task == "regression":
        return np.asarray(model.predict(X), dtype=float)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    n_classes = setup.n_classes or proba.shape[1]
    if proba.shape[1] != n_classes:  # a class absent from this training fold
        full = np.zeros((proba.shape[0], n_classes))
        full[:, np.asarray(model.classes_, dtype=int)] = proba
        proba = full
    return proba


def _scores(
    setup: CVSetup,
    y: np.ndarray[Any, Any],
    pred: np.ndarray[Any, Any],
    *,
    only: str | None = None,
) -> dict[str, float]:
    names = None if only is None else (only,)
    if setup.task == "regression":
        return regression_scores(y, pred, names=names)
    return classification_scores(y, pred, n_classes=setup.n_classes or pred.shape[1], names=names)


def _curve(family: str, estimator: Any, eval_metric: tuple[str, bool]) -> list[float]:
    """The first fold's validation curve per round/epoch, oriented so larger is better."""
    if family == "xgboost":
        history = estimator.evals_result().get("validation_0", {}).get(eval_metric[0], [])
        sign = 1.0 if eval_metric[1] else -1.0
        return [sign * float(v) for v in history]
    if family == "hist_gradient_boosting":
        scores = getattr(estimator, "validation_score_", None)
        return [] if scores is None else [float(v) for v in np.asarray(scores)[1:]]
    if family == "mlp":
        scores = getattr(estimator, "validation_scores_", None)
        return [] if scores is None else [float(v) for v in scores]
    return []


def _curve_value(family: str, value: float, eval_metric: tuple[str, bool]) -> str:
    """A point of :func:`_curve` in the library's own units, to say what pruned a trial."""
    if family == "xgboost":
        name, greater = eval_metric
        return f"validation {name} {value if greater else -value:.4f}"
    return f"validation score {value:.4f}"


def baseline_score(setup: CVSetup) -> float:
    """Mean CV score of a trivial model (class priors, or the mean target).

    Used to tell under- from overfitting: a model whose *training* score is near this baseline
    learned little.
    """
    values = []
    for train, val in setup.folds:
        if setup.task == "classification":
            n_classes = setup.n_classes or 2
            prior = np.bincount(setup.y[train].astype(int), minlength=n_classes) / len(train)
            pred = np.tile(prior, (len(val), 1))
        else:
            pred = np.full(len(val), float(np.mean(setup.y[train])))
        values.append(_scores(setup, setup.y[val], pred)[setup.metric])
    return float(np.mean(values))


def _early_stop_rows(
    setup: CVSetup, fold: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The fold's early-stopping split (positions in its training fold), made once per search."""
    key = ("early_stop", fold)
    rows = setup.cache.get(key)
    if rows is None:
        rows = _early_stop_split(
            setup.y[setup.folds[fold][0]],
            task=setup.task,
            seed=setup.seed,
            is_time_ordered=setup.is_time_ordered,
        )
        setup.cache[key] = rows
    return rows


@dataclass(frozen=True)
class _FoldData:
    """One fold's rows after preprocessing, stacked as [fit, stop, validation].

    ``X[:n_fit]`` trains the model, ``X[n_fit:n_train]`` (empty unless the family stops early
    on a split of the training fold) drives early stopping, ``X[n_train:]`` validates; one
    prediction over ``X`` scores both the training and the validation rows.
    """

    X: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any]
    n_fit: int
    n_train: int


def _fold_data(setup: CVSetup, family: str, fold: int, *, stops_early: bool) -> _FoldData:
    """The fold's preprocessed rows, cached across trials (preprocessing has no
    hyperparameters, so every trial of a family would compute the same matrices)."""
    key = ("fold_data", family, fold, stops_early)
    found = setup.cache.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    train, val = setup.folds[fold]
    pre = make_preprocessor(family, numeric=setup.numeric, categorical=setup.categorical)
    X_tr, y_tr = setup.X.iloc[train], setup.y[train]  # noqa: N806
    if stops_early:
        fit, stop = _early_stop_rows(setup, fold)
        order = np.concatenate([fit, stop])
        Xt_fit = pre.fit_transform(X_tr.iloc[fit])  # noqa: N806
        parts = [Xt_fit, pre.transform(X_tr.iloc[stop]), pre.transform(setup.X.iloc[val])]
        n_fit = len(fit)
    else:
        order = np.arange(len(train))
        parts = [pre.fit_transform(X_tr, y_tr), pre.transform(setup.X.iloc[val])]
        n_fit = len(train)
    data = _FoldData(
        X=np.ascontiguousarray(np.vstack([np.asarray(p, dtype=float) for p in parts])),
        y=np.concatenate([y_tr[order], setup.y[val]]),
        n_fit=n_fit,
        n_train=len(train),
    )
    if data.X.nbytes * len(setup.folds) <= FOLD_CACHE_BYTES:
        setup.cache[key] = data
    return data


def _fits_natively(est: Any) -> bool:
    """Whether an XGBoost estimator's fit can be replayed on cached quantile matrices: the
    histogram method on trees with built-in objective and metric, as the search makes it."""
    return (
        est.tree_method == "hist"
        and est.booster in (None, "gbtree")
        and not callable(est.objective)
        and not callable(est.eval_metric)
        and not est.callbacks
    )


def _xgboost_matrices(setup: CVSetup, fold: int, data: _FoldData, est: Any) -> tuple[Any, Any]:
    """The fold's fit and early-stopping rows as XGBoost quantile matrices, built as XGBoost's
    scikit-learn wrapper builds them on every fit, but once per search and worker thread (the
    quantile sketch costs a quarter of a 100-round fit)."""
    import xgboost as xgb

    key = ("xgboost_matrices", fold, threading.get_ident(), est.max_bin, est.missing)
    found = setup.cache.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    common = {
        "missing": est.missing,
        "enable_categorical": est.enable_categorical,
        "feature_types": est.feature_types,
        "nthread": est.n_jobs,
        "max_bin": est.max_bin,
    }
    dfit = xgb.QuantileDMatrix(data.X[: data.n_fit], data.y[: data.n_fit], **common)
    stop = slice(data.n_fit, data.n_train)
    dstop = xgb.QuantileDMatrix(data.X[stop], data.y[stop], ref=dfit, **common)
    if ("fold_data", "xgboost", fold, True) in setup.cache:  # within the memory budget
        setup.cache[key] = (dfit, dstop)
    return dfit, dstop


class _EarlyStoppedBooster:
    """A booster trained by :func:`_fit_xgboost`, predicting as ``XGBClassifier`` /
    ``XGBRegressor`` do after early stopping (trees up to the best round)."""

    def __init__(self, booster: Any, history: dict[str, Any], classes: Any) -> None:
        self.booster = booster
        self.best_iteration = int(booster.best_iteration)
        self.classes_ = classes
        self._history = history

    def evals_result(self) -> dict[str, Any]:
        return self._history

    def predict(self, X: Any) -> Any:  # noqa: N803
        return self.booster.inplace_predict(X, iteration_range=(0, self.best_iteration + 1))

    def predict_proba(self, X: Any) -> Any:  # noqa: N803
        proba = self.predict(X)
        return np.vstack((1.0 - proba, proba)).T if proba.ndim == 1 else proba


def _fit_xgboost(setup: CVSetup, fold: int, data: _FoldData, est: Any) -> Any:
    """Fit a tuned XGBoost estimator on the fold's fit rows, stopping early on its stop rows.

    The same training as ``est.fit(X_fit, y_fit, eval_set=[(X_stop, y_stop)])`` (the same
    booster parameters, quantile matrices, rounds and trees), on matrices built once per
    search.
    """
    import xgboost as xgb

    stop = slice(data.n_fit, data.n_train)
    if not _fits_natively(est):
        est.fit(
            data.X[: data.n_fit],
            data.y[: data.n_fit],
            eval_set=[(data.X[stop], data.y[stop])],
            verbose=False,
        )
        return est
    dfit, dstop = _xgboost_matrices(setup, fold, data, est)
    params = est.get_xgb_params()
    classes = None
    if setup.task == "classification":
        n_classes = setup.n_classes or int(data.y.max()) + 1
        classes = np.arange(n_classes)
        if n_classes > 2:  # as XGBClassifier.fit switches the objective
            params["objective"] = "multi:softprob"
            params["num_class"] = n_classes
    history: dict[str, Any] = {}
    booster = xgb.train(
        params,
        dfit,
        num_boost_round=est.get_num_boosting_rounds(),
        evals=[(dstop, "validation_0")],
        early_stopping_rounds=est.early_stopping_rounds,
        evals_result=history,
        verbose_eval=False,
    )
    return _EarlyStoppedBooster(booster, history, classes)


def evaluate(
    setup: CVSetup,
    family: str,
    params: dict[str, Any],
    *,
    is_tuned: bool = True,
    report_curve: CurveReporter | None = None,
) -> Evaluation:
    """Cross-validate one configuration.

    Every figure comes from what the fit produces anyway: the early-stopping curve (XGBoost
    scores only its early-stopping rows each round), and one prediction per fold over the
    training and validation rows together, from which the primary metric on both and every
    secondary metric on the validation rows are computed. The folds' preprocessed rows and
    early-stopping splits are made once per search.

    Args:
        setup: Data, folds and metric.
        family: Model family.
        params: The family's hyperparameters.
        is_tuned: Tuned trials of iterative families stop early (XGBoost on a split carved
            from each training fold, the others on their own internal split); the
            library-defaults trial runs as the library would.
        report_curve: Receives the first fold's learning curve (or, for families without
            rounds, each fold's score) and returns True to prune; the trial then stops with
            :class:`TrialPrunedError`.

    Returns:
        Scores and costs.

    Raises:
        TrialPrunedError: The pruner stopped the trial.
    """
    from sklearn.base import clone

    if family not in MODEL_FAMILIES:
        raise TuningError(f"unknown model family {family!r}")
    greater = GREATER_IS_BETTER[setup.metric]
    eval_metric = xgboost_eval_metric(setup.task, setup.metric, setup.n_classes)
    est_template = make_estimator(
        family,
        task=setup.task,
        params=params,
        seed=setup.seed,
        is_tuned=is_tuned,
        eval_metric=eval_metric[0],
    )
    stops_early = family == "xgboost" and is_tuned
    val_scores: list[dict[str, float]] = []
    train_primary: list[float] = []
    rounds: list[int] = []
    started = time.perf_counter()
    with PeakMemory() as memory:
        for fold in range(len(setup.folds)):
            data = _fold_data(setup, family, fold, stops_early=stops_early)
            est = clone(est_template)
            if stops_early:
                # The early-stopping rows are the only eval set: their curve stops the fit and
                # feeds the pruner.
                est = _fit_xgboost(setup, fold, data, est)
                rounds.append(int(est.best_iteration) + 1)
            else:
                est.fit(data.X[: data.n_fit], data.y[: data.n_fit])
            pred = _predict(est, data.X, setup)
            y_train, y_val = data.y[: data.n_train], data.y[data.n_train :]
            val_scores.append(_scores(setup, y_val, pred[data.n_train :]))
            train_primary.append(
                _scores(setup, y_train, pred[: data.n_train], only=setup.metric)[setup.metric]
            )
            if report_curve is None or not is_tuned:
                continue
            if family in ITERATIVE_FAMILIES:
                if fold == 0:
                    curve = _curve(family, est, eval_metric)
                    every = CURVE_REPORT_EVERY[family]
                    steps = list(range(every, len(curve) + 1, every))
                    if steps and report_curve(steps, [curve[s - 1] for s in steps]):
                        raise TrialPrunedError(
                            f"pruned after {steps[-1]} rounds of fold 1: "
                            f"{_curve_value(family, curve[steps[-1] - 1], eval_metric)}"
                        )
            elif fold < len(setup.folds) - 1:
                score = val_scores[-1][setup.metric]
                if report_curve([fold + 1], [score if greater else -score]):
                    raise TrialPrunedError(
                        f"pruned after fold {fold + 1}: {setup.metric} {score:.4f} on fold "
                        f"{fold + 1}"
                    )
    primary = np.array([s[setup.metric] for s in val_scores])
    metrics = {k: float(np.nanmean([s[k] for s in val_scores])) for k in val_scores[0]}
    return Evaluation(
        cv_mean=float(primary.mean()),
        cv_std=float(primary.std()),
        train_mean=float(np.mean(train_primary)),
        metrics=metrics,
        fit_time_s=time.perf_counter() - started,
        peak_memory_mb=memory.peak_mb,
        fitted_rounds=round(float(np.mean(rounds))) if rounds else None,
        fold_scores=tuple(float(v) for v in primary),
    )
