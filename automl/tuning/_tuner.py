"""The search: one Optuna study over one or several model families, cross-validated.

The order of the first trials is fixed: the previous study's best configurations (warm start),
then every family's library defaults, then (``grid``) every grid point; the sampler takes over
after that (in a warm study, first with a few local trials around the best trial so far: see
:mod:`automl.tuning._local_search`). The best configuration is refit on every tuning row.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from automl.errors import TuningError
from automl.tuning._estimators import build_model
from automl.tuning._metrics import skill
from automl.tuning._objective import (
    ERROR_ATTR,
    STEP_OFFSET_PER_FAMILY,
    CVSetup,
    TrialPrunedError,
    baseline_score,
    describe_error,
    evaluate,
)
from automl.tuning._result import TrialResult, TuningResult
from automl.tuning._search_config import SearchConfig
from automl.tuning._space import FamilySpace, family_space, grid_configs, grid_space
from automl.tuning._storage import open_storage, safe_url
from automl.tuning._strategies import make_pruner, make_sampler
from automl.tuning._warmstart import (
    FINISHED_ATTR,
    GROUP_ATTR,
    Configuration,
    best_configurations,
)
from automl.vocab import GREATER_IS_BETTER, MODEL_FAMILIES

log = logging.getLogger(__name__)

#: A trial overfits when its training skill exceeds its validation skill by this much (skill:
#: share of the way from a trivial model's score to a perfect one).
OVERFIT_SKILL_GAP = 0.2
#: A trial underfits when even its training skill stays below this.
UNDERFIT_TRAIN_SKILL = 0.2


def _suggest(trial: Any, name: str, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _check_rows(frame: pd.DataFrame, config: SearchConfig, *, n_trials: int) -> None:
    """What :class:`SearchConfig` cannot check alone: its columns against the rows, the budget."""
    if config.target not in frame.columns:
        raise TuningError(
            f"target column {config.target!r} not in data; columns: {list(frame.columns)}"
        )
    missing = [c for c in config.features if c not in frame.columns]
    if missing:
        raise TuningError(f"feature columns {missing} not in data; columns: {list(frame.columns)}")
    if n_trials < 1:
        raise TuningError(f"n_trials must be >= 1, got {n_trials}")


def _folds(
    y: np.ndarray[Any, Any], *, task: str, cv: int, seed: int, is_time_ordered: bool, target: str
) -> tuple[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]], ...]:
    from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

    n = len(y)
    if task == "classification":
        counts = np.bincount(y.astype(int))
        if len(counts) < 2:
            raise TuningError(f"target {target!r} has a single class; need at least two")
        if not is_time_ordered and counts.min() < cv:
            raise TuningError(
                f"the rarest class of {target!r} has {int(counts.min())} rows, fewer than "
                f"cv={cv} folds; lower cv or add rows"
            )
    if is_time_ordered:
        if n < (cv + 1) * 2:
            raise TuningError(f"{n} rows are too few for a time-ordered split into cv={cv} folds")
        splitter: Any = TimeSeriesSplit(n_splits=cv)
    elif task == "classification":
        splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    else:
        if n < cv * 2:
            raise TuningError(f"{n} rows are too few for cv={cv} folds")
        splitter = KFold(n_splits=cv, shuffle=True, random_state=seed)
    folds = tuple((np.asarray(tr), np.asarray(va)) for tr, va in splitter.split(np.zeros(n), y))
    if task == "classification" and is_time_ordered:
        for tr, _ in folds:
            if len(np.unique(y[tr])) < 2:
                raise TuningError(
                    f"the earliest time-ordered training fold of {target!r} holds one class; "
                    "lower cv or use a shuffled split (tuning.split: kfold)"
                )
    return folds


def _n_features(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> int:
    return len(numeric) + sum(int(frame[c].nunique(dropna=False)) for c in categorical)


def _param_name(family: str, name: str, is_conditional: bool) -> str:
    return f"{family}.{name}" if is_conditional else name


def _enqueue_params(
    family: str, config: Mapping[str, Any], space: FamilySpace, is_conditional: bool
) -> dict[str, Any]:
    """Optuna's parameter dict for a configuration, fit into the current space."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    params: dict[str, Any] = {"model": family} if is_conditional else {}
    for name, dist in space.distributions.items():
        value = config.get(name, space.defaults[name])
        if isinstance(dist, CategoricalDistribution):
            value = value if value in dist.choices else space.defaults[name]
        else:  # the table changed shape since: keep the value inside today's range
            value = min(max(value, dist.low), dist.high)  # type: ignore[attr-defined]
            value = round(value) if isinstance(dist, IntDistribution) else float(value)
        params[_param_name(family, name, is_conditional)] = value
    return params


