"""Scale-out: trials per minute with 1 and 2 processes on one PostgreSQL study.

    python benchmarks/scaleout.py                    # 24 grid trials on 100,000 rows, 3 pairs
    python benchmarks/scaleout.py --strategy tpe     # what the service runs (uneven work)
    python benchmarks/scaleout.py --rows 3000        # the short trials (~0.4 s) of before

The same search twice, each in a fresh study of a fresh database: the owner alone
(``tune_distributed``, what the service runs), then the owner plus one ``work_on_study``
process (what ``automl worker`` runs, without the MLflow download). Both use the worker protocol
(heartbeats, admission to the budget). Reports wall time from opening the study to the refit
model, trials per minute, the mean trial fit time, the speed-up, that each run completed exactly
the budget, and the machine's load average before and after (two processes on two cores can
only show their speed-up when nothing else runs there).

By default both runs evaluate the same 24 configurations (strategy ``grid``): with TPE each
process samples its own points and the two runs do different work (one trial of depth 12 costs
several of depth 2), so a single TPE pair measured 1.25x and 2.21x on the same quiet machine.
``--pairs`` repeats the pair and reports each speed-up and their median.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
import uuid
from pathlib import Path

import psycopg2

from automl.data import make_churn_frame
from automl.tuning import SearchConfig, find_active_study, tune_distributed, work_on_study

COMMON = {
    "target": "churned",
    "task": "classification",
    "numeric": ["tenure_months", "monthly_charges", "total_charges", "support_calls", "age"],
    "categorical": ["contract", "payment_method", "internet_service"],
    "metric": "roc_auc",
    "cv": 3,
    "seed": 0,
    "pruner": "none",
}
#: 24 XGBoost configurations of uneven cost (depth 3..10, 200..500 rounds): the same work for
#: one process and for two.
GRID = {
    "xgboost": {
        "max_depth": [3, 6, 10],
        "learning_rate": [0.05, 0.2],
        "n_estimators": [200, 500],
        "subsample": [0.7, 1.0],
    }
}


def search_config(strategy: str) -> SearchConfig:
    """The benchmark's search: the fixed grid, or TPE over the default space."""
    if strategy == "grid":
        return SearchConfig(**COMMON, models=["xgboost"], strategy="grid", grid=GRID)
    return SearchConfig(**COMMON)


def _admin(sql: str) -> None:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def _worker(url: str, group: str, rows: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is noise here
    frame = make_churn_frame(rows, seed=0)
    deadline = time.monotonic() + 60
    while (active := find_active_study(url, group=group)) is None:
        if time.monotonic() > deadline:
            raise SystemExit("no active study")
        time.sleep(0.2)
    work_on_study(frame, active, heartbeat_s=5)


def run(
    url: str, n_workers: int, trials: int, rows: int, config: SearchConfig
) -> tuple[float, int, float]:
    frame = make_churn_frame(rows, seed=0)
    group = f"bench-{n_workers}-{uuid.uuid4().hex[:6]}"
    procs = [
        mp.get_context("spawn").Process(target=_worker, args=(url, group, rows))
        for _ in range(n_workers - 1)
    ]
    for p in procs:
        p.start()
    time.sleep(3.0)  # let the workers import and start polling: measure tuning, not start-up
    started = time.perf_counter()
    result = tune_distributed(
        frame,
        config,
        n_trials=trials,
        storage=url,
        study_name=group,
        study_group=group,
        heartbeat_s=5,
    )
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join(timeout=60)
    complete = result.trials[result.trials["state"] == "COMPLETE"]
    return elapsed, len(complete), float(complete["fit_time_s"].mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=24, help="TPE's budget (the grid has 24)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--strategy", choices=["grid", "tpe"], default="grid")
    parser.add_argument("--pairs", type=int, default=3, help="1-then-2-process pairs to run")
    parser.add_argument("--json", type=str, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    config = search_config(args.strategy)
    trials = 24 if args.strategy == "grid" else args.trials
    load_before = os.getloadavg()
    print(
        f"cores: {os.cpu_count()}, {args.strategy}, trials: {trials}, rows: {args.rows}, "
        f"xgboost, 3-fold CV; load average "
        f"{load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f}"
    )
    runs = []
    speedups = []
    for pair in range(args.pairs):
        walls = {}
        for n in (1, 2):
            name = f"automl_bench_{uuid.uuid4().hex[:8]}"
            _admin(f"CREATE DATABASE {name}")
            try:
                elapsed, complete, fit_s = run(
                    f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}",
                    n,
                    trials,
                    args.rows,
                    config,
                )
            finally:
                _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            walls[n] = elapsed
            load = os.getloadavg()[0]
            runs.append(
                {
                    "pair": pair,
                    "processes": n,
                    "seconds": elapsed,
                    "complete": complete,
                    "mean_fit_s": fit_s,
                    "load": load,
                }
            )
            print(
                f"pair {pair + 1}, {n} process(es): {elapsed:.1f} s, "
                f"{60 * trials / elapsed:.1f} trials/min, {complete} complete, mean trial fit "
                f"{fit_s:.2f} s, load average now {load:.1f}"
            )
        speedups.append(walls[1] / walls[2])
        print(f"pair {pair + 1}: speed-up with 2 processes {speedups[-1]:.2f}x")
    median = statistics.median(speedups)
    load_after = os.getloadavg()
    print(
        f"speed-up with 2 processes: median {median:.2f}x over {len(speedups)} pairs "
        f"({', '.join(f'{x:.2f}' for x in speedups)}; goal >= 1.7x: "
        f"{'met' if median >= 1.7 else 'not met'}); load average after "
        f"{load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f}"
    )
    if args.json:
        with Path(args.json).open("w", encoding="utf-8") as f:
            json.dump(
                {
                    "strategy": args.strategy,
                    "trials": trials,
                    "rows": args.rows,
                    "runs": runs,
                    "speedups": speedups,
                    "median_speedup": median,
                    "load_before": load_before,
                    "load_after": load_after,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
