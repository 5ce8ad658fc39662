from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from mlflow import MlflowClient

from automl.config import PipelineSpec
from automl.service import run_cycle
from tests.conftest import land

Churn = Callable[..., pd.DataFrame]


@pytest.mark.slow
def test_retune_after_drift_warm_starts_from_the_previous_study(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(
        tuning={"n_trials": 4, "models": ["xgboost", "linear"], "warm_start_top_k": 2}
    )
    client = MlflowClient(spec.tracking_uri)
    land(spec, "history.csv", churn(600, seed=1))
    first = run_cycle(spec)
    assert first.status == "retuned"
    params = client.get_run(first.run_id).data.params  # type: ignore[arg-type]
    assert params["warm_start_from"] == "" and params["models"] == "xgboost,linear"
    report = spec.workspace_dir / "reports" / "churn" / first.cycle_id / "tuning"
    assert (report / "tuning_report.html").exists()
    artifacts = {a.path for a in client.list_artifacts(first.run_id, "tuning")}  # type: ignore[arg-type]
    assert "tuning/chosen_vs_defaults.png" in artifacts

    land(spec, "drifted.csv", churn(500, seed=3, drift=1.0))
    second = run_cycle(spec)
    assert second.status == "retuned"
    run = client.get_run(second.run_id)  # type: ignore[arg-type]
    assert run.data.params["warm_start_from"] == f"churn-{first.cycle_id}"
    assert run.data.metrics["n_warm_start"] == 2
    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{second.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    assert [c.data.tags["automl.is_warm_start"] for c in children[:3]] == ["true", "true", "false"]
    assert {"val_precision", "val_recall", "val_f1", "peak_memory_mb", "fit_gap"} <= set(
        children[0].data.metrics
    )
