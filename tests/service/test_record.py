from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from automl.config import PipelineSpec
from automl.service import log_tuning_result, make_tracker, pipeline_status, run_cycle, trial_logger
from automl.service._record import (
    cycle_run_name,
    fail_orphaned_runs,
    find_by_window,
    next_cycle_number,
    start_cycle_run,
    version_cv_score,
)
from automl.tracking import MlflowTracker
from automl.tuning import tune
from tests.conftest import churn_search, land
from tests.service.test_faults import _accept_as_is

Churn = Callable[..., pd.DataFrame]


def test_every_trial_is_a_nested_run_with_its_metrics(churn: Churn, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "t", artifact_location=(tmp_path / "art").as_uri())
    parent = tracker.start_run("search")
    config = churn_search(cv=2, seed=1, models=["xgboost", "linear"])
    result = tune(
        churn(300, seed=1), config, n_trials=3, on_trial=trial_logger(tracker, parent, "roc_auc")
    )
    log_tuning_result(tracker, parent, result)
    tracker.end_run(parent)

    client = MlflowClient(uri)
    children = client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
        order_by=["attributes.start_time ASC"],
    )
    assert len(children) == 3
    first = children[0].data
    assert {
        "cv_roc_auc",
        "cv_roc_auc_std",
        "train_roc_auc",
        "fit_gap",
        "fit_time_s",
        "peak_memory_mb",
        "val_accuracy",
        "val_precision",
        "val_recall",
        "val_f1",
    } <= set(first.metrics)
    assert first.params["model_family"] == "xgboost" and "max_depth" in first.params
    assert first.tags["automl.is_defaults"] == "true"
    assert first.tags["automl.fit_status"] in {"ok", "overfit", "underfit"}
    assert children[1].data.params["model_family"] == "linear"

    run = client.get_run(parent)
    assert run.data.params["best_model_family"] == result.model_family
    assert {"best_cv_roc_auc", "default_cv_roc_auc", "n_trials", "n_pruned"} <= set(
        run.data.metrics
    )
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert {"trials.csv", "tuning"} <= artifacts
    report = {a.path for a in client.list_artifacts(parent, "tuning")}
    assert {"tuning/tuning_report.html", "tuning/optimization_history.png"} <= report


