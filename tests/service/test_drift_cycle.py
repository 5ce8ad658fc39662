"""The cycle decides with the drift policy and the persisted hysteresis state."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import pytest
from mlflow import MlflowClient

from automl.config import PipelineSpec
from automl.data import BatchLedger
from automl.drift import REFERENCE_CACHE, DriftState, DriftStateStore
from automl.service import CycleHistory, run_cycle
from tests.conftest import land

Churn = Callable[..., pd.DataFrame]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_state_store_roundtrip_per_pipeline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = DriftStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.load("a") == DriftState()
    state = DriftState(reference_version="2", recent=((True, 5),), level="warning", n_checks=3)
    store.save("a", state)
    store.save("a", state)  # replaces, does not duplicate
    assert store.load("a") == state and store.load("b") == DriftState()


def _drift_json(spec: PipelineSpec, cycle_id: str) -> dict:
    path = spec.workspace_dir / "reports" / spec.name / cycle_id / "drift.json"
    return json.loads(path.read_text())


@pytest.mark.slow
def test_confirmation_window_start_and_rebase_after_promotion(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    # html_report "never": evidently's HTML costs seconds; on_drift is covered in test_cycle.
    # The drift rule before issue 11, pinned: c.csv's contract mix is 2.9 sd off its generator's,
    # which the any-column default rightly flags (a 1-in-20 event); this test is about the state.
    spec = write_spec(
        drift={
            "hysteresis": {"confirm_checks": 2},
            "html_report": "never",
            "drift_share": 0.5,
            "correction": "bh",
            "tests": "evidently",
        }
    )
    store = DriftStateStore(spec.state_url)
    land(spec, "history.csv", churn(600, seed=1))
    assert run_cycle(spec).drift_verdict == "no_champion"
    assert store.load("churn").reference_version == "1"

    land(spec, "a.csv", churn(300, seed=2, drift=1.0))
    misses, hits = REFERENCE_CACHE.misses, REFERENCE_CACHE.hits
    first = run_cycle(spec)
    assert (first.status, first.drift_verdict, first.model_version) == ("no_drift", "warning", None)
    report = _drift_json(spec, first.cycle_id)
    assert report["drift_detected"] is True and report["state"] == "warning"
    assert "1 of 2 needed" in report["state_reason"]
    assert not (spec.workspace_dir / "reports" / "churn" / first.cycle_id / "drift.html").exists()

    land(spec, "b.csv", churn(300, seed=3, drift=1.0))
    second = run_cycle(spec)
    assert (second.status, second.drift_verdict, second.is_promoted) == ("retuned", "drift", True)
    # The champion's reference was prepared once for both checks.
    assert (REFERENCE_CACHE.misses - misses, REFERENCE_CACHE.hits - hits) == (1, 1)
    # The training window starts at the first drifted batch (a.csv), not at b.csv.
    version = MlflowClient(spec.tracking_uri).get_model_version("churn", second.model_version)
    assert version.tags["automl.window"].startswith(f"{int(600 * 0.75)} rows received ")
    state = store.load("churn")
    assert (state.reference_version, state.recent, state.checks_since_retune) == ("2", (), 0)

    # Rebased: the drifted world is now the reference, so more of it is not drift.
    land(spec, "c.csv", churn(300, seed=4, drift=1.0))
    third = run_cycle(spec)
    assert (third.status, third.drift_verdict) == ("no_drift", "ok")
    assert REFERENCE_CACHE.misses - misses == 2  # the new champion's reference
    assert CycleHistory(spec.state_url).last("churn", checked=True).drift_verdict == "ok"  # type: ignore[union-attr]
    assert BatchLedger(spec.state_url).pending("churn") == []


@pytest.mark.slow
def test_cooldown_and_champion_signals(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(
        drift={
            "policy": "weighted",
            "target_drift": True,
            "prediction_drift": True,
            "performance_tolerance": 0.0,
            "html_report": "never",
            "hysteresis": {"cooldown_s": 3600},
        }
    )
    land(spec, "history.csv", churn(600, seed=1))
    run_cycle(spec)
    land(spec, "drifted.csv", churn(400, seed=5, drift=1.0))
    result = run_cycle(spec)
    # Drift is confirmed, but the first champion was trained moments ago: no second re-tune.
    assert (result.status, result.drift_verdict, result.model_version) == (
        "no_drift",
        "warning",
        None,
    )
    report = _drift_json(spec, result.cycle_id)
    assert report["drift_detected"] is True and "cool-down" in report["state_reason"]
    assert not (spec.workspace_dir / "reports" / "churn" / result.cycle_id / "drift.html").exists()
    assert report["policy"] == "weighted" and sum(report["weights"].values()) == pytest.approx(1.0)
    assert report["weights"]["monthly_charges"] > 0
    signals = {s["name"]: s for s in report["signals"]}
    assert set(signals) == {"data", "target", "prediction", "performance"}
    assert signals["performance"]["method"] == "roc_auc"
    assert signals["prediction"]["drifted"] is True  # fibre/month-to-month customers score higher
    run = MlflowClient(spec.tracking_uri).get_run(result.run_id)  # type: ignore[arg-type]
    assert run.data.tags["automl.drift_verdict"] == "warning"
    assert run.data.tags["automl.drift_check"] == "drift"
