"""The MLflow adapter: model loading and its cache of registered versions."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

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


def test_a_new_sqlite_store_starts_from_the_migrated_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from mlflow import MlflowClient

    from automl.tracking._mlflow import seed_sqlite_store, store_template_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = MlflowTracker(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}", "exp")
    first.start_run("r")  # the first store of this MLflow version also makes the template
    templates = list(store_template_dir().glob("mlflow-*-store.db"))
    assert len(templates) == 1 and store_template_dir() == tmp_path / "cache" / "automl"
    with sqlite3.connect(templates[0]) as db:  # tables and migration state, no experiment
        assert db.execute("select count(*) from experiments").fetchone() == (0,)
        assert db.execute("select version_num from alembic_version").fetchone()

    store = tmp_path / "b" / "mlflow.db"
    assert seed_sqlite_store(f"sqlite:///{store}")
    assert not seed_sqlite_store(f"sqlite:///{store}")  # an existing store is never replaced
    assert not seed_sqlite_store("sqlite:///:memory:")
    assert not seed_sqlite_store("postgresql://u@localhost/db")
    tracker = MlflowTracker(
        f"sqlite:///{store}", "exp", artifact_location=(tmp_path / "art").as_uri()
    )
    run_id = tracker.start_run("r")
    tracker.log_nested_run(run_id, "trial-000", params={"a": 1}, metrics={"m": 0.5})
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    # MLflow created its default experiment in this store, with this store's artifact root.
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert str(tmp_path / "b") in default.artifact_location or "mlruns" in default.artifact_location
    assert "cache" not in default.artifact_location
    # The same schema, migration state and rows as a store MLflow builds itself.
    plain = tmp_path / "c" / "mlflow.db"
    plain.parent.mkdir()
    MlflowClient(tracking_uri=f"sqlite:///{plain}").search_experiments()

    def dump(path: Path) -> list[Any]:
        # Clauses sorted: MLflow's own batch migrations list CHECK constraints in set order.
        with sqlite3.connect(path) as db:
            schema = db.execute("select type, name, sql from sqlite_master order by name")
            version = db.execute("select version_num from alembic_version")
            return [
                *[
                    (kind, name, sorted(x.strip().rstrip(",") for x in (sql or "").splitlines()))
                    for kind, name, sql in schema.fetchall()
                ],
                *version.fetchall(),
            ]

    fresh = tmp_path / "d" / "mlflow.db"
    assert seed_sqlite_store(f"sqlite:///{fresh}")
    MlflowClient(tracking_uri=f"sqlite:///{fresh}").search_experiments()
    assert dump(fresh) == dump(plain)
    child = client.search_runs([tracker.experiment_id], "tags.mlflow.runName = 'trial-000'")[0]
    assert child.data.params == {"a": "1"} and child.data.metrics == {"m": 0.5}
    assert child.data.tags["mlflow.parentRunId"] == run_id


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
