"""The production service: endpoints, hot reload, persistence, signals, kill -9, the lock."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from automl.config import load_spec
from automl.data import BatchLedger, make_churn_frame, write_table
from automl.service import AutomlService, CycleHistory, CycleResult
from tests.conftest import PG_URL, wait_until, write_spec_file


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_endpoints(tmp_path: Path) -> None:
    write_spec_file(tmp_path, "alpha")
    results: list[CycleResult] = []
    service = AutomlService(tmp_path, http_port=0, on_cycle=results.append)
    service.start()
    try:
        wait_until(lambda: bool(results), 30, "a first cycle")
        base = f"http://127.0.0.1:{service.http_port}"
        assert _get(f"{base}/healthz") == (200, b'{"status": "alive"}')
        code, body = _get(f"{base}/readyz")
        assert code == 200 and json.loads(body) == {"ready": True, "failing": {}}
        code, body = _get(f"{base}/metrics")
        text = body.decode()
        assert code == 200
        assert 'automl_cycles_total{pipeline="alpha",status="no_data"}' in text
        assert "automl_last_success_timestamp_seconds" in text
        assert "automl_cycle_duration_seconds_bucket" in text
        code, body = _get(f"{base}/status")
        (row,) = json.loads(body)["pipelines"]
        assert code == 200 and row["pipeline"] == "alpha" and row["last_status"] == "no_data"
        assert row["next_check_at"] is not None
        assert _get(f"{base}/nope")[0] == 404
    finally:
        service.stop()


def test_readyz_reports_an_unreachable_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    write_spec_file(tmp_path, "alpha", mlflow={"tracking_uri": "http://127.0.0.1:9"})
    service = AutomlService(tmp_path, http_port=0)
    service.start()
    try:
        code, body = _get(f"http://127.0.0.1:{service.http_port}/readyz")
        assert code == 503 and "alpha:mlflow" in json.loads(body)["failing"]
    finally:
        service.stop()


def test_folder_is_hot_reloaded(tmp_path: Path) -> None:
    write_spec_file(tmp_path, "alpha", schedule={"interval_s": 60})
    service = AutomlService(tmp_path, reload_interval_s=0.3)
    service.start()
    jobs = service._scheduler
    try:
        wait_until(lambda: jobs.get_job("cycle:alpha") is not None, 10, "alpha's job")
        write_spec_file(tmp_path, "beta", schedule={"interval_s": 60, "retune_cron": "0 3 * * 0"})
        wait_until(lambda: jobs.get_job("cycle:beta") is not None, 10, "beta's job")
        assert "cron" in str(jobs.get_job("retune:beta").trigger)  # type: ignore[union-attr]
        write_spec_file(tmp_path, "alpha", schedule={"interval_s": 120})
        wait_until(lambda: "0:02:00" in str(jobs.get_job("cycle:alpha").trigger), 10, "reschedule")  # type: ignore[union-attr]
        (tmp_path / "alpha.yaml").write_text("name: alpha\ndata: [broken", encoding="utf-8")
        time.sleep(1.0)
        assert jobs.get_job("cycle:alpha") is not None  # a typo does not unschedule it
        (tmp_path / "beta.yaml").unlink()
        wait_until(lambda: jobs.get_job("cycle:beta") is None, 10, "beta's removal")
        assert jobs.get_job("retune:beta") is None
    finally:
        service.stop()


def test_jobs_persist_across_restart(tmp_path: Path) -> None:
    write_spec_file(
        tmp_path, "alpha", schedule={"interval_s": 3600, "retune_interval_s": 7 * 86400}
    )
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    first = AutomlService(tmp_path, jobstore_url=store)
    first.start()
    retune_at = first._scheduler.get_job("retune:alpha").next_run_time  # type: ignore[union-attr]
    first.stop()
    time.sleep(1.1)
    second = AutomlService(tmp_path, jobstore_url=store)
    second.start()
    try:
        job = second._scheduler.get_job("retune:alpha")
        assert job is not None and job.next_run_time == retune_at  # kept, not recomputed
        assert job.args[0] == str((tmp_path / "alpha.yaml").resolve())
    finally:
        second.stop()


def test_burst_of_small_batches_is_ingested_exactly_once(tmp_path: Path) -> None:
    spec = load_spec(write_spec_file(tmp_path, "alpha", training={"min_rows": 20}))
    rng_frames = [make_churn_frame(12, seed=i) for i in range(300)]
    for i, frame in enumerate(rng_frames):
        write_table(frame, spec.landing_path / f"b{i:04d}.csv")
    write_table(rng_frames[7], spec.landing_path / "dup.csv")  # same bytes as b0007.csv
    from automl.data import PipelinePaths, ingest_landing

    ledger = BatchLedger(spec.state_url)
    paths = PipelinePaths(spec.workspace_dir, spec.name)

    def one_pass() -> None:
        ingest_landing(
            pipeline="alpha",
            landing_dir=spec.landing_path,
            paths=paths,
            ledger=BatchLedger(spec.state_url),
            target="churned",
            task="classification",
        )

    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            one_pass()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(2)]  # two racing ingesters
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = ledger.records("alpha")
    assert len(records) == 300 and len({r.sha256 for r in records}) == 300
    assert list(spec.landing_path.iterdir()) == []
    assert len(list(paths.batches.iterdir())) == 300


# -- real service processes ---------------------------------------------------------------
class Served:
    """An ``automl serve`` subprocess whose stderr is collected in the background."""

    def __init__(self, folder: Path, *extra: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "automl", "serve", str(folder), "--reload-s", "0.5", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def saw(self, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def long_tuning(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A folder with one pipeline whose first cycle tunes for minutes (500 trials)."""
    folder = tmp_path / "pipes"
    folder.mkdir()
    spec_file = write_spec_file(
        folder,
        "alpha",
        tuning={"n_trials": 500, "timeout_s": 600, "cv": 2},
        schedule={"interval_s": 1},
    )
    spec = load_spec(spec_file)
    write_table(make_churn_frame(600, seed=1), spec.landing_path / "history.csv")
    yield folder, spec_file


