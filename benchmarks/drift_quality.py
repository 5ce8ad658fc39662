"""Drift decision quality: false alarms on no-drift splits and power on injected covariate shift.

Real datasets bundled with scikit-learn (no download): breast_cancer, wine, diabetes, digits,
iris. Each repetition draws a random reference (50% of the rows) and a current batch (20%) from
the other half. Cells:

* ``none``: the batch is a uniform draw (no drift): the false-alarm rate;
* ``global d``: every column of the batch shifted by ``d`` reference standard deviations;
* ``partial d``: a random quarter of the continuous columns (> 10 distinct values) shifted by
  ``d`` standard deviations, the rest untouched;
* ``selection s``: the batch drawn with probability proportional to ``exp(s * u)``, ``u`` the
  rows' standardized projection on a random direction (selection bias: P(x) moves in a
  correlated way across columns, as when the customer mix changes; P(y|x) does not).

Compared on the same splits, in the same run:

* ``automl``: the default policy (evidently's tests per column, Holm correction, effect floor,
  missing/unseen checks, share of drifted columns >= 0.5);
* ``automl_any``: the same detector configured to react to any single column
  (``drift_share: 0.01``, ``correction: holm``), to show the other end of the trade-off;
* ``evidently``: evidently's default ``DataDriftPreset`` decision (its per-column default tests,
  uncorrected, dataset drift when >= 50% of columns drift), computed with evidently's own stattest
  functions; the full preset (plots included) takes seconds per call, so it is run on a sample of
  splits only, to confirm that it decides the same;
* ``ks_bonferroni``: scipy's two-sample K-S test per column, drift when any p < 0.05 / m.

    .venv/bin/python benchmarks/drift_quality.py            # ~4 minutes on 2 cores
    .venv/bin/python benchmarks/drift_quality.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

CELLS: tuple[tuple[str, float], ...] = (
    ("none", 0.0),
    ("global", 0.1),
    ("global", 0.2),
    ("global", 0.3),
    ("global", 0.5),
    ("partial", 0.5),
    ("partial", 1.0),
    ("selection", 1.0),
    ("selection", 3.0),
)
#: Cells where the real DataDriftPreset is also run (it takes seconds per call).
PRESET_CELLS = (("none", 0.0), ("global", 0.3))
Detector = Callable[[pd.DataFrame, pd.DataFrame], bool]


def load_datasets() -> dict[str, pd.DataFrame]:
    """Feature tables of the bundled scikit-learn datasets."""
    from sklearn import datasets

    out = {}
    for name in ("breast_cancer", "wine", "diabetes", "digits", "iris"):
        frame = getattr(datasets, f"load_{name}")(as_frame=True).data
        out[name] = frame.astype("float64")
    return out


def split(
    frame: pd.DataFrame, kind: str, strength: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random reference (50%) and a current batch (20%) with the cell's shift injected."""
    n = len(frame)
    order = rng.permutation(n)
    ref_idx, pool = order[: n // 2], order[n // 2 :]
    n_cur = int(0.2 * n)
    ref = frame.iloc[ref_idx]
    mean, std = ref.mean(), ref.std().replace(0, 1.0)
    if kind == "selection":
        z = ((frame.iloc[pool] - mean) / std).to_numpy()
        direction = rng.normal(size=z.shape[1])
        u = z @ (direction / np.linalg.norm(direction))
        u = (u - u.mean()) / (u.std() or 1.0)
        weights = np.exp(strength * u)
        cur = frame.iloc[rng.choice(pool, n_cur, replace=False, p=weights / weights.sum())]
        return ref, cur
    cur = frame.iloc[rng.choice(pool, n_cur, replace=False)].copy()
    if kind == "global":
        cur += strength * std
    elif kind == "partial":
        continuous = [c for c in frame.columns if frame[c].nunique() > 10]
        chosen = rng.choice(continuous, max(1, len(continuous) // 4), replace=False)
        cur[chosen] += strength * std[chosen]
    return ref, cur


def automl_default(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
    from automl.drift import EvidentlyDriftDetector

    cols = list(ref.columns)
    return (
        EvidentlyDriftDetector(max_workers=1)
        .detect(ref, cur, numeric=cols, categorical=[])
        .is_drifted
    )


def automl_any_column(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
    """automl configured as a sensitive detector: any one column (Holm-corrected) is drift."""
    from automl.drift import EvidentlyDriftDetector

    cols = list(ref.columns)
    detector = EvidentlyDriftDetector(drift_share=0.01, correction="holm", max_workers=1)
    return detector.detect(ref, cur, numeric=cols, categorical=[]).is_drifted


def evidently_default(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
    """DataDriftPreset's decision through evidently's own per-column stattest code."""
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    drifted = 0
    for col in ref.columns:
        r, c = ref[col].dropna(), cur[col].dropna()
        test = get_stattest(r, c, ColumnType.Numerical, None)
        drifted += bool(test(r, c, ColumnType.Numerical, None).drifted)
    return drifted / len(ref.columns) >= 0.5


def evidently_preset(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
    """The real DataDriftPreset (slow): dataset drift from its DriftedColumnsCount test."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = list(ref.columns)
    definition = DataDefinition(numerical_columns=cols)
    result = (
        Report([DataDriftPreset(columns=cols)], include_tests=True)
        .run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        .dict()
    )
    share_test = next(t for t in result["tests"] if t["id"] == "lt")
    return bool(share_test["status"] == "FAIL")


def ks_bonferroni(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
    from scipy.stats import ks_2samp

    m = ref.shape[1]
    return any(ks_2samp(ref[c], cur[c]).pvalue < 0.05 / m for c in ref.columns)


DETECTORS: dict[str, Detector] = {
    "automl": automl_default,
    "automl_any": automl_any_column,
    "evidently": evidently_default,
    "ks_bonferroni": ks_bonferroni,
}


def mean_abs_shift(ref: pd.DataFrame, cur: pd.DataFrame) -> float:
    """Average |mean difference| over columns, in reference standard deviations."""
    std = ref.std().replace(0, np.nan)
    return float(((cur.mean() - ref.mean()).abs() / std).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--null-reps", type=int, default=200)
    parser.add_argument("--reps", type=int, default=30, help="Repetitions per shifted cell.")
    parser.add_argument(
        "--preset-checks",
        type=int,
        default=1,
        help="Real-preset runs per dataset and sampled cell.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    if args.quick:
        args.null_reps, args.reps = 40, 8
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    data = load_datasets()
    rates: dict[str, dict[str, list[float]]] = {k: {} for k in DETECTORS}
    moved: dict[str, list[float]] = {}
    preset_agree = [0, 0]
    for d_index, (name, frame) in enumerate(data.items()):
        for c_index, (kind, strength) in enumerate(CELLS):
            cell = f"{kind} {strength:g}" if kind != "none" else "none"
            reps = args.null_reps if kind == "none" else args.reps
            rng = np.random.default_rng([args.seed, d_index, c_index])
            hits = dict.fromkeys(DETECTORS, 0)
            for rep in range(reps):
                ref, cur = split(frame, kind, strength, rng)
                moved.setdefault(cell, []).append(mean_abs_shift(ref, cur))
                for key, detect in DETECTORS.items():
                    hits[key] += detect(ref, cur)
                if (kind, strength) in PRESET_CELLS and rep < args.preset_checks:
                    preset_agree[0] += evidently_preset(ref, cur) == evidently_default(ref, cur)
                    preset_agree[1] += 1
            for key in DETECTORS:
                rates[key].setdefault(cell, []).append(hits[key] / reps)
            if kind == "none":
                print(
                    f"{name:14s} {frame.shape[0]:5d} rows x {frame.shape[1]:2d} cols  false alarms "
                    + "  ".join(f"{k} {hits[k] / reps:.1%}" for k in DETECTORS),
                    flush=True,
                )
    cells = list(rates["automl"])
    print()
    print(
        f"False-alarm rate, no-drift splits ({args.null_reps} per dataset x {len(data)} "
        f"datasets; goal <= 5%): "
        + "  ".join(f"{k} {np.mean(rates[k]['none']):.1%}" for k in DETECTORS)
    )
    print()
    print(f"Detection rate per cell ({args.reps} splits per dataset, mean over datasets):")
    print(f"  {'cell':14s} {'|mean shift|/sd':>16s}" + "".join(f"{k:>15s}" for k in DETECTORS))
    for cell in cells:
        row = "".join(f"{np.mean(rates[k][cell]):>15.1%}" for k in DETECTORS)
        print(f"  {cell:14s} {np.mean(moved[cell]):>16.3f}" + row)
    print()
    print(
        f"Real DataDriftPreset agreed with evidently's stattest decision on "
        f"{preset_agree[0]}/{preset_agree[1]} sampled splits."
    )
    print(f"Total time {time.perf_counter() - started:.0f} s")
    if args.json:
        with Path(args.json).open("w", encoding="utf-8") as f:
            json.dump(
                {
                    "datasets": list(data),
                    "rates": rates,
                    "mean_abs_shift": {c: float(np.mean(v)) for c, v in moved.items()},
                    "preset_agreement": preset_agree,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
