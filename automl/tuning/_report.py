"""The tuning report: one self-contained HTML page and its PNG plots.

Drawn with matplotlib's object API (no pyplot, no global backend state), so reports can be
written from worker threads and headless servers.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from automl.tuning._result import TuningResult

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _figure(width: float = 7.0, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _plot_history(result: TuningResult, path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    trials = result.trials
    complete = trials[trials["state"] == "COMPLETE"]
    families = list(dict.fromkeys(trials["model_family"]))
    for i, family in enumerate(families):
        rows = complete[complete["model_family"] == family]
        ax.scatter(rows["number"], rows["cv_mean"], s=22, color=_COLORS[i % 6], label=family)
    for flag, marker, label in (
        ("is_defaults", "*", "library defaults"),
        ("is_warm_start", "D", "warm start"),
    ):
        rows = complete[complete[flag].astype(bool)]
        if len(rows):
            ax.scatter(
                rows["number"],
                rows["cv_mean"],
                s=110,
                marker=marker,
                facecolors="none",
                edgecolors="black",
                label=label,
            )
    if len(complete):
        ordered = complete.sort_values("number")
        values = ordered["cv_mean"].to_numpy(dtype=float)
        best = (
            np.maximum.accumulate(values)
            if result.greater_is_better
            else (np.minimum.accumulate(values))
        )
        ax.step(ordered["number"], best, where="post", color="black", lw=1.2, label="best so far")
    pruned = trials[trials["state"] == "PRUNED"]
    if len(pruned) and len(complete):
        low = float(
            complete["cv_mean"].min() if result.greater_is_better else complete["cv_mean"].max()
        )
        ax.scatter(pruned["number"], [low] * len(pruned), marker="x", color="grey", label="pruned")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"CV {result.metric}")
    ax.set_title("Optimization history")
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path)
    return path


def _plot_importance(result: TuningResult, path: Path) -> Path | None:
    if not result.param_importances:
        return None
    items = sorted(result.param_importances.items(), key=lambda kv: kv[1])
    fig = _figure(6.0, 0.45 * len(items) + 1.2)
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color=_COLORS[0])
    ax.set_xlabel("importance (fANOVA, share of score variance)")
    ax.set_title(f"Hyperparameter importance ({result.model_family})")
    fig.savefig(path)
    return path


def _plot_vs_defaults(result: TuningResult, path: Path) -> Path:
    trials = result.trials
    complete = trials[trials["state"] == "COMPLETE"]
    labels, values, errors, colors = [], [], [], []
    for i, (family, score) in enumerate(result.default_scores.items()):
        row = complete[(complete["model_family"] == family) & complete["is_defaults"].astype(bool)]
        labels.append(f"{family}\ndefaults")
        values.append(score)
        errors.append(float(row["cv_std"].iloc[0]) if len(row) else 0.0)
        colors.append(_COLORS[i % 6])
    labels.append(f"{result.model_family}\ntuned (chosen)")
    values.append(result.best_score)
    errors.append(result.best_score_std)
    colors.append("black")
    errors = [e if math.isfinite(e) else 0.0 for e in errors]
    fig = _figure(max(4.0, 1.3 * len(labels) + 1.5), 4.0)
    ax = fig.add_subplot()
    for i, (value, error, color) in enumerate(zip(values, errors, colors, strict=True)):
        ax.errorbar([i], [value], yerr=[error], fmt="o", color=color, ms=8, capsize=6, lw=1.5)
        ax.annotate(f"{value:.4f}", (i, value), textcoords="offset points", xytext=(10, -3))
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    low = min(v - e for v, e in zip(values, errors, strict=True) if math.isfinite(v))
    high = max(v + e for v, e in zip(values, errors, strict=True) if math.isfinite(v))
    if math.isfinite(result.baseline_score) and low - (high - low) < result.baseline_score < high:
        ax.axhline(result.baseline_score, ls="--", color="grey", lw=1, label="trivial model")
        ax.legend(fontsize=8)
    ax.set_ylabel(f"CV {result.metric} (± std over folds)")
    ax.set_title("Chosen model vs library defaults")
    fig.savefig(path)
    return path


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return html.escape(str(value))


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return (
            f"<p><em>{html.escape(alt)}: not enough complete trials of the chosen family.</em></p>"
        )
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_tuning_report(
    result: TuningResult, directory: str | Path, *, title: str = "Tuning report"
) -> list[Path]:
    """Write ``tuning_report.html`` and its PNG plots into ``directory``.

    The page holds: a summary (strategy, budget use, stop reason, warm start), the optimization
    history, the hyperparameter importance of the chosen family, the chosen model against each
    family's library defaults (scores and hyperparameters), and the trials table (score,
    secondary metrics such as precision/recall/F1, fit time, peak memory, overfitting gap).

    Args:
        result: A finished search.
        directory: Output folder (created when missing).
        title: Page title.

    Returns:
        The HTML file first, then the PNG files.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    history = _plot_history(result, out / "optimization_history.png")
    importance = _plot_importance(result, out / "param_importance.png")
    versus = _plot_vs_defaults(result, out / "chosen_vs_defaults.png")

    trials = result.trials
    defaults = result.family_defaults.get(result.model_family, {})
    names = list(dict.fromkeys([*defaults, *result.best_params]))
    params = pd.DataFrame(
        {
            "hyperparameter": names,
            "library default": [defaults.get(n) for n in names],
            "chosen": [result.best_params.get(n) for n in names],
            "refit with": [result.refit_params.get(n, result.best_params.get(n)) for n in names],
        }
    )
    shown = [
        c
        for c in (
            "number",
            "model_family",
            "state",
            "cv_mean",
            "cv_std",
            "train_mean",
            "fit_gap",
            "fit_status",
            *[c for c in trials.columns if c.startswith("val_")],
            "fit_time_s",
            "peak_memory_mb",
            "fitted_rounds",
            "is_defaults",
            "is_warm_start",
        )
        if c in trials.columns
    ]
    counts = trials["state"].value_counts().to_dict()
    summary = {
        "metric": f"{result.metric} "
        f"({'higher' if result.greater_is_better else 'lower'} is better)",
        "strategy": result.strategy,
        "trials": f"{result.n_trials} ({counts.get('COMPLETE', 0)} complete, "
        f"{counts.get('PRUNED', 0)} pruned, {counts.get('FAIL', 0)} failed)",
        "stopped by": result.stop_reason,
        "best": f"{result.model_family}: CV {result.best_score:.4f} ± {result.best_score_std:.4f}",
        "best library defaults": _fmt(result.default_score),
        "trivial model": _fmt(result.baseline_score),
        "warm start": (
            f"{result.n_warm_start} configurations from study {result.warm_start_from}"
            if result.warm_start_from
            else "none"
        ),
        "study": result.study_name,
        "wall time": f"{result.elapsed_s:.1f} s",
    }
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in summary.items()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; margin: 0.5em 0 1.5em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{rows}</table>
<h2>Optimization history</h2>{_img(history, "optimization history")}
<h2>Hyperparameter importance</h2>{_img(importance, "hyperparameter importance")}
<h2>Chosen model vs library defaults</h2>{_img(versus, "chosen vs defaults")}
{_table(params)}
<h2>Trials</h2>
<p>fit_gap: training minus validation score (positive: better on seen rows);
fit_status flags overfitting and underfitting; peak_memory_mb: rise of resident memory.</p>
{_table(trials[shown])}
</body></html>
"""
    report = out / "tuning_report.html"
    report.write_text(page, encoding="utf-8")
    return [report, *(p for p in (history, importance, versus) if p is not None)]
