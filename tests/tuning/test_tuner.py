from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest

from automl.errors import TuningError
from automl.tuning import (
    MODEL_FAMILIES,
    XGBOOST_DEFAULTS,
    SearchConfig,
    TrialResult,
    TuningResult,
    family_space,
    score_model,
    tune,
    write_tuning_report,
    xgboost_space,
)
from automl.tuning._tuner import _folds
from tests.conftest import churn_search

Churn = Callable[..., pd.DataFrame]
HAS_TORCH = importlib.util.find_spec("torch") is not None
SEARCH_FIELDS = {f.name for f in dataclasses.fields(SearchConfig)}


def _tune(frame: pd.DataFrame, **kw: Any) -> TuningResult:
    """Tune with small defaults; ``kw`` mixes :class:`SearchConfig` fields and run options."""
    args: dict[str, Any] = {"n_trials": 4, "cv": 2, "seed": 3, **kw}
    config = churn_search(**{k: v for k, v in args.items() if k in SEARCH_FIELDS})
    return tune(frame, config, **{k: v for k, v in args.items() if k not in SEARCH_FIELDS})


def _regression_args(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "target": "monthly_charges",
        "task": "regression",
        "metric": "rmse",
        "numeric": ["tenure_months", "total_charges", "support_calls", "age"],
    }


def test_trial_zero_is_library_defaults_and_best_is_never_worse(churn: Churn) -> None:
    seen: list[TrialResult] = []
    result = _tune(churn(400, seed=1), on_trial=seen.append)
    assert [t.number for t in seen] == [0, 1, 2, 3]
    first = seen[0]
    assert first.is_defaults and not any(t.is_defaults for t in seen[1:])
    assert first.params == {k: XGBOOST_DEFAULTS[k] for k in first.params}
    assert set(first.params) == set(xgboost_space(n_rows=400, n_features=15))
    assert first.fitted_rounds is None  # the defaults trial does not stop early
    assert result.best_score >= result.default_score
    assert result.n_trials == 4 and len(result.trials) == 4
    assert {"cv_mean", "cv_std", "train_mean", "fit_time_s", "param_max_depth"} <= set(
        result.trials.columns
    )
    assert 0.5 < result.best_score <= 1.0


def test_every_trial_records_metrics_gap_time_and_memory(churn: Churn) -> None:
    result = _tune(churn(300, seed=1), n_trials=3, pruner="none")
    trials = result.trials
    for column in ("val_accuracy", "val_precision", "val_recall", "val_f1", "val_roc_auc"):
        assert trials[column].between(0, 1).all(), column
    assert (trials["val_roc_auc"] == trials["cv_mean"]).all()
    assert set(trials["fit_status"]) <= {"ok", "overfit", "underfit"}
    # XGBoost's defaults (100 deep trees on 150 rows) fit the training folds almost perfectly.
    assert trials.loc[0, "fit_status"] == "overfit" and trials.loc[0, "fit_gap"] > 0.1
    assert (trials["fit_time_s"] > 0).all() and trials["peak_memory_mb"].notna().all()
    assert trials.loc[1:, "fitted_rounds"].ge(1).all()  # tuned trials stop early
    assert 0.4 < result.baseline_score < 0.6  # a prior-only model has AUC 0.5


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
    # The label decoder is scikit-learn's own, so the pickled model needs no automl to load.
    assert type(result.model).__module__.startswith("sklearn.")
    assert list(result.model.classes_) == ["no", "yes"]
    rows = frame.drop(columns="churned")
    assert set(result.model.predict(rows)) <= {"yes", "no"}
    proba = result.model.predict_proba(rows)
    predicted = np.asarray(result.model.classes_)[proba.argmax(axis=1)]
    assert (predicted == result.model.predict(rows)).all()


@pytest.mark.parametrize("family", MODEL_FAMILIES)
def test_each_family_tunes_classification_and_regression(churn: Churn, family: str) -> None:
    frame = churn(200, seed=1)
    fresh = churn(60, seed=8)
    fresh.loc[:2, "payment_method"] = "crypto"  # unseen category
    fresh.loc[3:5, "age"] = np.nan  # missing numbers
    clf = _tune(frame, models=[family], n_trials=2, pruner="none")
    assert clf.model_family == family and clf.trials["model_family"].eq(family).all()
    assert clf.trials.loc[0, "is_defaults"]
    assert clf.best_score >= clf.default_score
    assert clf.model.predict_proba(fresh.drop(columns="churned")).shape == (60, 2)
    reg = _tune(frame, models=[family], n_trials=2, pruner="none", **_regression_args(frame))
    assert not reg.greater_is_better and reg.best_score <= reg.default_score
    assert set(reg.trials.filter(like="val_").columns) == {"val_rmse", "val_mae", "val_r2"}
    assert np.isfinite(reg.model.predict(fresh.drop(columns="monthly_charges"))).all()


