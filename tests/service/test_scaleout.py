"""Scale-out as real processes: PostgreSQL, ``mlflow server`` on it, the cycle and workers.

The topology of ``deploy/docker-compose.yml`` without containers: a fresh PostgreSQL database
for the MLflow server and one for the Optuna studies, an ``mlflow server`` subprocess proxying
artifacts to a local folder (MinIO in the compose file), ``automl run`` as the service's
cycle, and ``automl worker`` subprocesses. The commands are the ones in ``docs/scaling.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.data import make_churn_frame, write_table
from tests.conftest import fresh_postgres_database, postgres_unavailable, small_spec_dict
from tests.mlflow_server import mlflow_server as start_server

_UNAVAILABLE = postgres_unavailable()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    # Where CI says PostgreSQL answers (AUTOML_REQUIRE_POSTGRES=1), never skip: fail instead.
    pytest.mark.skipif(
        _UNAVAILABLE is not None and os.environ.get("AUTOML_REQUIRE_POSTGRES") != "1",
        reason=str(_UNAVAILABLE),
    ),
]


@pytest.fixture(scope="module")
def optuna_db() -> Iterator[str]:
    with fresh_postgres_database("automl_optuna") as url:
        yield url  # empty: the processes create Optuna's tables (tests/tuning/test_storage.py)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on a fresh PostgreSQL database, artifacts proxied to a folder."""
    with fresh_postgres_database("automl_mlflow") as backend:
        root = tmp_path_factory.mktemp("mlflow-server")
        with start_server(root, backend=backend) as url:
            yield url


def _pipeline(
    tmp_path: Path,
    optuna_db: str,
    tracking_uri: str,
    *,
    n_rows: int = 500,
    state_db: str | None = None,
    **tuning: Any,
) -> tuple[Path, str]:
    name = f"so{uuid.uuid4().hex[:8]}"
    raw = small_spec_dict(
        name,
        tuning={
            "n_trials": 8,
            "cv": 2,
            "pruner": "none",
            "timeout_s": 120,
            "storage": optuna_db,
            "heartbeat_s": 1,
            "grace_s": 3,
            **tuning,
        },
        mlflow={"tracking_uri": tracking_uri},
    )
    if state_db is not None:
        raw["state_db"] = state_db
    spec_file = tmp_path / f"{name}.yaml"
    spec_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    write_table(make_churn_frame(n_rows, seed=3), tmp_path / "landing" / name / "history.csv")
    return spec_file, name


def _automl(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "automl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_LOGGING_LEVEL": "WARNING"},
    )


def _finish(proc: subprocess.Popen[str], timeout_s: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return int(proc.returncode), out, err


@pytest.fixture(scope="module")
def study_storage(optuna_db: str) -> Iterator[dict[str, Any]]:
    """The test's own view of the studies: one storage, opened once the automl processes made
    Optuna's tables (racing), with no pooled connections left behind."""
    opened: dict[str, Any] = {"url": optuna_db}
    yield opened
    if "storage" in opened:
        opened["storage"].engine.dispose()


def _study(opened: dict[str, Any], name: str) -> Any:
    import optuna
    import sqlalchemy as sa

    if "storage" not in opened:
        opened["storage"] = optuna.storages.RDBStorage(
            opened["url"], engine_kwargs={"poolclass": sa.pool.NullPool}
        )
    storage = opened["storage"]

    (summary,) = [
        s
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if s.user_attrs.get("automl.group") == name
    ]
    return optuna.load_study(study_name=summary.study_name, storage=storage)


@contextlib.contextmanager
def _connection_peaks(database_url: str) -> Iterator[dict[str, int]]:
    """Sample, every 0.1 s, how many connections each automl process holds to a database.

    automl names its connections ``automl:<pid>`` (``application_name``), so the peaks are per
    process: ``{"automl:1234": 3, ...}``.
    """
    import psycopg2

    database = database_url.rsplit("/", 1)[1]
    peaks: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute(
                        "SELECT application_name, count(*) FROM pg_stat_activity "
                        "WHERE datname = %s AND application_name LIKE 'automl:%%' GROUP BY 1",
                        (database,),
                    )
                    for name, count in cur.fetchall():
                        peaks[name] = max(peaks.get(name, 0), int(count))
                    stop.wait(0.1)
        finally:
            conn.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        stop.set()
        sampler.join(timeout=5)


def _trial_runs(tracking_uri: str, run_id: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    parent = client.get_run(run_id)
    return list(
        client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    )


def test_served_cycle_and_workers_share_one_budget_on_postgres(
    tmp_path: Path, optuna_db: str, study_storage: dict[str, Any], mlflow_server: str
) -> None:
    """``automl serve`` (state on PostgreSQL, as in the compose file) owns the re-tune."""
    from automl.service import CycleHistory

    with fresh_postgres_database("automl_state") as state_db:
        spec_file, name = _pipeline(tmp_path, optuna_db, mlflow_server, state_db=state_db)
        history = CycleHistory(state_db)
        with _connection_peaks(optuna_db) as peaks:
            workers = [
                _automl("worker", "--pipeline", str(spec_file), "--wait-s", "90") for _ in range(2)
            ]
            log = tmp_path / "serve.log"
            with log.open("w") as stderr:  # a pipe nobody reads would fill and block it
                service = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "automl",
                        "serve",
                        str(tmp_path),
                        "--jobstore",
                        "memory",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env={**os.environ, "MLFLOW_LOGGING_LEVEL": "WARNING"},
                )
            deadline = time.monotonic() + 150
            while not (
                done := [h for h in history.list(name) if h.status in ("retuned", "failed")]
            ):
                assert service.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"no re-tune in 150 s: {log.read_text()}"
                time.sleep(0.5)
            (last,) = done
            summaries = []
            for worker in workers:
                w_code, w_out, w_err = _finish(worker, 60)
                assert w_code == 0, w_err
                assert "BudgetSpentError" not in w_err  # a refused trial is not a failure
                summaries.append(json.loads(w_out.strip().splitlines()[-1]))
            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=60) == 0, log.read_text()
        assert last.status == "retuned" and last.is_promoted is True, (last, log.read_text())
        assert "BudgetSpentError" not in log.read_text()
        assert last.run_id is not None
        result = {"run_id": last.run_id}
    # Every process (2 workers polling, then tuning with heartbeats; the service) keeps a
    # bounded pool: a storage per poll once held 6 connections per worker and exhausted
    # PostgreSQL's 100.
    assert {f"automl:{w.pid}" for w in workers} | {f"automl:{service.pid}"} == set(peaks), peaks
    assert max(peaks.values()) <= 4, peaks

    study = _study(study_storage, name)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 8  # exactly the budget
    assert len({t.number for t in trials}) == len(trials)
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 8  # no repeated config
    assert study.user_attrs["automl.active"] is False
    by = {t.user_attrs["automl.worker"] for t in complete}
    assert len(by) >= 2, by  # the cycle did not do it alone
    assert sum(s["n_trials"] for s in summaries) >= 1
    assert all(s["studies"] == [study.study_name] for s in summaries)
    # One cycle in MLflow: every trial, whoever evaluated it, is a nested run of its run.
    runs = _trial_runs(mlflow_server, result["run_id"])
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert sorted(int(r.data.tags["automl.trial_number"]) for r in finished) == sorted(
        t.number for t in complete
    )
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    parent = client.get_run(result["run_id"])
    assert parent.data.metrics["n_trials"] == 8
    assert parent.data.tags["automl.distributed"] == "true"
    versions = client.search_model_versions(f"name='{name}'")
    assert [v.version for v in versions] == ["1"]
    assert client.get_model_version_by_alias(name, "champion").version == "1"


