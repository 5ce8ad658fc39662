from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from automl.tracking import (
    MlflowTracker,
    decide_promotion,
)


@pytest.mark.parametrize(
    ("greater", "challenger", "champion", "margin", "promoted"),
    [
        (True, 0.83, 0.80, 0.01, True),
        (True, 0.805, 0.80, 0.01, False),  # better, but not by the margin
        (True, 0.80, 0.80, 0.0, False),  # a tie never promotes
        (True, 0.79, 0.80, 0.0, False),
        (False, 4.0, 5.0, 0.5, True),  # rmse: lower is better
        (False, 5.2, 5.0, 0.0, False),
    ],
)
def test_promotion_rule(
    greater: bool, challenger: float, champion: float, margin: float, promoted: bool
) -> None:
    decision = decide_promotion(
        metric="m",
        greater_is_better=greater,
        margin=margin,
        challenger_version="2",
        challenger_score=challenger,
        champion_version="1",
        champion_score=champion,
    )
    assert decision.is_promoted is promoted
    assert decision.reason.startswith("promoted" if promoted else "rejected")


def test_first_model_is_promoted() -> None:
    decision = decide_promotion(
        metric="m",
        greater_is_better=True,
        margin=0.1,
        challenger_version="1",
        challenger_score=0.5,
        champion_version=None,
        champion_score=None,
    )
    assert (
        decision.is_promoted
        and decision.reason == "no champion yet"
        and decision.improvement is None
    )


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> MlflowTracker:
    ws: Path = tmp_path_factory.mktemp("mlflow")
    return MlflowTracker(
        f"sqlite:///{ws / 'mlflow.db'}", "test", artifact_location=(ws / "art").as_uri()
    )


def _register(tracker: MlflowTracker, name: str) -> str:
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    model = LogisticRegression().fit(frame[["x"]], frame["y"])
    run_id = tracker.start_run("r")
    uri = tracker.log_model(run_id, model, input_example=frame[["x"]].head(2))
    tracker.end_run(run_id)
    return tracker.register(uri, name, run_id=run_id).version


def test_logged_model_has_signature_and_input_example(tracker: MlflowTracker) -> None:
    import mlflow

    from automl.tracking._mlflow import _global_uri

    name = f"m-{uuid.uuid4().hex[:6]}"
    version = _register(tracker, name)
    with _global_uri(tracker.tracking_uri):
        info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs.inputs] == ["x"]
    assert info.saved_input_example_info is not None


def test_global_uri_block_leaves_no_trace(tracker: MlflowTracker) -> None:
    import os

    import mlflow

    from automl.tracking._mlflow import _global_uri

    before = (
        mlflow.get_tracking_uri(),
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )
    with _global_uri(tracker.tracking_uri):
        assert mlflow.get_registry_uri() == tracker.tracking_uri
    after = (
        mlflow.get_tracking_uri(),
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    )
    assert after == before
