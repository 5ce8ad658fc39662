"""Fault figures of the service: how fast it fails, answers and recovers (about 1 minute).

Three measurements, each on a fresh workspace under a temporary folder, 2 cores:

1. ``automl run`` against an MLflow server that refuses connections (``http://127.0.0.1:9``),
   with automl's HTTP defaults and, for comparison in the same run, MLflow's own defaults
   capped by ``--mlflow-default-cap-s`` (they take about four minutes in full);
2. ``/readyz`` of a running service whose MLflow server accepts connections and never answers:
   the latency of 5 requests;
3. a job store that cannot be written (another process holds its SQLite write lock) for 10 s:
   when ``/readyz`` says 503, and how long after the lock is released cycles run again.

Usage: ``python benchmarks/faults.py [--out benchmarks/results/faults.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automl.data import make_churn_frame, write_table  # noqa: E402
from tests.conftest import small_spec_dict  # noqa: E402


def _spec(folder: Path, **overrides: Any) -> Path:
    path = folder / "alpha.yaml"
    path.write_text(yaml.safe_dump(small_spec_dict("alpha", **overrides)), encoding="utf-8")
    return path


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def unreachable_mlflow(cap_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, env_over in (
        ("automl_defaults", {}),
        (
            "mlflow_defaults",
            {
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7",
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "120",
            },
        ),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            spec = _spec(Path(tmp), mlflow={"tracking_uri": "http://127.0.0.1:9"})
            write_table(make_churn_frame(300, seed=1), Path(tmp) / "landing/alpha/history.csv")
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP")}
            started = time.monotonic()
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "automl", "run", str(spec)],
                    capture_output=True,
                    env={**env, **env_over},
                    timeout=cap_s,
                    check=False,
                )
                out[label] = {
                    "seconds_to_fail": round(time.monotonic() - started, 1),
                    "exit_code": done.returncode,
                }
            except subprocess.TimeoutExpired:
                out[label] = {"seconds_to_fail": f"> {cap_s:g} (stopped)", "exit_code": None}
        print(label, out[label], flush=True)
    return out


def silent_mlflow_readyz() -> dict[str, Any]:
    from automl.service import AutomlService

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    with tempfile.TemporaryDirectory() as tmp:
        _spec(Path(tmp), mlflow={"tracking_uri": f"http://127.0.0.1:{silent.getsockname()[1]}"})
        service = AutomlService(Path(tmp), http_port=0, reload_interval_s=600)
        service.start()
        try:
            timings = []
            codes = []
            for _ in range(5):
                started = time.monotonic()
                codes.append(_get(f"http://127.0.0.1:{service.http_port}/readyz"))
                timings.append(round(time.monotonic() - started, 3))
                time.sleep(0.5)
        finally:
            service.stop()
            silent.close()
    result = {"codes": codes, "seconds": timings, "max_seconds": max(timings)}
    print("readyz", result, flush=True)
    return result


def unwritable_jobstore(lock_s: float = 10.0) -> dict[str, Any]:
    from automl.service import AutomlService, CycleResult

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pipes"
        folder.mkdir()
        _spec(folder, schedule={"interval_s": 0.5})
        db = Path(tmp) / "jobs.db"
        results: list[CycleResult] = []
        service = AutomlService(
            folder,
            jobstore_url=f"sqlite:///{db}",
            http_port=0,
            on_cycle=results.append,
            reload_interval_s=600,
            watchdog_s=1.0,
        )
        service.start()
        base = f"http://127.0.0.1:{service.http_port}"
        try:
            while len(results) < 2:
                time.sleep(0.1)
            blocker = sqlite3.connect(db, isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            locked = time.monotonic()
            while service._scheduler_alive():
                time.sleep(0.05)
            died = time.monotonic() - locked
            while _get(f"{base}/readyz") != 503:
                time.sleep(0.05)
            not_ready = time.monotonic() - locked
            time.sleep(max(0.0, lock_s - (time.monotonic() - locked)))
            seen = len(results)
            blocker.execute("ROLLBACK")
            blocker.close()
            released = time.monotonic()
            while len(results) <= seen:
                time.sleep(0.05)
            cycle_again = time.monotonic() - released
            while _get(f"{base}/readyz") != 200:
                time.sleep(0.05)
            ready_again = time.monotonic() - released
        finally:
            service.stop()
    result = {
        "scheduler_thread_died_after_lock_s": round(died, 2),
        "readyz_503_after_lock_s": round(not_ready, 2),
        "lock_held_s": lock_s,
        "first_cycle_after_release_s": round(cycle_again, 2),
        "readyz_200_after_release_s": round(ready_again, 2),
    }
    print("jobstore", result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/faults.json")
    parser.add_argument("--mlflow-default-cap-s", type=float, default=40.0)
    args = parser.parse_args()
    figures = {
        "unreachable_mlflow": unreachable_mlflow(args.mlflow_default_cap_s),
        "silent_mlflow_readyz": silent_mlflow_readyz(),
        "unwritable_jobstore": unwritable_jobstore(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
