"""Scale-out: trials per minute with 1 and 2 processes on one PostgreSQL study.

    python benchmarks/scaleout.py                    # 24 trials on 60,000 rows: seconds each
    python benchmarks/scaleout.py --rows 3000        # the short trials (~0.4 s) of before

The same search twice, each in a fresh study of a fresh database: the owner alone
(``tune_distributed``, what the service runs), then the owner plus one ``work_on_study``
process (what ``automl worker`` runs, without the MLflow download). Both use the worker protocol
(heartbeats, admission to the budget). Reports wall time from opening the study to the refit
model, trials per minute, the mean trial fit time, the speed-up, that each run completed exactly
the budget, and the machine's load average before and after (two processes on two cores can
only show their speed-up when nothing else runs there).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
import uuid
from pathlib import Path

import psycopg2

from automl.data import make_churn_frame
from automl.tuning import SearchConfig, find_active_study, tune_distributed, work_on_study

SEARCH = SearchConfig(
    target="churned",
    task="classification",
    numeric=["tenure_months", "monthly_charges", "total_charges", "support_calls", "age"],
    categorical=["contract", "payment_method", "internet_service"],
    metric="roc_auc",
    cv=3,
    seed=0,
    pruner="none",
)


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


def run(url: str, n_workers: int, trials: int, rows: int) -> tuple[float, int, float]:
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
        SEARCH,
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
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--json", type=str, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    load_before = os.getloadavg()
    print(
        f"cores: {os.cpu_count()}, trials: {args.trials}, rows: {args.rows}, xgboost, 3-fold CV; "
        f"load average {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f}"
    )
    rows = []
    for n in (1, 2):
        name = f"automl_bench_{uuid.uuid4().hex[:8]}"
        _admin(f"CREATE DATABASE {name}")
        try:
            elapsed, complete, fit_s = run(
                f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}", n, args.trials, args.rows
            )
        finally:
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        rows.append((n, elapsed, complete, fit_s, os.getloadavg()[0]))
        print(
            f"{n} process(es): {elapsed:.1f} s, {60 * args.trials / elapsed:.1f} trials/min, "
            f"{complete} complete, mean trial fit {fit_s:.2f} s, load average now "
            f"{rows[-1][4]:.1f}"
        )
    speedup = rows[0][1] / rows[1][1]
    load_after = os.getloadavg()
    print(
        f"speed-up with 2 processes: {speedup:.2f}x (goal >= 1.7x: "
        f"{'met' if speedup >= 1.7 else 'not met'}); load average after "
        f"{load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f}"
    )
    if args.json:
        with Path(args.json).open("w", encoding="utf-8") as f:
            json.dump(
                {
                    "trials": args.trials,
                    "rows": args.rows,
                    "runs": [
                        {"processes": n, "seconds": e, "complete": c, "mean_fit_s": f, "load": ld}
                        for n, e, c, f, ld in rows
                    ],
                    "speedup": speedup,
                    "load_before": load_before,
                    "load_after": load_after,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
