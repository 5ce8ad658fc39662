"""``automl demo``: the service on a generated churn stream that drifts at a known batch."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

from automl.cli._workspace import (
    bad_batch,
    label_file,
    scored_rows,
    without_label,
    write_late_spec,
    write_spec,
)
from automl.config import load_spec
from automl.data import make_churn_frame, write_table
from automl.errors import AutomlError, ConfigError
from automl.service import AutomlService, CycleResult

WAIT_PER_BATCH_S = 300.0
#: The late-label stream: labels of a batch land this many batches after its rows.
LABEL_LAG = 2
LATE_NAME = "churn_late"


@dataclass
class DemoRow:
    """One landed file and what the service made of it."""

    file_name: str
    kind: str
    n_rows: int
    result: CycleResult | None = None
    started: float = field(default_factory=time.monotonic)


def _plan(n_batches: int, drift_at: int) -> list[tuple[str, pd.DataFrame, str]]:
    plan = [("batch_00_history.csv", make_churn_frame(3000, seed=100), "history")]
    for i in range(1, n_batches + 1):
        drifted = i >= drift_at
        frame = make_churn_frame(1000, seed=100 + i, drift=1.0 if drifted else 0.0)
        plan.append((f"batch_{i:02d}.csv", frame, "drifted" if drifted else "normal"))
        if i == 2:  # an upstream bug ships a broken file
            plan.append(("batch_02b_broken.csv", bad_batch(seed=999), "broken"))
    return plan


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _label(file_name: str) -> str:
    return file_name.removeprefix("batch_").removesuffix(".csv")


def _table(rows: list[DemoRow], metric: str) -> Table:
    table = Table(title="automl demo: churn stream", title_justify="left")
    for col in (
        "batch",
        "kind",
        "rows",
        "ingest",
        "drift (share)",
        "trials",
        f"CV {metric}",
        "holdout new/champ",
        "decision",
        "champion",
    ):
        table.add_column(col, no_wrap=True)
    for row in rows:
        r = row.result
        if r is None:
            wait = f"{time.monotonic() - row.started:.0f}s"
            table.add_row(_label(row.file_name), row.kind, str(row.n_rows), f"… {wait}", *["…"] * 6)
            continue
        ingest = "quarantined" if row.file_name in r.rejected_files else "accepted"
        drift = "-" if r.drift_verdict is None else r.drift_verdict
        if r.share_drifted is not None:
            drift += f" ({r.share_drifted:.0%})"
        if r.is_promoted is None:
            decision = "failed" if r.status == "failed" else "-"
        else:
            decision = "promoted" if r.is_promoted else "rejected"
        table.add_row(
            _label(row.file_name),
            row.kind,
            str(row.n_rows),
            ingest,
            drift,
            str(r.n_trials or "-"),
            _f(r.best_cv_score),
            f"{_f(r.challenger_score)}/{_f(r.champion_score)}" if r.challenger_score else "-",
            decision,
            f"v{r.champion_version}" if r.champion_version else "-",
        )
    return table


def _wait_for(results: queue.Queue[CycleResult], file_name: str) -> CycleResult:
    deadline = time.monotonic() + WAIT_PER_BATCH_S
    while time.monotonic() < deadline:
        try:
            result = results.get(timeout=0.25)
        except queue.Empty:
            continue
        if result.status == "failed":
            raise AutomlError(f"demo cycle {result.cycle_id} failed: {result.error}")
        if file_name in result.accepted_files or file_name in result.rejected_files:
            return result
    raise AutomlError(f"the service did not pick up {file_name} within {WAIT_PER_BATCH_S:.0f}s")


@dataclass
class LateRow:
    """One step of the late-label stream: the rows it landed, the labels, and the cycle."""

    step: str
    kind: str
    scored: str | None
    n_rows: int
    labels_of: str | None
    result: CycleResult | None = None


_LatePlan = list[tuple[LateRow, pd.DataFrame | None, pd.DataFrame | None]]


def _late_plan(n_batches: int, drift_at: int) -> _LatePlan:
    """History rows with their labels, then ``n_batches`` scored batches of 500 rows (drifted
    from ``drift_at``) whose labels land ``LABEL_LAG`` batches later, then the last labels."""
    history = scored_rows(2000, seed=200, first_id=0)
    plan: _LatePlan = [
        (
            LateRow("00_history", "history", "scored_00.csv", len(history), "00"),
            without_label(history),
            label_file(history),
        )
    ]
    batches: dict[int, pd.DataFrame] = {}
    for i in range(1, n_batches + LABEL_LAG + 1):
        frame = None
        if i <= n_batches:
            drifted = i >= drift_at
            frame = scored_rows(500, seed=200 + i, first_id=i * 10_000, drift=float(drifted))
            batches[i] = frame
        labelled = batches.get(i - LABEL_LAG)
        kind = "-" if frame is None else ("drifted" if i >= drift_at else "normal")
        row = LateRow(
            f"{i:02d}",
            kind,
            f"scored_{i:02d}.csv" if frame is not None else None,
            0 if frame is None else len(frame),
            f"{i - LABEL_LAG:02d}" if labelled is not None else None,
        )
        plan.append(
            (
                row,
                None if frame is None else without_label(frame),
                None if labelled is None else label_file(labelled),
            )
        )
    return plan


def _late_table(rows: list[LateRow]) -> Table:
    table = Table(
        title=f"automl demo: late labels (labels land {LABEL_LAG} batches after their rows)",
        title_justify="left",
    )
    for col in (
        "batch",
        "kind",
        "rows",
        "labels of",
        "cycle",
        "drift",
        "labelled/needed",
        "est. AUC",
        "decision",
        "champion",
    ):
        table.add_column(col, no_wrap=True)
    for row in rows:
        r = row.result
        cells = [row.step, row.kind, str(row.n_rows or "-"), row.labels_of or "-"]
        if r is None:
            table.add_row(*cells, *["…"] * 6)
            continue
        need = "-"
        if r.labels_needed is not None:
            need = f"{r.labelled_rows}/{r.labels_needed}"
        decisions = {None: "-", True: "promoted", False: "rejected"}
        table.add_row(
            *cells,
            r.status,
            r.drift_verdict or "-",
            need,
            _f(r.estimated_score),
            decisions[r.is_promoted],
            f"v{r.champion_version}" if r.champion_version else "-",
        )
    return table


def _wait_late(results: queue.Queue[CycleResult], row: LateRow) -> CycleResult:
    """The late pipeline's cycle that took this step's rows (or, without rows, its labels)."""
    deadline = time.monotonic() + WAIT_PER_BATCH_S
    while time.monotonic() < deadline:
        try:
            result = results.get(timeout=0.25)
        except queue.Empty:
            continue
        if result.pipeline != LATE_NAME:
            continue
        if result.status == "failed":
            raise AutomlError(f"demo cycle {result.cycle_id} failed: {result.error}")
        if row.scored is not None and row.scored in result.accepted_files:
            return result
        if row.scored is None and result.labels_joined:
            return result
    raise AutomlError(f"the service did not take step {row.step} within {WAIT_PER_BATCH_S:.0f}s")


def _run_late(
    results: queue.Queue[CycleResult],
    landing: Path,
    labels: Path,
    *,
    n_batches: int,
    drift_at: int,
    console: Console,
) -> list[LateRow]:
    rows: list[LateRow] = []
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        for row, scored, outcomes in _late_plan(n_batches, drift_at):
            rows.append(row)
            if outcomes is not None:  # labels first: the cycle that takes the rows sees them
                write_table(outcomes, labels / f"outcomes_{row.labels_of}.csv")
            if scored is not None and row.scored is not None:
                write_table(scored, landing / row.scored)
            live.update(Group(_late_table(rows), Spinner("dots", "service working")))
            try:
                row.result = _wait_late(results, row)
            finally:
                live.update(_late_table(rows))
    return rows


def run_demo(
    workspace: Path,
    *,
    n_batches: int = 7,
    drift_at: int = 5,
    n_trials: int = 15,
    interval_s: float = 2.0,
    console: Console | None = None,
) -> list[DemoRow]:
    """Generate a churn stream, run the service on it and show what happens batch by batch.

    The stream is 3,000 historical rows, then ``n_batches`` batches of 1,000 rows that drift
    (prices up, more month-to-month contracts, fibre churn up) from batch ``drift_at`` on,
    plus one broken file after batch 2 that must end in quarantine.

    Returns:
        One row per landed file with the cycle that consumed it.

    Raises:
        ConfigError: ``workspace`` exists and is not empty.
        AutomlError: A cycle failed or the service stalled.
    """
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)  # logs and CI: keep the table readable
    if workspace.exists() and any(workspace.iterdir()):
        raise ConfigError(f"{workspace}: folder is not empty; pass --workspace with a new folder")
    spec = load_spec(write_spec(workspace, n_trials=n_trials, interval_s=interval_s))
    late = load_spec(
        write_late_spec(workspace, name=LATE_NAME, n_trials=n_trials, interval_s=interval_s)
    )
    landing = spec.landing_path
    landing.mkdir(parents=True, exist_ok=True)
    late.landing_path.mkdir(parents=True, exist_ok=True)
    results: queue.Queue[CycleResult] = queue.Queue()
    service = AutomlService([spec, late], on_cycle=results.put)
    rows: list[DemoRow] = []
    console.print(
        f"[bold]automl demo[/bold] in {workspace}: {n_batches} batches after the history, "
        f"drift injected from batch {drift_at}, one broken file after batch 2, "
        f"{n_trials} trials per re-tune, service interval {interval_s}s."
    )
    started = time.monotonic()
    service.start()
    try:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            for file_name, frame, kind in _plan(n_batches, drift_at):
                row = DemoRow(file_name, kind, len(frame))
                rows.append(row)
                write_table(frame, landing / file_name)
                live.update(Group(_table(rows, spec.metric), Spinner("dots", "service working")))
                while row.result is None:
                    try:
                        row.result = _wait_for(results, file_name)
                    finally:
                        live.update(_table(rows, spec.metric))
        console.print(
            f"Second pipeline, {LATE_NAME}: the model scores rows whose labels land "
            f"{LABEL_LAG} batches later; a confirmed drift waits for them, then re-tunes."
        )
        assert late.labels_landing_path is not None
        _run_late(
            results,
            late.landing_path,
            late.labels_landing_path,
            n_batches=n_batches,
            drift_at=drift_at,
            console=console,
        )
    finally:
        service.stop(wait=True)
    elapsed = time.monotonic() - started
    ws = workspace.resolve()
    console.print()
    console.print(f"Finished in {elapsed:.0f}s. Everything is in {ws}:")
    console.print(f"  quarantine   {ws / 'quarantine' / spec.name}  (broken file + .reason.txt)")
    console.print(f"  drift report {ws / 'reports' / spec.name}/<cycle>/drift.html")
    console.print(f"  status       automl status {ws}")
    console.print("Open the MLflow UI on the workspace with:")
    console.print(
        f"  mlflow ui --backend-store-uri sqlite:///{ws / 'mlflow.db'} --port 5000",
        soft_wrap=True,
        highlight=False,
    )
    console.print("  then browse http://127.0.0.1:5000 (experiment automl/churn, model churn)")
    return rows
