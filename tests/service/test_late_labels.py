"""Late labels through the cycle, on real files, a real SQLite state database and MLflow:
feature-only batches, label files joined every cycle, waiting for labels before a re-tune,
status and metrics, the labels_late webhook, the label-free estimate against the realized
metric, and the label join exactly once across a kill -9 of ``automl run``."""

from __future__ import annotations

import json
import os
import signal
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
from typer.testing import CliRunner

from automl.cli import app
from automl.config import PipelineSpec, load_spec
from automl.data import LabelStore, make_churn_frame, write_table
from automl.drift import DriftStateStore
from automl.service import CycleHistory, pipeline_status, run_cycle
from automl.service._late import EstimateStore, ingest_label_files, watch_labels
from automl.service._observe import ServiceMetrics
from automl.service._steps_drift import _served_predictions
from automl.service._workspace import open_workspace
from tests.conftest import _merged, land, run_cycle_process, small_spec_dict

ID = "customer_id"


def rows(n: int, *, seed: int, start: int, drift: float = 0.0) -> pd.DataFrame:
    """Churn rows with ids ``c<start>..``, labels included."""
    frame = make_churn_frame(n, seed=seed, drift=drift)
    frame.insert(0, ID, [f"c{i}" for i in range(start, start + n)])
    return frame


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """What the model scores: the rows without their labels."""
    return frame.drop(columns=["churned"])


def labels_of(frame: pd.DataFrame) -> pd.DataFrame:
    """The label file of these rows."""
    return frame[[ID, "churned"]]


def champion_proba(spec: PipelineSpec, frame: pd.DataFrame) -> Any:
    """The serving champion's probability of churn for these rows (read from the registry)."""
    tracker = open_workspace(spec).tracker
    model = tracker.get_alias("churn", "champion")
    assert model is not None
    champion = tracker.load_model(model)
    return champion.predict_proba(features(frame).drop(columns=[ID]))[:, 1]


def late_spec_dict(name: str = "churn", **overrides: Any) -> dict[str, Any]:
    late: dict[str, Any] = {
        "data": {"id_column": ID, "labels": {"landing_dir": f"labels/{name}"}},
        "training": {"min_labelled_rows": 150, "window": "recent"},
    }
    return _merged(small_spec_dict(name, **late), overrides)


@pytest.fixture
def late_spec(tmp_path: Path) -> Callable[..., PipelineSpec]:
    def _write(name: str = "churn", **overrides: Any) -> PipelineSpec:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(late_spec_dict(name, **overrides)), encoding="utf-8")
        spec = load_spec(path)
        assert spec.labels_landing_path is not None
        spec.labels_landing_path.mkdir(parents=True)  # as a user would: it must exist
        return spec

    return _write


def land_labels(spec: PipelineSpec, file_name: str, frame: pd.DataFrame) -> Path:
    assert spec.labels_landing_path is not None
    return write_table(frame, spec.labels_landing_path / file_name)


def run_metrics(spec: PipelineSpec, run_id: str | None) -> dict[str, float]:
    assert run_id is not None
    return dict(MlflowClient(spec.tracking_uri).get_run(run_id).data.metrics)


