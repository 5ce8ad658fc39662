"""The fault battery of the service half: crashes leave traces, poison is quarantined.

Every crash here is a real ``kill -9`` of a real ``automl run`` process, at a moment observed
from outside (a row appearing in MLflow's, Optuna's or automl's database), followed by a real
next cycle.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automl.config import PipelineSpec
from automl.data import BatchLedger, make_churn_frame, write_table
from automl.service import CycleHistory, run_cycle
from automl.service._poison import failure_streak
from automl.tracking import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, PromotionLog
from tests.conftest import land


def _query(db: Path, sql: str) -> int:
    """A count from a SQLite database another process is writing (0 while it is not there)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


def _kill_when(spec: PipelineSpec, db: Path, sql: str, timeout_s: float = 180) -> None:
    """Run ``automl run SPEC`` and kill -9 it as soon as ``sql`` counts a row in ``db``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "automl", "run", str(spec.source_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if _query(db, sql):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == -signal.SIGKILL, f"the process ended on its own ({code}): {stderr[-2000:]}"


def _aliases(spec: PipelineSpec) -> dict[str, str]:
    from automl.service import make_tracker

    tracker = make_tracker(spec)
    found = {
        a: tracker.get_alias(spec.model_name, a) for a in (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)
    }
    return {a: v.version for a, v in found.items() if v is not None}


def _cycle_runs(spec: PipelineSpec) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(spec.tracking_uri)
    exp = client.get_experiment_by_name(spec.experiment_name)
    runs = client.search_runs([exp.experiment_id], "tags.`automl.pipeline` = 'churn'")
    return {r.data.tags["automl.cycle_id"]: r for r in runs}


# -- crash traces ----------------------------------------------------------------------------
KILL_POINTS = {
    # the model is logged (a logged model row exists), not yet registered
    "logged": ("mlflow.db", "SELECT count(*) FROM logged_models"),
    # the version is registered, not yet judged and promoted
    "registered": ("mlflow.db", "SELECT count(*) FROM model_versions"),
    # @champion has moved (the last registry write of the cycle)
    "promoted": ("mlflow.db", "SELECT count(*) FROM registered_model_aliases"),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_after_the_model_is_logged_leaves_a_trace_the_next_cycle_closes(
    write_spec: Callable[..., PipelineSpec], point: str
) -> None:
    spec = write_spec()
    land(spec, "history.csv", make_churn_frame(600, seed=1))
    db, sql = KILL_POINTS[point]
    _kill_when(spec, spec.workspace_dir / db, sql)

    (killed,) = _cycle_runs(spec).values()
    assert killed.info.status == "RUNNING"  # before the fix: FINISHED, no trace of the crash
    lost_cycle = killed.data.tags["automl.cycle_id"]

    result = run_cycle(spec)
    # Killed after @champion moved, the promotion stands (the log says it was applied) and
    # the next cycle checks the same rows against it; before that, it re-judges v1.
    assert result.status == ("no_drift" if point == "promoted" else "retuned")
    assert result.champion_version == "1"
    runs = _cycle_runs(spec)
    assert runs[lost_cycle].info.status == "FAILED"
    assert runs[lost_cycle].data.tags["automl.error"].startswith("interrupted:")
    assert runs[result.cycle_id].info.status == "FINISHED"
    history = CycleHistory(spec.state_url)
    failed = history.find("churn", lost_cycle)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error.startswith("interrupted:")
    assert failed.run_id == killed.info.run_id
    assert [h.status for h in history.list("churn")] == [result.status, "failed"]
    from mlflow import MlflowClient

    versions = MlflowClient(spec.tracking_uri).search_model_versions("name='churn'")
    assert [str(v.version) for v in versions] == ["1"]  # registration is idempotent per window
    assert _aliases(spec) == {CHAMPION: "1"}
    assert BatchLedger(spec.state_url).pending("churn") == []


@pytest.mark.slow
def test_kill_9_during_tuning_leaves_a_running_trial_the_next_cycle_fails(
    write_spec: Callable[..., PipelineSpec],
) -> None:
    spec = write_spec(tuning={"n_trials": 200, "cv": 3, "timeout_s": 300})
    land(spec, "history.csv", make_churn_frame(3000, seed=1))
    optuna_db = spec.workspace_dir / "optuna.db"
    running = "SELECT count(*) FROM trials WHERE state = 'RUNNING' AND number >= 2"
    _kill_when(spec, optuna_db, running)
    assert _query(optuna_db, "SELECT count(*) FROM trials WHERE state = 'RUNNING'") == 1
    (killed,) = _cycle_runs(spec).values()
    lost_cycle = killed.data.tags["automl.cycle_id"]

    spec = write_spec(tuning={"n_trials": 2, "cv": 2})
    result = run_cycle(spec)
    assert result.status == "retuned"
    assert _query(optuna_db, "SELECT count(*) FROM trials WHERE state = 'RUNNING'") == 0
    lost_study = f"churn-{lost_cycle}"
    failed_trials = (
        "SELECT count(*) FROM trials t JOIN studies s ON t.study_id = s.study_id "
        f"WHERE s.study_name = '{lost_study}' AND t.state = 'FAIL'"
    )
    assert _query(optuna_db, failed_trials) == 1
    failed = CycleHistory(spec.state_url).find("churn", lost_cycle)
    assert failed is not None and failed.status == "failed"
    assert _cycle_runs(spec)[lost_cycle].info.status == "FAILED"


@pytest.mark.slow
def test_kill_9_around_the_promotion_never_leaves_two_aliases_on_one_version(
    write_spec: Callable[..., PipelineSpec],
) -> None:
    spec = write_spec(
        registry={"significance": {"test": "none"}},
        drift={"hysteresis": {"cooldown_checks": 0}},  # re-tune on the first drifted batch
    )
    weak = make_churn_frame(600, seed=1)
    weak["churned"] = weak["churned"].sample(frac=1.0, random_state=0).to_numpy()
    land(spec, "history.csv", weak)  # v1 learns noise
    assert run_cycle(spec).champion_version == "1"
    land(spec, "drifted.csv", make_churn_frame(1000, seed=2, drift=1.0))
    intent = "SELECT count(*) FROM automl_promotions WHERE status = 'intent' AND to_version = '2'"
    _kill_when(spec, spec.workspace_dir / "automl.db", intent)

    result = run_cycle(spec)
    assert result.champion_version == "2"
    aliases = _aliases(spec)
    assert aliases[CHAMPION] == "2" and aliases.get(PREVIOUS_CHAMPION) == "1"
    assert len(set(aliases.values())) == len(aliases), aliases  # no two on one version
    log = PromotionLog(spec.state_url)
    assert log.open_intents("churn") == []
    statuses = [(e.action, e.status, e.to_version) for e in log.entries("churn")]
    assert ("promote", "applied", "2") in statuses
    history = CycleHistory(spec.state_url).list("churn")
    assert [h.status for h in history][1] == "failed"  # the killed cycle, recorded


# -- poison ----------------------------------------------------------------------------------
def _accept_as_is(spec: PipelineSpec, name: str, frame: pd.DataFrame) -> None:
    """Put a batch in the ledger as accepted, the way a validation gap would let it in."""
    ledger = BatchLedger(spec.state_url)
    stored = write_table(frame, spec.workspace_dir / "batches" / spec.name / f"{name}.parquet")
    ledger.add(
        pipeline=spec.name,
        sha256=f"{name:0<64}"[:64],
        file_name=name,
        status="accepted",
        stored_path=stored,
        n_rows=len(frame),
    )


def test_failure_streak_counts_failed_cycles_in_a_row() -> None:
    from automl.service import CycleResult

    rows = [CycleResult("p", str(i), s, "", "") for i, s in enumerate(
        ["failed", "interrupted", "failed", "skipped", "failed", "retuned", "failed"]
    )]  # fmt: skip
    assert failure_streak(rows) == 3
    assert failure_streak(rows[5:]) == 0
    assert failure_streak([]) == 0


@pytest.mark.slow
def test_a_batch_that_fails_every_cycle_is_quarantined_and_the_pipeline_goes_on(
    write_spec: Callable[..., PipelineSpec], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    spec = write_spec(
        notify={"webhook_url": url},
        data={"max_batch_failures": 2},
        # Re-tune on the first drifted batch; evidently's HTML report (the default) is the step
        # whose error names the column.
        drift={"hysteresis": {"cooldown_checks": 0}, "html_report": "on_drift"},
    )
    land(spec, "history.csv", make_churn_frame(600, seed=1))
    assert run_cycle(spec).champion_version == "1"
    poison = make_churn_frame(300, seed=3, drift=1.0)
    poison["monthly_charges"] = float("inf")  # every model's fit refuses it
    _accept_as_is(spec, "poison.parquet", poison)
    land(spec, "good.csv", make_churn_frame(300, seed=4, drift=1.0))  # ingested as usual

    statuses = [run_cycle(spec, raise_on_failure=False).status for _ in range(3)]
    assert statuses[:2] == ["failed", "failed"]
    assert statuses[2] in ("retuned", "no_drift")  # without the poison, the pipeline goes on
    ledger = BatchLedger(spec.state_url)
    (bad,) = [r for r in ledger.records("churn") if r.file_name == "poison.parquet"]
    assert bad.status == "rejected" and bad.reason is not None
    assert "2 failed cycles in a row" in bad.reason and "monthly_charges" in bad.reason
    assert (
        bad.stored_path is not None
        and bad.stored_path.parent == spec.workspace_dir / "quarantine" / "churn"
    )
    assert bad.stored_path.with_name(bad.stored_path.name + ".reason.txt").exists()
    (good,) = [r for r in ledger.records("churn") if r.file_name == "good.csv"]
    assert good.status == "accepted" and good.cycle_id is not None  # consumed, not thrown away
    events = [e for e in received if e["event"] == "quarantine"]
    assert [e["file"] for e in events] == ["poison.parquet"]


@pytest.mark.slow
def test_an_unreachable_store_never_quarantines_a_good_batch(
    write_spec: Callable[..., PipelineSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    spec = write_spec(mlflow={"tracking_uri": "http://127.0.0.1:9"}, data={"max_batch_failures": 2})
    land(spec, "history.csv", make_churn_frame(600, seed=1))
    statuses = [run_cycle(spec, raise_on_failure=False).status for _ in range(4)]
    assert statuses == ["failed"] * 4
    (record,) = BatchLedger(spec.state_url).records("churn")
    assert record.status == "accepted" and record.cycle_id is None  # still pending
