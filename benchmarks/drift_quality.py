"""Drift decision quality: false alarms on no-drift splits and power on injected covariate shift.

Real tables read offline: the datasets bundled with scikit-learn (breast_cancer, wine, diabetes,
digits, iris) and three bundled with statsmodels, which evidently depends on (fair: 6,366 survey
answers on 2-7 point scales; randhie: 20,190 rows of the RAND health insurance experiment;
anes96: 944 voters). Feature columns only (each table's target is left out). Each repetition
draws a random reference (half of the rows, at most 1,000) and a current batch (20% of the rows,
at most 1,000) from the other half. Cells:

* ``none``: the batch is a uniform draw (no drift): the false-alarm rate (every table);
* ``global d``: every column of the batch shifted by ``d`` reference standard deviations;
* ``partial d``: a random quarter of the continuous columns (> 10 distinct values) shifted by
  ``d`` standard deviations, the rest untouched;
* ``selection s``: the batch drawn with probability proportional to ``exp(s * u)``, ``u`` the
  rows' standardized projection on a random direction (selection bias: P(x) moves in a
  correlated way across columns, as when the customer mix changes; P(y|x) does not);
* ``one-column continuous xW`` / ``one-column low-card xW``: selection bias of weight W (4: a
  strong shift; 2: a moderate one) along one column: a row is W times as likely to be drawn
  when its value ranks in the upper half of that column (ties broken at random). The column is
  drawn at random per repetition among the table's continuous columns (> 10 distinct values,
  none holding half the rows) or its low-cardinality ones (2-5 distinct values, none holding
  80% of the rows).

``global``, ``partial`` and ``selection`` run on the scikit-learn tables (as before); ``none``
and the one-column cells on every table that has such a column.

Compared on the same splits, in the same run:

* ``default_before``: the pipeline default before issue 11 (evidently's tests per column, BH
  correction, effect floor, share of drifted columns >= 0.5);
* ``any_evidently``: ``drift_share: 0.01, correction: holm`` with evidently's tests (any one
  column, family-wise error control): the setting the issue measured;
* ``default``: today's pipeline default, ``DriftSpec()``: any one column, Holm, the effect
  floor, and two-sample tests by cardinality (K-S, z-test, two-sample chi-square);
* ``weighted``: ``policy: weighted, drift_share: 0.1`` with the default's tests: drift when the
  drifted columns carry 10% of a champion's sensitivity (a gradient-boosting model fitted once
  per table on its target; weights from ``sensitivity_weights``);
* ``evidently``: evidently's default ``DataDriftPreset`` decision (its per-column default tests,
  uncorrected, dataset drift when >= 50% of columns drift), computed with evidently's own
  stattest functions; the full preset (plots included) takes seconds per call, so it is run on a
  sample of splits only, to confirm that it decides the same;
* ``ks_bonferroni``: scipy's two-sample K-S test per column, drift when any p < 0.05 / m;
* ``ks_chi2_bonferroni``: the same, except scipy's chi-square test of the 2 x k contingency
  table on columns with at most 5 distinct values.

``--sizes`` runs a second, separate comparison: no-drift checks on the two large tables (fair,
randhie) at reference and batch sizes beyond the 1,000-row regime above, where evidently's
default tests switch to distances with fixed thresholds.

    .venv/bin/python benchmarks/drift_quality.py --json \
        benchmarks/results/drift_quality.json                # 17 minutes on 2 loaded cores
    .venv/bin/python benchmarks/drift_quality.py --quick    # fewer repetitions, a third of the time
    .venv/bin/python benchmarks/drift_quality.py --sizes --json \
        benchmarks/results/drift_quality_sizes.json         # ~3 minutes
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    ("one-column continuous", 4.0),
    ("one-column low-card", 4.0),
    ("one-column continuous", 2.0),
    ("one-column low-card", 2.0),
)
#: Cells run on the scikit-learn tables only (the benchmark's original cells).
SKLEARN_ONLY = ("global", "partial", "selection")
SKLEARN = ("breast_cancer", "wine", "diabetes", "digits", "iris")
STATSMODELS = ("fair", "randhie", "anes96")
#: Cells where the real DataDriftPreset is also run (it takes seconds per call).
PRESET_CELLS = (("none", 0.0), ("global", 0.3))
MAX_ROWS = 1000
Detector = Callable[[pd.DataFrame, pd.DataFrame], bool]


@dataclass
class Table:
    """One real table: its feature columns and the target a champion would predict."""

    frame: pd.DataFrame
    target: np.ndarray[Any, Any]
    is_classifier: bool
    continuous: list[str] = field(default_factory=list)
    low_card: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)


def _candidates(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    distinct = frame.nunique()
    mode_share = frame.apply(lambda s: s.value_counts(normalize=True).iloc[0])
    continuous = [c for c in frame if distinct[c] > 10 and mode_share[c] <= 0.5]
    low_card = [c for c in frame if 2 <= distinct[c] <= 5 and mode_share[c] <= 0.8]
    return continuous, low_card


def load_tables() -> dict[str, Table]:
    """The bundled tables (features as float64) with their targets."""
    import statsmodels.api as sm
    from sklearn import datasets

    out: dict[str, Table] = {}
    for name in SKLEARN:
        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        out[name] = Table(bunch.data.astype("float64"), bunch.target.to_numpy(), name != "diabetes")
    for name in STATSMODELS:
        dataset = getattr(sm.datasets, name).load_pandas()
        frame = dataset.data.drop(columns=[dataset.endog_name]).astype("float64")
        out[name] = Table(frame, dataset.data[dataset.endog_name].to_numpy(), False)
    for table in out.values():
        table.continuous, table.low_card = _candidates(table.frame)
    return out


def champion_weights(table: Table, seed: int) -> dict[str, float]:
    """Sensitivity of a gradient-boosting model fitted on the table's target to each column."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from automl.drift import sensitivity_weights

    x, cols = table.frame, list(table.frame.columns)
    if table.is_classifier:
        clf = HistGradientBoostingClassifier(max_iter=50, random_state=seed).fit(x, table.target)
        return sensitivity_weights(clf.predict_proba, x, cols, n_rows=300, seed=seed)
    reg = HistGradientBoostingRegressor(max_iter=50, random_state=seed).fit(x, table.target)
    scale = float(np.std(table.target)) or 1.0
    return sensitivity_weights(lambda f: reg.predict(f) / scale, x, cols, n_rows=300, seed=seed)


