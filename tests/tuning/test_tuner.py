from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.errors import TuningError
from automl.tuning import (
    XGBOOST_DEFAULTS,
    LabelEncodedClassifier,
    TrialResult,
    score_model,
    tune,
    xgboost_space,
)
from tests.conftest import CATEGORICAL, NUMERIC

Churn = Callable[..., pd.DataFrame]


def _tune(frame: pd.DataFrame, **kw):  # type: ignore[no-untyped-def]
    args: dict[str, Any] = {
        "target": "churned",
        "task": "classification",
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "metric": "roc_auc",
        "n_trials": 4,
        "cv": 2,
        "seed": 3,
    }
    args.update(kw)
    return tune(frame, **args)


def test_trial_zero_is_library_defaults_and_best_is_never_worse(churn: Churn) -> None:
    seen: list[TrialResult] = []
    result = _tune(churn(400, seed=1), on_trial=seen.append)
    assert [t.number for t in seen] == [0, 1, 2, 3]
    first = seen[0]
    assert first.is_defaults and not any(t.is_defaults for t in seen[1:])
    assert first.params == {k: XGBOOST_DEFAULTS[k] for k in first.params}
    assert set(first.params) == set(xgboost_space(n_rows=400, n_features=15))
    assert result.best_score >= result.default_score
    assert result.n_trials == 4 and len(result.trials) == 4
    assert {"cv_mean", "cv_std", "train_mean", "fit_time_s", "param_max_depth"} <= set(
        result.trials.columns
    )
    assert 0.5 < result.best_score <= 1.0


def test_seeded_search_is_reproducible(churn: Churn) -> None:
    frame = churn(300, seed=2)
    a, b = _tune(frame, n_trials=3), _tune(frame, n_trials=3)
    assert a.trials.filter(like="param_").equals(b.trials.filter(like="param_"))
    assert a.best_score == b.best_score


def test_refit_model_takes_raw_frame_and_tolerates_unseen_categories(churn: Churn) -> None:
    result = _tune(churn(300, seed=1), n_trials=2)
    fresh = churn(100, seed=9)
    fresh.loc[:4, "contract"] = "ten-year"  # a level never seen in training
    proba = result.model.predict_proba(fresh.drop(columns="churned"))
    assert proba.shape == (100, 2)
    assert 0.5 < score_model(result.model, fresh, target="churned", metric="roc_auc") <= 1.0


def test_string_labels_round_trip(churn: Churn) -> None:
    frame = churn(300, seed=1)
    frame["churned"] = np.where(frame["churned"] == 1, "yes", "no")
    result = _tune(frame, n_trials=2, metric="accuracy")
    assert isinstance(result.model, LabelEncodedClassifier)
    assert set(result.model.predict(frame.drop(columns="churned"))) <= {"yes", "no"}


def test_multiclass_and_regression(churn: Churn) -> None:
    frame = churn(300, seed=1)
    multi = _tune(
        frame.assign(churned=frame["contract"]).drop(columns="contract"),
        categorical=["payment_method", "internet_service"],
        n_trials=2,
    )
    assert list(multi.model.classes_) == ["month-to-month", "one-year", "two-year"]
    reg = _tune(
        frame,
        target="monthly_charges",
        task="regression",
        metric="rmse",
        n_trials=3,
        numeric=["tenure_months", "total_charges", "support_calls", "age"],
    )
    assert not reg.greater_is_better
    assert reg.best_score <= reg.default_score
    assert 0 < reg.best_score < frame["monthly_charges"].std()


def test_space_fits_narrow_tables_and_contains_defaults() -> None:
    narrow = xgboost_space(n_rows=1000, n_features=2)
    assert "colsample_bytree" not in narrow  # would drop one of two features per tree
    wide = xgboost_space(n_rows=1000, n_features=40)
    assert wide["colsample_bytree"].low == pytest.approx(0.3)
    assert xgboost_space(n_rows=100, n_features=4)["min_child_weight"].high == 2.0


def test_clear_errors(churn: Churn) -> None:
    frame = churn(100, seed=1)
    with pytest.raises(TuningError, match="unknown metric 'auc'"):
        _tune(frame, metric="auc")
    with pytest.raises(TuningError, match="target column 'label' not in data"):
        _tune(frame, target="label")
    with pytest.raises(TuningError, match="single class"):
        _tune(frame.assign(churned=0))
    with pytest.raises(TuningError, match="unknown tuning strategy 'grid'"):
        _tune(frame, strategy="grid")
