"""The commands people wait for import only what they need (speed is measured in
``benchmarks/cli_latency.py``, not asserted here): ``status`` and ``history`` answer from the
state database, ``predict`` scores from its copy of the version, without MLflow."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automl.config import PipelineSpec
from automl.data import BatchLedger, coerce_features, infer_schema
from automl.service import make_tracker
from automl.service._champion import model_copy_dir, serving_champion
from automl.tracking import CHAMPION, PromotionLog, move_logged, predict_frame
from automl.tuning import build_model
from tests.cli.imports import run_automl_importtime
from tests.conftest import CATEGORICAL, NUMERIC

Churn = Callable[..., pd.DataFrame]
#: Libraries no quick command needs (``predict`` needs pandas and the model's own).
NEVER = {"evidently", "optuna", "apscheduler", "matplotlib"}
NO_MODEL = NEVER | {"mlflow", "pandas", "numpy", "scipy", "sklearn", "xgboost", "pyarrow"}


def _automl(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    return run_automl_importtime(*args, cwd=cwd)


def _register(spec: PipelineSpec, frame: pd.DataFrame) -> tuple[Any, str]:
    """Fit a small model on ``frame`` and register it; return it and its version."""
    schema = BatchLedger(spec.state_url).save_schema(
        spec.name, infer_schema(frame, target="churned", task="classification")
    )
    rows = coerce_features(frame, schema, source="train")
    model = build_model(
        task="classification",
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        params={"n_estimators": 20, "max_depth": 2},
        seed=0,
    ).fit(rows, frame["churned"])
    tracker = make_tracker(spec)
    run_id = tracker.start_run("fit")
    uri = tracker.log_model(run_id, model, input_example=frame[schema.feature_names].head(3))
    tracker.end_run(run_id)
    return model, tracker.register(uri, spec.model_name, run_id=run_id).version


def _champion_v1(spec: PipelineSpec, frame: pd.DataFrame) -> Any:
    """Register a model as v1 and promote it the way the cycle does (a logged move)."""
    model, version = _register(spec, frame)
    move_logged(
        spec,
        make_tracker(spec),
        PromotionLog(spec.state_url),
        action="promote",
        to_version=version,
        from_version=None,
        reason="test",
        actor="test",
    )
    return model


@pytest.mark.slow
def test_status_history_and_predict_import_only_what_they_need(
    write_spec: Callable[..., PipelineSpec], churn: Churn, tmp_path: Path
) -> None:
    spec = write_spec()
    spec_file = str(spec.base_dir / "churn.yaml")
    model = _champion_v1(spec, churn(300, seed=1))

    status, imported = _automl("status", spec_file, "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)[0]["champion_version"] == "1"  # flushed before exit
    assert not imported & NO_MODEL, sorted(imported & NO_MODEL)

    history, imported = _automl("history", spec_file, "--json", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    assert [e["status"] for e in json.loads(history.stdout)] == ["intent", "applied"]
    assert not imported & NO_MODEL, sorted(imported & NO_MODEL)

    fresh = churn(60, seed=5).drop(columns="churned")
    fresh.to_csv(tmp_path / "new.csv", index=False)
    first, imported = _automl("predict", spec_file, str(tmp_path / "new.csv"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "mlflow" in imported  # the first predict of a version downloads it
    assert (model_copy_dir(spec, "1") / "MLmodel").is_file()
    again, imported = _automl("predict", spec_file, str(tmp_path / "new.csv"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert not imported & (NEVER | {"mlflow"}), sorted(imported & (NEVER | {"mlflow"}))
    assert again.stdout == first.stdout
    schema = BatchLedger(spec.state_url).get_schema(spec.name)
    assert schema is not None
    expected = predict_frame(model, coerce_features(fresh, schema, source="x"), with_proba=True)
    scored = pd.read_csv(io.StringIO(again.stdout))
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert (scored["proba_1"] - expected["proba_1"]).abs().max() < 1e-9


@pytest.mark.slow
def test_promote_and_rollback_need_mlflow_but_nothing_of_the_cycle(
    write_spec: Callable[..., PipelineSpec], churn: Churn, tmp_path: Path
) -> None:
    spec = write_spec()
    spec_file = str(spec.base_dir / "churn.yaml")
    _champion_v1(spec, churn(300, seed=1))
    refused, imported = _automl("rollback", spec_file, cwd=tmp_path)
    assert refused.returncode == 1  # an error still ends as one line and exit code 1
    assert refused.stderr.strip() == (
        "error: model 'churn' has no @previous-champion; pass --version N"
    )
    assert "mlflow" in imported and not imported & (NEVER | {"xgboost"})
    _register(spec, churn(300, seed=2))
    promoted, imported = _automl("promote", spec_file, "--version", "2", cwd=tmp_path)
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.strip() == "churn: @champion is now v2 (v1 is @previous-champion)"
    assert not imported & (NEVER | {"xgboost"})
    status, _ = _automl("status", spec_file, "--json", cwd=tmp_path)
    assert json.loads(status.stdout)[0]["champion_version"] == "2"
    back, _ = _automl("rollback", spec_file, cwd=tmp_path)
    assert back.stdout.strip() == "churn: @champion rolled back from v2 to v1"
    champion = serving_champion(spec)
    assert champion is not None and champion.version == "1"
    registry = make_tracker(spec).get_alias(spec.model_name, CHAMPION)
    assert registry is not None and registry.version == "1"


def test_status_asks_the_registry_only_when_the_log_cannot_know(
    write_spec: Callable[..., PipelineSpec],
) -> None:
    spec = write_spec()
    log = PromotionLog(spec.state_url)
    assert serving_champion(spec) is None  # nothing logged, no cycle: no MLflow either
    common: dict[str, Any] = {"pipeline": spec.name, "model_name": spec.model_name, "actor": "t"}
    intent = log.append(action="promote", status="intent", to_version="3", **common)
    log.append(action="promote", status="applied", intent_id=intent, to_version="3", **common)
    champion = serving_champion(spec)
    assert champion is not None
    assert (champion.version, champion.answered_by) == ("3", "promotion_log")
    # A move a crash left open: only the registry knows, and it names no champion.
    log.append(action="rollback", status="intent", to_version="2", **common)
    assert serving_champion(spec) is None
    assert make_tracker(spec).get_alias(spec.model_name, CHAMPION) is None
