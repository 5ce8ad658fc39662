from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from automl.cli import app

Churn = Callable[..., pd.DataFrame]
runner = CliRunner()


@pytest.fixture
def churn_csv(churn: Churn, tmp_path: Path) -> Path:
    path = tmp_path / "churn.csv"
    churn(300, seed=1).to_csv(path, index=False)
    return path


def test_tune_json_gives_a_loadable_model(churn_csv: Path, tmp_path: Path, churn: Churn) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = runner.invoke(
        app,
        [
            "tune",
            str(churn_csv),
            "--target",
            "churned",
            "--models",
            "xgboost,linear",
            "--trials",
            "4",
            "--cv",
            "2",
            "--seed",
            "1",
            "--tracking-uri",
            uri,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert {
        "best_model",
        "best_params",
        "cv_score",
        "metric",
        "n_trials",
        "model_uri",
        "run_id",
    } <= set(out)
    assert out["best_model"] in {"xgboost", "linear"} and out["metric"] == "roc_auc"
    assert out["n_trials"] == 4 and out["task"] == "classification"
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(out["model_uri"])
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    fresh = churn(20, seed=7).drop(columns="churned")
    fresh["contract"] = "ten-year"  # unseen category
    fresh.to_csv(tmp_path / "fresh.csv", index=False)
    rows = pd.read_csv(tmp_path / "fresh.csv")  # as a user reads it: support_calls is int64
    assert rows["support_calls"].dtype == "int64"
    assert len(model.predict(rows)) == 20


def test_tune_prints_a_summary_with_progress(churn_csv: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = runner.invoke(
        app,
        [
            *("tune", str(churn_csv), "--target", "monthly_charges", "--models", "linear"),
            *("--trials", "3", "--tracking-uri", uri),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best model" in result.stdout and "CV rmse" in result.stdout  # inferred regression
    assert "3/3" in result.stderr and "ETA" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "label"], "target column 'label' not in churn.csv"),
        (["--target", "churned", "--models", "catboost"], "unknown model family 'catboost'"),
        (["--target", "churned", "--strategy", "annealing"], "unknown tuning strategy"),
        (["--target", "churned", "--metric", "auc"], "unknown metric 'auc'"),
    ],
)
def test_tune_errors_are_one_line(
    churn_csv: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    result = runner.invoke(
        app, ["tune", str(churn_csv), *args, "--trials", "1", "--tracking-uri", uri]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert not (tmp_path / "m.db").exists()  # refused before any MLflow run was created
