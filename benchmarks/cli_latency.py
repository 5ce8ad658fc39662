"""CLI latency: the commands people wait for, each in a fresh process, against what any
implementation must pay (the imports it cannot avoid), and optionally against another checkout.

    python benchmarks/cli_latency.py [--runs 7] [--source DIR] [--out FILE]

Builds a workspace with two registered versions of a small XGBoost churn model (v1 the
champion, moved through the promotion log as a cycle moves it), its schema, and a 1,000-row CSV
to score; and a second pipeline tracking to a real ``mlflow server`` (SQLite backend, started
here on a free port) with two versions registered through MLflow's client (v1 the champion),
as production deployments track (``docs/scaling.md``). Then, interleaved run by run (so load
from other work on the machine hits every command alike), each in a new interpreter:

- ``automl status``, ``automl history``: goal <= 1 s;
- ``automl predict`` on the 1,000 rows (after one warm-up run, which may download the model):
  goal <= 1.5 s;
- ``automl promote --version N`` and ``automl rollback`` alternately: goal <= 1 s; once with
  the workspace's SQLite store (MLflow's client), once against the server (MLflow's REST API
  without MLflow, ``promote/rollback, server``);
- the floors: ``python -c pass``, ``import pandas``, ``import mlflow``, ``import pandas,
  sklearn.pipeline, xgboost`` (what unpickling the model imports), an ``MlflowClient``
  reading ``@champion`` from the SQLite store and from the server (what a registry move costs
  through MLflow's client), and ``urllib`` reading it from the server (one REST call, no
  MLflow: the least any client pays);
- with ``--source DIR``: the same commands with automl imported from DIR (e.g. an export of
  the main branch), for before/after figures in the same run.

Prints the median wall and CPU (user + system of the child) per command, the ratio to its floor
and the goal. CPU is the reliable figure on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOALS = {
    "status": 1.0,
    "history": 1.0,
    "predict": 1.5,
    "promote/rollback": 1.0,
    "promote/rollback, server": 1.0,
}
SERVER_FLOOR = "MlflowClient reads @champion (server)"


def _workspace(root: Path) -> tuple[Path, Path, str]:
    """A pipeline with v1 (champion) and v2 registered, its schema, and rows to score."""
    from automl.config import load_spec
    from automl.data import BatchLedger, coerce_features, infer_schema, make_churn_frame
    from automl.service import make_tracker
    from automl.tracking import PromotionLog, move_logged
    from automl.tuning import build_model

    spec_file = root / "churn.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {"name": "churn", "data": {"landing_dir": "landing/churn", "target": "churned"}}
        )
    )
    spec = load_spec(spec_file)
    frame = make_churn_frame(2000, seed=1)
    schema = BatchLedger(spec.state_url).save_schema(
        spec.name, infer_schema(frame, target="churned", task="classification")
    )
    rows = coerce_features(frame, schema, source="bench")
    tracker = make_tracker(spec)
    versions = []
    for seed in (0, 1):
        model = build_model(
            task="classification",
            numeric=schema.numeric,
            categorical=schema.categorical,
            params={"n_estimators": 100, "max_depth": 4},
            seed=seed,
        ).fit(rows, frame["churned"])
        run_id = tracker.start_run(f"fit-{seed}")
        uri = tracker.log_model(run_id, model, input_example=frame[schema.feature_names].head(5))
        tracker.end_run(run_id)
        versions.append(tracker.register(uri, spec.model_name, run_id=run_id).version)
    move_logged(
        spec,
        tracker,
        PromotionLog(spec.state_url),
        action="promote",
        to_version=versions[0],
        from_version=None,
        reason="benchmark",
        actor="benchmark",
    )
    score = root / "score.csv"
    make_churn_frame(1000, seed=9).drop(columns="churned").to_csv(score, index=False)
    return spec_file, score, spec.tracking_uri


def _server_pipeline(root: Path, server: str) -> Path:
    """A pipeline tracking to ``server`` with v1 (the champion, a logged move) and v2."""
    from automl.config import load_spec
    from automl.service import make_tracker
    from automl.tracking import PromotionLog, move_logged

    root.mkdir()
    spec_file = root / "churn.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "churn",
                "data": {"landing_dir": "landing/churn", "target": "churned"},
                "mlflow": {"tracking_uri": server},
            }
        )
    )
    spec = load_spec(spec_file)
    tracker = make_tracker(spec)
    tracker.client.create_registered_model(spec.model_name)
    for n in (1, 2):  # promote and rollback read no artifacts: a source is all they need
        tracker.client.create_model_version(spec.model_name, source=f"s3://models/churn/{n}")
    move_logged(
        spec,
        tracker,
        PromotionLog(spec.state_url),
        action="promote",
        to_version="1",
        from_version=None,
        reason="benchmark",
        actor="benchmark",
    )
    return spec_file


def _run(argv: list[str], *, env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one child process (which must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    """Build the workspace, time every command and floor, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--source", type=Path, help="also time automl imported from this tree")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="automl-cli-"))
    sys.path.insert(0, str(ROOT))
    from tests.mlflow_server import mlflow_server

    with mlflow_server(root / "mlflow-server") as server:
        _measure(args, root, server)


