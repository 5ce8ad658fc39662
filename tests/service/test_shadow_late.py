"""Shadow mode with late labels: the challenger is judged on the rows that arrived after the
shadow started, as their labels come, on real files, a real SQLite state database and MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from automl.config import PipelineSpec, load_spec
from automl.data import BatchLedger, make_churn_frame, write_table
from automl.service import make_tracker, run_cycle
from automl.tracking import (
    CHALLENGER,
    CHAMPION,
    PromotionLog,
    ShadowState,
    ShadowStore,
    promote_version,
)
from tests.conftest import _merged, land, small_spec_dict
from tests.service.test_shadow import GOOD, WEAK, _register

ID = "customer_id"
SHADOW: dict[str, Any] = {
    "data": {"id_column": ID, "labels": {"landing_dir": "labels/churn"}},
    "training": {"min_labelled_rows": 150, "window": "recent"},
    "registry": {
        "shadow_batches": 2,
        "shadow_max_batches": 2,
        "promotion_margin": 0.0,
        "significance": {"test": "none"},
    },
    # No re-tune from these same-distribution batches: the tests are about the shadow.
    "drift": {"hysteresis": {"confirm_checks": 5}},
}


def rows(n: int, *, seed: int, start: int) -> pd.DataFrame:
    """Churn rows with ids ``c<start>..``, labels included."""
    frame = make_churn_frame(n, seed=seed)
    frame.insert(0, ID, [f"c{i}" for i in range(start, start + n)])
    return frame


@pytest.fixture
def late_spec(tmp_path: Path) -> Callable[..., PipelineSpec]:
    def _write(**overrides: Any) -> PipelineSpec:
        path = tmp_path / "churn.yaml"
        spec_dict = _merged(small_spec_dict("churn", **SHADOW), overrides)
        path.write_text(yaml.safe_dump(spec_dict), encoding="utf-8")
        spec = load_spec(path)
        assert spec.labels_landing_path is not None
        spec.labels_landing_path.mkdir(parents=True)
        return spec

    return _write


def land_batch(spec: PipelineSpec, name: str, frame: pd.DataFrame) -> None:
    """What the model scores: the rows without their labels."""
    land(spec, f"{name}.csv", frame.drop(columns=["churned"]))


def land_labels(spec: PipelineSpec, name: str, frame: pd.DataFrame) -> None:
    assert spec.labels_landing_path is not None
    write_table(frame[[ID, "churned"]], spec.labels_landing_path / f"{name}_labels.csv")


def _first_champion(spec: PipelineSpec) -> None:
    history = rows(600, seed=1, start=0)
    land_batch(spec, "history", history)
    land_labels(spec, "history", history)
    assert run_cycle(spec).model_version == "1"


def _hand_made_shadow(
    spec: PipelineSpec,
    *,
    champion: dict[str, Any],
    challenger: dict[str, Any],
    keeps_start: bool = True,
) -> tuple[str, str]:
    """A hand-made champion and a challenger in shadow from the newest accepted batch on
    (``keeps_start=False``: a state saved before the start was kept)."""
    tracker = make_tracker(spec)
    train = rows(800, seed=2, start=90_000).drop(columns=[ID])
    serving = _register(tracker, spec, train, champion, shuffle=champion is WEAK)
    waiting = _register(tracker, spec, train, challenger, shuffle=challenger is WEAK)
    promote_version(spec, tracker, PromotionLog(spec.state_url), version=serving.version)
    tracker.set_alias(spec.model_name, CHALLENGER, waiting.version)
    newest = max(r.id for r in BatchLedger(spec.state_url).records(spec.name, status="accepted"))
    ShadowStore(spec.state_url).save(
        spec.name,
        ShadowState(
            version=waiting.version,
            champion_version=serving.version,
            started_cycle="t",
            since_batch_id=newest if keeps_start else None,
        ),
    )
    return serving.version, waiting.version


@pytest.mark.slow
def test_a_shadow_waits_for_the_labels_of_its_batches_then_is_promoted_across_a_restart(
    late_spec: Callable[..., PipelineSpec], tmp_path: Path
) -> None:
    spec = late_spec()
    _first_champion(spec)
    tracker = make_tracker(spec)
    weak = _register(
        tracker, spec, rows(800, seed=2, start=0).drop(columns=[ID]), WEAK, shuffle=True
    )
    promote_version(spec, tracker, PromotionLog(spec.state_url), version=weak.version)

    # A re-tune that passes the holdout gate goes to shadow, from the newest batch on.
    tuned = run_cycle(spec, force_retune=True)
    assert tuned.status == "retuned" and tuned.is_promoted is False
    challenger = tuned.model_version
    assert tracker.get_alias(spec.model_name, CHALLENGER).version == challenger  # type: ignore[union-attr]
    shadows = ShadowStore(spec.state_url)
    started = shadows.load(spec.name)
    assert started is not None and started.version == challenger
    assert started.since_batch_id == 1  # the history batch: evidence is what comes after

    # Batches arrive without labels: nothing to judge on, the shadow waits.
    first, second = rows(400, seed=3, start=1000), rows(400, seed=4, start=2000)
    for name, frame in (("batch_1", first), ("batch_2", second)):
        land_batch(spec, name, frame)
        result = run_cycle(spec)
        assert result.shadow_outcome is None and result.status == "no_drift"
        assert tracker.get_alias(spec.model_name, CHAMPION).version == weak.version  # type: ignore[union-attr]
    waiting = shadows.load(spec.name)
    assert waiting is not None and waiting.batches == () and waiting.labelled == ()
    # Two batches arrived (shadow_max_batches), but their labels are not overdue: no drop.
    assert tracker.get_alias(spec.model_name, CHALLENGER).version == challenger  # type: ignore[union-attr]

    # Labels of the first batch come, and no batch: a cycle judges the shadow on them alone.
    land_labels(spec, "batch_1", first)
    partial = run_cycle(spec)
    assert (partial.shadow_version, partial.shadow_outcome, partial.shadow_batches) == (
        challenger,
        "shadow",
        1,
    )
    assert partial.labels_joined == 400 and partial.run_id is not None
    metrics = MlflowClient(spec.tracking_uri).get_run(partial.run_id).data.metrics
    assert (
        metrics["shadow_rows"] == 400
        and metrics["shadow_roc_auc"] > metrics["shadow_champion_roc_auc"]
    )
    scored = shadows.load(spec.name)
    assert scored is not None and len(scored.batches) == 1
    assert scored.labelled == ((2, 400),)
    assert tracker.get_alias(spec.model_name, CHAMPION).version == weak.version  # type: ignore[union-attr]

    # Nothing new: no run, nothing scored again.
    idle = run_cycle(spec)
    assert (idle.run_id, idle.shadow_outcome) == (None, None)

    # A new process (the service restarted) finds the shadow in the state database; the
    # labels of the second batch come and the gate passes over both batches together.
    land_labels(spec, "batch_2", second)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "automl", "run", str(tmp_path / "churn.yaml"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    last = json.loads(done.stdout)
    assert (last["shadow_outcome"], last["shadow_batches"]) == ("promoted", 2)
    assert tracker.get_alias(spec.model_name, CHAMPION).version == challenger  # type: ignore[union-attr]
    assert tracker.get_alias(spec.model_name, CHALLENGER) is None
    assert shadows.load(spec.name) is None
    entry = PromotionLog(spec.state_url).entries(spec.name)[-1]
    assert (entry.action, entry.status, entry.to_version) == ("promote", "applied", challenger)
    assert "over 2 labelled batch(es) of 2 in shadow (800 labelled rows)" in (entry.reason or "")


def test_a_late_shadow_without_credible_gain_is_dropped_once_its_batches_are_labelled(
    late_spec: Callable[..., PipelineSpec],
) -> None:
    spec = late_spec()
    _first_champion(spec)
    serving, waiting = _hand_made_shadow(spec, champion=GOOD, challenger=WEAK, keeps_start=False)
    tracker = make_tracker(spec)
    first, second = rows(400, seed=3, start=1000), rows(400, seed=4, start=2000)
    land_batch(spec, "batch_1", first)
    land_labels(spec, "batch_1", first)  # labelled in the cycle its rows arrive
    assert run_cycle(spec).shadow_outcome == "shadow"
    # A state without its start takes the batches checked before the cycle that found it.
    found = ShadowStore(spec.state_url).load(spec.name)
    assert found is not None and (found.since_batch_id, found.labelled) == (1, ((2, 400),))
    land_batch(spec, "batch_2", second)
    assert run_cycle(spec).shadow_outcome is None  # no labels yet: nothing new to judge
    land_labels(spec, "batch_2", second)
    dropped = run_cycle(spec)
    assert (dropped.shadow_outcome, dropped.shadow_batches) == ("rejected", 2)
    assert tracker.get_alias(spec.model_name, CHAMPION).version == serving  # type: ignore[union-attr]
    assert tracker.get_alias(spec.model_name, CHALLENGER) is None
    assert tracker.get_version(spec.model_name, waiting).tags["automl.decision"] == "rejected"
    assert ShadowStore(spec.state_url).load(spec.name) is None
    drop = [e for e in PromotionLog(spec.state_url).entries(spec.name) if e.action == "shadow_drop"]
    assert [e.to_version for e in drop] == [waiting]
    assert "no credible gain over 2 labelled batch(es) of 2" in (drop[0].reason or "")


def test_a_late_shadow_is_dropped_when_labels_stop_coming(
    late_spec: Callable[..., PipelineSpec],
) -> None:
    wait_s = 4.0
    spec = late_spec(data={"max_label_wait_s": wait_s})
    _first_champion(spec)
    serving, waiting = _hand_made_shadow(spec, champion=WEAK, challenger=GOOD)
    tracker = make_tracker(spec)
    for n in (1, 2):
        land_batch(spec, f"batch_{n}", rows(400, seed=2 + n, start=1000 * n))
        assert run_cycle(spec).shadow_outcome is None
    stored = ShadowStore(spec.state_url).load(spec.name)
    assert stored is not None and stored.version == waiting  # two batches came: still waiting

    # shadow_max_batches batches arrived and data.max_label_wait_s passed since the last one
    # without a label: the shadow ends even though no batch comes.
    time.sleep(wait_s + 1.0)
    ended = run_cycle(spec)
    assert ended.run_id is not None and ended.shadow_outcome is None
    assert ShadowStore(spec.state_url).load(spec.name) is None
    assert tracker.get_alias(spec.model_name, CHALLENGER) is None
    assert tracker.get_alias(spec.model_name, CHAMPION).version == serving  # type: ignore[union-attr]
    assert tracker.get_version(spec.model_name, waiting).tags["automl.decision"] == "rejected"
    last = PromotionLog(spec.state_url).entries(spec.name)[-1]
    assert (last.action, last.to_version) == ("shadow_drop", waiting)
    assert "no labels came for its rows over 0 labelled batch(es) of 2" in (last.reason or "")
    assert run_cycle(spec).run_id is None  # and it stays ended


def test_a_shadow_state_saved_before_late_labels_kept_its_start_still_loads() -> None:
    old = {"version": "3", "champion_version": "2", "started_cycle": "c", "started_at": "t"}
    state = ShadowState.from_json(json.dumps({**old, "batches": []}))
    assert (state.since_batch_id, state.labelled) == (None, ())
    again = ShadowState.from_json(
        ShadowState(
            version="3",
            champion_version="2",
            started_cycle="c",
            since_batch_id=4,
            labelled=((5, 7),),
        ).to_json()
    )
    assert (again.since_batch_id, again.labelled) == (4, ((5, 7),))
