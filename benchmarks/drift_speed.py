"""Drift decision speed: automl's detector vs evidently's DataDriftPreset, same data, same run.

Default: reference and current of 1,000,000 rows x 20 numeric columns each (seeded; 5 columns
shifted by 0.15 std, 5 by 0.02 std, 10 unchanged). Each side runs in its own forked process so
its peak memory is measured alone (peak RSS minus RSS at the start of the measurement, plus
tracemalloc's peak of Python/NumPy allocations for automl). Per-column verdicts are compared for
the same method and threshold (evidently's defaults: normed Wasserstein at 0.1 for these sizes).

    .venv/bin/python benchmarks/drift_speed.py                 # the full benchmark
    .venv/bin/python benchmarks/drift_speed.py --rows 100000   # quick look

Then the pipeline default (``tests: two_sample``: K-S per numeric column, Holm) with a cached
reference (issue 16, evidently#506): the same check on the frames (uncached), the first check
with a ``reference_key`` (cold: prepares the reference), later checks with it (warm: one pass
over the new rows), and scipy's ``ks_2samp`` per column, wall and CPU seconds, with the reports
compared for identity and a per-column table of the statistic alone.
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


def _timed(fn: Any) -> tuple[float, float, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def _cached(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> dict[str, Any]:
    """The pipeline default on the frames, cold and warm with a cached reference, and scipy."""
    from scipy import stats

    from automl.drift import EvidentlyDriftDetector, ReferenceCache
    from automl.drift._stats import Sample, ks_pvalue

    cols = list(ref.columns)
    detector = EvidentlyDriftDetector()  # the pipeline default: two_sample tests, Holm

    def check(**kw: Any) -> Any:
        return detector.detect(ref, cur, numeric=cols, categorical=[], **kw)

    check()  # imports (scipy) and first-touch of the frames out of the way
    uncached = [_timed(check) for _ in range(repeats)]
    cache = ReferenceCache(max_bytes=2**40)
    cold = _timed(lambda: check(reference_key="champion-v1", cache=cache))
    warm = [_timed(lambda: check(reference_key="champion-v1", cache=cache)) for _ in range(repeats)]
    identical = repr(uncached[0][2]) == repr(cold[2]) == repr(warm[-1][2])
    scipy_times = []
    for _ in range(max(1, repeats // 2)):
        scipy_times.append(
            _timed(lambda: [stats.ks_2samp(ref[c].to_numpy(), cur[c].to_numpy()) for c in cols])
        )
    scipy_d = [r.statistic for r in scipy_times[-1][2]]
    ours_d = [c.effect for c in warm[-1][2].columns]
    profile = cache.get(("champion-v1", tuple(cols), (), None, None, False))
    assert profile is not None
    per_column: dict[str, dict[str, float]] = {}
    for c in cols:
        r_series, c_series = ref[c], cur[c]
        ref_sample = profile.sample(c, "numeric")
        a = _timed(
            lambda r=r_series, v=c_series: ks_pvalue(
                Sample(r, "numeric"), Sample(v, "numeric"), exact=False
            )
        )
        b = _timed(lambda p=ref_sample, v=c_series: ks_pvalue(p, Sample(v, "numeric"), exact=False))
        s = _timed(lambda r=r_series, v=c_series: stats.ks_2samp(r.to_numpy(), v.to_numpy()))
        per_column[c] = {
            "uncached_cpu_s": a[1],
            "warm_cpu_s": b[1],
            "scipy_cpu_s": s[1],
            "uncached_s": a[0],
            "warm_s": b[0],
            "scipy_s": s[0],
            "grid": ref_sample.ks_grid() is not None,
        }
    return {
        "uncached_s": [t[0] for t in uncached],
        "uncached_cpu_s": [t[1] for t in uncached],
        "cold_s": cold[0],
        "cold_cpu_s": cold[1],
        "warm_s": [t[0] for t in warm],
        "warm_cpu_s": [t[1] for t in warm],
        "scipy_s": [t[0] for t in scipy_times],
        "scipy_cpu_s": [t[1] for t in scipy_times],
        "identical_reports": identical,
        "max_ks_statistic_diff_vs_scipy": max(
            abs(a - b) for a, b in zip(ours_d, scipy_d, strict=True) if a is not None
        ),
        "profile_mb": profile.nbytes / 2**20,
        "per_column": per_column,
        "drifted": warm[-1][2].drifted_columns,
    }


def _print_cached(out: dict[str, Any], n_cols: int) -> None:
    med = statistics.median
    rows = [
        ("uncached (the frames)", med(out["uncached_s"]), med(out["uncached_cpu_s"])),
        ("cold (first check with a key)", out["cold_s"], out["cold_cpu_s"]),
        ("warm (cached reference)", med(out["warm_s"]), med(out["warm_cpu_s"])),
        ("scipy ks_2samp per column", med(out["scipy_s"]), med(out["scipy_cpu_s"])),
    ]
    warm_wall, warm_cpu = rows[2][1], rows[2][2]
    print("pipeline default (two_sample K-S, Holm), cached reference:")
    print(f"  {'':32} {'wall s':>8} {'CPU s':>8} {'per col ms':>11} {'wall / warm':>12}")
    for name, wall, cpu in rows:
        print(
            f"  {name:32} {wall:8.3f} {cpu:8.3f} {1000 * wall / n_cols:11.1f} "
            f"{wall / warm_wall:11.1f}x"
        )
    print(
        f"  reports identical (uncached, cold, warm): {out['identical_reports']}; K-S statistic "
        f"vs scipy: largest difference {out['max_ks_statistic_diff_vs_scipy']:.1e}; cached "
        f"profile {out['profile_mb']:.0f} MB"
    )
    print(
        f"  warm vs uncached: {rows[0][1] / warm_wall:.1f}x wall, {rows[0][2] / warm_cpu:.1f}x "
        f"CPU; vs scipy: {rows[3][1] / warm_wall:.0f}x wall, {rows[3][2] / warm_cpu:.0f}x CPU; "
        f"target warm <= 0.1 s: {'met' if warm_wall <= 0.1 else 'MISSED'} (wall)"
    )
    print("  statistic + p-value alone, per column (one thread, CPU ms):")
    head = ("column", "uncached", "warm", "scipy", "unc/warm", "scipy/warm")
    print("  {:8} {:>9} {:>7} {:>8} {:>9} {:>11}  path".format(*head))
    for name, c in out["per_column"].items():
        print(
            f"  {name:8} {1000 * c['uncached_cpu_s']:9.1f} {1000 * c['warm_cpu_s']:7.1f} "
            f"{1000 * c['scipy_cpu_s']:8.1f} {c['uncached_cpu_s'] / c['warm_cpu_s']:8.1f}x "
            f"{c['scipy_cpu_s'] / c['warm_cpu_s']:10.0f}x  {'grid' if c['grid'] else 'sort'}"
        )


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
    parser.add_argument(
        "--only-cached", action="store_true", help="Only the cached-reference part."
    )
    parser.add_argument("--json", type=str, default=None, help="Also write the figures here.")
    args = parser.parse_args()

    ref, cur = make_frames(args.rows, args.cols, args.seed)
    frames_mb = (ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum()) / 2**20
    print(
        f"data: reference and current {args.rows:,} rows x {args.cols} numeric columns each "
        f"({frames_mb:.0f} MB together); {os.cpu_count()} CPU(s)"
    )

    if args.only_cached:
        cached = _in_child(_cached, ref, cur, max(args.repeats, 5))
        _print_cached(cached, args.cols)
        if args.json:
            with Path(args.json).open("w", encoding="utf-8") as f:
                json.dump({"rows": args.rows, "cols": args.cols, "cached": cached}, f, indent=2)
        return
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
    cached = _in_child(_cached, ref, cur, max(args.repeats, 5))
    _print_cached(cached, args.cols)
    figures["cached"] = cached
    if args.json:
        with Path(args.json).open("w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