def _reference_and_pool(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    order = rng.permutation(n)
    return order[: min(n // 2, MAX_ROWS)], order[n // 2 :], min(int(0.2 * n), MAX_ROWS)


def split(
    frame: pd.DataFrame, kind: str, strength: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random reference and a current batch with the cell's shift injected."""
    ref_idx, pool, n_cur = _reference_and_pool(len(frame), rng)
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


def one_column_split(
    frame: pd.DataFrame, column: str, weight: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference as in :func:`split`; the batch drawn with selection bias along ``column``: rows
    ranking in the column's upper half (ties at random) are ``weight`` times as likely."""
    ref_idx, pool, n_cur = _reference_and_pool(len(frame), rng)
    values = frame[column].to_numpy()[pool]
    rank = np.lexsort((rng.random(len(pool)), values))
    w = np.ones(len(pool))
    w[rank[len(pool) // 2 :]] = weight
    cur = frame.iloc[rng.choice(pool, n_cur, replace=False, p=w / w.sum())]
    return frame.iloc[ref_idx], cur


def _spec_detector(**spec: Any) -> Detector:
    from automl.config import DriftSpec
    from automl.drift import EvidentlyDriftDetector

    detector = EvidentlyDriftDetector.from_spec(DriftSpec(**spec))
    detector.max_workers = 1

    def detect(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
        cols = list(ref.columns)
        return detector.detect(ref, cur, numeric=cols, categorical=[]).is_drifted

    return detect


def weighted_detector(weights: dict[str, float]) -> Detector:
    """The default's tests, drift when drifted columns carry >= 10% of the champion's weight."""
    from automl.config import DriftSpec
    from automl.drift import EvidentlyDriftDetector

    detector = EvidentlyDriftDetector.from_spec(DriftSpec(policy="weighted", drift_share=0.1))
    detector.max_workers = 1

    def detect(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
        cols = list(ref.columns)
        report = detector.detect(ref, cur, numeric=cols, categorical=[], weights=weights)
        return report.is_drifted

    return detect


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


def ks_chi2_bonferroni(ref: pd.DataFrame, cur: pd.DataFrame) -> bool:
    """K-S per column, scipy's contingency chi-square on columns with <= 5 values; Bonferroni."""
    from scipy.stats import chi2_contingency, ks_2samp

    m = ref.shape[1]
    for c in ref.columns:
        r, k = ref[c].to_numpy(), cur[c].to_numpy()
        values = np.union1d(r, k)
        if len(values) <= 5:
            if len(values) < 2:
                continue
            table = np.array(
                [[np.sum(r == v) for v in values], [np.sum(k == v) for v in values]], dtype=float
            )
            p = float(chi2_contingency(table, correction=False).pvalue)
        else:
            p = float(ks_2samp(r, k).pvalue)
        if p < 0.05 / m:
            return True
    return False


#: Detectors that need no per-table input, in the order printed.
FIXED: dict[str, Callable[[], Detector]] = {
    "default_before": lambda: _spec_detector(drift_share=0.5, correction="bh", tests="evidently"),
    "any_evidently": lambda: _spec_detector(tests="evidently"),
    "default": _spec_detector,
    "evidently": lambda: evidently_default,
    "ks_bonferroni": lambda: ks_bonferroni,
    "ks_chi2_bonferroni": lambda: ks_chi2_bonferroni,
}
NAMES = (*FIXED, "weighted")


def mean_abs_shift(ref: pd.DataFrame, cur: pd.DataFrame) -> float:
    """Average |mean difference| over columns, in reference standard deviations."""
    std = ref.std().replace(0, np.nan)
    return float(((cur.mean() - ref.mean()).abs() / std).mean())


def _cell_name(kind: str, strength: float) -> str:
    if kind == "none":
        return kind
    return f"{kind} x{strength:g}" if kind.startswith("one-column") else f"{kind} {strength:g}"


def _applies(kind: str, name: str, table: Table) -> bool:
    if kind in SKLEARN_ONLY:
        return name in SKLEARN
    if kind == "one-column continuous":
        return bool(table.continuous)
    if kind == "one-column low-card":
        return bool(table.low_card)
    return True


#: (reference rows, batch rows) of the ``--sizes`` comparison.
SIZES = ((1000, 1000), (3000, 1000), (3000, 300), (3000, 100), (10000, 1000))


def sizes_main(args: argparse.Namespace) -> None:
    """No-drift checks at larger reference sizes: false alarms per detector and size."""
    started = time.perf_counter()
    tables = {k: v for k, v in load_tables().items() if k in ("fair", "randhie")}
    detectors = {k: FIXED[k]() for k in ("default_before", "any_evidently", "default")}
    detectors["ks_bonferroni"] = ks_bonferroni
    rates: dict[str, dict[str, dict[str, float]]] = {k: {} for k in detectors}
    for t_index, (name, table) in enumerate(tables.items()):
        frame = table.frame
        for s_index, (n_ref, n_cur) in enumerate(SIZES):
            if n_ref + n_cur > len(frame):
                continue
            rng = np.random.default_rng([args.seed, 100 + t_index, s_index])
            hits = dict.fromkeys(detectors, 0)
            for _ in range(args.null_reps):
                order = rng.permutation(len(frame))
                ref = frame.iloc[order[:n_ref]]
                cur = frame.iloc[order[n_ref : n_ref + n_cur]]
                for key, detect in detectors.items():
                    hits[key] += detect(ref, cur)
            size = f"{n_ref} vs {n_cur}"
            for key in detectors:
                rates[key].setdefault(size, {})[name] = hits[key] / args.null_reps
            print(
                f"{name:8s} {size:14s} "
                + " ".join(f"{k} {hits[k] / args.null_reps:.0%}" for k in detectors),
                flush=True,
            )
    print()
    print(f"False alarms, no-drift checks ({args.null_reps} per table and size, mean of tables):")
    print(f"  {'reference vs batch':18s}" + "".join(f"{k:>16s}" for k in detectors))
    for n_ref, n_cur in SIZES:
        size = f"{n_ref} vs {n_cur}"
        row = "".join(f"{np.mean(list(rates[k][size].values())):>16.1%}" for k in detectors)
        print(f"  {size:18s}" + row + f"   ({', '.join(rates['default'][size])})")
    print(f"Total time {time.perf_counter() - started:.0f} s")
    if args.json:
        with Path(args.json).open("w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "rates": rates}, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--null-reps", type=int, default=100)
    parser.add_argument("--reps", type=int, default=20, help="Repetitions per shifted cell.")
    parser.add_argument(
        "--one-column-reps", type=int, default=50, help="Repetitions per one-column cell."
    )
    parser.add_argument(
        "--preset-checks",
        type=int,
        default=1,
        help="Real-preset runs per dataset and sampled cell.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", action="store_true", help="The larger-size comparison only.")
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    if args.quick:
        args.null_reps, args.reps, args.one_column_reps = 40, 8, 20
    warnings.simplefilter("ignore")
    if args.sizes:
        sizes_main(args)
        return
    started = time.perf_counter()
    tables = load_tables()
    fixed = {k: make() for k, make in FIXED.items()}
    # rates[detector][cell][table] = detection rate; seconds[detector] = total check time.
    rates: dict[str, dict[str, dict[str, float]]] = {k: {} for k in NAMES}
    seconds = dict.fromkeys(NAMES, 0.0)
    n_checks = 0
    moved: dict[str, list[float]] = {}
    preset_agree = [0, 0]
    weights_s: dict[str, float] = {}
    for d_index, (name, table) in enumerate(tables.items()):
        t0 = time.perf_counter()
        table.weights = champion_weights(table, args.seed)
        weights_s[name] = time.perf_counter() - t0
        detectors = {**fixed, "weighted": weighted_detector(table.weights)}
        frame = table.frame
        for c_index, (kind, strength) in enumerate(CELLS):
            if not _applies(kind, name, table):
                continue
            cell = _cell_name(kind, strength)
            reps = {"none": args.null_reps}.get(kind, args.reps)
            if kind.startswith("one-column"):
                reps = args.one_column_reps
            rng = np.random.default_rng([args.seed, d_index, c_index])
            hits = dict.fromkeys(NAMES, 0)
            for rep in range(reps):
                if kind.startswith("one-column"):
                    pool = table.continuous if kind.endswith("continuous") else table.low_card
                    column = pool[rng.integers(len(pool))]
                    ref, cur = one_column_split(frame, column, strength, rng)
                    std = float(ref[column].std()) or 1.0
                    moved.setdefault(cell, []).append(
                        abs(float(cur[column].mean() - ref[column].mean())) / std
                    )
                else:
                    ref, cur = split(frame, kind, strength, rng)
                    moved.setdefault(cell, []).append(mean_abs_shift(ref, cur))
                for key, detect in detectors.items():
                    t0 = time.perf_counter()
                    hits[key] += detect(ref, cur)
                    seconds[key] += time.perf_counter() - t0
                n_checks += 1
                if (kind, strength) in PRESET_CELLS and rep < args.preset_checks:
                    preset_agree[0] += evidently_preset(ref, cur) == evidently_default(ref, cur)
                    preset_agree[1] += 1
            for key in NAMES:
                rates[key].setdefault(cell, {})[name] = hits[key] / reps
            print(
                f"{name:14s} {frame.shape[0]:5d} x {frame.shape[1]:2d}  {cell:25s} "
                + " ".join(f"{k} {hits[k] / reps:.0%}" for k in NAMES),
                flush=True,
            )
    cells = list(rates["default"])
    print()
    print(
        f"False alarms on no-drift splits ({args.null_reps} per table x {len(tables)} tables; "
        "goal <= 5%), mean over tables [worst table]:"
    )
    for key in NAMES:
        per_table = rates[key]["none"]
        worst = max(per_table, key=per_table.__getitem__)
        print(
            f"  {key:20s} {np.mean(list(per_table.values())):6.1%}  "
            f"[{per_table[worst]:.1%} {worst}]"
        )
    print()
    print("Detection rate per cell (mean over the tables the cell runs on):")
    print(f"  {'cell':25s} {'|shift|/sd':>10s}" + "".join(f"{k:>19s}" for k in NAMES))
    for cell in cells:
        row = "".join(f"{np.mean(list(rates[k][cell].values())):>19.1%}" for k in NAMES)
        print(f"  {cell:25s} {np.mean(moved[cell]):>10.3f}" + row)
    print()
    print("Time per check (ms, mean over every check of the run):")
    print("  " + "  ".join(f"{k} {1000 * seconds[k] / n_checks:.1f}" for k in NAMES))
    print(
        "  weighted also needs the champion's sensitivity per check: "
        + ", ".join(f"{k} {1000 * v:.0f}" for k, v in weights_s.items())
        + " ms here (model fit included, once per table)"
    )
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
                    "args": vars(args),
                    "tables": {
                        k: {
                            "shape": list(t.frame.shape),
                            "continuous": t.continuous,
                            "low_card": t.low_card,
                        }
                        for k, t in tables.items()
                    },
                    "rates": rates,
                    "mean_rates": {
                        k: {c: float(np.mean(list(v.values()))) for c, v in per.items()}
                        for k, per in rates.items()
                    },
                    "ms_per_check": {k: 1000 * v / n_checks for k, v in seconds.items()},
                    "n_checks": n_checks,
                    "mean_abs_shift": {c: float(np.mean(v)) for c, v in moved.items()},
                    "preset_agreement": preset_agree,
                    "seconds": time.perf_counter() - started,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
