"""The MLflow adapter: model loading and its cache of registered versions."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from automl.errors import TrackingError
from automl.tracking import MlflowTracker


def test_a_registered_version_is_downloaded_once_then_served_from_memory(tmp_path: Path) -> None:
    artifacts = tmp_path / "art"
    tracker = MlflowTracker(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "test", artifact_location=artifacts.as_uri()
    )
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    run_id = tracker.start_run("r")
    uri = tracker.log_model(
        run_id, LogisticRegression().fit(frame[["x"]], frame["y"]), input_example=frame[["x"]]
    )
    tracker.end_run(run_id)
    version = tracker.register(uri, "cached", run_id=run_id)

    first = tracker.load_model(version)
    assert list(first.predict_proba(frame[["x"]]).shape) == [4, 2]
    shutil.rmtree(artifacts)  # from here on, anything that downloads fails

    assert tracker.load_model(version) is first  # no download
    with pytest.raises(TrackingError, match="could not load model"):
        tracker.load_model(version.uri)  # a plain URI is loaded every time
    rebuilt = dataclasses.replace(version, source="models:/m-another")
    with pytest.raises(TrackingError):  # same name and number, another model: not the cache
        tracker.load_model(rebuilt)


def test_logging_a_model_leaves_its_run_running_and_no_run_active(tmp_path: Path) -> None:
    import mlflow

    tracker = MlflowTracker(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "test", artifact_location=(tmp_path / "a").as_uri()
    )
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    run_id = tracker.start_run("cycle")
    uri = tracker.log_model(
        run_id, LogisticRegression().fit(frame[["x"]], frame["y"]), input_example=frame[["x"]]
    )
    # A cycle killed after this point must leave a RUNNING run for the next cycle to close.
    assert tracker.client.get_run(run_id).info.status == "RUNNING"
    assert mlflow.active_run() is None
    outputs = tracker.client.get_run(run_id).outputs.model_outputs
    assert [f"models:/{o.model_id}" for o in outputs] == [uri]  # the model belongs to the run
    logged = tracker.client.get_logged_model(outputs[0].model_id)
    assert logged.experiment_id == tracker.experiment_id and logged.status.name == "READY"
    summary = tracker.run_summary(run_id)
    assert summary.status == "RUNNING" and summary.start_time_ms > 0