# -- the flow --------------------------------------------------------------------------------
@pytest.mark.slow
def test_feature_only_batches_wait_for_labels_then_train_and_retune_once_labels_mature(
    late_spec: Callable[..., PipelineSpec],
) -> None:
    spec = late_spec()
    history = rows(400, seed=1, start=0)
    land(spec, "history.csv", features(history))
    first = run_cycle(spec)
    # Rows without labels: accepted, but nothing to train on yet; the run says why.
    assert (first.status, first.accepted_files) == ("waiting_for_labels", ("history.csv",))
    tags = MlflowClient(spec.tracking_uri).get_run(first.run_id).data.tags  # type: ignore[arg-type]
    assert tags["automl.waiting_for_labels"].startswith("0 labelled row(s) in all, 150 needed")
    assert (first.labelled_rows, first.labels_needed, first.labelled_share) == (0, 150, 0.0)
    assert pipeline_status(spec)["state"] == "waiting_for_labels"

    land_labels(spec, "history_labels.csv", labels_of(history))
    trained = run_cycle(spec)
    assert (trained.status, trained.drift_verdict, trained.model_version) == (
        "retuned",
        "no_champion",
        "1",
    )
    assert trained.labels_joined == 400 and trained.labelled_share == 1.0
    assert trained.is_promoted and trained.champion_version == "1"
    reference = spec.workspace_dir / "reference" / "churn"
    assert (reference / "v1.holdout.parquet").exists()  # the estimate's calibration set

    drifted = rows(300, seed=3, start=1000, drift=1.0)
    land(spec, "drifted.csv", features(drifted))
    waiting = run_cycle(spec)
    assert (waiting.status, waiting.drift_verdict, waiting.model_version) == (
        "waiting_for_labels",
        "drift",
        None,
    )
    assert (waiting.labelled_rows, waiting.labels_needed) == (0, 150)
    run = MlflowClient(spec.tracking_uri).get_run(waiting.run_id)  # type: ignore[arg-type]
    assert "150 needed" in run.data.tags["automl.waiting_for_labels"]
    assert run.data.metrics["labelled_rows"] == 0
    state = DriftStateStore(spec.state_url).load("churn")
    assert state.waiting_since is not None  # the confirmation is kept
    # The label-free estimate of the champion on the drifted rows is logged with the check.
    assert waiting.estimated_metric == "roc_auc" and waiting.estimated_score is not None
    assert "estimated_roc_auc" in run.data.metrics
    status = pipeline_status(spec)
    assert status["state"] == "waiting_for_labels"
    assert status["labels"]["labelled_since_drift"] == 0
    assert status["labels"]["rows_waiting"] == 300

    # Nothing new: still waiting, without a run.
    idle = run_cycle(spec)
    assert (idle.status, idle.run_id) == ("waiting_for_labels", None)

    # Too few labels mature: still waiting.
    land_labels(spec, "drifted_labels_1.csv", labels_of(drifted.head(100)))
    few = run_cycle(spec)
    assert (few.status, few.labels_joined, few.labelled_rows) == ("waiting_for_labels", 100, 100)

    # Enough: the kept confirmation re-tunes without a fresh drifted check.
    land_labels(spec, "drifted_labels_2.csv", labels_of(drifted.tail(200)))
    retuned = run_cycle(spec)
    assert (retuned.status, retuned.drift_verdict, retuned.model_version) == (
        "retuned",
        "drift",
        "2",
    )
    assert DriftStateStore(spec.state_url).load("churn").waiting_since is None
    version = MlflowClient(spec.tracking_uri).get_model_version("churn", "2")
    assert version.tags["automl.trigger"] == "drift"
    path = MlflowClient(spec.tracking_uri).download_artifacts(
        version.run_id, "lineage.json", str(spec.workspace_dir)
    )
    lineage = json.loads(Path(path).read_text(encoding="utf-8"))
    assert lineage["train_rows"] + lineage["holdout_rows"] == 700

    # Every drifted row is labelled now: the estimate is compared with the realized AUC.
    estimates = EstimateStore(spec.state_url).list("churn")
    assert len(estimates) == 1
    estimate = estimates[0]
    assert estimate.realized is not None and estimate.n_labelled == 300
    assert estimate.abs_error == pytest.approx(abs(estimate.estimate - estimate.realized))
    logged = run_metrics(spec, waiting.run_id)
    assert logged["realized_roc_auc"] == pytest.approx(estimate.realized)
    assert logged["estimate_abs_error"] == pytest.approx(estimate.abs_error)

    statuses = [r.status for r in CycleHistory(spec.state_url).list("churn")]
    assert statuses[::-1] == [
        "waiting_for_labels",
        "retuned",
        "waiting_for_labels",
        "waiting_for_labels",
        "waiting_for_labels",
        "retuned",
    ]
    final = pipeline_status(spec)
    assert final["state"] == "ok" and final["labels"]["labelled_share"] == 1.0
    assert final["labels"]["realized"] == pytest.approx(estimate.realized)


