"""The demo, end to end in a subprocess, checked through MLflow's own client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    ws = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "automl",
            "demo",
            "--workspace",
            str(ws),
            "--trials",
            "4",
            "--interval-s",
            "1",
            "--batches",
            "6",
            "--drift-at",
            "4",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mlflow ui --backend-store-uri sqlite:///" in proc.stdout
    assert "quarantined" in proc.stdout and "promoted" in proc.stdout

    client = MlflowClient(f"sqlite:///{ws / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("churn", "champion")
    run = client.get_run(champion.run_id)
    tuned = {k.removeprefix("best_") for k in run.data.params if k.startswith("best_")}
    assert {"learning_rate", "max_depth", "n_estimators"} <= tuned

    exp = client.get_experiment_by_name("automl/churn")
    runs = client.search_runs([exp.experiment_id], max_results=500)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} <= {p.info.run_id for p in parents}
    assert len(children) == 4 * 2  # two re-tunes (first champion, after drift), 4 trials each

    retuned_on: dict[str, bool] = {}
    for parent in parents:
        for name in parent.data.params["batch_files"].split(","):
            retuned_on[name] = "automl.model_version" in parent.data.tags
            if name == "batch_04.csv":
                assert parent.data.tags["automl.drift_verdict"] == "drift"
    assert retuned_on["batch_00_history.csv"] is True  # no champion yet
    assert [retuned_on[f"batch_{i:02d}.csv"] for i in (1, 2, 3)] == [False, False, False]
    assert retuned_on["batch_04.csv"] is True
    assert str(champion.version) == "2"

    quarantine = ws / "quarantine" / "churn"
    assert (quarantine / "batch_02b_broken.csv").exists()
    assert "schema change" in (quarantine / "batch_02b_broken.csv.reason.txt").read_text()

    # The second pipeline: labels land two batches after their rows; a confirmed drift waits
    # for them (waiting_for_labels), then re-tunes on labelled rows.
    assert "waiting_for_labels" in proc.stdout
    late = client.get_experiment_by_name("automl/churn_late")
    late_runs = client.search_runs([late.experiment_id], max_results=500)
    waited = [r for r in late_runs if "automl.waiting_for_labels" in r.data.tags]
    assert waited and all(r.data.tags["automl.drift_verdict"] == "drift" for r in waited)
    assert all("estimated_roc_auc" in r.data.metrics for r in waited)
    retune = client.get_model_version("churn_late", "2")
    assert retune.tags["automl.trigger"] == "drift"
