"""The objective computes every trial figure from what the fit produced, on folds made once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.tuning._estimators import make_estimator
from automl.tuning._objective import (
    _fit_xgboost,
    _fold_data,
    evaluate,
    xgboost_eval_metric,
)
from automl.tuning._tuner import prepare_search
from tests.conftest import churn_search

Churn = Callable[..., pd.DataFrame]
PARAMS = {
    "n_estimators": 300,
    "learning_rate": 0.2,
    "max_depth": 4,
    "min_child_weight": 1.0,
    "subsample": 0.8,
    "colsample_bytree": 0.7,
    "reg_lambda": 1.0,
    "reg_alpha": 0.0,
}


def _setup(frame: pd.DataFrame, **overrides: Any) -> Any:
    return prepare_search(frame, churn_search(cv=3, seed=5, **overrides), n_trials=5).setup


@pytest.mark.parametrize(
    ("task", "target", "metric"),
    [
        ("classification", "churned", "roc_auc"),
        ("classification", "contract", "log_loss"),
        ("regression", "monthly_charges", "rmse"),
    ],
)
def test_cached_xgboost_fit_equals_the_wrapper_fit(
    churn: Churn, task: str, target: str, metric: str
) -> None:
    frame = churn(600, seed=3)
    categorical = [c for c in ("contract", "payment_method", "internet_service") if c != target]
    numeric = [
        c
        for c in ("tenure_months", "monthly_charges", "total_charges", "support_calls", "age")
        if c != target
    ]
    if target == "contract":
        frame = frame.drop(columns="churned")
    setup = _setup(
        frame, target=target, task=task, metric=metric, numeric=numeric, categorical=categorical
    )
    eval_metric = xgboost_eval_metric(setup.task, setup.metric, setup.n_classes)[0]
    for fold in range(len(setup.folds)):
        data = _fold_data(setup, "xgboost", fold, stops_early=True)
        make = lambda: make_estimator(  # noqa: E731
            "xgboost", task=setup.task, params=PARAMS, seed=5, eval_metric=eval_metric
        )
        stop = slice(data.n_fit, data.n_train)
        wrapper = make().fit(
            data.X[: data.n_fit],
            data.y[: data.n_fit],
            eval_set=[(data.X[stop], data.y[stop])],
            verbose=False,
        )
        for _ in range(2):  # the second fit reuses the fold's quantile matrices
            ours = _fit_xgboost(setup, fold, data, make())
            assert ours.best_iteration == wrapper.best_iteration
            assert ours.evals_result() == wrapper.evals_result()
            if task == "classification":
                np.testing.assert_array_equal(
                    ours.predict_proba(data.X), wrapper.predict_proba(data.X)
                )
            else:
                np.testing.assert_array_equal(ours.predict(data.X), wrapper.predict(data.X))


def test_evaluation_is_the_same_on_cached_folds(churn: Churn) -> None:
    setup = _setup(churn(500, seed=2))
    first = evaluate(setup, "xgboost", PARAMS)
    assert any(key[0] == "xgboost_matrices" for key in setup.cache)
    again = evaluate(setup, "xgboost", PARAMS)
    assert (again.cv_mean, again.train_mean, again.metrics, again.fitted_rounds) == (
        first.cv_mean,
        first.train_mean,
        first.metrics,
        first.fitted_rounds,
    )
    # Fresh folds (nothing cached) give the same figures.
    fresh = evaluate(_setup(churn(500, seed=2)), "xgboost", PARAMS)
    assert (fresh.cv_mean, fresh.train_mean, fresh.metrics) == (
        first.cv_mean,
        first.train_mean,
        first.metrics,
    )
    assert first.train_mean > first.cv_mean  # scored on the rows it was fit on
    assert first.fitted_rounds is not None and 1 <= first.fitted_rounds < PARAMS["n_estimators"]


def test_pruner_sees_the_early_stopping_curve(churn: Churn) -> None:
    setup = _setup(churn(500, seed=2))
    seen: list[tuple[list[int], list[float]]] = []

    def report(steps: Any, values: Any) -> bool:
        seen.append((list(steps), list(values)))
        return False

    evaluate(setup, "xgboost", PARAMS, report_curve=report)
    data = _fold_data(setup, "xgboost", 0, stops_early=True)
    model = _fit_xgboost(
        setup,
        0,
        data,
        make_estimator("xgboost", task="classification", params=PARAMS, seed=5, eval_metric="auc"),
    )
    curve = model.evals_result()["validation_0"]["auc"]
    assert len(seen) == 1  # fold 1 only
    steps, values = seen[0]
    assert steps == list(range(10, len(curve) + 1, 10))
    assert values == [curve[s - 1] for s in steps]
