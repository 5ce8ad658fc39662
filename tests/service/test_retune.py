"""A cycle's re-tune in a child process: the same version and decision as in-process, a crash
or a kill in the child fails the cycle (recorded, batches kept) and the next one runs, a stop
interrupts it, the child's logs arrive in the service's log, the judge runs there too (the
service's process loads no model library), and ``tuning.memory_mb`` caps it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automl.config import PipelineSpec, load_spec
from automl.data import BatchLedger
from automl.service import CycleHistory, CycleResult, make_tracker, run_cycle
from tests.conftest import land, write_spec_file

Churn = Callable[..., pd.DataFrame]


def fast(**tuning: Any) -> dict[str, Any]:
    """Spec overrides: two trials, two folds, no significance test; ``tuning`` on top."""
    return {
        "tuning": {"n_trials": 2, "cv": 2, "seed": 5, "in_child_process": True, **tuning},
        "registry": {"significance": {"test": "none"}},
    }


def _children_running_retune() -> list[int]:
    """Pids of this process's children that run a re-tune."""
    me = os.getpid()
    found = []
    for task in Path(f"/proc/{me}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended since the listing (other tests' threads come and go)
            continue
        for pid in children:
            with contextlib.suppress(OSError):  # it may have ended meanwhile
                if b"automl.service._retune" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
    return found


def _in_thread(
    spec: PipelineSpec, stop: threading.Event | None = None
) -> tuple[threading.Thread, list[CycleResult]]:
    results: list[CycleResult] = []
    thread = threading.Thread(
        target=lambda: results.append(run_cycle(spec, raise_on_failure=False, stop=stop))
    )
    thread.start()
    return thread, results


def _wait_for_child(timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = _children_running_retune()
        if pids:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError("no re-tune process started")


@pytest.mark.slow
def test_a_retune_in_a_child_registers_what_one_in_process_does(
    tmp_path: Path,
    write_spec: Callable[..., PipelineSpec],
    churn: Churn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    results = {}
    for in_child in (True, False):
        spec = write_spec(
            f"p{int(in_child)}",
            **fast(in_child_process=in_child),
        )
        land(spec, "history.csv", churn(400, seed=1))
        with caplog.at_level(logging.INFO, logger="automl"):
            results[in_child] = run_cycle(spec)
    child, inline = results[True], results[False]
    assert child.status == inline.status == "retuned"
    for field in (
        "model_version",
        "n_trials",
        "best_cv_score",
        "default_cv_score",
        "challenger_score",
        "is_promoted",
        "champion_version",
    ):
        assert getattr(child, field) == getattr(inline, field), field
    told = [r for r in caplog.records if r.name == "automl.service._retune"]
    assert len(told) == 1 and told[0].process != os.getpid()  # the child's record, re-emitted here
    assert told[0].getMessage().startswith("re-tuning in process ")


@pytest.mark.slow
def test_a_killed_or_failing_retune_fails_the_cycle_and_the_next_one_runs(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(**fast(n_trials=50))
    land(spec, "history.csv", churn(400, seed=1))
    thread, results = _in_thread(spec)
    os.kill(_wait_for_child(), 9)
    thread.join(300)
    assert not thread.is_alive(), "the cycle did not end after its re-tune process was killed"
    (killed,) = results
    assert killed.status == "failed"
    assert (
        killed.error is not None and "the re-tune's process was killed by SIGKILL" in killed.error
    )
    assert len(BatchLedger(spec.state_url).pending(spec.name)) == 1  # kept for the next cycle
    assert not _children_running_retune()

    # An error inside the child (its Optuna storage cannot be opened) comes back as the error.
    broken = write_spec(**fast(storage="sqlite:////nonexistent/x/optuna.db"))
    failed = run_cycle(broken, raise_on_failure=False)
    assert failed.status == "failed" and failed.error
    assert [c.status for c in CycleHistory(spec.state_url).list(spec.name)] == ["failed", "failed"]

    fixed = write_spec(**fast())
    again = run_cycle(fixed)
    assert (again.status, again.model_version, again.is_promoted) == ("retuned", "1", True)
    assert BatchLedger(spec.state_url).pending(spec.name) == []


@pytest.mark.slow
def test_a_stop_interrupts_the_retune_process(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    spec = write_spec(**fast(n_trials=500, timeout_s=600))
    land(spec, "history.csv", churn(400, seed=1))
    stop = threading.Event()
    thread, results = _in_thread(spec, stop)
    child = _wait_for_child()
    stop.set()
    started = time.monotonic()
    thread.join(60)
    assert not thread.is_alive() and time.monotonic() - started < 30
    (stopped,) = results
    assert stopped.status == "interrupted"
    assert stopped.error is not None and "the re-tune's process was stopped" in stopped.error
    assert not Path(f"/proc/{child}").exists() or child not in _children_running_retune()
    assert len(BatchLedger(spec.state_url).pending(spec.name)) == 1


# -- the judge in the child: the service's process loads no model library ---------------------
ROOT = Path(__file__).resolve().parents[2]
#: One cycle in a fresh interpreter (as the service runs it): its result and which libraries
#: the process imported.
_CYCLE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
from automl.config import load_spec
from automl.service import run_cycle

result = run_cycle(load_spec(sys.argv[1]), raise_on_failure=False)
libraries = ("sklearn", "xgboost", "scipy.stats", "optuna")
print(json.dumps({
    "status": result.status,
    "error": result.error,
    "version": result.model_version,
    "champion": result.champion_version,
    "challenger_score": result.challenger_score,
    "champion_score": result.champion_score,
    "run_id": result.run_id,
    "loaded": [name for name in libraries if name in sys.modules],
}))
"""


def _cycle_in_fresh_process(spec_path: Path) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-c", _CYCLE, str(spec_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def _spec_file(folder: Path, *, in_child: bool) -> Path:
    """Fast, one check confirms a drift, and the old-population guardrail on (lenient: it
    scores both models on the champion's stored holdout, and passes)."""
    overrides = fast(in_child_process=in_child)
    overrides["registry"]["old_population"] = {"max_regression": 0.5}
    return write_spec_file(
        folder, **overrides, drift={"hysteresis": {"confirm_checks": 1, "cooldown_checks": 0}}
    )


def _old_population_check(spec: PipelineSpec, run_id: str) -> dict[str, Any]:
    """The old-population guardrail's check in the decision the cycle logged."""
    path = make_tracker(spec).download_artifact(run_id, "promotion.json", spec.workspace_dir)
    gate = json.loads(path.read_text(encoding="utf-8"))["gate"]
    (check,) = (g for g in gate["guardrails"] if g["metric"].startswith("old_population"))
    return dict(check)


@pytest.mark.slow
@pytest.mark.parametrize("in_child", [True, False])
def test_with_in_child_process_the_service_never_loads_a_model(
    tmp_path: Path, churn: Churn, in_child: bool
) -> None:
    """A first model, then a drift re-tune judged against the champion (on the new holdout and
    on the champion's stored one): each cycle in a fresh interpreter. With ``in_child_process``
    the search and both judges ran in the child, so the service's process never imported
    scikit-learn, XGBoost, Optuna (nor ``scipy.stats``: the drift check does without);
    in-process it imports them (the control)."""
    path = _spec_file(tmp_path, in_child=in_child)
    spec = load_spec(path)
    land(spec, "history.csv", churn(400, seed=1))
    first, _ = _cycle_in_fresh_process(path)
    assert (first["status"], first["version"], first["champion"]) == ("retuned", "1", "1")
    assert first["challenger_score"] is not None  # judged (in the child) on the holdout
    land(spec, "drifted.csv", churn(300, seed=2, drift=1.0))
    second, _ = _cycle_in_fresh_process(path)
    assert (second["status"], second["version"]) == ("retuned", "2"), second["error"]
    assert second["challenger_score"] is not None and second["champion_score"] is not None
    check = _old_population_check(spec, second["run_id"])  # scored on v1's stored holdout
    assert check["passed"] is True and check["skipped"] is False, check
    if in_child:
        assert first["loaded"] == second["loaded"] == []
    else:
        assert {"sklearn", "xgboost", "optuna"} <= set(second["loaded"])


def _hide_model(spec: PipelineSpec, version: str) -> tuple[Path, Path]:
    """Move a version's model artifacts away (its loading fails); returns (where, hidden)."""
    from mlflow import MlflowClient

    client = MlflowClient(spec.tracking_uri)
    model_id = client.get_model_version(spec.model_name, version).source.split("/")[-1]
    where = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
    hidden = where.with_name(where.name + ".hidden")
    where.rename(hidden)
    return where, hidden


@pytest.mark.slow
def test_a_version_registered_before_a_failed_judge_is_judged_again_in_a_child(
    tmp_path: Path, churn: Churn
) -> None:
    """The judge fails after the registration (the champion's model cannot be loaded): the
    cycle fails with the version it registered and its batches pending. The next cycle finds
    the version registered for the same window and only judges it, in a child process too."""
    path = _spec_file(tmp_path, in_child=True)
    spec = load_spec(path)
    land(spec, "history.csv", churn(400, seed=1))
    assert run_cycle(spec).model_version == "1"
    land(spec, "drifted.csv", churn(300, seed=2, drift=1.0))
    where, hidden = _hide_model(spec, "1")
    failed = run_cycle(spec, raise_on_failure=False)
    assert (failed.status, failed.model_version) == ("failed", "2")  # kept from the child
    assert failed.error is not None and "could not load model models:/churn/1" in failed.error
    assert len(BatchLedger(spec.state_url).pending(spec.name)) == 1
    hidden.rename(where)

    again, log = _cycle_in_fresh_process(path)
    assert (again["status"], again["version"]) == ("retuned", "2"), again["error"]
    assert again["challenger_score"] is not None and again["champion_score"] is not None
    assert "already trained on this data window" in log and "judging in process" in log
    assert "re-tuning in process" not in log  # no second search
    assert again["loaded"] == []
    assert BatchLedger(spec.state_url).pending(spec.name) == []


@pytest.mark.slow
def test_a_retune_over_its_memory_limit_fails_the_cycle_naming_the_limit(
    write_spec: Callable[..., PipelineSpec], churn: Churn
) -> None:
    """``tuning.memory_mb`` is the child's RLIMIT_DATA: below what the child needs, the cycle
    fails (recorded, batches pending) with an error that names the setting, and the next
    cycle runs. (64 MB is below the spec's own minimum of 512, which only a spec built in
    code can hold: a real limit is hit the same way, later.)"""
    spec = write_spec(**fast())
    land(spec, "history.csv", churn(400, seed=1))
    tiny = spec.model_copy(update={"tuning": spec.tuning.model_copy(update={"memory_mb": 64})})
    failed = run_cycle(tiny, raise_on_failure=False)
    assert failed.status == "failed"
    assert failed.error is not None and "tuning.memory_mb (64 MB)" in failed.error, failed.error
    assert len(BatchLedger(spec.state_url).pending(spec.name)) == 1
    assert not _children_running_retune()
    enough = spec.tuning.model_copy(update={"memory_mb": 2048})
    again = run_cycle(spec.model_copy(update={"tuning": enough}))
    assert (again.status, again.model_version) == ("retuned", "1")
    assert BatchLedger(spec.state_url).pending(spec.name) == []