def _importances(
    trials: list[Any], family: str, space: FamilySpace, *, is_conditional: bool, seed: int
) -> dict[str, float]:
    """fANOVA importances of the best family's hyperparameters over its complete trials."""
    import optuna

    rows = [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and t.user_attrs.get("model_family") == family
        and t.value is not None
        and math.isfinite(t.value)
    ]
    names = list(space.distributions)
    if len(rows) < 3 or not names:
        return {}
    copies = []
    for t in rows:
        params, dists = {}, {}
        for name in names:
            key = _param_name(family, name, is_conditional)
            if key in t.params:
                params[name], dists[name] = t.params[key], t.distributions[key]
        if len(params) != len(names):
            continue
        copies.append(
            optuna.trial.create_trial(params=params, distributions=dists, value=float(t.value))
        )
    if len(copies) < 3:
        return {}
    study = optuna.create_study()
    study.add_trials(copies)
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed)
        )
    except Exception as exc:  # too few distinct values, and the like
        log.info("hyperparameter importance not computed: %s", exc)
        return {}
    return {k: float(v) for k, v in found.items()}


def _no_trial_completed(results: Sequence[TrialResult], study_name: str) -> str:
    """The message of a search where no trial completed: the failures, most frequent first."""
    failed = [r for r in results if r.state == "FAIL"]
    n_pruned = sum(r.state == "PRUNED" for r in results)
    counts: dict[str, int] = {}
    for r in failed:
        counts[r.error or "failed"] = counts.get(r.error or "failed", 0) + 1
    shown = sorted(counts.items(), key=lambda item: -item[1])[:3]
    errors = "; ".join(f"{error} ({n} trials)" if n > 1 else error for error, n in shown)
    more = f"; and {len(counts) - 3} other errors" if len(counts) > 3 else ""
    return (
        f"no trial completed in study {study_name!r} ({len(failed)} failed, {n_pruned} "
        f"pruned); errors: {errors or 'none'}{more}. The log has each failed trial's traceback"
    )


def trials_table(results: Sequence[TrialResult]) -> pd.DataFrame:
    """One row per trial: number, model_family, state, cv_mean, cv_std, train_mean, fit_gap,
    fit_status, one ``val_<metric>`` column per secondary metric, fit_time_s, peak_memory_mb,
    fitted_rounds, is_defaults, is_warm_start, error and one ``param_<name>`` per hyperparameter.
    """
    rows = [
        {
            "number": r.number,
            "model_family": r.model_family,
            "state": r.state,
            "cv_mean": r.cv_mean,
            "cv_std": r.cv_std,
            "train_mean": r.train_mean,
            "fit_gap": r.fit_gap,
            "fit_status": r.fit_status,
            **{f"val_{k}": v for k, v in r.metrics.items()},
            "fit_time_s": r.fit_time_s,
            "peak_memory_mb": r.peak_memory_mb,
            "fitted_rounds": r.fitted_rounds,
            "is_defaults": r.is_defaults,
            "is_warm_start": r.is_warm_start,
            "error": r.error,
            **{f"param_{k}": v for k, v in r.params.items()},
        }
        for r in sorted(results, key=lambda r: r.number)
    ]
    return pd.DataFrame(rows)


