"""Tuning overhead: ``automl tune``'s search and MLflow record vs a bare Optuna TPE loop.

Both sides run the same search on the same seeded table (sklearn ``make_classification``, 20
numeric features, binary target, ROC AUC): XGBoost, 3 stratified folds, the same seeded
multivariate TPE sampler and median pruner, the library defaults as trial 0, the same
early-stopping split (10% of each training fold, stratified), the same early-stopping rounds and
metric, and the best configuration refit on every row at the end. Each side runs in a fresh
Python process (imports and peak RSS included), paired one after the other, alternating which
goes first.

- **automl**: what ``automl tune`` does after reading the file: schema, canonical features,
  ``automl.service.search_and_log`` (``automl.tuning.tune`` with a nested MLflow run per trial,
  then the trials table, HTML report and plots on the parent run; its steps are called one by
  one here to time them) and ``MlflowTracker.log_model``, on a fresh SQLite store.
- **bare**: what a user would write by hand: an Optuna study whose objective fits
  ``XGBClassifier`` per fold with ``eval_set=[early-stopping rows]``, scores the validation
  fold, reports the first fold's early-stopping curve to the pruner; no MLflow.

The boosting rounds each side kept (per fold, averaged over the tuned trials) are printed: when
they match, both did the same compute and the difference is overhead. The difference is split
into time inside trials (sum of the trials' own wall time) and fixed costs (imports, the MLflow
store, logging, the report, the model).

    .venv/bin/python benchmarks/tuning_overhead.py            # 20k x 20, 30 trials, 2 repeats
    .venv/bin/python benchmarks/tuning_overhead.py --quick    # 5k x 20, 10 trials, ~1 minute
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

_T0 = time.perf_counter()

SEED = 42
TARGET = "y"
EARLY_STOPPING_ROUNDS = 20
EARLY_STOP_SHARE = 0.1
CURVE_REPORT_EVERY = 10


class _Phases:
    """Wall and CPU time (all threads) per phase of a child process."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._wall, self._cpu = _T0, 0.0

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.wall[name] = self.wall.get(name, 0.0) + wall - self._wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu - self._cpu
        self._wall, self._cpu = wall, cpu


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_table(n_rows: int, n_features: int, seed: int) -> Any:
    """A seeded binary classification table, features ``f00``.. and target ``y``."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(  # noqa: N806
        n_samples=n_rows,
        n_features=n_features,
        n_informative=n_features // 2,
        n_redundant=n_features // 4,
        flip_y=0.05,
        random_state=seed,
    )
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(n_features)])
    frame[TARGET] = y
    return frame


# -- automl side ---------------------------------------------------------------------------
def run_automl(args: dict[str, Any]) -> dict[str, Any]:
    """The search as ``automl tune`` runs it, with its MLflow record; returns timings."""
    phases = _Phases()
    import pandas as pd

    from automl.data import as_received, coerce_features, infer_schema
    from automl.service._record import log_tuning_result, trial_logger
    from automl.tracking import MlflowTracker
    from automl.tuning import SearchConfig, tune

    phases.lap("imports")
    frame = pd.read_parquet(args["data"])
    schema = infer_schema(frame, target=TARGET, task="classification")
    table = coerce_features(frame, schema, source="bench").assign(**{TARGET: frame[TARGET]})
    phases.lap("read")

    work = Path(args["workdir"])
    tracker = MlflowTracker(
        f"sqlite:///{work / 'mlflow.db'}",
        "automl/tune",
        artifact_location=(work / "mlartifacts").resolve().as_uri(),
    )
    run_id = tracker.start_run("tune-bench", tags={"automl.command": "tune"})
    phases.lap("mlflow_store")

    config = SearchConfig(
        target=TARGET,
        task="classification",
        numeric=schema.numeric,
        categorical=schema.categorical,
        metric="roc_auc",
        cv=args["cv"],
        seed=SEED,
        strategy="bayesian",
        models=("xgboost",),
    )
    tracker.log_params(run_id, {"rows": len(frame), "cv": args["cv"], "seed": SEED})
    log_trial = trial_logger(tracker, run_id, config.metric)
    phases.lap("trial_logging")

    def on_trial(trial: Any) -> None:
        phases.lap("tune")
        log_trial(trial)
        phases.lap("trial_logging")

    # automl.service.search_and_log, as `automl tune` calls it, with a clock between its steps.
    result = tune(table, config, n_trials=args["n_trials"], study_name="bench", on_trial=on_trial)
    phases.lap("tune")
    log_tuning_result(tracker, run_id, result, title="Tuning report: bench")
    phases.lap("report")
    example = as_received(table.drop(columns=TARGET), schema).head(5)
    tracker.log_model(run_id, result.model, input_example=example)
    tracker.end_run(run_id, "FINISHED")
    phases.lap("log_model")
    inside = float(result.trials["fit_time_s"].sum())

    trials = result.trials
    tuned = trials[~trials["is_defaults"] & (trials["state"] == "COMPLETE")]
    return {
        "phases_s": phases.wall,
        "phases_cpu_s": phases.cpu,
        "inside_trials_s": inside,
        "n_pruned": int(result.n_pruned),
        "best_score": float(result.best_score),
        "rounds_per_trial": [int(r) for r in tuned["fitted_rounds"]],
        "trial_params": [
            {k[len("param_") :]: v for k, v in row.items() if k.startswith("param_")}
            for row in trials.to_dict("records")
        ],
        "trial_figures": sorted(
            c
            for c in trials.columns
            if c.startswith("val_")
            or c in ("train_mean", "fit_gap", "fit_status", "peak_memory_mb", "fitted_rounds")
        ),
    }


# -- bare side -----------------------------------------------------------------------------
def run_bare(args: dict[str, Any]) -> dict[str, Any]:
    """A hand-written Optuna TPE loop over XGBoost with the same trials, folds and rounds."""
    phases = _Phases()
    import numpy as np
    import optuna
    import pandas as pd
    from optuna.distributions import (
        CategoricalDistribution,
        IntDistribution,
        json_to_distribution,
    )
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from xgboost import XGBClassifier

    phases.lap("imports")
    frame = pd.read_parquet(args["data"])
    X = frame.drop(columns=TARGET).to_numpy()  # noqa: N806
    y = frame[TARGET].to_numpy()
    phases.lap("read")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {k: json_to_distribution(v) for k, v in args["space"].items()}
    folds = list(StratifiedKFold(args["cv"], shuffle=True, random_state=SEED).split(X, y))
    startup = max(3, min(10, args["n_trials"] // 3))
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(
            seed=SEED, multivariate=True, n_startup_trials=startup, n_ei_candidates=24
        ),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=startup, n_warmup_steps=0, n_min_trials=2
        ),
    )
    study.enqueue_trial(args["defaults"], user_attrs={"is_defaults": True})
    inside: list[float] = []

    def suggest(trial: optuna.Trial, name: str, dist: Any) -> Any:
        if isinstance(dist, IntDistribution):
            return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
        if isinstance(dist, CategoricalDistribution):
            return trial.suggest_categorical(name, dist.choices)
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)

    def objective(trial: optuna.Trial) -> float:
        t0 = time.perf_counter()
        try:
            params = {name: suggest(trial, name, dist) for name, dist in space.items()}
            is_defaults = bool(trial.user_attrs.get("is_defaults"))
            scores, rounds = [], []
            for fold, (train, val) in enumerate(folds):
                common = {"random_state": SEED, "n_jobs": 1, "tree_method": "hist", **params}
                if is_defaults:
                    model = XGBClassifier(**common).fit(X[train], y[train])
                else:
                    fit, stop = train_test_split(
                        np.arange(len(train)),
                        test_size=max(1, round(len(train) * EARLY_STOP_SHARE)),
                        random_state=SEED,
                        stratify=y[train],
                    )
                    fit, stop = train[np.sort(fit)], train[np.sort(stop)]
                    model = XGBClassifier(
                        early_stopping_rounds=EARLY_STOPPING_ROUNDS, eval_metric="auc", **common
                    ).fit(X[fit], y[fit], eval_set=[(X[stop], y[stop])], verbose=False)
                    rounds.append(int(model.best_iteration) + 1)
                scores.append(roc_auc_score(y[val], model.predict_proba(X[val])[:, 1]))
                if fold == 0 and not is_defaults:
                    curve = model.evals_result()["validation_0"]["auc"]
                    for step in range(CURVE_REPORT_EVERY, len(curve) + 1, CURVE_REPORT_EVERY):
                        trial.report(curve[step - 1], step)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
            if rounds:
                trial.set_user_attr("rounds", rounds)
            return float(np.mean(scores))
        finally:
            inside.append(time.perf_counter() - t0)

    study.optimize(objective, n_trials=args["n_trials"])
    best = study.best_trial
    refit = dict(best.params)
    if "rounds" in best.user_attrs:
        refit["n_estimators"] = round(float(np.mean(best.user_attrs["rounds"])))
    XGBClassifier(random_state=SEED, n_jobs=1, tree_method="hist", **refit).fit(X, y)
    phases.lap("tune")
    complete = [tr for tr in study.trials if tr.state == optuna.trial.TrialState.COMPLETE]
    return {
        "phases_s": phases.wall,
        "phases_cpu_s": phases.cpu,
        "inside_trials_s": float(sum(inside)),
        "n_pruned": sum(tr.state == optuna.trial.TrialState.PRUNED for tr in study.trials),
        "best_score": float(best.value),
        "rounds_per_trial": [
            round(float(np.mean(tr.user_attrs["rounds"])))
            for tr in complete
            if "rounds" in tr.user_attrs
        ],
        "rounds_per_fold": [r for tr in complete for r in tr.user_attrs.get("rounds", [])],
        "trial_params": [tr.params for tr in study.trials],
    }


# -- driver --------------------------------------------------------------------------------
def _child(side: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one side in a fresh interpreter; its wall time includes start-up and imports."""
    with tempfile.TemporaryDirectory(prefix=f"tuning-overhead-{side}-") as tmp:
        out = Path(tmp) / "result.json"
        child_args = {**args, "workdir": tmp, "out": str(out)}
        (Path(tmp) / "args.json").write_text(json.dumps(child_args), encoding="utf-8")
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--child", side, str(Path(tmp) / "args.json")],
            check=True,
            cwd=tmp,
        )
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["wall_s"] = wall
    # CPU time (user + system) is steadier than wall time on a machine shared with other work.
    result["cpu_s"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    # Interpreter start-up before this script's first line, and shutdown after its last.
    result["phases_s"]["startup_and_exit"] = wall - result["in_process_s"]
    result["phases_cpu_s"]["startup_and_exit"] = result["cpu_s"] - result["in_process_cpu_s"]
    return result


def _space_and_defaults(n_rows: int, n_features: int) -> tuple[dict[str, str], dict[str, Any]]:
    from optuna.distributions import distribution_to_json

    from automl.tuning import family_space

    space = family_space("xgboost", task="classification", n_rows=n_rows, n_features=n_features)
    return (
        {k: distribution_to_json(v) for k, v in space.distributions.items()},
        dict(space.defaults),
    )


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _median_phase(runs: list[dict[str, Any]], field: str, key: str) -> float:
    return float(statistics.median(r[field].get(key, 0.0) for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5k rows, 10 trials, one repeat")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--source", type=Path, help="import automl from this checkout (before/after figures)"
    )
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "ARGS"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        side, path = opts.child
        args = json.loads(Path(path).read_text(encoding="utf-8"))
        if args.get("source"):
            sys.path.insert(0, args["source"])
        result = run_automl(args) if side == "automl" else run_bare(args)
        if side == "automl":
            result["automl_from"] = str(Path(sys.modules["automl"].__file__ or "").parent.parent)
        result["peak_rss_mb"] = _peak_rss_mb()
        result["in_process_s"] = time.perf_counter() - _T0
        result["in_process_cpu_s"] = time.process_time()
        Path(args["out"]).write_text(json.dumps(result, default=str), encoding="utf-8")
        return

    n_rows = opts.rows or (5_000 if opts.quick else 20_000)
    n_trials = opts.trials or (10 if opts.quick else 30)
    repeats = opts.repeats or (1 if opts.quick else 2)
    n_features = 20
    out = opts.out or Path(__file__).parent / "results" / (
        "tuning_overhead_quick.json" if opts.quick else "tuning_overhead.json"
    )
    with tempfile.TemporaryDirectory(prefix="tuning-overhead-") as tmp:
        data = Path(tmp) / "table.parquet"
        make_table(n_rows, n_features, SEED).to_parquet(data)
        space, defaults = _space_and_defaults(n_rows, n_features)
        args = {
            "data": str(data),
            "n_trials": n_trials,
            "cv": opts.cv,
            "space": space,
            "defaults": defaults,
            "source": str(opts.source.resolve()) if opts.source else None,
        }
        print(
            f"{n_rows:,} rows x {n_features}, {n_trials} trials, xgboost, cv {opts.cv}, "
            f"{repeats} paired repeat(s), {os.cpu_count()} cores"
        )
        ours: list[dict[str, Any]] = []
        bare: list[dict[str, Any]] = []
        for i in range(repeats):
            order = ("automl", "bare") if i % 2 == 0 else ("bare", "automl")
            for side in order:
                run = _child(side, args)
                (ours if side == "automl" else bare).append(run)
                print(
                    f"  repeat {i + 1} {side:6s}: {run['wall_s']:6.1f} s "
                    f"(CPU {run['cpu_s']:6.1f} s), "
                    f"peak {run['peak_rss_mb']:4.0f} MB, inside trials "
                    f"{run['inside_trials_s']:5.1f} s, {run['n_pruned']} pruned"
                )

    wall_a, wall_b = _median(ours, "wall_s"), _median(bare, "wall_s")
    cpu_a, cpu_b = _median(ours, "cpu_s"), _median(bare, "cpu_s")
    inside_a, inside_b = _median(ours, "inside_trials_s"), _median(bare, "inside_trials_s")
    for run in (*ours, *bare):  # the search's own work besides the trials
        run["phases_s"]["tune_outside_trials"] = (
            run["phases_s"].pop("tune") - run["inside_trials_s"]
        )
    order = [
        "startup_and_exit",
        "imports",
        "read",
        "mlflow_store",
        "trial_logging",
        "tune_outside_trials",
        "report",
        "log_model",
    ]
    phase_wall = {
        side: {k: _median_phase(runs, "phases_s", k) for k in order}
        for side, runs in (("automl", ours), ("bare", bare))
    }
    phase_cpu = {
        side: {
            k: _median_phase(runs, "phases_cpu_s", k) for k in order if k != "tune_outside_trials"
        }
        for side, runs in (("automl", ours), ("bare", bare))
    }
    outside_a, outside_b = wall_a - inside_a, wall_b - inside_b
    rounds_a = [r for run in ours[:1] for r in run["rounds_per_trial"]]
    rounds_b = [r for run in bare[:1] for r in run["rounds_per_trial"]]
    same_trials = ours[0]["trial_params"] == bare[0]["trial_params"]
    summary = {
        "rows": n_rows,
        "features": n_features,
        "trials": n_trials,
        "cv": opts.cv,
        "repeats": repeats,
        "automl_wall_s": wall_a,
        "bare_wall_s": wall_b,
        "overhead": wall_a / wall_b - 1,
        "automl_cpu_s": cpu_a,
        "bare_cpu_s": cpu_b,
        "cpu_overhead": cpu_a / cpu_b - 1,
        "automl_peak_rss_mb": _median(ours, "peak_rss_mb"),
        "bare_peak_rss_mb": _median(bare, "peak_rss_mb"),
        "automl_inside_trials_s": inside_a,
        "bare_inside_trials_s": inside_b,
        "automl_outside_trials_s": outside_a,
        "bare_outside_trials_s": outside_b,
        "phases_s": phase_wall,
        "phases_cpu_s": phase_cpu,
        "automl_mean_rounds_per_fold": statistics.fmean(rounds_a) if rounds_a else None,
        "bare_mean_rounds_per_fold": statistics.fmean(rounds_b) if rounds_b else None,
        "same_trial_params": same_trials,
        "automl_trial_figures": ours[0]["trial_figures"],
        "runs": {"automl": ours, "bare": bare},
    }
    print()
    print(f"{'':28s}{'automl':>10s}{'bare':>10s}{'ratio':>9s}")
    print(f"{'wall time (s)':28s}{wall_a:10.1f}{wall_b:10.1f}{wall_a / wall_b:9.2f}x")
    print(f"{'CPU time (s)':28s}{cpu_a:10.1f}{cpu_b:10.1f}{cpu_a / cpu_b:9.2f}x")
    print(
        f"{'peak RSS (MB)':28s}{summary['automl_peak_rss_mb']:10.0f}"
        f"{summary['bare_peak_rss_mb']:10.0f}"
        f"{summary['automl_peak_rss_mb'] / summary['bare_peak_rss_mb']:9.2f}x"
    )
    print(f"{'inside trials (s)':28s}{inside_a:10.1f}{inside_b:10.1f}{inside_a / inside_b:9.2f}x")
    print(f"{'outside trials (s)':28s}{outside_a:10.1f}{outside_b:10.1f}")
    print(f"{'  of which, wall (CPU) s':28s}")
    for key in order:
        cells = []
        for side in ("automl", "bare"):
            wall, cpu = phase_wall[side][key], phase_cpu[side].get(key)
            cells.append(f"{wall:5.2f} ({cpu:4.1f})" if cpu is not None else f"{wall:5.2f}      ")
        print(f"{'  ' + key:28s}{cells[0]:>12s}{cells[1]:>12s}")
    print(
        f"{'rounds per fold (tuned, mean)':28s}"
        f"{summary['automl_mean_rounds_per_fold'] or 0:10.1f}"
        f"{summary['bare_mean_rounds_per_fold'] or 0:10.1f}"
    )
    print(f"{'pruned trials':28s}{ours[0]['n_pruned']:10d}{bare[0]['n_pruned']:10d}")
    print(
        f"same trials (parameters): {same_trials}; best AUC automl "
        f"{ours[0]['best_score']:.4f}, bare {bare[0]['best_score']:.4f}"
    )
    print(
        f"overhead: wall {summary['overhead']:+.1%}, CPU {summary['cpu_overhead']:+.1%} "
        "(goal <= +10%)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