@pytest.mark.slow
def test_the_estimate_follows_a_covariate_shift_better_than_the_naive_one(
    late_spec: Callable[..., PipelineSpec],
) -> None:
    """On a seeded shift of the inputs towards the decision boundary the realized AUC falls;
    the CBPE estimate (calibrated on the champion's holdout) is nearer to it than the holdout
    AUC (the naive estimate), and with a tolerance the estimate is a drift signal."""
    spec = late_spec(
        drift={"estimated_performance_tolerance": 0.02, "columns": ["age"]},
        training={"min_labelled_rows": 600},
    )
    history = rows(800, seed=11, start=0)
    land(spec, "history.csv", history)  # labelled on arrival: the first champion
    assert run_cycle(spec).model_version == "1"
    # A shift of the inputs alone (selected on x, P(y | x) unchanged): rows where the
    # champion is unsure, near its decision boundary.
    shifted = rows(4000, seed=12, start=10_000)
    p = champion_proba(spec, shifted)
    middle = shifted[(p > 0.3) & (p < 0.7)].head(400)
    assert len(middle) == 400
    land(spec, "shifted.csv", features(middle))
    checked = run_cycle(spec)
    assert checked.estimated_score is not None and checked.estimated_reference is not None
    assert checked.estimated_score < checked.estimated_reference - 0.02
    run = MlflowClient(spec.tracking_uri).get_run(checked.run_id)  # type: ignore[arg-type]
    assert "estimated_performance" in run.data.tags["automl.drift_signals"]
    assert checked.drift_verdict == "drift" and checked.status == "waiting_for_labels"

    land_labels(spec, "shifted_labels.csv", labels_of(middle))
    run_cycle(spec)
    (estimate,) = EstimateStore(spec.state_url).list("churn", realized=True)
    assert estimate.abs_error is not None and estimate.naive_abs_error is not None
    assert estimate.abs_error < estimate.naive_abs_error


# -- conflicts and orphans -------------------------------------------------------------------
def test_conflicting_and_orphan_labels_in_the_cycle(
    late_spec: Callable[..., PipelineSpec],
) -> None:
    spec = late_spec(training={"min_labelled_rows": 1000, "max_rows": 5000})
    batch = rows(60, seed=1, start=0)
    land(spec, "rows.csv", features(batch))
    land_labels(spec, "first.csv", labels_of(batch.head(30)))
    first = run_cycle(spec)  # the batch first, then its label files: 30 joined
    assert (first.status, first.labels_joined) == ("waiting_for_labels", 30)

    flipped = labels_of(batch.head(5)).assign(churned=lambda f: 1 - f["churned"])
    orphans = pd.DataFrame({ID: ["c900", "c901"], "churned": [1, 0]})
    land_labels(spec, "second.csv", pd.concat([flipped, orphans], ignore_index=True))
    second = run_cycle(spec)
    assert second.labels_joined == 0
    store = LabelStore(spec.state_url)
    conflicts = store.events("churn", status="conflict")
    assert sorted(e.row_id for e in conflicts) == [f"c{i}" for i in range(5)]
    assert all("first label is kept" in (e.reason or "") for e in conflicts)
    labelled = store.labelled_rows("churn").set_index(ID)["churned"]
    assert labelled.loc["c0"] == batch.loc[0, "churned"]  # the first label won
    assert {e.row_id for e in store.events("churn", status="waiting")} == {"c900", "c901"}

    # The orphans' rows come later: joined on arrival, counted once.
    land(spec, "late_rows.csv", features(rows(2, seed=5, start=900)))
    third = run_cycle(spec)
    assert third.labelled_share == pytest.approx(32 / 62)
    assert store.events("churn", status="waiting") == []
    assert len(store.events("churn", status="joined")) == 2
    assert pipeline_status(spec)["labels"]["conflicts"] == 5


