"""Label-free performance estimation (CBPE) against the realized metric, on real and synthetic data.

For each dataset, model and repetition the rows are split at random into training (40%), a
labelled reference the model did not train on (20%, its holdout) and a pool (40%). Batches
(20% of the rows) are drawn from the pool:

* ``none``: a uniform draw (the metric should stay where it was);
* ``selection s``: drawn with probability proportional to ``exp(s * u)``, ``u`` the rows'
  standardized projection on a random direction (the customer mix changes; P(y|x) does not);
* ``hard s``: drawn with probability proportional to ``exp(-s * |m|)``, ``m`` the model's
  standardized margin (rows crowd the decision boundary: the metric falls most).

Each batch's ROC AUC and accuracy are estimated from the model's probabilities alone, and
compared with the realized metric (the batch's labels): CBPE with isotonic or sigmoid (Platt)
calibration on the reference, CBPE trusting the model's probabilities (``none``), and the naive
estimate (the metric realized on the reference, i.e. "nothing changed").

    .venv/bin/python benchmarks/performance_estimate.py           # ~6 minutes on 2 shared cores
    .venv/bin/python benchmarks/performance_estimate.py --quick   # 3 repetitions
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

CELLS: tuple[tuple[str, float], ...] = (
    ("none", 0.0),
    ("selection", 1.0),
    ("selection", 2.0),
    ("hard", 1.0),
    ("hard", 3.0),
)
METHODS = ("isotonic", "sigmoid", "none", "naive")
METRICS = ("accuracy", "roc_auc")


def load_datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Bundled scikit-learn datasets (no download) and one seeded synthetic table."""
    from sklearn import datasets

    out = {}
    for name in ("breast_cancer", "digits"):
        bunch = getattr(datasets, f"load_{name}")()
        out[name] = (bunch.data.astype(float), bunch.target)
    x, y = datasets.make_classification(
        n_samples=6000, n_features=12, n_informative=6, flip_y=0.05, random_state=0
    )
    out["synthetic"] = (x, y)
    return out


def make_model(kind: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "hgb":
        return HistGradientBoostingClassifier(max_iter=60, random_state=0)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def realized(metric: str, proba: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if metric == "accuracy":
        return float((classes[proba.argmax(axis=1)] == y).mean())
    if proba.shape[1] == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    return float(
        roc_auc_score(y, proba, multi_class="ovr", average="weighted", labels=list(classes))
    )


def draw_batch(
    kind: str,
    strength: float,
    x: np.ndarray,
    margin: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Row positions (into ``x``) of one batch of ``n`` rows with the cell's shift."""
    if kind == "none":
        return rng.choice(len(x), n, replace=False)
    if kind == "selection":
        z = (x - x.mean(axis=0)) / x.std(axis=0).clip(1e-9)
        direction = rng.normal(size=z.shape[1])
        u = z @ (direction / np.linalg.norm(direction))
        score = strength * (u - u.mean()) / (u.std() or 1.0)
    else:
        m = np.abs(margin)
        score = -strength * (m - m.mean()) / (m.std() or 1.0)
    weights = np.exp(score - score.max())
    return rng.choice(len(x), n, replace=False, p=weights / weights.sum())


def main() -> None:
    from threadpoolctl import threadpool_limits

    from automl.drift import ConfidenceBasedEstimator

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--json", default=str(Path(__file__).parent / "results" / "performance_estimate.json")
    )
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    started = time.perf_counter()
    # errors[(metric, cell)][method] -> list of |estimate - realized|
    errors: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    drops: dict[tuple[str, str], list[float]] = defaultdict(list)
    with threadpool_limits(1):  # 2 shared cores: no OpenMP oversubscription
        for name, (x, y) in load_datasets().items():
            for model_kind in ("hgb", "logistic"):
                for rep in range(reps):
                    rng = np.random.default_rng(1000 * rep + len(name))
                    order = rng.permutation(len(x))
                    n = len(x)
                    train, ref, pool = np.split(order, [int(0.4 * n), int(0.6 * n)])
                    model = make_model(model_kind).fit(x[train], y[train])
                    classes = model.classes_
                    ref_proba = model.predict_proba(x[ref])
                    estimators = {
                        c: ConfidenceBasedEstimator(calibration=c).fit(  # type: ignore[arg-type]
                            ref_proba, y[ref], classes=list(classes)
                        )
                        for c in ("isotonic", "sigmoid", "none")
                    }
                    pool_proba = model.predict_proba(x[pool])
                    top2 = np.sort(pool_proba, axis=1)[:, -2:]
                    margin = top2[:, 1] - top2[:, 0]
                    for kind, strength in CELLS:
                        cell = kind if kind == "none" else f"{kind} {strength:g}"
                        rows = draw_batch(kind, strength, x[pool], margin, int(0.2 * n), rng)
                        proba, truth = pool_proba[rows], y[pool][rows]
                        for metric in METRICS:
                            real = realized(metric, proba, truth, classes)
                            for c, estimator in estimators.items():
                                value = estimator.estimate(proba, metric=metric).value  # type: ignore[arg-type]
                                errors[(metric, cell)][c].append(abs(value - real))
                            naive = estimators["none"].reference_scores[metric]  # type: ignore[index]
                            errors[(metric, cell)]["naive"].append(abs(naive - real))
                            drops[(metric, cell)].append(naive - real)
                print(f"{name:14s} {model_kind:9s} {reps} reps done", flush=True)
    print()
    print("Mean absolute error of the estimate against the realized metric per batch")
    print(f"({reps} repetitions x 3 datasets x 2 models per cell; 'drop' = how much the metric")
    print("really fell from the reference's; ratio = naive error / CBPE-isotonic error):")
    summary: dict[str, Any] = {}
    for metric in METRICS:
        print()
        header = "".join(f"{m:>10s}" for m in METHODS)
        print(f"  {metric:9s} {'cell':14s}{'drop':>8s}{header}{'ratio':>8s}")
        for kind, strength in CELLS:
            cell = kind if kind == "none" else f"{kind} {strength:g}"
            row = {m: float(np.mean(errors[(metric, cell)][m])) for m in METHODS}
            drop = float(np.mean(drops[(metric, cell)]))
            ratio = row["naive"] / row["isotonic"] if row["isotonic"] else float("inf")
            summary[f"{metric} {cell}"] = {"drop": drop, **row, "naive_over_isotonic": ratio}
            values = "".join(f"{row[m]:>10.4f}" for m in METHODS)
            print(f"  {'':9s} {cell:14s}{drop:>8.3f}{values}{ratio:>8.1f}")
        shifted = [c for c in summary if c.startswith(metric) and not c.endswith("none")]
        overall = {m: float(np.mean([summary[c][m] for c in shifted])) for m in METHODS}
        summary[f"{metric} all shifts"] = overall
        print(
            f"  {'':9s} {'all shifts':14s}{'':>8s}"
            + "".join(f"{overall[m]:>10.4f}" for m in METHODS)
        )
    print(f"\nTotal time {time.perf_counter() - started:.0f} s")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with Path(args.json).open("w", encoding="utf-8") as f:
        json.dump({"reps": reps, "cells": summary}, f, indent=2)


if __name__ == "__main__":
    main()
