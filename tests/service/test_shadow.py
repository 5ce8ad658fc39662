"""Shadow mode: a challenger waits as @challenger, scored beside the champion on new batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automl.config import PipelineSpec
from automl.service import make_tracker, run_cycle
from automl.tracking import (
    CHALLENGER,
    CHAMPION,
    MlflowTracker,
    ModelVersionInfo,
    PromotionLog,
    ShadowState,
    ShadowStore,
    promote_version,
)
from automl.tuning import build_model
from tests.conftest import CATEGORICAL, NUMERIC, land, run_cycle_process

Churn = Callable[..., pd.DataFrame]
WEAK = {"n_estimators": 2, "max_depth": 1}
GOOD = {"n_estimators": 300, "learning_rate": 0.03, "max_depth": 2}
SHADOW = {
    "registry": {
        "shadow_batches": 2,
        "shadow_max_batches": 2,
        "promotion_margin": 0.0,
        "significance": {"test": "none"},
    },
    # No re-tune from these same-distribution batches: the test is about the shadow.
    "drift": {"hysteresis": {"confirm_checks": 5}},
}


def _register(
    tracker: MlflowTracker,
    spec: PipelineSpec,
    frame: pd.DataFrame,
    params: dict[str, Any],
    *,
    shuffle: bool = False,
) -> ModelVersionInfo:
    # Stored batches hold numbers as floats (ingest's canonical form), as the cycle's models see.
    frame = frame.astype(dict.fromkeys(NUMERIC, float))
    model = build_model(
        task="classification", numeric=NUMERIC, categorical=CATEGORICAL, params=params, seed=0
    )
    labels = frame["churned"].sample(frac=1.0, random_state=0).to_numpy() if shuffle else None
    model.fit(frame[NUMERIC + CATEGORICAL], labels if shuffle else frame["churned"])
    run_id = tracker.start_run("fit")
    uri = tracker.log_model(run_id, model, input_example=frame[NUMERIC + CATEGORICAL].head(3))
    tracker.end_run(run_id)
    return tracker.register(uri, spec.model_name, run_id=run_id)


def _setup(
    spec: PipelineSpec, churn: Churn, *, champion: dict[str, Any], challenger: dict[str, Any]
) -> tuple[str, str]:
    """History and a first cycle, then a hand-made champion and a challenger in shadow."""
    land(spec, "history.csv", churn(600, seed=1))
    assert run_cycle(spec).model_version == "1"
    tracker = make_tracker(spec)
    train = churn(800, seed=2)
    serving = _register(tracker, spec, train, champion, shuffle=champion is WEAK)
    waiting = _register(tracker, spec, train, challenger, shuffle=challenger is WEAK)
    promote_version(spec, tracker, PromotionLog(spec.state_url), version=serving.version)
    tracker.set_alias(spec.model_name, CHALLENGER, waiting.version)
    ShadowStore(spec.state_url).save(
        spec.name,
        ShadowState(version=waiting.version, champion_version=serving.version, started_cycle="t"),
    )
    return serving.version, waiting.version


def test_a_better_challenger_is_promoted_after_its_shadow_batches_across_a_restart(
    write_spec: Callable[..., PipelineSpec], churn: Churn, tmp_path: Path
) -> None:
    spec = write_spec(**SHADOW)
    serving, waiting = _setup(spec, churn, champion=WEAK, challenger=GOOD)
    tracker = make_tracker(spec)

    land(spec, "batch_1.csv", churn(400, seed=3))
    first = run_cycle(spec)
    assert (first.shadow_version, first.shadow_outcome, first.shadow_batches) == (
        waiting,
        "shadow",
        1,
    )
    assert tracker.get_alias(spec.model_name, CHAMPION).version == serving  # type: ignore[union-attr]
    stored = ShadowStore(spec.state_url).load(spec.name)
    assert stored is not None and len(stored.batches) == 1 and stored.batches[0].n_rows == 400
    assert stored.batches[0].challenger_score > stored.batches[0].champion_score

    # A new process (the service restarted) carries the shadow on from the state database.
    land(spec, "batch_2.csv", churn(400, seed=4))
    second = run_cycle_process(tmp_path / "churn.yaml")
    assert (second["shadow_outcome"], second["shadow_batches"]) == ("promoted", 2)
    assert tracker.get_alias(spec.model_name, CHAMPION).version == waiting  # type: ignore[union-attr]
    assert tracker.get_alias(spec.model_name, CHALLENGER) is None
    assert ShadowStore(spec.state_url).load(spec.name) is None
    last = PromotionLog(spec.state_url).entries(spec.name)[-1]
    assert (last.action, last.status, last.to_version) == ("promote", "applied", waiting)
    assert "in shadow (800 rows)" in (last.reason or "")


def test_a_challenger_without_credible_gain_is_dropped_after_the_most_batches(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(**SHADOW)
    serving, waiting = _setup(spec, churn, champion=GOOD, challenger=WEAK)
    tracker = make_tracker(spec)
    outcomes = []
    for n in (1, 2):
        land(spec, f"batch_{n}.csv", churn(400, seed=2 + n))
        outcomes.append(run_cycle(spec).shadow_outcome)
    assert outcomes == ["shadow", "rejected"]
    assert tracker.get_alias(spec.model_name, CHAMPION).version == serving  # type: ignore[union-attr]
    assert tracker.get_alias(spec.model_name, CHALLENGER) is None
    assert tracker.get_version(spec.model_name, waiting).tags["automl.decision"] == "rejected"
    actions = [(e.action, e.to_version) for e in PromotionLog(spec.state_url).entries(spec.name)]
    assert ("shadow_drop", waiting) in actions and ShadowStore(spec.state_url).load(
        spec.name
    ) is None


def test_a_retune_that_passes_the_holdout_gate_goes_to_shadow_not_to_champion(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(**SHADOW)
    land(spec, "history.csv", churn(600, seed=1))
    run_cycle(spec)
    tracker = make_tracker(spec)
    weak = _register(tracker, spec, churn(800, seed=2), WEAK, shuffle=True)
    promote_version(spec, tracker, PromotionLog(spec.state_url), version=weak.version)

    result = run_cycle(spec, force_retune=True)  # a tuned model beats shuffled-label stumps
    assert result.status == "retuned" and result.is_promoted is False
    assert tracker.get_alias(spec.model_name, CHAMPION).version == weak.version  # type: ignore[union-attr]
    assert tracker.get_alias(spec.model_name, CHALLENGER).version == result.model_version  # type: ignore[union-attr]
    stored = ShadowStore(spec.state_url).load(spec.name)
    assert stored is not None and stored.version == result.model_version
    assert tracker.get_version(spec.model_name, stored.version).tags["automl.decision"] == "shadow"
    assert PromotionLog(spec.state_url).entries(spec.name)[-1].action == "shadow"


def test_shadow_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="shadow_max_batches must be >= shadow_batches"):
        PipelineSpec.model_validate(
            {
                "name": "p",
                "data": {"landing_dir": "l", "target": "y"},
                "registry": {"shadow_batches": 3, "shadow_max_batches": 2},
            }
        )