def _wait_until_polling(database_url: str, pids: list[int], timeout_s: float = 120) -> None:
    """Wait until each process holds a connection to the database (``automl:<pid>``): its
    imports are done and it polls for an active study."""
    import psycopg2

    database = database_url.rsplit("/", 1)[1]
    wanted = {f"automl:{pid}" for pid in pids}
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    conn.autocommit = True
    try:
        deadline = time.monotonic() + timeout_s
        with conn.cursor() as cur:
            while True:
                cur.execute(
                    "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = %s",
                    (database,),
                )
                if wanted <= {name for (name,) in cur.fetchall()}:
                    return
                assert time.monotonic() < deadline, f"workers {pids} never polled the studies"
                time.sleep(0.1)
    finally:
        conn.close()


def test_killing_a_worker_mid_trial_loses_no_trial(
    tmp_path: Path, optuna_db: str, study_storage: dict[str, Any], mlflow_server: str
) -> None:
    """Two workers poll before the cycle opens its study (a budget of 30 short trials, so both
    join while it lasts); the first one seen running a trial is killed (-9)."""
    import optuna
    import sqlalchemy as sa

    spec_file, name = _pipeline(tmp_path, optuna_db, mlflow_server, n_rows=1500, n_trials=30)
    workers = [_automl("worker", "--pipeline", str(spec_file), "--wait-s", "150") for _ in range(2)]
    _wait_until_polling(optuna_db, [w.pid for w in workers])
    cycle = _automl("run", str(spec_file), "--json")
    by_id = {f"{socket.gethostname()}:{w.pid}": w for w in workers}
    victim = None
    killed_trial = None
    deadline = time.monotonic() + 90
    while killed_trial is None and time.monotonic() < deadline:
        try:
            study = _study(study_storage, name)
        except (ValueError, sa.exc.SQLAlchemyError):  # no study yet, or no tables yet
            time.sleep(0.2)
            continue
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            victim = by_id.get(t.user_attrs.get("automl.worker", ""))
            if victim is not None:
                victim.send_signal(signal.SIGKILL)
                killed_trial = t.number
                break
        time.sleep(0.05)
    assert victim is not None and killed_trial is not None, "no worker ran a trial"
    (survivor,) = [w for w in workers if w is not victim]
    finished_before = {
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE" and t.number != killed_trial
    }
    victim.wait(timeout=10)

    code, out, err = _finish(cycle)
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "retuned"
    s_code, _, s_err = _finish(survivor, 60)
    assert s_code == 0, s_err

    study = _study(study_storage, name)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    complete = [t for t in trials.values() if t.state.name == "COMPLETE"]
    assert len(complete) == 30  # the budget is still met
    assert trials[killed_trial].state.name == "FAIL"  # found stale by its heartbeat
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == killed_trial]
    assert len(retries) == 1  # ... and evaluated again, once
    assert finished_before <= {t.number for t in complete}  # nothing finished was lost
    runs = _trial_runs(mlflow_server, result["run_id"])
    logged = sorted(int(r.data.tags["automl.trial_number"]) for r in runs)
    assert logged == sorted(t.number for t in complete)  # no run for the lost trial, no twin
