"""The promotion gate, manual approval, rollback, the log, atomicity, idempotence, webhooks."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from automl.cli import app
from automl.config import PipelineSpec
from automl.data import BatchLedger, Schema, infer_schema, validate_batch
from automl.errors import TrackingError
from automl.service import judge, make_tracker, open_workspace, promote, rollback, run_cycle
from automl.tracking import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    MlflowTracker,
    ModelVersionInfo,
    PromotionLog,
    reconcile,
)
from automl.tracking import move_logged as _move
from automl.tuning import build_model
from tests.conftest import CATEGORICAL, NUMERIC, land

Churn = Callable[..., pd.DataFrame]
runner = CliRunner()
WEAK = {"n_estimators": 2, "max_depth": 1}  # fit on shuffled labels below: AUC about 0.5
GOOD = {"n_estimators": 300, "learning_rate": 0.03, "max_depth": 2}  # AUC about 0.76


def _register(
    tracker: MlflowTracker, spec: PipelineSpec, frame: pd.DataFrame, params: dict[str, Any]
) -> ModelVersionInfo:
    model = build_model(
        task="classification", numeric=NUMERIC, categorical=CATEGORICAL, params=params, seed=0
    )
    model.fit(frame[NUMERIC + CATEGORICAL], frame["churned"])
    run_id = tracker.start_run("fit")
    uri = tracker.log_model(run_id, model, input_example=frame[NUMERIC + CATEGORICAL].head(3))
    tracker.end_run(run_id)
    return tracker.register(uri, spec.model_name, run_id=run_id)


def _judge(spec: PipelineSpec, version: ModelVersionInfo, holdout: pd.DataFrame, schema: Schema):  # type: ignore[no-untyped-def]
    ws = open_workspace(spec)
    champion = ws.tracker.get_alias(spec.model_name, CHAMPION)
    decision = judge(ws, schema, version, champion, holdout)
    promote(ws, decision, "c")
    return decision


def _register_as_before(
    tracker: MlflowTracker, spec: PipelineSpec, frame: pd.DataFrame, params: dict[str, Any]
) -> ModelVersionInfo:
    """A version logged the way automl did before signatures described the rows as sent:
    ``mlflow.sklearn`` only, every numeric column ``double``."""
    import mlflow
    from mlflow.models import infer_signature

    from automl.tracking._mlflow import _global_uri

    rows = frame[NUMERIC + CATEGORICAL].astype(dict.fromkeys(NUMERIC, "float64"))
    model = build_model(
        task="classification", numeric=NUMERIC, categorical=CATEGORICAL, params=params, seed=0
    ).fit(rows, frame["churned"])
    run_id = tracker.start_run("before")
    with _global_uri(tracker.tracking_uri), mlflow.start_run(run_id=run_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(rows, model.predict(rows)),
            serialization_format="cloudpickle",
        )
    tracker.end_run(run_id)
    return tracker.register(info.model_uri, spec.model_name, run_id=run_id)


@pytest.fixture
def data(churn: Churn) -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    train, holdout = churn(800, seed=1), churn(400, seed=2)
    return train, holdout, infer_schema(train, target="churned", task="classification")


def test_better_challenger_is_promoted_equal_one_rejected_all_logged(
    write_spec: Callable[..., PipelineSpec], data: tuple[pd.DataFrame, pd.DataFrame, Schema]
) -> None:
    train, holdout, schema = data
    spec = write_spec()
    tracker = make_tracker(spec)
    v1 = _register(tracker, spec, train, WEAK)
    first = _judge(spec, v1, holdout, schema)
    assert first.is_promoted and first.reason == "no champion yet"

    v2 = _register(tracker, spec, train, GOOD)
    second = _judge(spec, v2, holdout, schema)
    assert second.is_promoted, second.reason
    assert second.gate is not None and second.gate.ci_low is not None and second.gate.ci_low > 0
    assert tracker.get_alias(spec.model_name, CHAMPION).version == v2.version  # type: ignore[union-attr]
    assert tracker.get_alias(spec.model_name, PREVIOUS_CHAMPION).version == v1.version  # type: ignore[union-attr]
    tags = tracker.get_version(spec.model_name, v2.version).tags
    assert tags["automl.decision"] == "promoted" and "gain 95% CI [+" in tags["automl.score"]

    v3 = _register(tracker, spec, train, GOOD)  # the same model again: no real improvement
    third = _judge(spec, v3, holdout, schema)
    assert not third.is_promoted and "below margin" in third.reason
    assert tracker.get_alias(spec.model_name, CHAMPION).version == v2.version  # type: ignore[union-attr]
    assert tracker.get_alias(spec.model_name, CHALLENGER).version == v3.version  # type: ignore[union-attr]

    log = PromotionLog(spec.state_url).entries(spec.name)
    assert [(e.action, e.status, e.to_version) for e in log] == [
        ("promote", "intent", "1"),
        ("promote", "applied", "1"),
        ("promote", "intent", "2"),
        ("promote", "applied", "2"),
        ("reject", "recorded", "3"),
    ]
    assert log[-1].champion_score is not None and log[-1].actor == "service"
    result = runner.invoke(app, ["history", str(spec.base_dir / "churn.yaml")])
    assert result.exit_code == 0 and "reject" in result.output and "applied" in result.output


def test_guardrail_rejects_a_better_but_slower_model(
    write_spec: Callable[..., PipelineSpec], data: tuple[pd.DataFrame, pd.DataFrame, Schema]
) -> None:
    train, holdout, schema = data
    spec = write_spec(registry={"guardrails": [{"metric": "model_size_mb", "max_ratio": 1.0}]})
    tracker = make_tracker(spec)
    _judge(spec, _register(tracker, spec, train, WEAK), holdout, schema)
    bigger = _register(tracker, spec, train, GOOD)
    decision = _judge(spec, bigger, holdout, schema)
    assert not decision.is_promoted
    assert decision.gate is not None and decision.gate.passes_margin and decision.gate.is_credible
    assert "guardrail model_size_mb" in decision.reason


def test_manual_approval_then_promote_then_rollback_by_cli(
    write_spec: Callable[..., PipelineSpec], data: tuple[pd.DataFrame, pd.DataFrame, Schema]
) -> None:
    train, holdout, schema = data
    spec = write_spec(registry={"approval": "manual"})
    spec_file = str(spec.base_dir / "churn.yaml")
    tracker = make_tracker(spec)
    v1 = _register(tracker, spec, train, WEAK)
    waiting = _judge(spec, v1, holdout, schema)
    assert waiting.awaiting_approval and not waiting.is_promoted
    assert tracker.get_alias(spec.model_name, CHAMPION) is None
    assert tracker.get_alias(spec.model_name, CHALLENGER).version == "1"  # type: ignore[union-attr]

    assert runner.invoke(app, ["promote", spec_file]).exit_code == 0
    assert tracker.get_alias(spec.model_name, CHAMPION).version == "1"  # type: ignore[union-attr]
    v2 = _register(tracker, spec, train, GOOD)
    assert _judge(spec, v2, holdout, schema).outcome == "awaiting_approval"
    result = runner.invoke(app, ["promote", spec_file, "--version", "2"])
    assert result.exit_code == 0 and "@champion is now v2" in result.output
    assert tracker.get_version(spec.model_name, "2").tags["automl.approved_by"].endswith("@cli")

    again = runner.invoke(app, ["promote", spec_file, "--version", "2"])
    assert again.exit_code == 1 and "already the champion" in again.output

    back = runner.invoke(app, ["rollback", spec_file])
    assert back.exit_code == 0 and "from v2 to v1" in back.output
    assert tracker.get_alias(spec.model_name, CHAMPION).version == "1"  # type: ignore[union-attr]
    assert tracker.get_alias(spec.model_name, PREVIOUS_CHAMPION).version == "2"  # type: ignore[union-attr]
    rollback(spec)  # and forward again
    assert tracker.get_alias(spec.model_name, CHAMPION).version == "2"  # type: ignore[union-attr]
    rollback(spec, version="1")
    assert tracker.get_alias(spec.model_name, CHAMPION).version == "1"  # type: ignore[union-attr]
    with pytest.raises(TrackingError, match="no version 9"):
        rollback(spec, version="9")

    actions = [(e.action, e.status) for e in PromotionLog(spec.state_url).entries(spec.name)]
    assert actions.count(("manual_promote", "applied")) == 2
    assert actions.count(("rollback", "applied")) == 3
    history = json.loads(runner.invoke(app, ["history", spec_file, "--json"]).output)
    assert {h["actor"] for h in history if h["action"] == "rollback"} == {history[-1]["actor"]}


class _FailingTracker(MlflowTracker):
    """The registry goes away exactly when @champion is about to move."""

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        if alias == CHAMPION:
            raise ConnectionError("registry unreachable")
        super().set_alias(model_name, alias, version)


def test_failure_between_registering_and_moving_aliases_keeps_the_old_champion(
    write_spec: Callable[..., PipelineSpec], data: tuple[pd.DataFrame, pd.DataFrame, Schema]
) -> None:
    train, holdout, schema = data
    spec = write_spec()
    tracker = make_tracker(spec)
    _judge(spec, _register(tracker, spec, train, WEAK), holdout, schema)
    v2 = _register(tracker, spec, train, GOOD)
    failing = _FailingTracker(spec.tracking_uri, spec.experiment_name)
    audit = PromotionLog(spec.state_url)
    ws = replace(open_workspace(spec), tracker=failing, promotions=audit)
    with pytest.raises(TrackingError, match="@champion is v1"):
        champion = tracker.get_alias(spec.model_name, CHAMPION)
        promote(ws, judge(ws, schema, v2, champion, holdout), "c2")
    assert tracker.get_alias(spec.model_name, CHAMPION).version == "1"  # type: ignore[union-attr]
    last = audit.entries(spec.name)[-1]
    assert (last.action, last.status, last.to_version) == ("promote", "aborted", "2")
    assert "champion is v1" in (last.reason or "")

    # A crash (kill -9) between the intent and the move leaves an open intent: reconciled
    # from the registry on the next command or cycle.
    audit.append(
        pipeline=spec.name,
        model_name=spec.model_name,
        action="promote",
        status="intent",
        actor="service",
        from_version="1",
        to_version="2",
    )
    assert audit.open_intents(spec.name)
    reconcile(spec, tracker, audit)
    closing = audit.entries(spec.name)[-1]
    assert (closing.status, closing.actor) == ("aborted", "reconcile") and not audit.open_intents(
        spec.name
    )
    _move(
        spec,
        tracker,
        audit,
        action="promote",
        to_version="2",
        from_version="1",
        reason="retry",
        actor="t",
    )
    assert tracker.get_alias(spec.model_name, CHAMPION).version == "2"  # type: ignore[union-attr]


@pytest.mark.slow
def test_rerunning_a_cycle_on_the_same_window_registers_nothing_new(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec()
    land(spec, "history.csv", churn(500, seed=1))
    first = run_cycle(spec)
    assert first.model_version == "1"
    # A crash after registering v1, before @champion moved and the batches were marked:
    # the next cycle sees the same batches again and no champion.
    tracker = make_tracker(spec)
    tracker.delete_alias(spec.model_name, CHAMPION)
    with BatchLedger(spec.state_url)._engine.begin() as conn:
        conn.execute(sa.text("UPDATE automl_batches SET cycle_id = NULL"))
    again = run_cycle(spec)
    assert again.status == "retuned" and again.model_version == "1" and again.n_trials == 0
    assert again.is_promoted and again.champion_version == "1"
    assert [
        v.version
        for v in tracker.find_versions(spec.model_name, tag="automl.pipeline", value="churn")
    ] == ["1"]
    run = tracker.client.get_run(again.run_id)  # type: ignore[arg-type]
    assert run.data.tags["automl.reused_version"] == "1"
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.download_artifact(first.run_id, "lineage.json", tmp)  # type: ignore[arg-type]
        lineage = json.loads(path.read_text())
    for key in (
        "window_sha256",
        "data_from",
        "data_to",
        "best_params",
        "trigger",
        "run_id",
        "cv_score",
    ):
        assert lineage[key], key
    assert lineage["run_id"] == first.run_id and lineage["best_params"]


def test_a_champion_logged_before_is_judged_against_a_new_challenger(
    write_spec: Callable[..., PipelineSpec], data: tuple[pd.DataFrame, pd.DataFrame, Schema]
) -> None:
    train, holdout, schema = data
    spec = write_spec()
    tracker = make_tracker(spec)
    old = _register_as_before(tracker, spec, train, WEAK)
    canonical = validate_batch(holdout, schema, source="holdout")  # what the cycle judges on
    assert _judge(spec, old, canonical, schema).is_promoted
    new = _register(tracker, spec, train, GOOD)
    decision = _judge(spec, new, canonical, schema)
    assert decision.is_promoted, decision.reason
    assert decision.champion_score is not None  # the old version was scored, not skipped
    assert 0.5 < decision.champion_score < decision.challenger_score


@pytest.mark.slow
def test_predict_scores_a_file_with_the_champion(
    write_spec: Callable[..., PipelineSpec], churn: Churn, tmp_path: Any
) -> None:
    spec = write_spec()
    spec_file = str(spec.base_dir / "churn.yaml")
    no_champion = runner.invoke(app, ["predict", spec_file, str(tmp_path / "x.csv")])
    assert no_champion.exit_code == 1
    land(spec, "history.csv", churn(400, seed=1))
    run_cycle(spec)
    fresh = churn(50, seed=5).drop(columns="churned")
    fresh.to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(
        app, ["predict", spec_file, str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.parquet")]
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(tmp_path / "p.parquet")
    assert len(scored) == 50 and set(scored["prediction"]) <= {0, 1}
    assert ((scored["proba_0"] + scored["proba_1"]) - 1).abs().max() < 1e-6
    fresh.drop(columns="age").to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(app, ["predict", spec_file, str(tmp_path / "bad.csv")])
    assert bad.exit_code == 1 and "missing columns ['age']" in bad.output


def test_webhook_is_called_on_promotion_rejection_and_failure(
    write_spec: Callable[..., PipelineSpec],
    data: tuple[pd.DataFrame, pd.DataFrame, Schema],
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    from automl.service import notify

    url, received = webhook
    train, holdout, schema = data
    spec = write_spec(notify={"webhook_url": url, "events": ["promotion", "rejection", "failure"]})
    tracker = make_tracker(spec)
    _judge(spec, _register(tracker, spec, train, GOOD), holdout, schema)
    _judge(spec, _register(tracker, spec, train, GOOD), holdout, schema)
    assert notify(spec, "failure", {"error": "boom"}) is True
    assert notify(spec, "drift", {}) is False  # not subscribed
    assert [r["event"] for r in received] == ["promotion", "rejection", "failure"]
    assert received[0]["pipeline"] == "churn" and received[0]["challenger_version"] == "1"
    assert received[1]["champion_version"] == "1" and received[2]["error"] == "boom"

    down = write_spec("other", notify={"webhook_url": "http://127.0.0.1:9/hook", "timeout_s": 1})
    assert notify(down, "failure", {"error": "x"}) is False  # never raises


def test_better_on_the_holdout_but_not_credibly_is_rejected(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    train, holdout = churn(800, seed=1), churn(150, seed=2)
    schema = infer_schema(train, target="churned", task="classification")
    deeper = {**GOOD, "max_depth": 3}  # +0.002 AUC on these 150 rows: noise
    spec = write_spec()
    tracker = make_tracker(spec)
    _judge(spec, _register(tracker, spec, train, GOOD), holdout, schema)
    decision = _judge(spec, _register(tracker, spec, train, deeper), holdout, schema)
    assert decision.gate is not None and decision.gate.passes_margin  # it is better...
    assert not decision.is_promoted and "not credible" in decision.reason  # ...but not credibly
    assert tracker.get_alias(spec.model_name, CHAMPION).version == "1"  # type: ignore[union-attr]

    lenient = write_spec("lenient", registry={"significance": {"test": "none"}})
    tracker = make_tracker(lenient)
    _judge(lenient, _register(tracker, lenient, train, GOOD), holdout, schema)
    assert _judge(lenient, _register(tracker, lenient, train, deeper), holdout, schema).is_promoted
