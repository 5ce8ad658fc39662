"""Liveness that tells the truth: a dead scheduler, a stale pipeline, slow stores, restarts."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from automl.cli import app
from automl.config import load_spec
from automl.data import make_churn_frame, write_table
from automl.service import AutomlService, CycleHistory, CycleResult
from automl.service._scheduler import stale_after_s
from tests.conftest import wait_until, write_spec_file

runner = CliRunner()


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_stale_bound_is_three_intervals_plus_the_tuning_timeout(tmp_path: Path) -> None:
    spec = load_spec(
        write_spec_file(tmp_path, "a", schedule={"interval_s": 60}, tuning={"timeout_s": 30})
    )
    assert stale_after_s(spec) == 3 * 60 + 30
    spec = load_spec(
        write_spec_file(tmp_path, "b", schedule={"interval_s": None, "cron": "*/5 * * * *"})
    )
    assert stale_after_s(spec) == 3 * 300 + 120


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_store_that_cannot_be_written_kills_the_scheduler_readyz_says_so_and_it_recovers(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    write_spec_file(folder, "alpha", schedule={"interval_s": 0.5})
    db = tmp_path / "jobs.db"
    results: list[CycleResult] = []
    service = AutomlService(
        folder,
        jobstore_url=f"sqlite:///{db}",
        http_port=0,
        on_cycle=results.append,
        reload_interval_s=60,
        watchdog_s=0.3,
        unhealthy_after_s=3.0,
    )
    service.start()
    base = f"http://127.0.0.1:{service.http_port}"
    try:
        wait_until(lambda: len(results) >= 2, 60, "cycles")
        assert _get(f"{base}/readyz")[0] == 200
        # Another process takes the write lock: the job store cannot be written (as on a full
        # disk), so APScheduler's thread dies at its next update ("Exception in thread").
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            wait_until(lambda: not service._scheduler_alive(), 30, "the scheduler thread to die")
            started = time.monotonic()
            code, body = _get(f"{base}/readyz")
            assert time.monotonic() - started < 2.0
            assert code == 503 and "scheduler" in body["failing"], body
            # Meanwhile the watchdog (every 0.3 s) tries to restart it: each attempt runs a
            # paused scheduler while it fails (SQLite's busy timeout, 5 s) to write its jobs.
            # Readiness says the scheduler is down all along, not only between two attempts.
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline:
                code, body = _get(f"{base}/readyz")
                assert code == 503 and "scheduler" in body["failing"], body
                time.sleep(0.2)
            wait_until(lambda: _get(f"{base}/healthz")[0] == 503, 30, "/healthz to give up")
            assert "restart" in _get(f"{base}/healthz")[1]["failing"]["scheduler"]
            seen = len(results)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # Space is back: the service restarts its scheduler by itself and cycles run again.
        wait_until(lambda: len(results) >= seen + 2, 60, "cycles after the job store recovered")
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, 30, "readiness again")
        assert _get(f"{base}/healthz")[0] == 200
    finally:
        service.stop()


@pytest.mark.slow
def test_a_pipeline_without_cycles_fails_readyz_and_its_job_is_re_added(tmp_path: Path) -> None:
    write_spec_file(tmp_path, "alpha", schedule={"interval_s": 0.5}, tuning={"timeout_s": 1})
    results: list[CycleResult] = []
    service = AutomlService(
        tmp_path, http_port=0, on_cycle=results.append, reload_interval_s=600, watchdog_s=0.3
    )
    service.start()
    base = f"http://127.0.0.1:{service.http_port}"
    try:
        wait_until(lambda: bool(results), 60, "a first cycle")
        service._scheduler.remove_job("cycle:alpha")  # the job is lost: no cycle runs any more
        seen = len(results)
        wait_until(
            lambda: "alpha:cycles" in _get(f"{base}/readyz")[1]["failing"], 30, "stale alpha"
        )
        wait_until(lambda: len(results) > seen, 30, "the job re-added and run")
        assert service._scheduler.get_job("cycle:alpha") is not None
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, 30, "readiness again")
    finally:
        service.stop()


def test_readyz_answers_503_within_a_second_when_mlflow_does_not_answer(tmp_path: Path) -> None:
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    write_spec_file(tmp_path, "alpha", mlflow={"tracking_uri": f"http://127.0.0.1:{port}"})
    service = AutomlService(tmp_path, http_port=0, reload_interval_s=600)
    service.start()
    try:
        for _ in range(2):  # the first check starts in the background; the second reuses it
            started = time.monotonic()
            code, body = _get(f"http://127.0.0.1:{service.http_port}/readyz")
            assert time.monotonic() - started < 1.8
            assert code == 503 and "stores" in body["failing"], body
    finally:
        service.stop()
        silent.close()


@pytest.mark.slow
def test_an_unreachable_mlflow_fails_a_cycle_in_seconds(tmp_path: Path) -> None:
    spec_file = write_spec_file(tmp_path, "alpha", mlflow={"tracking_uri": "http://127.0.0.1:9"})
    spec = load_spec(spec_file)
    write_table(make_churn_frame(300, seed=1), spec.landing_path / "history.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "automl", "run", str(spec_file)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1 and "127.0.0.1:9" in done.stderr
    assert elapsed < 30, f"took {elapsed:.0f} s"  # MLflow's defaults: about 4 minutes
    (failed,) = CycleHistory(spec.state_url).list("alpha")
    assert failed.status == "failed"


def test_a_restarted_service_runs_a_cycle_at_start(tmp_path: Path) -> None:
    write_spec_file(tmp_path, "alpha", schedule={"interval_s": 3600})
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    first: list[CycleResult] = []
    service = AutomlService(tmp_path, jobstore_url=store, on_cycle=first.append)
    service.start()
    try:
        wait_until(lambda: bool(first), 30, "the first cycle")
    finally:
        service.stop()
    again: list[CycleResult] = []
    service = AutomlService(tmp_path, jobstore_url=store, on_cycle=again.append)
    service.start()
    try:
        wait_until(lambda: bool(again), 30, "a cycle at the restart (the store says in an hour)")
    finally:
        service.stop()


def test_serve_names_a_port_in_use_or_out_of_range_in_one_line(tmp_path: Path) -> None:
    write_spec_file(tmp_path, "alpha")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        result = runner.invoke(
            app, ["serve", str(tmp_path), "--port", str(port), "--jobstore", "memory"]
        )
    finally:
        taken.close()
    assert result.exit_code == 1, result.output
    assert f"127.0.0.1:{port}" in result.output and "already in use" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["serve", str(tmp_path), "--port", "99999"])
    assert result.exit_code == 2 and "65535" in result.output and "Traceback" not in result.output