def tune(
    frame: pd.DataFrame,
    config: SearchConfig,
    *,
    n_trials: int,
    timeout_s: float | None = None,
    n_jobs: int = 1,
    patience: int | None = None,
    storage: str | None = None,
    study_name: str = "automl",
    study_group: str | None = None,
    warm_start_from: str | None = None,
    warm_start_top_k: int = 3,
    on_trial: Callable[[TrialResult], None] | None = None,
) -> TuningResult:
    """Search model families and hyperparameters by cross-validation; refit the best on all rows.

    Each family's library defaults run as an early trial, so the tuned model is never worse
    than the untuned one on CV. Folds are stratified for classification, shuffled k-fold for
    regression, and forward-chaining (train on the past, validate on the next block) when
    ``config.is_time_ordered``. Failed configurations are recorded as failed trials; the search
    goes on.

    Args:
        frame: Tuning rows (features and target), in time order when
            ``config.is_time_ordered``.
        config: What is searched: columns, task, metric, folds, seed, strategy, families and
            their spaces (see :class:`SearchConfig`).
        n_trials: Trial budget (>= 1), warm-start and defaults trials included. Strategy
            ``grid`` runs every grid point whatever this says.
        timeout_s: Wall-time budget; the running trials finish.
        n_jobs: Trials run in parallel threads (>= 1; not reproducible when > 1).
        patience: Stop after this many trials in a row (>= 1) without a better score.
        storage: Optuna storage URL (None keeps the study in memory).
        study_name: Name of the study in ``storage``.
        study_group: Group (pipeline) recorded on the study, so a later search finds it with
            :func:`automl.tuning.latest_study`.
        warm_start_from: A previous study in ``storage`` whose best configurations are
            re-evaluated first, on this data (their old scores are not reused). With a
            model-based strategy the next few trials (a sixth of the budget, at most 3)
            perturb the best trial so far in a small box before the sampler models the study.
        warm_start_top_k: How many of them.
        on_trial: Called after every trial (e.g. to log it to MLflow).

    Returns:
        The best configuration, its scores, the trials table and the refit model.

    Raises:
        TuningError: Bad budget options, columns of ``config`` missing from ``frame``, too few
            rows for ``config.cv`` folds, a missing optional dependency, or no trial completed.

    Example:
        >>> from sklearn.datasets import load_diabetes
        >>> data = load_diabetes(as_frame=True).frame
        >>> config = SearchConfig(target="target", task="regression", metric="rmse",
        ...                       numeric=list(data.columns[:-1]), categorical=[],
        ...                       models=["linear"], seed=0)
        >>> result = tune(data, config, n_trials=3)
        >>> result.model_family, result.n_trials, result.best_score <= result.default_score
        ('linear', 3, True)
    """
    if n_jobs < 1:
        raise TuningError(f"n_jobs must be >= 1, got {n_jobs}")
    if patience is not None and patience < 1:
        raise TuningError(f"patience must be >= 1 trials (or None), got {patience}")
    started = time.perf_counter()
    search = prepare_search(frame, config, n_trials=n_trials)
    if warm_start_from is not None and storage is None:
        raise TuningError("warm_start_from needs the storage that holds the previous study")
    previous = search.previous_configurations(storage, warm_start_from, warm_start_top_k)
    study = search.create_study(
        storage, study_name, n_trials=n_trials, n_jobs=n_jobs, previous=previous
    )
    if study_group is not None:
        study.set_user_attr(GROUP_ATTR, study_group)
    queued, n_warm = search.opening_trials(previous)
    if config.strategy == "grid":
        n_trials = len(queued)
    for params, attrs in queued:
        study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)

    results: list[TrialResult] = []
    lock = threading.Lock()
    stop_reason = ["n_trials"]
    best_so_far: list[float] = []
    since_best = [0]

    def callback(study: Any, trial: Any) -> None:
        result = search.trial_result(trial)
        complete = result.state == "COMPLETE"
        cv_mean = result.cv_mean
        with lock:
            results.append(result)
            improved = complete and (
                not best_so_far
                or (cv_mean > best_so_far[0] if search.greater else cv_mean < best_so_far[0])
            )
            if improved:
                best_so_far[:] = [cv_mean]
                since_best[0] = 0
            else:
                since_best[0] += 1
            if patience is not None and since_best[0] >= patience:
                stop_reason[0] = "patience"
                study.stop()
        if on_trial is not None:
            on_trial(result)

    with search.quiet_threads():
        study.optimize(
            search.objective,
            n_trials=n_trials,
            timeout=timeout_s,
            n_jobs=n_jobs,
            callbacks=[callback],
            catch=(Exception,),
            gc_after_trial=False,
        )
    if stop_reason[0] != "patience":
        if config.strategy == "grid" and len(results) >= n_trials:
            stop_reason[0] = "grid_exhausted"
        elif len(results) < n_trials:
            stop_reason[0] = "timeout"
    return search.result(
        study,
        results,
        stop_reason=stop_reason[0],
        warm_start_from=warm_start_from,
        n_warm=n_warm,
        started=started,
    )


