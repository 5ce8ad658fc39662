from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from mlflow import MlflowClient

from automl.config import PipelineSpec
from automl.data import BatchLedger
from automl.errors import AutomlError
from automl.service import CycleHistory, run_cycle
from tests.conftest import land

Churn = Callable[..., pd.DataFrame]


@pytest.mark.slow
def test_cycle_trains_first_champion_ignores_noise_and_retunes_on_drift(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(drift={"html_report": "on_drift"})  # the default: evidently's HTML on drift
    client = MlflowClient(spec.tracking_uri)

    land(spec, "history.csv", churn(600, seed=1))
    first = run_cycle(spec)
    assert (first.status, first.drift_verdict, first.is_promoted) == (
        "retuned",
        "no_champion",
        True,
    )
    assert first.champion_version == first.model_version == "1"
    assert first.n_trials == 3 and first.best_cv_score >= first.default_cv_score  # type: ignore[operator]
    assert (spec.workspace_dir / "reference" / "churn" / "v1.parquet").exists()
    exp = client.get_experiment_by_name("automl/churn")
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert len(children) == 3
    assert {"cv_roc_auc", "cv_roc_auc_std", "train_roc_auc", "fit_time_s"} <= set(
        children[0].data.metrics
    )
    parent = client.get_run(first.run_id)  # type: ignore[arg-type]
    assert parent.info.status == "FINISHED"
    assert "best_max_depth" in parent.data.params and "best_cv_roc_auc" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}  # type: ignore[arg-type]
    assert {"trials.csv", "promotion.json"} <= artifacts
    version = client.get_model_version("churn", "1")
    assert version.tags["automl.decision"] == "promoted"
    assert version.tags["automl.pipeline"] == "churn"

    assert run_cycle(spec).status == "no_data"  # nothing new: no run, no version

    land(spec, "normal.csv", churn(300, seed=2))
    calm = run_cycle(spec)
    assert (calm.status, calm.drift_verdict, calm.model_version) == ("no_drift", "ok", None)
    assert (spec.workspace_dir / "reports" / "churn" / calm.cycle_id / "drift.json").exists()
    assert not (spec.workspace_dir / "reports" / "churn" / calm.cycle_id / "drift.html").exists()

    land(spec, "drifted.csv", churn(500, seed=3, drift=1.0))
    drifted = run_cycle(spec)
    assert (drifted.status, drifted.drift_verdict) == ("retuned", "drift")
    assert drifted.model_version == "2"
    assert drifted.is_promoted and drifted.champion_version == "2"
    assert drifted.challenger_score > drifted.champion_score  # type: ignore[operator]
    assert (spec.workspace_dir / "reports" / "churn" / drifted.cycle_id / "drift.html").exists()
    assert str(client.get_model_version_by_alias("churn", "previous-champion").version) == "1"
    drift_artifacts = {a.path for a in client.list_artifacts(drifted.run_id)}  # type: ignore[arg-type]
    assert {"drift.json", "drift.html"} <= drift_artifacts

    assert BatchLedger(spec.state_url).pending("churn") == []
    statuses = [r.status for r in CycleHistory(spec.state_url).list("churn")]
    assert statuses == ["retuned", "no_drift", "no_data", "retuned"]


@pytest.mark.slow
def test_unreachable_mlflow_fails_the_cycle_and_keeps_the_batch(
    write_spec: Callable[..., PipelineSpec], churn: Churn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    spec = write_spec(mlflow={"tracking_uri": "http://127.0.0.1:9"})  # nothing listens there
    land(spec, "history.csv", churn(400, seed=1))
    with pytest.raises(AutomlError, match=r"127\.0\.0\.1:9"):
        run_cycle(spec)
    failed = CycleHistory(spec.state_url).last("churn")
    assert (
        failed is not None and failed.status == "failed" and "127.0.0.1:9" in (failed.error or "")
    )
    assert [r.file_name for r in BatchLedger(spec.state_url).pending("churn")] == ["history.csv"]

    # The dependency is back: the kept batch is processed by the next cycle.
    healthy = spec.model_copy(
        update={"mlflow": spec.mlflow.model_copy(update={"tracking_uri": None})}
    )
    healthy = healthy.with_base_dir(spec.base_dir)
    assert run_cycle(healthy).status == "retuned"
    assert BatchLedger(spec.state_url).pending("churn") == []


@pytest.mark.slow
def test_forced_retune_runs_without_drift_and_is_idempotent_without_new_data(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(registry={"significance": {"test": "none"}})
    land(spec, "history.csv", churn(500, seed=1))
    assert run_cycle(spec).model_version == "1"
    same = run_cycle(spec, force_retune=True)  # nothing new: the same window, the same model
    assert (same.status, same.drift_verdict, same.model_version, same.n_trials) == (
        "retuned",
        "scheduled",
        "1",
        0,
    )
    land(spec, "calm.csv", churn(300, seed=2))
    forced = run_cycle(spec, force_retune=True)
    assert (forced.status, forced.drift_verdict, forced.model_version) == ("retuned", "ok", "2")
    assert forced.n_trials == 3 and forced.is_promoted is not None
