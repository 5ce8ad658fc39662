"""The gate's old-population guardrail: a challenger that wins on the newest rows must not serve
the population the champion serves worse (issue 11)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from automl.config import PipelineSpec
from automl.service import make_tracker, open_workspace, run_cycle
from automl.service._record import HOLDOUT_STORED
from automl.service._steps import champion_holdout
from automl.tracking import CHAMPION, PromotionLog, promote_version
from automl.tuning import build_model
from tests.conftest import CATEGORICAL, NUMERIC, land, run_cycle_process

Churn = Callable[..., pd.DataFrame]
#: The gate on the new holdout passes any improvement (no margin, no significance test), so
#: what refuses a challenger in these tests is the old-population guardrail alone.
GUARDED = {
    "registry": {
        "promotion_margin": 0.0,
        "significance": {"test": "none"},
        "old_population": {"max_regression": 0.01},
    },
}


def _guardrail(decision: dict[str, object]) -> dict[str, object]:
    gate = decision["gate"]
    assert isinstance(gate, dict)
    (check,) = (g for g in gate["guardrails"] if g["metric"] == "old_population_roc_auc")
    return dict(check)


def _decision(spec: PipelineSpec, run_id: str) -> dict[str, object]:
    tracker = make_tracker(spec)
    path = tracker.download_artifact(run_id, "promotion.json", spec.workspace_dir)
    return dict(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.slow
def test_a_challenger_tuned_on_a_shifted_batch_that_serves_the_old_population_worse_is_refused(
    write_spec: Callable[..., PipelineSpec], churn: Churn, tmp_path: Path
) -> None:
    spec = write_spec(**GUARDED)
    land(spec, "history.csv", churn(800, seed=1))
    first = run_cycle(spec)
    assert first.champion_version == "1"

    # The stored holdout is read back from MLflow by a fresh workspace (a restarted service).
    tracker = make_tracker(spec)
    champion = tracker.get_alias(spec.model_name, CHAMPION)
    assert champion is not None and champion.tags[HOLDOUT_STORED] == "200"
    ws = open_workspace(spec)
    schema = ws.ledger.get_schema(spec.name)
    assert schema is not None
    stored = champion_holdout(ws, schema, champion)
    assert stored is not None and stored.rows is not None and len(stored.rows) == 200
    assert set(stored.rows.columns) == {*NUMERIC, *CATEGORICAL, "churned"}

    # The next cycle runs in another process: all it knows of v1's holdout is in MLflow.
    land(spec, "shifted.csv", churn(600, seed=3, drift=1.0))
    shifted = run_cycle_process(tmp_path / "churn.yaml")
    assert (shifted["status"], shifted["drift_verdict"]) == ("retuned", "drift")
    # It won on the newest rows (trained on the shifted batch alone) ...
    assert shifted["challenger_score"] > shifted["champion_score"]
    # ... and is refused because it serves the old population worse.
    assert (shifted["is_promoted"], shifted["champion_version"]) == (False, "1")
    decision = _decision(spec, shifted["run_id"])
    check = _guardrail(decision)
    assert check["passed"] is False and check["skipped"] is False
    assert check["champion_value"] - check["challenger_value"] > 0.01  # type: ignore[operator]
    assert "200 of the 200 stored holdout rows of champion v1" in str(check["note"])
    assert "guardrail old_population_roc_auc" in str(decision["reason"])
    version = tracker.get_version(spec.model_name, "2")
    assert version.tags["automl.decision"] == "rejected"
    assert "old_population_roc_auc" in json.dumps(decision["gate"])
    (entry,) = [e for e in PromotionLog(spec.state_url).entries(spec.name) if e.to_version == "2"]
    assert entry.action == "reject" and "guardrail old_population_roc_auc" in str(entry.reason)


@pytest.mark.slow
def test_a_challenger_no_worse_on_the_old_population_is_promoted(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(**GUARDED, training={"window": "recent"})
    land(spec, "history.csv", churn(400, seed=1))
    assert run_cycle(spec).champion_version == "1"

    # More rows of the same population: a re-tune on them serves everybody at least as well.
    land(spec, "more.csv", churn(1600, seed=4))
    more = run_cycle(spec, force_retune=True)
    assert (more.status, more.is_promoted, more.champion_version) == ("retuned", True, "2")
    check = _guardrail(_decision(spec, more.run_id))  # type: ignore[arg-type]
    assert check["passed"] is True and check["skipped"] is False
    assert check["challenger_value"] >= check["champion_value"] - 0.01  # type: ignore[operator]
    # v1's holdout was kept out of v2's training: all of it judged v2.
    assert "100 of the 100 stored holdout rows of champion v1" in str(check["note"])
    tags = make_tracker(spec).get_version(spec.model_name, "2").tags
    assert tags["automl.decision"] == "promoted" and tags[HOLDOUT_STORED] == "500"


@pytest.mark.slow
def test_a_champion_registered_without_a_stored_holdout_skips_the_guardrail_with_the_reason(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(**GUARDED)
    land(spec, "history.csv", churn(600, seed=1))
    assert run_cycle(spec).champion_version == "1"
    # A champion registered before holdouts were stored with each version: no tag, no file.
    tracker = make_tracker(spec)
    frame = churn(600, seed=2).astype(dict.fromkeys(NUMERIC, float))
    model = build_model(
        task="classification", numeric=NUMERIC, categorical=CATEGORICAL, params={}, seed=0
    ).fit(frame[NUMERIC + CATEGORICAL], frame["churned"])
    run_id = tracker.start_run("an older automl")
    uri = tracker.log_model(run_id, model, input_example=frame[NUMERIC + CATEGORICAL].head(3))
    tracker.end_run(run_id)
    old = tracker.register(uri, spec.model_name, run_id=run_id)
    promote_version(spec, tracker, PromotionLog(spec.state_url), version=old.version)

    land(spec, "shifted.csv", churn(600, seed=3, drift=1.0))
    shifted = run_cycle(spec)
    assert (shifted.status, shifted.drift_verdict) == ("retuned", "drift")
    assert shifted.is_promoted and shifted.champion_version == "3"
    decision = _decision(spec, shifted.run_id)  # type: ignore[arg-type]
    check = _guardrail(decision)
    assert check["skipped"] is True and check["passed"] is True
    assert "champion v2 has no stored holdout" in str(check["note"])
    assert "old-population guardrail skipped: champion v2 has no stored holdout" in str(
        decision["reason"]
    )