def prepare_search(frame: pd.DataFrame, config: SearchConfig, *, n_trials: int) -> Search:
    """Check ``config`` against the rows and fix what every trial shares (see :func:`tune`).

    Raises:
        TuningError: Columns missing from ``frame``, ``n_trials`` < 1, a bad target or too few
            rows for the folds.
    """
    _check_rows(frame, config, n_trials=n_trials)
    target, task, cv, seed = config.target, config.task, config.cv, config.seed
    numeric, categorical = tuple(config.numeric), tuple(config.categorical)
    X = frame[[*numeric, *categorical]]  # noqa: N806
    y_raw = frame[target]
    if y_raw.isna().any():
        raise TuningError(f"target {target!r} has {int(y_raw.isna().sum())} missing values")
    n_classes: int | None = None
    if task == "classification":
        classes, y = np.unique(np.asarray(y_raw), return_inverse=True)
        n_classes = len(classes)
        encode_labels = not (
            pd.api.types.is_integer_dtype(y_raw) and list(classes) == list(range(n_classes))
        )
    else:
        if not pd.api.types.is_numeric_dtype(y_raw):
            raise TuningError(f"regression target {target!r} is not numeric ({y_raw.dtype})")
        y, encode_labels = np.asarray(y_raw, dtype=float), False
    folds = _folds(
        y, task=task, cv=cv, seed=seed, is_time_ordered=config.is_time_ordered, target=target
    )
    setup = CVSetup(
        X=X,
        y=y,
        task=task,
        n_classes=n_classes,
        metric=config.metric,
        folds=folds,
        numeric=numeric,
        categorical=categorical,
        seed=seed,
        is_time_ordered=config.is_time_ordered,
    )
    n_features = _n_features(frame, numeric, categorical)
    spaces = {
        family: family_space(
            family,
            task=task,
            n_rows=len(frame),
            n_features=n_features,
            overrides=config.search_space.get(family),
        )
        for family in config.models
    }
    if config.strategy == "grid":
        for family, family_grid in (config.grid or {}).items():
            spaces[family] = grid_space(spaces[family], family_grid)
    return Search(
        X=X,
        y_raw=y_raw,
        config=config,
        setup=setup,
        spaces=spaces,
        encode_labels=encode_labels,
        baseline=baseline_score(setup),
    )


