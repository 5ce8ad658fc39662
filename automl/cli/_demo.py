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

from automl.cli._workspace import bad_batch, write_spec
from automl.config import load_spec
from automl.data import make_churn_frame, write_table
from automl.errors import AutomlError, ConfigError
from automl.service import AutomlService, CycleResult

WAIT_PER_BATCH_S = 300.0


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
    landing = spec.landing_path
    landing.mkdir(parents=True, exist_ok=True)
    results: queue.Queue[CycleResult] = queue.Queue()
    service = AutomlService([spec], on_cycle=results.put)
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
