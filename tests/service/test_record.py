from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from automl.service import log_tuning_result, trial_logger
from automl.tracking import MlflowTracker
from automl.tuning import tune
from tests.conftest import churn_search

Churn = Callable[..., pd.DataFrame]


def test_every_trial_is_a_nested_run_with_its_metrics(churn: Churn, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "t", artifact_location=(tmp_path / "art").as_uri())
    parent = tracker.start_run("search")
    config = churn_search(cv=2, seed=1, models=["xgboost", "linear"])
    result = tune(
        churn(300, seed=1), config, n_trials=3, on_trial=trial_logger(tracker, parent, "roc_auc")
    )
    log_tuning_result(tracker, parent, result)
    tracker.end_run(parent)

    client = MlflowClient(uri)
    children = client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
        order_by=["attributes.start_time ASC"],
    )
    assert len(children) == 3
    first = children[0].data
    assert {
        "cv_roc_auc",
        "cv_roc_auc_std",
        "train_roc_auc",
        "fit_gap",
        "fit_time_s",
        "peak_memory_mb",
        "val_accuracy",
        "val_precision",
        "val_recall",
        "val_f1",
    } <= set(first.metrics)
    assert first.params["model_family"] == "xgboost" and "max_depth" in first.params
    assert first.tags["automl.is_defaults"] == "true"
    assert first.tags["automl.fit_status"] in {"ok", "overfit", "underfit"}
    assert children[1].data.params["model_family"] == "linear"

    run = client.get_run(parent)
    assert run.data.params["best_model_family"] == result.model_family
    assert {"best_cv_roc_auc", "default_cv_roc_auc", "n_trials", "n_pruned"} <= set(
        run.data.metrics
    )
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert {"trials.csv", "tuning"} <= artifacts
    report = {a.path for a in client.list_artifacts(parent, "tuning")}
    assert {"tuning/tuning_report.html", "tuning/optimization_history.png"} <= report