def _trial_runs(spec_file: Path) -> int:
    """Nested trial runs so far, read with plain sqlite3 (an MlflowClient on a database the
    service is still creating would race it through MLflow's schema migrations)."""
    import sqlite3

    db = load_spec(spec_file).workspace_dir / "mlflow.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute(
                "SELECT count(*) FROM tags WHERE key = 'mlflow.parentRunId'"
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0])


@pytest.mark.slow
def test_sigterm_during_tuning_stops_after_the_trial_and_exits_0(
    long_tuning: tuple[Path, Path],
) -> None:
    folder, spec_file = long_tuning
    served = Served(folder, "--jobstore", "memory")
    try:
        wait_until(lambda: _trial_runs(spec_file) >= 2, 120, "tuning to start")
        started = time.monotonic()
        assert served.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 30
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
    spec = load_spec(spec_file)
    last = CycleHistory(spec.state_url).last("alpha")
    assert last is not None and last.status == "interrupted"
    run = MlflowClient(spec.tracking_uri).get_run(last.run_id)  # type: ignore[arg-type]
    assert run.info.status == "KILLED"
    assert [r.file_name for r in BatchLedger(spec.state_url).pending("alpha")] == ["history.csv"]


@pytest.mark.slow
def test_kill_9_mid_tuning_then_restart_recovers(long_tuning: tuple[Path, Path]) -> None:
    folder, spec_file = long_tuning
    first = Served(folder, "--jobstore", "memory")
    try:
        wait_until(lambda: _trial_runs(spec_file) >= 2, 120, "tuning to start")
        first.stop(signal.SIGKILL)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    spec = load_spec(spec_file)
    client = MlflowClient(spec.tracking_uri)
    exp = client.get_experiment_by_name(spec.experiment_name)
    orphan = client.search_runs(
        [exp.experiment_id], "attributes.status = 'RUNNING' and tags.`automl.pipeline` = 'alpha'"
    )
    assert len(orphan) == 1  # what kill -9 leaves behind

    raw = yaml.safe_load(spec_file.read_text())
    raw["tuning"]["n_trials"] = 3  # the restarted service finishes quickly
    spec_file.write_text(yaml.safe_dump(raw))
    second = Served(folder, "--jobstore", "memory")
    try:
        wait_until(
            lambda: any(h.status == "retuned" for h in CycleHistory(spec.state_url).list("alpha")),
            120,
            "the retried cycle",
        )
        assert second.stop() == 0
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    assert client.get_run(orphan[0].info.run_id).info.status == "FAILED"
    assert client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") == []
    records = BatchLedger(spec.state_url).records("alpha")
    assert len(records) == 1 and records[0].cycle_id is not None  # processed once, not lost
    assert [str(v.version) for v in client.search_model_versions("name='alpha'")] == ["1"]


