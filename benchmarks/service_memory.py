"""Idle memory of ``automl serve``: resident memory at start, after a drift check, after a
re-tune and after 20 more cycles, for this checkout and optionally another one, same run.

    python benchmarks/service_memory.py [--source DIR] [--cycles 20] [--out FILE]

Per side (a fresh workspace each): ``automl run`` trains the first champion on 3,000 churn rows
(in its own process, like an operator's first run), then ``automl serve`` runs as a real
process on a 1 s interval, and this script samples its resident memory (``VmRSS``) and that of
its child processes every 0.2 s:

- start: after the first cycle (nothing new landed);
- drift check: after a cycle on 1,000 new rows without drift;
- re-tune: after a cycle on 1,000 drifted rows (re-tune, register, judge, promote);
- idle: after ``--cycles`` more cycles (a batch without drift every 5th);
- then ``--retunes`` more drifted batches, one at a time: how long each re-tune cycle takes
  (its MLflow run, start to end), with the libraries the first one loaded still loaded
  wherever they stay.

Each figure is taken once the cycle is recorded and 2 s passed. With each figure the service
lists the heavy libraries it has imported by then (a ``sitecustomize`` on the service's path
answers SIGUSR1 with its ``sys.modules``), so a figure says what it is made of. Goals (issue
16): <= 250 MB at start and idle, < 300 MB after a re-tune.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: Libraries whose presence in the service explains its size (the top-level package, or a
#: submodule that costs on its own).
HEAVY = (
    "scipy.stats",
    "scipy.special",
    "sklearn",
    "xgboost",
    "lightgbm",
    "optuna",
    "matplotlib",
    "evidently",
    "pyarrow.parquet",
    "mlflow.pyfunc",
)
#: A ``sitecustomize`` put on the service's path: SIGUSR1 writes its module names to the file
#: named by $AUTOML_MEM_PROBE. The handler runs in the service's main thread while cycles may
#: import: it copies the names in one step (``list`` of a dict holds the GIL throughout) and
#: never raises into the service.
_PROBE = """import os, signal, sys
def _dump(*_):
    try:
        names = list(sys.modules)
        path = os.environ["AUTOML_MEM_PROBE"]
        with open(path + ".tmp", "w") as out:
            out.write(" ".join(sorted(names)))
        os.replace(path + ".tmp", path)
    except Exception:
        pass
if os.environ.get("AUTOML_MEM_PROBE"):
    signal.signal(signal.SIGUSR1, _dump)