def test_a_failed_trial_run_says_why_it_failed(churn: Churn, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "t", artifact_location=(tmp_path / "art").as_uri())
    parent = tracker.start_run("search")
    # A fixed value scikit-learn refuses: every random-forest trial fails when it fits.
    config = churn_search(
        cv=2,
        seed=0,
        models=["linear", "random_forest"],
        search_space={"random_forest": {"max_features": 0}},
    )
    result = tune(
        churn(200, seed=1), config, n_trials=4, on_trial=trial_logger(tracker, parent, "roc_auc")
    )
    tracker.end_run(parent)
    failed = result.trials[result.trials["state"] == "FAIL"]
    assert len(failed) >= 1
    runs = MlflowClient(uri).search_runs(
        [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    by_number = {int(r.data.tags["automl.trial_number"]): r for r in runs}
    for number, error in zip(failed["number"], failed["error"], strict=True):
        run = by_number[int(number)]
        assert run.info.status == "FAILED"
        assert run.data.tags["automl.trial_state"] == "failed"
        assert run.data.tags["automl.error"] == error
        assert error.startswith("InvalidParameterError: The 'max_features' parameter")


# -- the MLflow UI reads: run names, descriptions, trial states and times, version tags ---------
def test_cycle_run_names_say_pipeline_number_trigger_and_outcome() -> None:
    name = cycle_run_name
    assert name(
        "churn", 12, status="retuned", trigger="drift", version="3", outcome="promoted"
    ) == ("churn #12 drift -> v3 promoted")
    assert name("churn", 13, status="no_drift", trigger="ok") == "churn #13 no drift"
    assert name(
        "churn", 14, status="retuned", trigger="drift", version="4", outcome="rejected"
    ) == ("churn #14 drift -> v4 rejected")
    assert name("churn", 15, status="failed", trigger=None) == "churn #15 failed"
    assert name("churn", 16, status="failed", trigger="drift") == "churn #16 drift -> failed"
    assert name("churn", 17, status="interrupted", trigger="no_champion") == (
        "churn #17 no champion -> interrupted"
    )
    # Any status reads by its words, also ones this module has never heard of.
    assert name("churn", 18, status="waiting_for_labels", trigger="drift") == (
        "churn #18 drift -> waiting for labels"
    )
    assert name("churn", 19, status="no_drift", trigger="warning") == "churn #19 drift warning"
    assert name(
        "churn", 20, status="retuned", trigger="scheduled", version="5", outcome="awaiting_approval"
    ) == ("churn #20 scheduled -> v5 awaiting approval")
    assert name("churn", 21, status="no_drift", trigger="ok", shadow=("5", "promoted")) == (
        "churn #21 no drift, shadow v5 promoted"
    )
    assert name("churn", None, status="failed", trigger=None) == "churn failed"


def test_pruned_trials_finish_with_their_reason_and_trials_span_their_real_time(
    churn: Churn, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tracker = MlflowTracker(uri, "t", artifact_location=(tmp_path / "art").as_uri())
    parent = tracker.start_run("search")
    config = churn_search(cv=2, seed=3)  # this seed prunes (see tests/tuning/test_tuner.py)
    result = tune(
        churn(400, seed=5),
        config,
        n_trials=14,
        storage=storage,
        study_name="p",
        on_trial=trial_logger(tracker, parent, "roc_auc"),
    )
    tracker.end_run(parent)
    assert result.n_pruned >= 1

    runs = MlflowClient(uri).search_runs(
        [tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    by_number = {int(r.data.tags["automl.trial_number"]): r for r in runs}
    assert len(by_number) == 14
    pruned = [r for r in runs if r.data.tags["automl.trial_state"] == "pruned"]
    assert len(pruned) == result.n_pruned
    for run in pruned:
        assert run.info.status == "FINISHED"  # not KILLED: the UI shows no failure
        reason = run.data.tags["automl.pruned_reason"]
        # Which fold and round, the value that pruned it, and the pruner.
        assert re.fullmatch(
            r"pruned after \d+ rounds of fold 1: validation auc 0\.\d{4}; median pruner", reason
        ), reason
        assert run.info.run_name.endswith(" pruned")
    assert {r.data.tags["automl.trial_state"] for r in runs} <= {"complete", "pruned"}
    assert all(r.info.status == "FINISHED" for r in runs)

    # Each trial's run spans the trial as Optuna timed it, not the moment it was logged.
    study = optuna.load_study(study_name="p", storage=storage)
    starts = []
    for trial in study.trials:
        run = by_number[trial.number].info
        assert trial.datetime_start is not None and trial.datetime_complete is not None
        expected = (trial.datetime_complete - trial.datetime_start).total_seconds() * 1000
        assert abs((run.end_time - run.start_time) - expected) <= 2, trial.number
        assert abs(run.start_time - trial.datetime_start.timestamp() * 1000) <= 1
        starts.append(run.start_time)
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    spans = [by_number[n].info.end_time - by_number[n].info.start_time for n in sorted(by_number)]
    assert max(spans) > 50  # real fits, not the ~ms it takes to log a run
    for earlier, later in zip(sorted(by_number)[:-1], sorted(by_number)[1:], strict=True):
        assert by_number[earlier].info.end_time <= by_number[later].info.start_time + 1


def test_orphaned_cycle_runs_are_named_failed_and_numbers_follow_older_runs(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "t", artifact_location=(tmp_path / "art").as_uri())
    # Two cycle runs from before cycle numbers (and one of another pipeline).
    for pipeline in ("churn", "churn", "fraud"):
        tracker.end_run(tracker.start_run("cycle-old", tags={"automl.pipeline": pipeline}))
    assert next_cycle_number(tracker, "churn") == 3
    assert next_cycle_number(tracker, "fraud") == 2
    assert next_cycle_number(tracker, "other") == 1
    run_id = start_cycle_run(tracker, "churn", "c3", [])
    assert tracker.run_summary(run_id).name == "churn #3 running"
    assert next_cycle_number(tracker, "churn") == 4

    (closed,) = fail_orphaned_runs(tracker, "churn")  # the process running it died
    after = tracker.run_summary(closed.run_id)
    assert (after.status, after.name) == ("FAILED", "churn #3 failed")
    assert after.tags["automl.error"].startswith("interrupted:")
    assert "**failed**" in after.tags["mlflow.note.content"]
    assert "- **Error**: interrupted:" in after.tags["mlflow.note.content"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_cycle_runs_are_named_and_described_by_their_outcome(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(tuning={"n_trials": 2}, drift={"html_report": "never"})
    land(spec, "history.csv", churn(600, seed=1))
    first = run_cycle(spec)
    land(spec, "normal.csv", churn(300, seed=2))
    calm = run_cycle(spec)
    # The same workspace with a margin no challenger can reach: the re-tune is rejected.
    strict = write_spec(
        tuning={"n_trials": 2}, drift={"html_report": "never"}, registry={"promotion_margin": 0.9}
    )
    land(strict, "drifted.csv", churn(400, seed=3, drift=1.0))
    rejected = run_cycle(strict)
    poison = churn(300, seed=4, drift=1.0)
    poison["monthly_charges"] = float("inf")  # every model's fit refuses it
    _accept_as_is(strict, "poison.parquet", poison)
    failed = run_cycle(strict, raise_on_failure=False)
    assert [r.status for r in (first, calm, rejected, failed)] == [
        "retuned",
        "no_drift",
        "retuned",
        "failed",
    ]

    client = MlflowClient(spec.tracking_uri)
    runs = {r: client.get_run(r.run_id) for r in (first, calm, rejected, failed)}  # type: ignore[arg-type]
    names = [runs[r].info.run_name for r in (first, calm, rejected, failed)]
    assert names[:3] == [
        "churn #1 no champion -> v1 promoted",
        "churn #2 no drift",
        "churn #3 drift -> v2 rejected",
    ]
    assert re.fullmatch(r"churn #4 (drift -> )?failed", names[3]), names[3]
    assert [runs[r].data.tags["automl.cycle_number"] for r in runs] == ["1", "2", "3", "4"]

    notes = {r: runs[r].data.tags["mlflow.note.content"] for r in runs}
    assert "- **Drift**: not checked (no champion yet)" in notes[first]
    assert "- **Search**: 2 trials (0 pruned), best CV roc_auc 0." in notes[first]
    assert "- **Decision**: v1 **promoted**: no champion yet" in notes[first]
    assert "- **Window**: 450 rows received" in notes[first]
    assert "newest 150 held out" in notes[first]
    assert "- **Drift**: **no drift**" in notes[calm] and "**Decision**" not in notes[calm]
    assert "- **Data**: 1 new batch(es), 300 rows" in notes[calm]
    assert (
        "- **Drift**: **drift**, " in notes[rejected]
        and "of the columns drifted" in notes[rejected]
    )
    assert "- **Decision**: v2 **rejected**: " in notes[rejected]
    assert "- **Champion** after the cycle: v1" in notes[rejected]
    assert f"- **Error**: {failed.error}" in notes[failed] and "**failed**" in notes[failed]
    assert runs[failed].info.status == "FAILED"

    # The versions: a few tags a person reads; the lineage is lineage.json on their run.
    v1, v2 = client.get_model_version("churn", "1"), client.get_model_version("churn", "2")
    assert set(v1.tags) == {
        "automl.pipeline",
        "automl.trigger",
        "automl.window",
        "automl.score",
        "automl.decision",
        "automl.holdout_stored",  # its holdout rows are kept with it (the guardrail's evidence)
    }
    assert (v1.tags["automl.decision"], v2.tags["automl.decision"]) == ("promoted", "rejected")
    assert (v1.tags["automl.trigger"], v2.tags["automl.trigger"]) == ("no_champion", "drift")
    assert re.fullmatch(r"holdout roc_auc 0\.\d{4} vs 0\.\d{4} of v1, .+", v2.tags["automl.score"])
    assert re.fullmatch(r"450 rows received .+ UTC; newest 150 held out", v1.tags["automl.window"])
    assert v2.run_id == rejected.run_id
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(rejected.run_id, "lineage.json", tmp)  # type: ignore[arg-type]
        lineage = json.loads(Path(path).read_text())
    assert set(lineage) == {
        "pipeline",
        "cycle_id",
        "run_id",
        "trigger",
        "drift_share",
        "train_rows",
        "holdout_rows",
        "window_sha256",
        "data_from",
        "data_to",
        "metric",
        "cv_score",
        "cv_score_std",
        "model_family",
        "best_params",
    }
    assert (lineage["run_id"], lineage["cycle_id"], lineage["trigger"]) == (
        rejected.run_id,
        rejected.cycle_id,
        "drift",
    )
    assert lineage["cv_score"] == pytest.approx(rejected.best_cv_score)
    assert 0 < lineage["drift_share"] <= 1 and lineage["best_params"]
    assert runs[rejected].data.tags["automl.window_sha256"] == lineage["window_sha256"]

    # Readers of the lineage: the champion's CV score (drift's performance check, status) ...
    tracker = make_tracker(strict)
    champion = tracker.get_version("churn", "1")
    assert version_cv_score(tracker, champion, "roc_auc") == pytest.approx(first.best_cv_score)
    assert version_cv_score(tracker, champion, "accuracy") is None  # not what it was tuned on
    assert pipeline_status(strict)["champion_cv_score"] == pytest.approx(first.best_cv_score)
    # ... and the re-run that finds a version by its data window.
    found = find_by_window(tracker, "churn", lineage["window_sha256"])
    assert [v.version for v in found] == ["2"]
    assert find_by_window(tracker, "churn", "0" * 64) == []


def test_versions_registered_before_lineage_json_are_still_read(
    churn: Churn, tmp_path: Path
) -> None:
    from sklearn.dummy import DummyClassifier

    tracker = MlflowTracker(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "t", artifact_location=(tmp_path / "art").as_uri()
    )
    run_id = tracker.start_run("old cycle")
    rows = churn(50, seed=1)
    model = DummyClassifier().fit(rows[["age"]], rows["churned"])
    uri = tracker.log_model(run_id, model, input_example=rows[["age"]].head(3))
    sha = "ab" * 32
    legacy = {"automl.window_sha256": sha, "automl.cv_score": "0.812345", "automl.pipeline": "p"}
    version = tracker.register(uri, "old", run_id=run_id, tags=legacy)
    assert version_cv_score(tracker, version, "roc_auc") == pytest.approx(0.812345)
    assert [v.version for v in find_by_window(tracker, "old", sha)] == ["1"]
