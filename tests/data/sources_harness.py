"""Real servers for the data-source tests: moto's S3 server as a process, a PostgreSQL table,
and one harness per source kind that delivers batches the way production writers do."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

#: The credentials moto accepts; set in the environment, never in a spec.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(*, auth: bool = False, free_actions: int = 0) -> Iterator[str]:
    """moto's S3-compatible server as a real process on a free localhost port (its URL).

    With ``auth`` it checks credentials and IAM policies after its first ``free_actions``
    requests (none are known to it at first, so with no free actions every key is refused;
    with three, :func:`iam_user` can create a user and its keys).
    """
    port = free_port()
    env = {**os.environ, **AWS_ENV}
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(free_actions)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("moto server did not start in 60 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3(endpoint: str, key: str = "testing", secret: str = "testing") -> Any:
    """An s3fs filesystem on the test server (what the tests write with, like a producer)."""
    import s3fs

    return s3fs.S3FileSystem(
        endpoint_url=endpoint, key=key, secret=secret, skip_instance_cache=True
    )


def iam_user(endpoint: str, name: str, policy: dict[str, Any]) -> dict[str, str]:
    """Create an IAM user with an inline ``policy`` on moto's server (three requests: a
    server started with ``moto_server(auth=True, free_actions=3)`` takes them without
    credentials, and checks every later one). Returns its credentials as environment."""
    import boto3

    iam = boto3.session.Session().client("iam", endpoint_url=endpoint, region_name="us-east-1")
    iam.create_user(UserName=name)
    set_user_policy(endpoint, name, policy, client=iam)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        **AWS_ENV,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def set_user_policy(
    endpoint: str, name: str, policy: dict[str, Any], *, client: Any = None
) -> None:
    """Replace the user's inline policy (with the caller's credentials, from the environment
    unless ``client`` is given)."""
    import json

    import boto3

    iam = client or boto3.session.Session().client(
        "iam", endpoint_url=endpoint, region_name="us-east-1"
    )
    iam.put_user_policy(UserName=name, PolicyName="automl", PolicyDocument=json.dumps(policy))


def _bytes(frame: pd.DataFrame, name: str) -> bytes:
    buffer = io.BytesIO()
    if name.endswith(".csv"):
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


class Harness:
    """Delivers batches to one kind of source and says how a spec reads them."""

    kind = ""

    def source(self) -> dict[str, Any]:
        raise NotImplementedError

    def labels_source(self) -> dict[str, Any]:
        raise NotImplementedError

    def deliver(self, name: str, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def deliver_labels(self, name: str, frame: pd.DataFrame) -> None:
        raise NotImplementedError


class DirectoryHarness(Harness):
    kind = "directory"

    def __init__(self, root: Path) -> None:
        self.landing = root / "landing" / "churn"
        self.labels = root / "labels" / "churn"
        self.landing.mkdir(parents=True, exist_ok=True)
        self.labels.mkdir(parents=True, exist_ok=True)
        self._clock = time.time() - 100

    def source(self) -> dict[str, Any]:
        return {"kind": "directory"}

    def labels_source(self) -> dict[str, Any]:
        return {"landing_dir": str(self.labels)}

    def _write(self, folder: Path, name: str, frame: pd.DataFrame) -> None:
        path = folder / name
        path.write_bytes(_bytes(frame, name))
        self._clock += 1  # arrival order is modification time: settled, in order
        os.utime(path, (self._clock, self._clock))

    def deliver(self, name: str, frame: pd.DataFrame) -> None:
        self._write(self.landing, name, frame)

    def deliver_labels(self, name: str, frame: pd.DataFrame) -> None:
        self._write(self.labels, name, frame)


class ObjectStoreHarness(Harness):
    kind = "object_store"

    def __init__(self, endpoint: str, env: dict[str, str] | None = None) -> None:
        self.endpoint = endpoint
        env = env or AWS_ENV
        self.fs = s3(endpoint, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
        self.bucket = f"scores-{uuid.uuid4().hex[:8]}"
        self.fs.mkdir(self.bucket)

    def source(self) -> dict[str, Any]:
        return {
            "kind": "object_store",
            "url": f"s3://{self.bucket}/churn/",
            "endpoint_url": self.endpoint,
            "retries": 2,
        }

    def labels_source(self) -> dict[str, Any]:
        return {"source": {**self.source(), "url": f"s3://{self.bucket}/labels/"}}

    def deliver(self, name: str, frame: pd.DataFrame) -> None:
        self.fs.pipe_file(f"{self.bucket}/churn/{name}", _bytes(frame, name))
        time.sleep(0.01)  # distinct modification times

    def deliver_labels(self, name: str, frame: pd.DataFrame) -> None:
        self.fs.pipe_file(f"{self.bucket}/labels/{name}", _bytes(frame, name))

    def objects(self) -> list[str]:
        self.fs.invalidate_cache()
        return sorted(self.fs.find(self.bucket))


class SqlHarness(Harness):
    """Rows inserted into a PostgreSQL table with an identity id and a commit timestamp."""

    kind = "sql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.table = f"scored_{uuid.uuid4().hex[:8]}"
        self.labels_table = f"{self.table}_labels"
        self.next_id = 1
        self.next_label = 1
        self.at = datetime(2026, 1, 1, tzinfo=UTC)

    def source(self) -> dict[str, Any]:
        return {
            "kind": "sql",
            "url": self.url,
            "table": self.table,
            "watermark_id": "seq",
            "watermark_time": "scored_at",
            "lookback_s": 600,
            "retries": 2,
        }

    def labels_source(self) -> dict[str, Any]:
        return {
            "source": {
                "kind": "sql",
                "url": self.url,
                "table": self.labels_table,
                "watermark_id": "label_seq",
                "retries": 2,
            }
        }

    def insert(self, frame: pd.DataFrame, *, at: datetime | None = None) -> None:
        n = len(frame)
        rows = frame.assign(
            seq=range(self.next_id, self.next_id + n),
            scored_at=[(at or self.at) + timedelta(seconds=i) for i in range(n)],
        )
        self.next_id += n
        if at is None:
            self.at += timedelta(seconds=n)
        rows.to_sql(self.table, self.engine, if_exists="append", index=False)

    def deliver(self, name: str, frame: pd.DataFrame) -> None:
        self.insert(frame)

    def deliver_labels(self, name: str, frame: pd.DataFrame) -> None:
        n = len(frame)
        rows = frame.assign(label_seq=range(self.next_label, self.next_label + n))
        self.next_label += n
        rows.to_sql(self.labels_table, self.engine, if_exists="append", index=False)

    def close(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{self.table}", "{self.labels_table}"'))
        self.engine.dispose()


@contextlib.contextmanager
def flaky_forwarder(target_port: int, *, drop_first: int) -> Iterator[int]:
    """A localhost port (yielded) that closes its first ``drop_first`` connections at once,
    then forwards every connection to ``target_port``: a store failing, then coming back."""
    import threading

    stop = threading.Event()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    port = int(server.getsockname()[1])

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        dropped = 0
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            if dropped < drop_first:
                dropped += 1
                conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