"""


def _rss_mb(pid: int) -> float:
    try:
        with Path(f"/proc/{pid}/status").open() as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    """Every descendant (children of every thread: a cycle's thread starts the re-tune)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            found += [int(p) for p in (task / "children").read_text().split()]
    return found + [g for c in found for g in _children(c)]


class Sampler(threading.Thread):
    """Samples the service's and its children's resident memory every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_main = 0.0
        self.peak_tree = 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            main = _rss_mb(self.pid)
            tree = main + sum(_rss_mb(c) for c in _children(self.pid))
            self.peak_main, self.peak_tree = max(self.peak_main, main), max(self.peak_tree, tree)
            time.sleep(0.2)


def _cycles(state_db: Path) -> list[tuple[str, str]]:
    if not state_db.exists():
        return []
    with contextlib.closing(sqlite3.connect(state_db)) as conn:
        try:
            return list(conn.execute("SELECT cycle_id, status FROM automl_cycles ORDER BY rowid"))
        except sqlite3.OperationalError:
            return []


def _duration_s(ws: Path, cycle_id: str) -> float:
    """How long a cycle took: its MLflow run's start to end (ms; the history has seconds)."""
    query = """SELECT r.start_time, r.end_time FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid
        WHERE t.key = 'automl.cycle_id' AND t.value = ? AND r.run_uuid NOT IN
        (SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId')"""
    with contextlib.closing(sqlite3.connect(ws / "mlflow.db")) as conn:
        started, ended = conn.execute(query, (cycle_id,)).fetchone()
    return float(ended - started) / 1000


def _wait_cycles(state_db: Path, n: int, timeout_s: float = 600) -> list[tuple[str, str]]:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        done = _cycles(state_db)
        if len(done) >= n:
            return done
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {n} cycles in {state_db}")


def _loaded(pid: int, probe: Path) -> list[str]:
    """The :data:`HEAVY` libraries the process ``pid`` has imported (asked by SIGUSR1)."""
    probe.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.time() + 10
    while not probe.exists():
        if time.time() > deadline:
            return ["?"]
        time.sleep(0.05)
    modules = set(probe.read_text().split())
    return [name for name in HEAVY if name in modules]


def _wait_for_data(state_db: Path, n: int) -> list[tuple[str, str]]:
    """The cycles up to the first one after the ``n``-th that had data (cycles keep running every
    second: a ``no_data`` one may be recorded right after it, or before it if the batch landed
    after that cycle began)."""
    while True:
        done = _wait_cycles(state_db, n + 1)
        for i in range(n, len(done)):
            if done[i][1] != "no_data":
                return done[: i + 1]
        n = len(done)


def _cycle_of(state_db: Path, file_name: str, timeout_s: float = 600) -> tuple[str, str]:
    """The cycle that accepted ``file_name``: (cycle id, status)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with contextlib.closing(sqlite3.connect(state_db)) as conn:
            query = "SELECT cycle_id, status, result_json FROM automl_cycles"
            rows = conn.execute(query).fetchall()
        for cycle_id, status, result in rows:
            if file_name in json.loads(result).get("accepted_files", []):
                return cycle_id, status
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for the cycle of {file_name} in {state_db}")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(source: Path, n_cycles: int, n_retunes: int) -> dict[str, Any]:
    """One side: first champion, then the service's memory through the scenario."""
    sys.path.insert(0, str(ROOT))
    from automl.data import make_churn_frame, write_table

    ws = Path(tempfile.mkdtemp(prefix="automl-mem-"))
    (ws / "churn.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "churn",
                "data": {"landing_dir": "landing/churn", "target": "churned", "settle_s": 0.1},
                "training": {"min_rows": 500},
                "drift": {"hysteresis": {"confirm_checks": 1, "cooldown_checks": 0}},
                "tuning": {"n_trials": 8, "cv": 3, "seed": 3},
                "registry": {"significance": {"test": "none"}},
                "schedule": {"interval_s": 1.0},
            }
        )
    )
    landing = ws / "landing" / "churn"
    write_table(make_churn_frame(3000, seed=1), landing / "history.csv")
    (ws / "probe").mkdir()
    (ws / "probe" / "sitecustomize.py").write_text(_PROBE)
    probe = ws / "modules.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(source), str(ws / "probe")]),
        "MLFLOW_LOGGING_LEVEL": "WARNING",
        "AUTOML_MEM_PROBE": str(probe),
    }
    automl = [sys.executable, "-m", "automl"]
    subprocess.run(
        [*automl, "run", str(ws / "churn.yaml")], env=env, check=True, cwd=ws, capture_output=True
    )
    state_db = ws / "automl.db"
    port = _port()
    log = (ws / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            *automl,
            "serve",
            str(ws),
            "--port",
            str(port),
            "--jobstore",
            "memory",
            "--log-level",
            "WARNING",
        ],
        env=env,
        cwd=ws,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sampler = Sampler(proc.pid)
    sampler.start()
    figures: dict[str, Any] = {}
    try:
        n = len(_cycles(state_db))
        n = len(_wait_cycles(state_db, n + 1))
        time.sleep(2)
        figures["start"] = _rss_mb(proc.pid)
        figures["start_loaded"] = _loaded(proc.pid, probe)
        write_table(make_churn_frame(1000, seed=11), landing / "normal_1.csv")
        done = _wait_for_data(state_db, n)
        n = len(done)
        figures["drift_check_status"] = done[-1][1]
        time.sleep(2)
        figures["drift_check"] = _rss_mb(proc.pid)
        figures["drift_check_loaded"] = _loaded(proc.pid, probe)
        sampler.peak_main = sampler.peak_tree = 0.0
        write_table(make_churn_frame(1000, seed=12, drift=1.0), landing / "drifted.csv")
        done = _wait_for_data(state_db, n)
        n = len(done)
        figures["retune_status"] = done[-1][1]
        figures["retune_cycle_s"] = _duration_s(ws, done[-1][0])
        time.sleep(2)
        figures["retune"] = _rss_mb(proc.pid)
        figures["retune_loaded"] = _loaded(proc.pid, probe)
        figures["retune_peak_service"] = sampler.peak_main
        figures["retune_peak_with_children"] = sampler.peak_tree
        for i in range(n_cycles):
            if i % 5 == 4:
                write_table(make_churn_frame(1000, seed=20 + i), landing / f"normal_{i}.csv")
            n = len(_wait_cycles(state_db, n + 1))
        time.sleep(2)
        figures["idle"] = _rss_mb(proc.pid)
        figures["idle_loaded"] = _loaded(proc.pid, probe)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            figures["healthz"] = r.status
        # More re-tunes, with the libraries of the first already loaded wherever they stay:
        # what each re-tune costs from then on.
        figures["later_retunes"] = []
        for k in range(n_retunes):
            name = f"drifted_{k + 2}.csv"
            write_table(make_churn_frame(1000, seed=40 + k, drift=1.0), landing / name)
            cycle_id, status = _cycle_of(state_db, name)
            figures["later_retunes"].append((status, _duration_s(ws, cycle_id)))
    finally:
        sampler.stopped.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    figures["statuses"] = [s for _, s in _cycles(state_db)]
    return figures


