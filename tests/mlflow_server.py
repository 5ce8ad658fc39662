"""A real ``mlflow server`` process on a free port, for the tests that talk to a tracking server
as production does (``docs/scaling.md``): a SQLite backend under a folder by default, or any
backend URL (PostgreSQL in the scale-out tests)."""

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

#: How long ``mlflow server`` may take to answer: on a fresh PostgreSQL database it creates its
#: tables first (6 s on an idle machine); only a hang waits this long, a crash fails at once.
START_S = 300.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group (the server and its uvicorn worker)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_mlflow_server(
    backend: str, artifacts: Path, log: Path, *, timeout_s: float = START_S
) -> tuple[subprocess.Popen[bytes], str]:
    """``mlflow server`` (one worker) on a free port: the process and its URL, its output
    appended to ``log``.

    Retried on another port when the chosen one was taken between :func:`free_port` and the
    server's bind (it then exits, with code 0, saying ``address already in use``).

    Raises:
        RuntimeError: The server exited, or did not answer within ``timeout_s``; the message
            holds the end of its log.
    """
    for attempt in range(1, 4):
        port = free_port()
        with log.open("ab") as out:
            offset = out.tell()
            proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "mlflow"),
                    "server",
                    "--backend-store-uri",
                    backend,
                    "--artifacts-destination",
                    str(artifacts),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its uvicorn child is stopped with it
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            healthy = False
            with (
                contextlib.suppress(OSError),  # not listening yet
                urllib.request.urlopen(f"{url}/health", timeout=2) as response,
            ):
                healthy = response.status == 200
            if healthy and proc.poll() is None:  # ours answered, not a process that took the port
                return proc, url
            time.sleep(0.3)
        with log.open("rb") as out:
            out.seek(offset)
            tail = out.read().decode(errors="replace")[-3000:]
        if proc.poll() is None:
            stop(proc)
            raise RuntimeError(f"mlflow server did not answer within {timeout_s:.0f} s:\n{tail}")
        if "address already in use" not in tail or attempt == 3:
            raise RuntimeError(f"mlflow server exited with code {proc.returncode}:\n{tail}")
    raise AssertionError("unreachable")


@contextlib.contextmanager
def mlflow_server(
    root: Path, *, backend: str | None = None, timeout_s: float = START_S
) -> Iterator[str]:
    """Run ``mlflow server`` with its log and artifacts in ``root`` (and its SQLite store there
    unless ``backend`` is given); yield its URL, stop it afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    if backend is None:
        backend = f"sqlite:///{root / 'mlflow.db'}"
        seed_sqlite_store(backend)  # skips MLflow's migrations (seconds) when a template exists
    proc, url = start_mlflow_server(
        backend, root / "artifacts", root / "mlflow-server.log", timeout_s=timeout_s
    )
    try:
        yield url
    finally:
        stop(proc)