@pytest.mark.slow
@pytest.mark.postgres
def test_two_instances_on_postgres_never_run_one_pipeline_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    name = f"pg{uuid.uuid4().hex[:8]}"
    spec_file = write_spec_file(
        folder, name, state_db=PG_URL, schedule={"interval_s": 0.5}, tuning={"n_trials": 6, "cv": 2}
    )
    spec = load_spec(spec_file)
    write_table(make_churn_frame(600, seed=1), spec.landing_path / "history.csv")
    a = Served(folder, "--jobstore", "memory")
    b = Served(folder, "--jobstore", "memory")
    try:
        wait_until(
            lambda: any(h.status == "retuned" for h in CycleHistory(PG_URL).list(name)),
            180,
            "the first champion",
        )
        wait_until(
            lambda: a.saw("holds the pipeline's lock") or b.saw("holds the pipeline's lock"),
            30,
            "an instance to find the lock taken",
        )
        time.sleep(2)  # more rounds of both instances competing
        assert a.stop() == 0 and b.stop() == 0
    finally:
        for s in (a, b):
            if s.proc.poll() is None:
                s.proc.kill()
    client = MlflowClient(spec.tracking_uri)
    assert [str(v.version) for v in client.search_model_versions(f"name='{name}'")] == ["1"]
    history = CycleHistory(PG_URL).list(name)
    assert sum(h.status == "retuned" for h in history) == 1
    assert len(BatchLedger(PG_URL).records(name)) == 1


@pytest.mark.slow
def test_mlflow_outage_is_retried_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    spec_file = write_spec_file(
        tmp_path,
        "alpha",
        mlflow={"tracking_uri": "http://127.0.0.1:9"},
        schedule={"interval_s": 30},
    )
    spec = load_spec(spec_file)
    write_table(make_churn_frame(300, seed=1), spec.landing_path / "history.csv")
    results: list[CycleResult] = []
    service = AutomlService(tmp_path, on_cycle=results.append, reload_interval_s=0.5)
    service.start()
    try:
        wait_until(
            lambda: sum(r.status == "failed" for r in results) >= 2, 60, "failed cycles retried"
        )
        assert service._scheduler.get_job("retry:alpha") is not None  # backoff, not 30 s
        raw = yaml.safe_load(spec_file.read_text())
        raw["mlflow"] = {"tracking_uri": None}  # the server is back (here: the local store)
        spec_file.write_text(yaml.safe_dump(raw))
        wait_until(lambda: any(r.status == "retuned" for r in results), 120, "recovery")
    finally:
        service.stop()
    assert BatchLedger(spec.state_url).pending("alpha") == []


@pytest.mark.slow
def test_served_process_endpoints_hot_reload_and_job_persistence(tmp_path: Path) -> None:
    """The same checks as above, against a real ``automl serve`` process and its restart."""
    folder = tmp_path / "pipes"
    folder.mkdir()
    write_spec_file(folder, "alpha", schedule={"interval_s": 3600, "retune_interval_s": 7 * 86400})
    served = Served(folder, "--port", "0", "--json-logs")
    try:
        wait_until(
            lambda: served.saw(r"status endpoint on http://127\.0\.0\.1:\d+"), 60, "the endpoint"
        )
        port = next(
            m.group(1)
            for line in served.lines
            if (m := re.search(r"status endpoint on http://127\.0\.0\.1:(\d+)", line))
        )
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/healthz")[0] == 200
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, 30, "readiness")
        wait_until(
            lambda: b"automl_cycles_total" in _get(f"{base}/metrics")[1], 30, "a first cycle"
        )
        write_spec_file(folder, "beta", schedule={"interval_s": 3600})
        wait_until(
            lambda: (
                {p["pipeline"] for p in json.loads(_get(f"{base}/status")[1])["pipelines"]}
                == {"alpha", "beta"}
            ),
            30,
            "beta to be picked up",
        )
        (folder / "beta.yaml").unlink()
        wait_until(
            lambda: (
                [p["pipeline"] for p in json.loads(_get(f"{base}/status")[1])["pipelines"]]
                == ["alpha"]
            ),
            30,
            "beta to be dropped",
        )
        records = [json.loads(line) for line in served.lines if line.startswith("{")]
        assert any(r["pipeline"] == "alpha" and r["cycle_id"] != "-" for r in records)
        assert served.stop() == 0
    finally:
        if served.proc.poll() is None:
            served.proc.kill()

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from automl.service._scheduler import default_jobstore_url

    def stored_jobs() -> dict[str, Any]:
        store = SQLAlchemyJobStore(url=default_jobstore_url(folder))
        store.start(None, "default")  # type: ignore[arg-type]
        jobs = {j.id: j.next_run_time for j in store.get_all_jobs()}
        store.shutdown()
        return jobs

    before = stored_jobs()
    assert set(before) == {"cycle:alpha", "retune:alpha"}
    again = Served(folder)
    try:
        wait_until(lambda: again.saw("service started"), 60, "the restart")
        assert again.stop() == 0
    finally:
        if again.proc.poll() is None:
            again.proc.kill()
    assert stored_jobs()["retune:alpha"] == before["retune:alpha"]  # the week did not restart