# -- observability ---------------------------------------------------------------------------
def test_status_metrics_and_the_cli_show_the_labels(
    late_spec: Callable[..., PipelineSpec],
) -> None:
    spec = late_spec(training={"min_labelled_rows": 1000, "max_rows": 5000})
    batch = rows(40, seed=1, start=0)
    land(spec, "rows.csv", features(batch))
    run_cycle(spec)
    land_labels(spec, "labels.csv", labels_of(batch.head(10)))
    result = run_cycle(spec)
    assert result.status == "waiting_for_labels"
    assert (result.labelled_share, result.rows_waiting_label) == (0.25, 30)
    assert result.label_lag_p50_s is not None and result.label_lag_p50_s > 0

    metrics = ServiceMetrics()
    metrics.observe(result, 1.0)
    text = metrics.render().decode()
    assert 'automl_labelled_share{pipeline="churn"} 0.25' in text
    assert 'automl_rows_waiting_for_label{pipeline="churn"} 30.0' in text
    assert 'automl_waiting_for_labels{pipeline="churn"} 1.0' in text
    assert 'automl_label_lag_p95_seconds{pipeline="churn"}' in text

    status = pipeline_status(spec)
    assert status["state"] == "waiting_for_labels"
    labels = status["labels"]
    assert (labels["labelled_rows"], labels["rows"], labels["rows_waiting"]) == (10, 40, 30)
    assert labels["lag_p50_s"] == pytest.approx(result.label_lag_p50_s)

    out = CliRunner().invoke(app, ["status", str(spec.base_dir / "churn.yaml"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)[0]["labels"]["labelled_share"] == 0.25
    table = CliRunner().invoke(app, ["status", str(spec.base_dir / "churn.yaml")])
    assert table.exit_code == 0, table.output
    assert (
        "waiting_for_labels" in table.output and "25% (10 of 40 rows; 30 waiting)" in table.output
    )

    from automl.cli._app import _print_cycle
    from automl.cli._base import console

    with console.capture() as captured:  # `automl run`'s table shows the label rows too
        _print_cycle(result.to_dict())
    shown = captured.get()
    assert "waiting_for_labels" in shown
    assert "labelled_share" in shown and "0.2500" in shown
    assert "rows_waiting_label" in shown and " 30 " in shown


def test_served_predictions_are_read_as_scores_or_classes() -> None:
    from automl.data import Schema

    binary = Schema(features=(("x", "numeric"),), target="y", task="classification", classes=(0, 1))
    frame = pd.DataFrame({"served": [0.2, 0.9], "cls": [0, 1]})
    assert _served_predictions("served", frame, binary).tolist() == [0.2, 0.9]  # type: ignore[union-attr]
    assert _served_predictions("cls", frame, binary).tolist() == ["0", "1"]  # type: ignore[union-attr]
    assert _served_predictions("missing", frame, binary) is None
    gaps = pd.DataFrame({"served": [0.2, None]})
    assert _served_predictions("served", gaps, binary) is None  # the champion's then


# -- the labels_late webhook -----------------------------------------------------------------
def test_labels_late_is_sent_once_per_outage(
    late_spec: Callable[..., PipelineSpec], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    spec = late_spec(
        data={"labels": {"landing_dir": "labels/churn", "alert_after_s": 3600}},
        notify={"webhook_url": url, "events": ["labels_late"]},
        training={"min_labelled_rows": 1000, "max_rows": 5000},
    )
    batch = rows(20, seed=1, start=0)
    land(spec, "rows.csv", features(batch))
    run_cycle(spec)  # rows in, the watch starts its clock
    ws = open_workspace(spec)
    t0 = time.time()
    assert not watch_labels(ws, now=t0 + 100)  # quiet, within the limit
    assert watch_labels(ws, now=t0 + 4000)  # beyond it: one alert
    assert not watch_labels(ws, now=t0 + 5000)  # the same outage: no second alert
    assert not watch_labels(ws, now=t0 + 9000)
    assert [e["event"] for e in received] == ["labels_late"]
    assert received[0]["pipeline"] == "churn" and received[0]["rows_waiting"] == 20
    assert pipeline_status(spec)["labels"]["labels_late"] is True

    # A label arrives: the outage is over; the next silence is a new one, alerted once.
    land_labels(spec, "labels.csv", labels_of(batch.head(3)))
    ingest_label_files(ws, now=t0 + 9100)
    assert not watch_labels(ws, now=t0 + 9200)
    assert watch_labels(ws, now=t0 + 9100 + 3601)
    assert not watch_labels(ws, now=t0 + 9100 + 7200)
    assert len(received) == 2


def test_the_cycle_sends_labels_late_once(
    late_spec: Callable[..., PipelineSpec], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    spec = late_spec(
        data={"labels": {"landing_dir": "labels/churn", "alert_after_s": 0.2}},
        notify={"webhook_url": url},
        training={"min_labelled_rows": 1000, "max_rows": 5000},
    )
    land(spec, "rows.csv", features(rows(20, seed=1, start=0)))
    run_cycle(spec)
    time.sleep(0.3)
    for _ in range(3):
        run_cycle(spec)
    assert [e["event"] for e in received] == ["labels_late"]


# -- exactly once across a kill -9 of `automl run` -------------------------------------------
def _write_yaml(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


def _is_running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may never reap an orphan)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _retune_process(pid: int, *, timeout_s: float) -> int:
    """The pid of the re-tune process ``pid`` started (a cycle's search runs in one)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            for child in (task / "children").read_text().split() if task.exists() else []:
                cmdline = Path(f"/proc/{child}/cmdline")
                if cmdline.exists() and b"automl.service._retune" in cmdline.read_bytes():
                    return int(child)
        time.sleep(0.05)
    raise AssertionError("no re-tune process started")


@pytest.mark.slow
def test_labels_join_exactly_once_across_a_kill_and_restart_of_automl_run(
    tmp_path: Path,
) -> None:
    slow = late_spec_dict(
        tuning={"n_trials": 200, "timeout_s": 120, "cv": 2, "seed": 7, "in_child_process": True}
    )
    fast = late_spec_dict()
    slow_path = _write_yaml(tmp_path / "slow.yaml", slow)
    fast_path = _write_yaml(tmp_path / "fast.yaml", fast)
    spec = load_spec(fast_path)
    history = rows(300, seed=1, start=0)
    land(spec, "history.csv", features(history))
    land_labels(spec, "labels.csv", labels_of(history))
    archived = spec.workspace_dir / "archive" / "churn" / "labels" / "labels.csv"

    env = {**os.environ, "MLFLOW_LOGGING_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "automl", "run", str(slow_path)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not archived.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert archived.exists(), "the label file was not joined and archived"
        retune = _retune_process(proc.pid, timeout_s=120)  # into the search, run started
        assert proc.poll() is None, "the cycle ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30  # Linux ends the re-tune process with its parent
        while _is_running(retune) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _is_running(retune), "the re-tune outlived its cycle"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()

    # The same labels land again (a re-delivery with one more row), then a restart.
    again = pd.concat([labels_of(history), labels_of(rows(1, seed=2, start=300))])
    land_labels(spec, "labels_again.csv", again)
    result = run_cycle_process(fast_path, env=env, timeout_s=600)
    assert (result["status"], result["model_version"]) == ("retuned", "1")
    assert result["labels_joined"] == 0  # the first file's labels were joined before the kill
    store = LabelStore(spec.state_url)
    stats = store.label_stats("churn")
    assert (stats.n_rows, stats.n_labelled, stats.n_conflicts) == (300, 300, 0)
    files = store.label_files("churn")
    assert [(f.file_name, f.status) for f in files] == [
        ("labels.csv", "accepted"),
        ("labels_again.csv", "accepted"),
    ]
    assert files[0].counts is not None and files[0].counts.joined == 300
    assert files[1].counts is not None and files[1].counts.duplicates == 300
    assert [e.row_id for e in store.events("churn", status="waiting")] == ["c300"]
    statuses = [r.status for r in CycleHistory(spec.state_url).list("churn")]
    assert statuses == ["retuned", "failed"]  # the killed cycle is recorded as failed


# -- the README ------------------------------------------------------------------------------
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_the_readme_cycle_example_runs_as_written(tmp_path: Path) -> None:
    """The "Late labels in the cycle" section's spec and script, in an empty folder, run."""
    import re

    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Late labels in the cycle") :]
    section = section[: section.index("\n### ", 1)]
    files = re.findall(
        r"^`([\w./-]+)`[^\n]*:\n\n```\w*\n(.*?)```", section, flags=re.DOTALL | re.MULTILINE
    )
    assert [name for name, _ in files] == ["late.yaml", "cycle.py"]
    for name, body in files:
        (tmp_path / name).write_text(body, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "cycle.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == [
        "waiting_for_labels",
        "retuned",
        "waiting_for_labels drift",
        "500",
        "retuned drift 2",
        "",
    ]


# -- prediction drift on what was served -----------------------------------------------------
@pytest.mark.slow
def test_prediction_drift_uses_the_served_predictions_when_the_batch_has_them(
    late_spec: Callable[..., PipelineSpec],
) -> None:
    spec = late_spec(
        data={"prediction_column": "served"},
        drift={"prediction_drift": True, "columns": ["age"]},  # features: one calm column
        training={"min_labelled_rows": 300},
    )
    land(spec, "history.csv", rows(600, seed=1, start=0))  # labelled on arrival
    assert run_cycle(spec).model_version == "1"

    calm = rows(400, seed=2, start=5000)
    honest = features(calm).assign(served=champion_proba(spec, calm))
    land(spec, "honest.csv", honest)
    checked = run_cycle(spec)
    run = MlflowClient(spec.tracking_uri).get_run(checked.run_id)  # type: ignore[arg-type]
    assert "prediction" not in run.data.tags["automl.drift_signals"]
    assert checked.drift_verdict == "ok"

    # The served scores moved (a bug upstream serves 0.95 to everybody): the rows did not.
    broken = features(rows(400, seed=3, start=6000)).assign(served=0.95)
    land(spec, "broken.csv", broken)
    checked = run_cycle(spec)
    run = MlflowClient(spec.tracking_uri).get_run(checked.run_id)  # type: ignore[arg-type]
    assert "prediction" in run.data.tags["automl.drift_signals"]
    assert (checked.drift_verdict, checked.status) == ("drift", "waiting_for_labels")
