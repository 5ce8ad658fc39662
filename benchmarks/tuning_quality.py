"""Tuning quality: do our strategies beat defaults and random search; does warm start pay?

Part 1, strategies. On scikit-learn's bundled datasets (no downloads), each split 75/25 into
train/test per seed, XGBoost is tuned on the train part with every strategy at the same trial
budget and seed, and the refit model is scored on the untouched test part. "defaults" is
XGBoost with its library defaults fit on the same train part. Per (dataset, seed) the five
are ranked by test score (1 = best, ties share the mean rank); the table shows the average rank
and the mean test score per dataset.

Part 2, warm start after drift. A study tunes on a pre-drift table; the table then drifts
(synthetic shift of features and of the label's dependence on them). A cold study and a warm
study (the previous study's 3 best configurations re-evaluated first) tune on the drifted data
with the same budget and seed. Reported: trials the warm study needs to reach the cold study's
best CV score, against the trials the cold study needed to find it (the goal: at most half the
budget), and apart, clearly not the goal, the trials it needs to come within one standard error
of that score (the cold best's fold standard deviation over the square root of the folds).
``--seeds N`` runs seeds 0..N-1 (default 3) for both parts.

Run: ``.venv/bin/python benchmarks/tuning_quality.py [--quick]`` (about 9 minutes on 2 cores;
``--quick`` is a smoke run). Results print as Markdown and go to
``benchmarks/results/tuning_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

STRATEGIES = ("random", "bayesian", "gp", "genetic")
METHODS = ("defaults", *STRATEGIES)


def _dataset(name: str) -> tuple[pd.DataFrame, str, str, str]:
    """Frame, target, task and metric of a bundled dataset."""
    from sklearn import datasets

    if name == "breast_cancer":
        frame = datasets.load_breast_cancer(as_frame=True).frame
        return frame, "target", "classification", "roc_auc"
    if name == "wine":
        frame = datasets.load_wine(as_frame=True).frame
        return frame, "target", "classification", "log_loss"
    if name == "diabetes":
        frame = datasets.load_diabetes(as_frame=True).frame
        return frame, "target", "regression", "rmse"
    if name == "friedman1":  # scikit-learn's synthetic generator, fixed seed
        X, y = datasets.make_friedman1(n_samples=600, n_features=10, noise=1.0, random_state=0)  # noqa: N806
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(10)]).assign(target=y)
        return frame, "target", "regression", "rmse"
    raise ValueError(name)


def _strategy_job(dataset: str, seed: int, n_trials: int) -> list[dict[str, Any]]:
    from sklearn.model_selection import train_test_split

    from automl.tuning import SearchConfig, build_model, score_model, tune

    warnings.filterwarnings("ignore")
    frame, target, task, metric = _dataset(dataset)
    stratify = frame[target] if task == "classification" else None
    train, test = train_test_split(frame, test_size=0.25, random_state=seed, stratify=stratify)
    features = [c for c in frame.columns if c != target]
    rows = []
    defaults = build_model(
        task=task,
        numeric=features,
        categorical=[],
        params={},
        seed=seed,  # type: ignore[arg-type]
    ).fit(train[features], train[target])
    rows.append(
        {
            "dataset": dataset,
            "seed": seed,
            "method": "defaults",
            "metric": metric,
            "test": score_model(defaults, test, target=target, metric=metric),
            "cv": float("nan"),
            "seconds": 0.0,
        }
    )
    for strategy in STRATEGIES:
        started = time.perf_counter()
        config = SearchConfig(
            target=target,
            task=task,  # type: ignore[arg-type]
            numeric=features,
            categorical=[],
            metric=metric,
            cv=3,
            seed=seed,
            strategy=strategy,  # type: ignore[arg-type]
        )
        result = tune(train, config, n_trials=n_trials)
        rows.append(
            {
                "dataset": dataset,
                "seed": seed,
                "method": strategy,
                "metric": metric,
                "test": score_model(result.model, test, target=target, metric=metric),
                "cv": result.best_score,
                "seconds": time.perf_counter() - started,
                "n_pruned": result.n_pruned,
            }
        )
    return rows


def _drift_frames(kind: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, str, str, str]:
    if kind == "churn":
        from automl.data import make_churn_frame

        before = make_churn_frame(1500, seed=seed, drift=0.0)
        after = make_churn_frame(1500, seed=seed + 100, drift=1.0)
        return before, after, "churned", "classification", "roc_auc"
    # friedman1, then a drift: features shift and the target's dependence changes.
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=1200, n_features=8, noise=1.0, random_state=seed)  # noqa: N806
    before = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)]).assign(target=y)
    X2, _ = make_friedman1(n_samples=1200, n_features=8, noise=1.0, random_state=seed + 100)  # noqa: N806
    X2[:, 0] = np.clip(X2[:, 0] + 0.3, 0, 1.3)
    rng = np.random.default_rng(seed)
    y2 = (
        10 * np.sin(np.pi * X2[:, 0] * X2[:, 1])
        + 25 * (X2[:, 2] - 0.5) ** 2
        + 8 * X2[:, 3]
        + 5 * X2[:, 4]
        + rng.normal(0, 1.0, len(X2))
    )
    after = pd.DataFrame(X2, columns=[f"x{i}" for i in range(8)]).assign(target=y2)
    return before, after, "target", "regression", "rmse"


def _warm_job(kind: str, seed: int, n_trials: int) -> dict[str, Any]:
    from automl.tuning import SearchConfig, tune

    warnings.filterwarnings("ignore")
    before, after, target, task, metric = _drift_frames(kind, seed)
    features = [c for c in before.columns if c != target]
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(before[c])]
    config = SearchConfig(
        target=target,
        task=task,  # type: ignore[arg-type]
        numeric=numeric,
        categorical=[c for c in features if c not in numeric],
        metric=metric,
        cv=3,
        seed=seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'optuna.db'}"
        tune(
            before,
            config,
            n_trials=n_trials,
            storage=storage,
            study_name="before",
            study_group="bench",
        )
        cold = tune(after, config, n_trials=n_trials, storage=storage, study_name="cold")
        warm = tune(
            after,
            config,
            n_trials=n_trials,
            storage=storage,
            study_name="warm",
            warm_start_from="before",
        )
    greater = cold.greater_is_better

    def first_reaching(result: Any, level: float) -> int | None:
        done = result.trials.sort_values("number")
        for i, (state, value) in enumerate(zip(done["state"], done["cv_mean"], strict=True)):
            if state == "COMPLETE" and (value >= level if greater else value <= level):
                return i + 1
        return None

    # The standard error of the cold best's CV mean (fold std / sqrt(folds)): scores closer than
    # this to it are within CV noise of it. Reported apart; the strict figure stays the goal.
    noise = cold.best_score_std / np.sqrt(config.cv)
    return {
        "kind": kind,
        "seed": seed,
        "metric": metric,
        "cold_best": cold.best_score,
        "cold_best_se": noise,
        "warm_trials_to_cold_best_within_se": first_reaching(
            warm, cold.best_score - noise if greater else cold.best_score + noise
        ),
        "warm_best": warm.best_score,
        "cold_trials_to_best": first_reaching(cold, cold.best_score),
        "warm_trials_to_cold_best": first_reaching(warm, cold.best_score),
        "warm_first_trial": float(warm.trials.sort_values("number")["cv_mean"].iloc[0]),
        "warm_better_or_equal": (
            warm.best_score >= cold.best_score if greater else warm.best_score <= cold.best_score
        ),
        "cold_defaults": cold.default_score,
        "n_trials": n_trials,
        # Per-trial CV means in trial order (NaN unless complete), for the figures below and
        # for a later look at how each study progressed.
        "cold_curve": [float(v) for v in cold.trials.sort_values("number")["cv_mean"]],
        "warm_curve": [float(v) for v in warm.trials.sort_values("number")["cv_mean"]],
        "warm_opening": [
            "warm" if w else ("defaults" if d else "")
            for w, d in zip(
                warm.trials.sort_values("number")["is_warm_start"],
                warm.trials.sort_values("number")["is_defaults"],
                strict=True,
            )
        ],
    }


def _ranks(rows: pd.DataFrame) -> pd.DataFrame:
    from automl.tuning import GREATER_IS_BETTER

    ranked = []
    for (_dataset_name, _seed), group in rows.groupby(["dataset", "seed"]):
        greater = GREATER_IS_BETTER[group["metric"].iloc[0]]
        ranks = group["test"].rank(ascending=not greater, method="average")
        ranked.append(group.assign(rank=ranks))
    return pd.concat(ranked)


def _print_strategies(rows: pd.DataFrame, n_trials: int, seeds: tuple[int, ...]) -> dict[str, Any]:
    ranked = _ranks(rows)
    avg_rank = ranked.groupby("method")["rank"].mean().reindex(list(METHODS))
    per_dataset = (
        ranked.groupby(["dataset", "method"])["test"].mean().unstack("method")[list(METHODS)]
    )
    seconds = ranked.groupby("method")["seconds"].mean().reindex(list(METHODS))
    metric_of = rows.groupby("dataset")["metric"].first()
    print(f"## Strategies (XGBoost, {n_trials} trials, 3-fold CV, seeds {list(seeds)})\n")
    print("| dataset (test metric) | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for dataset, row in per_dataset.iterrows():
        cells = " | ".join(f"{row[m]:.4f}" for m in METHODS)
        print(f"| {dataset} ({metric_of[dataset]}) | {cells} |")
    ranks = " | ".join(f"**{avg_rank[m]:.2f}**" for m in METHODS)
    print(f"| **average rank** (1 best) | {ranks} |")
    print("| mean search time (s) | " + " | ".join(f"{seconds[m]:.1f}" for m in METHODS) + " |")
    print()
    return {str(k): float(v) for k, v in avg_rank.items()}


def _print_warm(warm: pd.DataFrame, warm_trials: int) -> None:
    print(f"## Warm vs cold re-tune after drift ({warm_trials} trials each)\n")
    print(
        "| data | seed | cold best | warm best "
        "| cold: trials to its best | warm: trials to cold best "
        "| warm: trials to within 1 SE of cold best |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in warm.itertuples():
        reach = r.warm_trials_to_cold_best
        shown = "not reached" if pd.isna(reach) else int(reach)
        noisy = r.warm_trials_to_cold_best_within_se
        near = "not reached" if pd.isna(noisy) else int(noisy)
        print(
            f"| {r.kind} ({r.metric}) | {r.seed} | {r.cold_best:.4f} | {r.warm_best:.4f} | "
            f"{r.cold_trials_to_best} | {shown} | {near} |"
        )
    reached = warm["warm_trials_to_cold_best"].dropna()
    within = int((reached <= warm_trials / 2).sum())
    print()
    print(
        f"warm reached the cold best in {len(reached)}/{len(warm)} runs, within half the budget "
        f"({warm_trials / 2:.0f} trials) in {within}/{len(warm)}; median trials when reached "
        f"{float(np.median(reached)) if len(reached) else float('nan'):.1f} (warm) vs "
        f"{float(warm['cold_trials_to_best'].median()):.1f} (cold, to its own best); "
        f"warm ended better than or equal to cold in "
        f"{int((warm['warm_better_or_equal']).sum())}/{len(warm)} runs"
    )
    noisy = warm["warm_trials_to_cold_best_within_se"].dropna()
    print(
        f"\nwithin CV noise (a score within one standard error of the cold best's CV mean; "
        f"not the goal): warm reached it in {len(noisy)}/{len(warm)} runs, within half the "
        f"budget in {int((noisy <= warm_trials / 2).sum())}/{len(warm)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, few trials")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--part", choices=("all", "strategies", "warm"), default="all", help="what to run"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds 0..N-1 (default 3; 1 with --quick)",
    )
    args = parser.parse_args()
    datasets = ("breast_cancer", "wine", "diabetes", "friedman1")
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    seeds = tuple(range(n_seeds))
    n_trials = 6 if args.quick else 20
    warm_trials = 6 if args.quick else 20
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        strategy_futures = (
            [pool.submit(_strategy_job, d, s, n_trials) for d in datasets for s in seeds]
            if args.part in ("all", "strategies")
            else []
        )
        warm_futures = (
            [
                pool.submit(_warm_job, kind, s, warm_trials)
                for kind in ("churn", "friedman1")
                for s in seeds
            ]
            if args.part in ("all", "warm")
            else []
        )
        rows = pd.DataFrame([r for f in strategy_futures for r in f.result()])
        warm = pd.DataFrame([f.result() for f in warm_futures])
    elapsed = time.perf_counter() - started
    report: dict[str, Any] = {"n_trials": n_trials, "seeds": list(seeds), "elapsed_s": elapsed}
    if len(rows):
        report["average_rank"] = _print_strategies(rows, n_trials, seeds)
        report["strategy_rows"] = rows.to_dict(orient="records")
    if len(warm):
        _print_warm(warm, warm_trials)
        report["warm_start"] = warm.to_dict(orient="records")
    print(f"\ntotal wall time {elapsed:.0f} s with {args.workers} worker processes")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    name = "tuning_quality.json" if args.part == "all" else f"tuning_quality_{args.part}.json"
    (out / name).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
