"""The specs shipped in pipelines/ are valid, and the regression one runs a real cycle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from automl.config import load_spec, load_specs
from automl.service import run_cycle

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


def test_shipped_specs_are_valid() -> None:
    specs = load_specs(PIPELINES)
    assert {s.name for s in specs} == {"churn", "diabetes"}
    assert {s.data.task for s in specs} == {"classification", "regression"}


@pytest.mark.slow
def test_diabetes_regression_pipeline_runs_a_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "pipelines"
    shutil.copytree(PIPELINES, folder)
    spec_file = folder / "diabetes.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["tuning"]["n_trials"] = 3
    spec_file.write_text(yaml.safe_dump(raw))
    import runpy

    runpy.run_path(str(folder / "make_data.py"), run_name="not_main")["diabetes"](3)
    result = run_cycle(load_spec(spec_file))
    assert result.status == "retuned" and result.metric == "rmse"
    assert result.best_cv_score is not None and 40 < result.best_cv_score < 80  # target std is 77
    assert (tmp_path / "workspace" / "mlflow.db").exists()
