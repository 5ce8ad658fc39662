"""Drift decision speed: automl's detector vs evidently's DataDriftPreset, same data, same run.

Default: reference and current of 1,000,000 rows x 20 numeric columns each (seeded; 5 columns
shifted by 0.15 std, 5 by 0.02 std, 10 unchanged). Each side runs in its own forked process so
its peak memory is measured alone (peak RSS minus RSS at the start of the measurement, plus
tracemalloc's peak of Python/NumPy allocations for automl). Per-column verdicts are compared for
the same method and threshold (evidently's defaults: normed Wasserstein at 0.1 for these sizes).

    .venv/bin/python benchmarks/drift_speed.py                 # the full benchmark
    .venv/bin/python benchmarks/drift_speed.py --rows 100000   # quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def make_frames(n_rows: int, n_cols: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames with a known mix of shifted and unchanged columns."""
    rng = np.random.default_rng(seed)
    ref: dict[str, np.ndarray] = {}
    cur: dict[str, np.ndarray] = {}
    for i in range(n_cols):
        name = f"f{i:02d}"
        kind = i % 4
        shift = 0.15 if i < n_cols // 4 else 0.02 if i < n_cols // 2 else 0.0
        for side, delta in ((ref, 0.0), (cur, shift)):
            if kind == 0:
                side[name] = rng.normal(delta, 1.0, n_rows)
            elif kind == 1:
                side[name] = rng.lognormal(delta, 0.5, n_rows)
            elif kind == 2:
                side[name] = rng.uniform(delta, 1.0 + delta, n_rows)
            else:
                side[name] = np.round(rng.gamma(2.0 + delta * 4, 10.0, n_rows), 1)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def _rss_mb() -> float:
    with Path("/proc/self/statm").open() as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> dict[str, Any]:
    from automl.drift import EvidentlyDriftDetector

    cols = list(ref.columns)
    # evidently's tests and share rule (the default before issue 11): the decision the preset
    # makes, computed faster; the pipeline default uses K-S here (README, "Drift speed").
    detector = EvidentlyDriftDetector(tests="evidently", drift_share=0.5, correction="bh")
    start_rss = _rss_mb()
    t0 = time.perf_counter()
    report = detector.detect(ref, cur, numeric=cols, categorical=[])
    cold = time.perf_counter() - t0
    peak_rss = _peak_rss_mb() - start_rss
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        detector.detect(ref, cur, numeric=cols, categorical=[])
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    detector.detect(ref, cur, numeric=cols, categorical=[])
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "cold_s": cold,
        "warm_s": times,
        "peak_rss_mb": peak_rss,
        "traced_peak_mb": traced_peak,
        "columns": {
            c.column: {
                "method": c.method,
                "score": c.raw_score,
                "threshold": c.test_threshold,
                "test_drifted": c.is_test_drifted,
                "drifted": c.is_drifted,
            }
            for c in report.columns
        },
        "share": report.share_drifted,
        "drift": report.is_drifted,
    }


def _evidently(ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = list(ref.columns)
    start_rss = _rss_mb()
    t0 = time.perf_counter()
    definition = DataDefinition(numerical_columns=cols)
    snapshot = Report([DataDriftPreset(columns=cols)], include_tests=True).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    result = snapshot.dict()
    elapsed = time.perf_counter() - t0
    scores: dict[str, dict[str, Any]] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            scores[config["column"]] = {
                "score": float(metric["value"]),
                "method": config["method"],
                "threshold": config["threshold"],
            }
    for test in result["tests"]:
        column = test["metric_config"]["params"].get("column")
        if test["id"] == "drift" and column in scores:
            scores[column]["drifted"] = test["status"] == "FAIL"
    return {"seconds": elapsed, "peak_rss_mb": _peak_rss_mb() - start_rss, "columns": scores}


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def run() -> None:
        child.send(target(*args))

    proc = ctx.Process(target=run)
    proc.start()
    out = parent.recv()
    proc.join()
    return out  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--json", type=str, default=None, help="Also write the figures here.")
    args = parser.parse_args()

    ref, cur = make_frames(args.rows, args.cols, args.seed)
    frames_mb = (ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum()) / 2**20
    print(
        f"data: reference and current {args.rows:,} rows x {args.cols} numeric columns each "
        f"({frames_mb:.0f} MB together); {os.cpu_count()} CPU(s)"
    )

    ours = _in_child(_ours, ref, cur, args.repeats)
    warm = statistics.median(ours["warm_s"])
    print(
        f"automl decision: {warm:.2f} s median of {args.repeats} (min {min(ours['warm_s']):.2f} s;"
        f" first call incl. scipy import {ours['cold_s']:.2f} s)"
    )
    print(
        f"  peak memory: +{ours['peak_rss_mb']:.0f} MB RSS, {ours['traced_peak_mb']:.0f} MB "
        f"traced allocations = {ours['traced_peak_mb'] / frames_mb:.2f}x the two frames; "
        f"total with the frames {(frames_mb + ours['peak_rss_mb']) / frames_mb:.2f}x the frames"
    )
    figures: dict[str, Any] = {
        "rows": args.rows,
        "cols": args.cols,
        "frames_mb": frames_mb,
        "ours": {k: v for k, v in ours.items() if k != "columns"},
        "ours_median_s": warm,
    }
    if not args.skip_evidently:
        theirs = _in_child(_evidently, ref, cur)
        print(
            f"evidently DataDriftPreset: {theirs['seconds']:.1f} s, peak memory "
            f"+{theirs['peak_rss_mb']:.0f} MB RSS"
        )
        same_verdicts = 0
        max_rel = 0.0
        for name, col in ours["columns"].items():
            other = theirs["columns"][name]
            same_verdicts += col["test_drifted"] == other["drifted"]
            rel = abs(col["score"] - other["score"]) / max(abs(other["score"]), 1e-12)
            max_rel = max(max_rel, rel)
        n = len(ours["columns"])
        print(
            f"per-column verdicts identical: {same_verdicts}/{n} "
            f"(method {next(iter(ours['columns'].values()))['method']}, evidently's default "
            f"threshold); largest relative score difference {max_rel:.1e}"
        )
        print(
            f"speed-up: {theirs['seconds'] / warm:.0f}x (first call: "
            f"{theirs['seconds'] / ours['cold_s']:.0f}x); memory: automl +"
            f"{ours['peak_rss_mb']:.0f} MB vs evidently +{theirs['peak_rss_mb']:.0f} MB"
        )
        figures["evidently"] = {k: v for k, v in theirs.items() if k != "columns"}
        figures["speedup"] = theirs["seconds"] / warm
        figures["identical_verdicts"] = f"{same_verdicts}/{n}"
        figures["max_rel_score_diff"] = max_rel
    drifted = [k for k, v in ours["columns"].items() if v["drifted"]]
    memory_ok = frames_mb + ours["peak_rss_mb"] <= 2 * frames_mb
    print(f"decision: drift={ours['drift']} share={ours['share']:.2f} drifted columns={drifted}")
    print(
        f"targets: <= 3 s -> {'met' if warm <= 3 else 'MISSED'}; "
        + (
            f">= 30x -> {'met' if figures['speedup'] >= 30 else 'MISSED'}; "
            if "speedup" in figures
            else ""
        )
        + f"peak <= 2x frames -> {'met' if memory_ok else 'MISSED'}"
    )
    if args.json:
        with Path(args.json).open("w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
