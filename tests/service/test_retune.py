"""A cycle's re-tune in a child process: the same version and decision as in-process, a crash
or a kill in the child fails the cycle (recorded, batches kept) and the next one runs, a stop
interrupts it, and the child's logs arrive in the service's log."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automl.config import PipelineSpec
from automl.data import BatchLedger
from automl.service import CycleHistory, CycleResult, run_cycle
from tests.conftest import land

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
