from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from automl.config import PipelineSpec
from automl.errors import SchedulerError
from automl.service import AutomlService, CycleResult, job_id
from tests.conftest import land

Churn = Callable[..., pd.DataFrame]


def _collect(
    service_specs: list[PipelineSpec],
    until: Callable[[list[CycleResult]], bool],
    timeout_s: float = 30.0,
) -> list[CycleResult]:
    results: list[CycleResult] = []
    done = threading.Event()

    def on_cycle(result: CycleResult) -> None:
        results.append(result)
        if until(results):
            done.set()

    service = AutomlService(service_specs, on_cycle=on_cycle)
    service.start()
    try:
        assert done.wait(timeout_s), f"only {len(results)} cycles in {timeout_s}s: {results}"
        job = service._scheduler.get_job(job_id(service_specs[0]))
        assert job is not None and job.id == f"cycle:{service_specs[0].name}"
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 300
    finally:
        service.stop()
    assert not service.running
    return results


def test_service_runs_each_pipeline_on_its_interval(
    write_spec: Callable[..., PipelineSpec],
) -> None:
    a, b = write_spec("alpha"), write_spec("beta")  # no data: quick no_data cycles
    results = _collect(
        [a, b],
        lambda rs: (
            {r.pipeline for r in rs if r.status == "no_data"} == {"alpha", "beta"}
            and sum(r.pipeline == "alpha" for r in rs) >= 3
        ),
    )
    alpha_ids = [r.cycle_id for r in results if r.pipeline == "alpha"]
    assert len(set(alpha_ids)) == len(alpha_ids) >= 3


@pytest.mark.slow
def test_a_failing_cycle_does_not_stop_the_service(
    write_spec: Callable[..., PipelineSpec], churn: Churn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    spec = write_spec(mlflow={"tracking_uri": "http://127.0.0.1:9"})
    land(spec, "history.csv", churn(200, seed=1))
    results = _collect([spec], lambda rs: sum(r.status == "failed" for r in rs) >= 2)
    assert all("127.0.0.1:9" in (r.error or "") for r in results if r.status == "failed")


def test_duplicate_names_and_bad_cron_are_refused(write_spec: Callable[..., PipelineSpec]) -> None:
    spec = write_spec("same")
    with pytest.raises(SchedulerError, match="unique"):
        AutomlService([spec, spec])
    bad = write_spec("cron", schedule={"cron": "every tuesday"})
    service = AutomlService([bad])
    with pytest.raises(SchedulerError, match="not a valid crontab expression"):
        service.start()


@pytest.mark.slow
def test_serve_stops_cleanly_on_sigterm(
    write_spec: Callable[..., PipelineSpec], tmp_path: Path
) -> None:
    write_spec("alpha")
    proc = subprocess.Popen(
        [sys.executable, "-m", "automl", "serve", str(tmp_path), "--log-level", "INFO"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen.append(line)
            if "cycle no_data" in line:
                break
        else:
            pytest.fail("service never ran a cycle:\n" + "".join(seen))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
        assert "service stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