def _measure(args: argparse.Namespace, root: Path, server: str) -> None:
    """Time every command and floor (the tracking server runs meanwhile), print the table."""
    spec_file, score, tracking = _workspace(root)
    server_spec = _server_pipeline(root / "server", server)
    py = sys.executable
    base_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sources = {"now": base_env}
    if args.source:
        sources["before"] = {**os.environ, "PYTHONPATH": str(args.source.resolve())}
    floors: dict[str, list[str]] = {
        "python -c pass": [py, "-c", "pass"],
        "import pandas": [py, "-c", "import pandas"],
        "import mlflow": [py, "-c", "import mlflow"],
        "import pandas, sklearn, xgboost": [
            py,
            "-c",
            "import pandas, sklearn.pipeline, xgboost",
        ],
        "MlflowClient reads @champion": [
            py,
            "-c",
            "from mlflow import MlflowClient; "
            f"MlflowClient({tracking!r}, {tracking!r}).get_model_version_by_alias('churn', "
            "'champion')",
        ],
        SERVER_FLOOR: [
            py,
            "-c",
            "from mlflow import MlflowClient; "
            f"MlflowClient({server!r}, {server!r}).get_model_version_by_alias('churn', "
            "'champion')",
        ],
        "urllib reads @champion (server)": [
            py,
            "-c",
            "import urllib.request; urllib.request.urlopen("
            f"'{server}/api/2.0/mlflow/registered-models/alias?name=churn&alias=champion').read()",
        ],
    }
    automl = [py, "-m", "automl"]
    commands = {
        "status": [*automl, "status", str(spec_file)],
        "history": [*automl, "history", str(spec_file)],
        "predict": [*automl, "predict", str(spec_file), str(score), "--out", str(root / "p.csv")],
    }
    times: dict[str, list[tuple[float, float]]] = {}
    for env in sources.values():  # warm-up: the first predict of a version downloads it
        _run(commands["predict"], env=env, cwd=root)
    for i in range(args.runs):
        for name, argv in floors.items():
            times.setdefault(name, []).append(_run(argv, env=base_env, cwd=root))
        for source, env in sources.items():
            for command, argv in commands.items():
                times.setdefault(f"{command} ({source})", []).append(_run(argv, env=env, cwd=root))
            # promote v2, then roll back to v1: the workspace ends as it began
            move = [*automl, "promote", str(spec_file), "--version", "2"]
            times.setdefault(f"promote/rollback ({source})", []).append(
                _run(move, env=env, cwd=root)
            )
            times[f"promote/rollback ({source})"].append(
                _run([*automl, "rollback", str(spec_file)], env=env, cwd=root)
            )
            # the same against the tracking server
            name = f"promote/rollback, server ({source})"
            move = [*automl, "promote", str(server_spec), "--version", "2"]
            times.setdefault(name, []).append(_run(move, env=env, cwd=root))
            times[name].append(_run([*automl, "rollback", str(server_spec)], env=env, cwd=root))
        print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)

    def median(name: str, k: int) -> float:
        return statistics.median(t[k] for t in times[name])

    floor_of = {
        "status": "import mlflow",
        "history": "import mlflow",
        "predict": "import pandas, sklearn, xgboost",
        "promote/rollback": "MlflowClient reads @champion",
        "promote/rollback, server": SERVER_FLOOR,
    }
    load = os.getloadavg()
    print(f"\nmedians of {args.runs} runs, 2 cores, load {load[0]:.1f} / {load[2]:.1f} (1/15 min)")
    print(f"{'':38} {'wall s':>7} {'CPU s':>7}")
    for name in floors:
        print(f"{name:38} {median(name, 0):7.2f} {median(name, 1):7.2f}")
    print(f"\n{'command':34} {'wall s':>7} {'CPU s':>7}  vs floor (CPU){'goal':>31}")
    results: dict[str, Any] = {"runs": args.runs, "load": load, "floors": {}, "commands": {}}
    for name in floors:
        results["floors"][name] = {"wall_s": median(name, 0), "cpu_s": median(name, 1)}
    for source in sources:
        for command, floor in floor_of.items():
            name = f"{command} ({source})"
            wall, cpu = median(name, 0), median(name, 1)
            ratio = cpu / median(floor, 1)
            goal = GOALS[command]
            verdict = "met" if cpu <= goal else "NOT met"
            print(
                f"{name:34} {wall:7.2f} {cpu:7.2f}  {ratio:4.2f}x {floor:37} "
                f"<= {goal} s CPU: {verdict}"
            )
            results["commands"][name] = {"wall_s": wall, "cpu_s": cpu, "floor": floor}
    if "before" in sources:
        print()
        for command in floor_of:
            now, before = median(f"{command} (now)", 1), median(f"{command} (before)", 1)
            print(f"{command:24} CPU before {before:5.2f} s, now {now:5.2f} s: {before / now:.1f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