@pytest.mark.parametrize("family", ["xgboost", "linear", "mlp"])
def test_multiclass(churn: Churn, family: str) -> None:
    frame = churn(240, seed=1)
    multi = _tune(
        frame.assign(churned=frame["contract"]).drop(columns="contract"),
        categorical=["payment_method", "internet_service"],
        models=[family],
        n_trials=2,
    )
    assert list(multi.model.classes_) == ["month-to-month", "one-year", "two-year"]
    assert multi.trials["val_f1"].between(0, 1).all() and multi.best_score > 0.5


@pytest.mark.parametrize(
    "strategy",
    [
        "bayesian",
        "random",
        "genetic",
        "cmaes",
        pytest.param(
            "gp",
            marks=pytest.mark.skipif(
                not HAS_TORCH, reason="strategy 'gp' needs torch: pip install -e '.[gp]'"
            ),
        ),
    ],
)
def test_each_strategy_searches_reproducibly(churn: Churn, strategy: str) -> None:
    frame = churn(200, seed=4)
    a = _tune(frame, strategy=strategy, n_trials=5, models=["linear"], pruner="none")
    b = _tune(frame, strategy=strategy, n_trials=5, models=["linear"], pruner="none")
    assert a.strategy == strategy and a.n_trials == 5
    assert a.trials.loc[0, "is_defaults"] and a.trials["state"].eq("COMPLETE").all()
    assert a.trials.filter(like="param_C").equals(b.trials.filter(like="param_C"))
    assert a.trials["param_C"].nunique() >= 4  # it explored, not repeated one point


