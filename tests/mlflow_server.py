"""A real ``mlflow server`` process on a free port, SQLite backend and artifacts under a folder,
for the tests that talk to a tracking server as production does (``docs/scaling.md``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from automl.tracking._mlflow import seed_sqlite_store


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(root: Path, *, timeout_s: float = 120) -> Iterator[str]:
    """Run ``mlflow server`` (one worker) with its store in ``root``; yield its URL.

    The process group (the server and its uvicorn worker) is stopped afterwards.
    """
    root.mkdir(parents=True, exist_ok=True)
    backend = f"sqlite:///{root / 'mlflow.db'}"
    seed_sqlite_store(backend)  # skips MLflow's migrations (seconds) when a template exists
    port = free_port()
    log = root / "mlflow-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with (
                contextlib.suppress(OSError),  # not listening yet
                urllib.request.urlopen(f"{url}/health", timeout=2) as response,
            ):
                if response.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start (exit code {proc.poll()}):\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
