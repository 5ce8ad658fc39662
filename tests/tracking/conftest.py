"""A registered @champion trained on a landing file as users write it, and a scoring server
run as a real process, for the pyfunc and serving tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.data import Schema, as_received, coerce_features, infer_schema, make_churn_frame
from automl.tracking import CHAMPION, MlflowTracker
from automl.tuning import build_model

MODEL_NAME = "churn"


@dataclass(frozen=True)
class Champion:
    """What the fixture made: the registry, the model's schema, a fresh landing file."""

    tracking_uri: str
    tracker: MlflowTracker
    model_uri: str  # models:/churn@champion
    schema: Schema
    landing: Path  # rows the model has not seen, as another landing file


def landing_frame(n_rows: int, *, seed: int, gaps: bool) -> pd.DataFrame:
    """The churn table with an integer column that has gaps (``devices``, when ``gaps``), a
    True/False column (``is_vip``) and text labels ``yes`` / ``no``."""
    frame = make_churn_frame(n_rows, seed=seed)
    rng = np.random.default_rng(seed)
    devices = rng.integers(1, 5, n_rows).astype("float64")
    if gaps:
        devices[rng.random(n_rows) < 0.1] = np.nan
    frame.insert(5, "devices", devices if gaps else devices.astype("int64"))
    frame.insert(6, "is_vip", rng.random(n_rows) < 0.3)
    frame["churned"] = np.where(frame["churned"] == 1, "yes", "no")
    return frame


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """An XGBoost classifier (labels yes/no) registered as ``churn@champion`` in SQLite."""
    root = tmp_path_factory.mktemp("champion")
    first = root / "batch_001.csv"
    landing_frame(400, seed=1, gaps=True).to_csv(first, index=False)
    raw = pd.read_csv(first)
    schema = infer_schema(raw, target="churned", task="classification")
    train = coerce_features(raw, schema, source=first.name)
    model = build_model(
        task="classification",
        numeric=schema.numeric,
        categorical=schema.categorical,
        params={"n_estimators": 30, "max_depth": 3},
        seed=0,
        encode_labels=True,
    ).fit(train, raw["churned"])
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    tracker = MlflowTracker(
        tracking_uri, "pyfunc", artifact_location=(root / "mlartifacts").as_uri()
    )
    run_id = tracker.start_run("fit")
    uri = tracker.log_model(run_id, model, input_example=as_received(train, schema).head(5))
    tracker.end_run(run_id)
    version = tracker.register(uri, MODEL_NAME, run_id=run_id)
    tracker.set_alias(MODEL_NAME, CHAMPION, version.version)
    landing = root / "batch_002.csv"
    fresh = landing_frame(40, seed=2, gaps=False).drop(columns="churned")
    fresh.loc[3, "contract"] = None  # a missing category
    fresh.to_csv(landing, index=False)
    return Champion(tracking_uri, tracker, f"models:/{MODEL_NAME}@{CHAMPION}", schema, landing)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_ping(port: int, server: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Wait until the scoring server answers ``/ping``; fail with its log if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as reply,
        ):
            if reply.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"no /ping answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running(command: list[str], *, port: int, env: dict[str, str], cwd: Path) -> Iterator[None]:
    """Run a scoring server listening on ``port`` in its own process group, until it answers
    /ping; stop the group (the server, its uvicorn workers, a wrapping shell) afterwards."""
    log = cwd / f"server-{port}.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_ping(port, server, log, timeout_s=180)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