def test_gp_without_torch_names_the_extra(churn: Churn, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(TuningError, match=r"pip install 'automl\[gp\]'"):
        _tune(churn(100, seed=1), strategy="gp")


def test_grid_runs_every_point_after_the_defaults(churn: Churn) -> None:
    grid = {"xgboost": {"max_depth": [2, 3], "n_estimators": [20, 40]}}
    result = _tune(churn(200, seed=1), strategy="grid", grid=grid, n_trials=2)
    trials = result.trials
    assert result.n_trials == 5 and result.stop_reason == "grid_exhausted"
    assert trials.loc[0, "is_defaults"]
    points = set(zip(trials["param_max_depth"][1:], trials["param_n_estimators"][1:], strict=True))
    assert points == {(2, 20), (2, 40), (3, 20), (3, 40)}


def test_several_families_share_one_conditional_study(churn: Churn) -> None:
    models = ["linear", "random_forest", "mlp"]
    seen: list[TrialResult] = []
    result = _tune(churn(200, seed=2), models=models, n_trials=7, on_trial=seen.append)
    assert [t.model_family for t in seen[:3]] == models  # each family's defaults open it
    assert all(t.is_defaults for t in seen[:3]) and set(result.default_scores) == set(models)
    assert result.model_family in models
    mlp = next(t for t in seen if t.model_family == "mlp")
    assert set(mlp.params) == set(
        family_space("mlp", task="classification", n_rows=200, n_features=15).distributions
    )


def test_search_space_overrides_are_honoured(churn: Churn) -> None:
    result = _tune(
        churn(200, seed=1),
        n_trials=5,
        search_space={"xgboost": {"max_depth": [2, 3], "subsample": 0.7}},
    )
    assert result.trials["param_max_depth"].between(2, 3).all()
    assert result.trials["param_subsample"].eq(0.7).all()
    assert result.trials.loc[0, "param_max_depth"] == 3  # default 6, clipped into [2, 3]


def test_a_failed_trial_says_why_in_its_result_the_table_and_the_study(
    churn: Churn, tmp_path: Path
) -> None:
    """Optuna logs a failing objective's exception but no longer keeps it on the trial: the
    objective records it (user attribute ``error``), so every reader of the study has it."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    seen: list[TrialResult] = []
    result = _tune(
        churn(200, seed=1),
        models=["linear", "random_forest"],
        # A fixed value scikit-learn refuses: every random-forest trial fails when it fits.
        search_space={"random_forest": {"max_features": 0}},
        n_trials=4,
        seed=0,
        storage=storage,
        study_name="f",
        on_trial=seen.append,
    )
    failed = [t for t in seen if t.state == "FAIL"]
    assert failed and {t.model_family for t in failed} == {"random_forest"}
    assert result.model_family == "linear"
    study = optuna.load_study(study_name="f", storage=storage)
    table = result.trials.set_index("number")
    for trial in failed:
        assert trial.error is not None
        assert trial.error.startswith(
            "InvalidParameterError: The 'max_features' parameter of RandomForestClassifier"
        )
        assert trial.error.endswith("Got 0 instead.")
        assert table.loc[trial.number, "error"] == trial.error
        assert study.trials[trial.number].user_attrs["error"] == trial.error
    assert table.loc[table["state"] == "COMPLETE", "error"].isna().all()


def test_a_search_where_every_trial_fails_says_why(churn: Churn) -> None:
    frame = churn(200, seed=1)
    contract = frame["contract"].astype(object)
    contract[::3] = 12  # months, written as a number among the text levels: one-hot refuses
    with pytest.raises(TuningError) as error:
        _tune(frame.assign(contract=contract), models=["linear"], n_trials=3)
    message = str(error.value)
    assert message.startswith("no trial completed in study 'automl' (3 failed, 0 pruned)")
    assert (
        "errors: TypeError: Encoders require their input argument must be uniformly strings or "
        "numbers. Got ['int', 'str'] (3 trials)" in message
    )
    assert "\n" not in message


def test_pruning_stops_weak_trials_on_their_learning_curve(churn: Churn, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = _tune(churn(400, seed=5), n_trials=14, storage=storage, study_name="p")
    pruned = result.trials[result.trials["state"] == "PRUNED"]
    assert result.n_pruned == len(pruned) >= 1
    assert pruned["error"].str.contains("rounds of fold 1").all()
    assert result.trials.loc[0, "state"] != "PRUNED"
    study = optuna.load_study(study_name="p", storage=storage)
    curve = study.trials[int(pruned["number"].iloc[0])].intermediate_values
    # XGBoost reports its first fold's validation AUC every 10 boosting rounds.
    assert curve and all(step % 10 == 0 for step in curve)


def test_patience_stops_a_search_that_no_longer_improves(churn: Churn) -> None:
    result = _tune(churn(200, seed=1), models=["linear"], n_trials=30, patience=3, pruner="none")
    assert result.stop_reason == "patience" and result.n_trials < 30


def test_time_ordered_folds_validate_on_later_rows() -> None:
    y = np.array([0, 1] * 30)
    folds = _folds(y, task="classification", cv=3, seed=0, is_time_ordered=True, target="y")
    assert len(folds) == 3
    for train, val in folds:
        assert train.max() < val.min()


def test_time_ordered_search(churn: Churn) -> None:
    result = _tune(churn(300, seed=1), is_time_ordered=True, n_trials=2, cv=3)
    assert result.n_trials == 2 and 0.5 < result.best_score <= 1.0


def test_report_has_plots_and_tables(churn: Churn, tmp_path: Path) -> None:
    result = _tune(churn(200, seed=1), n_trials=5, pruner="none")
    files = write_tuning_report(result, tmp_path / "rep", title="churn")
    names = [f.name for f in files]
    assert names == [
        "tuning_report.html",
        "optimization_history.png",
        "param_importance.png",
        "chosen_vs_defaults.png",
    ]
    for png in files[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files[0].read_text()
    for text in ("Optimization history", "Hyperparameter importance", "val_precision", "fit_gap"):
        assert text in page
    assert page.count("data:image/png;base64") == 3
    assert set(result.param_importances) <= set(result.best_params)


def test_clear_errors(churn: Churn) -> None:
    frame = churn(100, seed=1)
    with pytest.raises(TuningError, match="unknown metric 'auc'"):
        _tune(frame, metric="auc")
    with pytest.raises(TuningError, match="metric 'rmse' does not fit task 'classification'"):
        _tune(frame, metric="rmse")
    with pytest.raises(TuningError, match="target column 'label' not in data"):
        _tune(frame, target="label")
    with pytest.raises(TuningError, match="single class"):
        _tune(frame.assign(churned=0))
    with pytest.raises(TuningError, match="unknown tuning strategy 'annealing'; allowed: bayesian"):
        _tune(frame, strategy="annealing")
    with pytest.raises(TuningError, match="unknown model family 'catboost'; allowed: xgboost"):
        _tune(frame, models=["catboost"])
    with pytest.raises(TuningError, match="strategy 'grid' needs an explicit grid"):
        _tune(frame, strategy="grid")
    with pytest.raises(TuningError, match="names family 'mlp', which is not in models"):
        _tune(frame, search_space={"mlp": {"alpha": 0.1}})