@dataclass
class Search:
    """What every trial of one search shares: data, folds, spaces, the objective.

    Built by :func:`prepare_search`; :func:`tune` drives it in one process, and
    :mod:`automl.tuning._distributed` drives the same objective from many processes.
    """

    X: pd.DataFrame
    y_raw: pd.Series
    config: SearchConfig
    setup: CVSetup
    spaces: dict[str, FamilySpace]
    encode_labels: bool
    baseline: float

    @property
    def is_conditional(self) -> bool:
        return len(self.config.models) > 1

    @property
    def greater(self) -> bool:
        return GREATER_IS_BETTER[self.config.metric]

    def previous_configurations(
        self, storage: Any, warm_start_from: str | None, top_k: int
    ) -> list[Configuration]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if warm_start_from is None:
            return []
        return best_configurations(storage, warm_start_from, top_k=top_k, families=MODEL_FAMILIES)

    def create_study(
        self,
        storage: Any,
        study_name: str,
        *,
        n_trials: int,
        n_jobs: int,
        previous: Sequence[Configuration],
        seed: int | None = None,
        load_if_exists: bool = True,
    ) -> Any:
        """Create (or load) the study with this search's seeded sampler and pruner."""
        import optuna

        n_informed = sum(config.family in self.spaces for config in previous)
        try:
            with warnings.catch_warnings():  # TPE's `group` is flagged experimental
                warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
                sampler = make_sampler(
                    self.config.strategy,
                    seed=self.config.seed if seed is None else seed,
                    n_trials=n_trials,
                    n_jobs=n_jobs,
                    is_conditional=self.is_conditional,
                    n_informed=n_informed,
                )
            return optuna.create_study(
                study_name=study_name,
                storage=open_storage(storage),
                direction="maximize" if self.greater else "minimize",
                sampler=sampler,
                pruner=make_pruner(self.config.pruner, n_trials=n_trials),
                load_if_exists=load_if_exists,
            )
        except TuningError:
            raise
        except Exception as exc:
            raise TuningError(
                f"cannot create Optuna study {study_name!r} in "
                f"{safe_url(storage) if isinstance(storage, str) else storage!r}: {exc}"
            ) from exc

    def opening_trials(
        self, previous: Sequence[Configuration]
    ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], int]:
        """The trials to enqueue first (warm start, defaults, grid) and how many warm ones."""
        spaces, is_conditional = self.spaces, self.is_conditional
        queued: list[tuple[dict[str, Any], dict[str, Any]]] = []
        seen: set[tuple[tuple[str, Any], ...]] = set()

        def queue(family: str, config: Mapping[str, Any], attrs: dict[str, Any]) -> bool:
            params = _enqueue_params(family, config, spaces[family], is_conditional)
            key = tuple(sorted(params.items()))
            if key in seen:
                return False
            seen.add(key)
            queued.append((params, {"model_family": family, **attrs}))
            return True

        n_warm = 0
        for config in previous:
            if config.family in spaces:
                attrs = {"is_warm_start": True, "warm_start_trial": config.trial_number}
                n_warm += queue(config.family, config.params, attrs)
        for family, space in spaces.items():
            params = _enqueue_params(family, space.defaults, space, is_conditional)
            defaults_key = tuple(sorted(params.items()))
            if not queue(family, space.defaults, {"is_defaults": True}):
                # The previous best *is* the defaults: mark that queued trial as the defaults one.
                for p, attrs in queued:
                    if tuple(sorted(p.items())) == defaults_key:
                        attrs["is_defaults"] = True
        if self.config.strategy == "grid":
            for family, family_grid in (self.config.grid or {}).items():
                for point in grid_configs(spaces[family], family_grid):
                    queue(family, point, {"is_grid": True})
        return queued, n_warm

    def objective(self, trial: Any) -> float:
        """Evaluate one trial's configuration by CV (Optuna objective).

        A trial that raises ends FAIL as Optuna makes it, with why (``describe_error``) in
        its user attribute ``error`` first; so does one whose CV score is NaN.
        """
        import optuna

        try:
            value = self._evaluate_trial(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            self._record_error(trial, describe_error(exc))
            raise
        if math.isnan(value):  # Optuna fails the trial without saying why
            self._record_error(
                trial, f"the CV {self.config.metric} is NaN (a fold's score could not be computed)"
            )
        return value

    @staticmethod
    def _record_error(trial: Any, error: str) -> None:
        try:
            trial.set_user_attr(ERROR_ATTR, error)
        except Exception as exc:  # the storage failed too: the trial's own error goes on
            log.warning("trial %s: could not record its error (%s): %s", trial.number, exc, error)

    def _evaluate_trial(self, trial: Any) -> float:
        import optuna

        models, is_conditional, greater = self.config.models, self.is_conditional, self.greater
        family = str(trial.suggest_categorical("model", models)) if is_conditional else models[0]
        space = self.spaces[family]
        params = {
            name: _suggest(trial, _param_name(family, name, is_conditional), dist)
            for name, dist in space.distributions.items()
        }
        params.update(space.fixed)
        trial.set_user_attr("model_family", family)
        is_defaults = bool(trial.user_attrs.get("is_defaults", False))
        is_baseline = is_defaults or bool(trial.user_attrs.get("is_warm_start", False))
        offset = MODEL_FAMILIES.index(family) * STEP_OFFSET_PER_FAMILY

        def report(steps: Sequence[int], values: Sequence[float]) -> bool:
            for step, value in zip(steps, values, strict=True):
                if math.isfinite(value):
                    trial.report(value if greater else -value, offset + step)
            # Re-evaluated baselines are reported (others compare against them), never pruned.
            return not is_baseline and bool(trial.should_prune())

        t0 = time.perf_counter()
        try:
            ev = evaluate(
                self.setup,
                family,
                params,
                is_tuned=not is_defaults,
                report_curve=None if self.config.pruner == "none" else report,
            )
        except TrialPrunedError as exc:
            trial.set_user_attr("fit_time_s", time.perf_counter() - t0)
            trial.set_user_attr("pruned_reason", f"{exc}; {self.config.pruner} pruner")
            raise optuna.TrialPruned(str(exc)) from None
        trial.set_user_attr("cv_std", ev.cv_std)
        trial.set_user_attr("train_mean", ev.train_mean)
        trial.set_user_attr("fit_time_s", ev.fit_time_s)
        trial.set_user_attr("peak_memory_mb", ev.peak_memory_mb)
        trial.set_user_attr("metrics", {k: v for k, v in ev.metrics.items() if math.isfinite(v)})
        if ev.fitted_rounds is not None:
            trial.set_user_attr("fitted_rounds", ev.fitted_rounds)
        return ev.cv_mean

    def plain_params(self, trial: Any, family: str) -> dict[str, Any]:
        space = self.spaces.get(family)
        out = {}
        for name in space.distributions if space else ():
            key = _param_name(family, name, self.is_conditional)
            if key in trial.params:
                out[name] = trial.params[key]
        return {**out, **(space.fixed if space else {})}

    def trial_result(self, trial: Any) -> TrialResult:
        """A finished Optuna trial (``FrozenTrial``) as a :class:`TrialResult`."""
        metric, greater, baseline = self.config.metric, self.greater, self.baseline
        state = trial.state.name
        complete = state == "COMPLETE"
        family = str(trial.user_attrs.get("model_family", self.config.models[0]))
        attrs = trial.user_attrs
        cv_mean = float(trial.value) if complete and trial.value is not None else float("nan")
        train_mean = float(attrs.get("train_mean", float("nan")))
        gap, status = float("nan"), ""
        if complete:
            gap = (train_mean - cv_mean) if greater else (cv_mean - train_mean)
            s_train = skill(train_mean, metric=metric, baseline=baseline)
            s_val = skill(cv_mean, metric=metric, baseline=baseline)
            if s_train - s_val > OVERFIT_SKILL_GAP:
                status = "overfit"
            elif s_train < UNDERFIT_TRAIN_SKILL:
                status = "underfit"
            else:
                status = "ok"
        error = None
        if state == "FAIL":
            # Optuna before 3.0 recorded the reason itself (older studies still hold it).
            found = attrs.get(ERROR_ATTR) or trial.system_attrs.get("fail_reason")
            error = str(found) if found else "failed (no error recorded; see the log)"
        elif state == "PRUNED":
            error = str(attrs.get("pruned_reason", "pruned"))
        return TrialResult(
            number=trial.number,
            params=self.plain_params(trial, family),
            cv_mean=cv_mean,
            cv_std=float(attrs.get("cv_std", float("nan"))),
            train_mean=train_mean,
            fit_time_s=float(attrs.get("fit_time_s", float("nan"))),
            state=state,
            is_defaults=bool(attrs.get("is_defaults", False)),
            error=error,
            model_family=family,
            metrics={k: float(v) for k, v in dict(attrs.get("metrics", {})).items()},
            fit_gap=gap,
            fit_status=status,
            peak_memory_mb=float(attrs.get("peak_memory_mb", float("nan"))),
            is_warm_start=bool(attrs.get("is_warm_start", False)),
            fitted_rounds=attrs.get("fitted_rounds"),
            started_at=trial.datetime_start,
            finished_at=trial.datetime_complete,
        )

    @contextlib.contextmanager
    def quiet_threads(self) -> Iterator[None]:
        """One core per trial, without the warnings that would repeat once per trial."""
        import optuna
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings(), threadpool_limits(limits=1):
            # One core per trial: parallelism comes from n_jobs (trials), and OpenMP/BLAS pools
            # inside trials only oversubscribe the cores (histogram boosting slows down 100x
            # when its OpenMP threads compete with anything else). Convergence and
            # experimental-feature warnings would repeat once per trial.
            warnings.filterwarnings("ignore", module="sklearn")
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*early stopping.*")
            yield

    def refit(
        self, results: Sequence[TrialResult], study_name: str
    ) -> tuple[TrialResult, Any, dict[str, Any]]:
        """The best complete trial, refit on every row, and the parameters the refit used."""
        complete = [r for r in results if r.state == "COMPLETE"]
        if not complete:
            raise TuningError(_no_trial_completed(results, study_name))
        best = (max if self.greater else min)(complete, key=lambda r: r.cv_mean)
        refit_params = dict(best.params)
        is_tuned = not best.is_defaults
        if best.model_family == "xgboost" and is_tuned and best.fitted_rounds:
            # Early stopping chose the rounds per fold; refit with their mean, on every row.
            refit_params["n_estimators"] = int(best.fitted_rounds)
            is_tuned = False
        model = build_model(
            task=self.config.task,
            numeric=self.config.numeric,
            categorical=self.config.categorical,
            params=refit_params,
            seed=self.config.seed,
            encode_labels=self.encode_labels,
            family=best.model_family,
            is_tuned=is_tuned,
        ).fit(self.X, self.y_raw)
        return best, model, refit_params

    def result(
        self,
        study: Any,
        results: Sequence[TrialResult],
        *,
        stop_reason: str,
        warm_start_from: str | None,
        n_warm: int,
        started: float,
    ) -> TuningResult:
        """Refit the best trial, mark the study finished and assemble the :class:`TuningResult`.

        ``warm_start_from`` is recorded only if ``n_warm`` of its configurations were queued.
        """
        with self.quiet_threads():
            best, model, refit_params = self.refit(results, study.study_name)
        complete = [r for r in results if r.state == "COMPLETE"]
        greater = self.greater
        default_scores = {r.model_family: r.cv_mean for r in complete if r.is_defaults}
        default_score = (
            (max if greater else min)(default_scores.values()) if default_scores else float("nan")
        )
        importances = _importances(
            study.get_trials(deepcopy=False),
            best.model_family,
            self.spaces[best.model_family],
            is_conditional=self.is_conditional,
            seed=self.config.seed,
        )
        study.set_user_attr(FINISHED_ATTR, datetime.now(UTC).isoformat())
        return TuningResult(
            model_family=best.model_family,
            metric=self.config.metric,
            greater_is_better=greater,
            best_params=best.params,
            best_score=best.cv_mean,
            best_score_std=best.cv_std,
            default_score=default_score,
            n_trials=len(results),
            trials=trials_table(results),
            model=model,
            study_name=study.study_name,
            strategy=self.config.strategy,
            refit_params=refit_params,
            default_scores=default_scores,
            family_defaults={f: s.default_config for f, s in self.spaces.items()},
            param_importances=importances,
            baseline_score=self.baseline,
            stop_reason=stop_reason,
            warm_start_from=warm_start_from if n_warm else None,
            n_warm_start=n_warm,
            n_pruned=sum(r.state == "PRUNED" for r in results),
            elapsed_s=time.perf_counter() - started,
        )