def main() -> None:
    """Measure this checkout (and ``--source``) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="also measure automl from this tree")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--retunes", type=int, default=3, help="re-tunes timed after idle")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sides = {"now": ROOT}
    if args.source:
        sides = {"before": args.source.resolve(), **sides}
    results = {}
    for name, source in sides.items():
        print(f"measuring {name} ({source}) ...", file=sys.stderr, flush=True)
        results[name] = measure(source, args.cycles, args.retunes)
    rows = [
        ("start (first cycle, nothing new)", "start", "<= 250"),
        ("after a drift check, no drift", "drift_check", "<= 250"),
        ("after a re-tune", "retune", "< 300"),
        (f"after {args.cycles} more cycles", "idle", "<= 250"),
        ("peak during the re-tune: service", "retune_peak_service", ""),
        ("peak during the re-tune: with children", "retune_peak_with_children", ""),
    ]
    load = os.getloadavg()
    print(f"\nresident memory of `automl serve` (MB), load {load[0]:.1f} / {load[2]:.1f}")
    print(f"{'':40}" + "".join(f"{name:>10}" for name in results) + "   goal")
    for label, key, goal in rows:
        print(f"{label:40}" + "".join(f"{r[key]:10.0f}" for r in results.values()) + f"   {goal}")
    print(
        f"{'the re-tune cycle (s)':40}"
        + "".join(f"{r['retune_cycle_s']:10.1f}" for r in results.values())
    )
    print(
        f"{'later re-tune cycles (s, median)':40}"
        + "".join(
            f"{statistics.median(s for _, s in r['later_retunes']):10.1f}" for r in results.values()
        )
    )
    for name, r in results.items():
        print(f"{name}: cycles {' '.join(r['statuses'])}; /healthz {r['healthz']}")
        later = ", ".join(f"{s:.1f} s ({status})" for status, s in r["later_retunes"])
        print(f"  {name}, later re-tunes: {later}")
        for label, key, _ in rows[:4]:
            print(f"  {name}, {label}: {' '.join(r[key + '_loaded']) or '-'}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
