"""Example workspaces: the pipeline spec and sample data that ``init`` and ``demo`` write."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from automl.data import make_churn_frame, write_table

SPEC_TEMPLATE = """\
# automl pipeline spec: one file per pipeline. Relative paths resolve against this file's folder.
# Every field is documented in the README ("Pipeline spec"); the commented lines show options.
name: {name}
data:
  landing_dir: landing/{name}     # drop new CSV/Parquet batches here (write .name.tmp, then rename)
  target: churned
  task: classification
training:
  min_rows: {min_rows}             # fewest rows a re-tune trains on
  max_rows: 50000
  window: recent                  # newest max_rows rows, before and after drift (or since_drift)
  holdout_fraction: 0.2           # newest share of the window, kept to judge challenger vs champion
drift:
  method: null                    # null: evidently picks a test per column type and size
  threshold: null
  drift_share: 0.01               # drift when any one column moved ...
  correction: holm                # ... with the family-wise error held at 5% over the columns
  tests: two_sample               # K-S, z-test, two-sample chi-square by column kind
  # per_column: {{monthly_charges: {{method: psi, threshold: 0.2}}}}
  hysteresis: {{confirm_checks: 1, cooldown_checks: 3}}   # re-tune at once, then rest 3 checks
tuning:
  strategy: bayesian              # bayesian (TPE), gp, random, grid, genetic, cmaes
  models: [xgboost]               # + random_forest extra_trees hist_gradient_boosting linear mlp
  metric: roc_auc
  n_trials: {n_trials}
  timeout_s: 300
  cv: 3
  seed: 42
  warm_start: true                # after drift, re-evaluate the previous study's best first
registry:
  model_name: {name}
  promotion_margin: 0.005         # challenger must beat the champion by this much (holdout AUC)
  approval: auto                  # manual: wait for `automl promote`
  significance: {{test: bootstrap, alpha: 0.05}}
  # guardrails: [{{metric: recall, max_regression: 0.02}}, {{metric: latency_ms, max_ratio: 2.0}}]
  # shadow_batches: 1             # a challenger waits as @challenger, judged on the next batch
# notify: {{webhook_url: "https://hooks.example.com/automl"}}
schedule:
  interval_s: {interval_s}
  # retune_cron: "0 3 * * 0"      # a forced re-tune every Sunday 03:00 UTC, drift or not
"""


def write_spec(
    directory: Path,
    *,
    name: str = "churn",
    n_trials: int = 20,
    interval_s: float = 60.0,
    min_rows: int = 800,
) -> Path:
    """Write the example churn pipeline spec into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(
        SPEC_TEMPLATE.format(
            name=name, n_trials=n_trials, interval_s=interval_s, min_rows=min_rows
        ),
        encoding="utf-8",
    )
    return path


LATE_SPEC_TEMPLATE = """\
# automl pipeline spec of a model whose labels come late: it scores customers today, and whether
# they churned is known weeks later. Batches carry the rows the model scored (no label column);
# label files (customer_id, churned) land in labels/{name}/ when the outcomes are known.
name: {name}
data:
  landing_dir: landing/{name}     # the rows the model scored, with their customer_id
  target: churned
  task: classification
  id_column: customer_id          # joins each label to its row, exactly once
  labels:
    landing_dir: labels/{name}    # label files: customer_id, churned
    alert_after_s: 604800         # webhook labels_late after a week without a label
  max_label_wait_s: 1209600       # a label for an unknown id waits two weeks for its row
training:
  min_rows: {min_rows}
  min_labelled_rows: {min_labelled_rows}   # after drift, wait for this many labelled rows
  max_rows: 50000
  window: recent
drift:
  hysteresis: {{confirm_checks: 1, cooldown_checks: 0}}   # no rest after a re-tune (default: 3)
  estimated_performance_tolerance: 0.05   # a label-free AUC estimate this far down is drift
tuning:
  models: [xgboost]
  metric: roc_auc
  n_trials: {n_trials}
  timeout_s: 300
  cv: 3
  seed: 42
registry:
  model_name: {name}
  promotion_margin: 0.005
schedule:
  interval_s: {interval_s}
"""


def write_late_spec(
    directory: Path,
    *,
    name: str = "churn_late",
    n_trials: int = 20,
    interval_s: float = 60.0,
    min_rows: int = 400,
    min_labelled_rows: int = 400,
) -> Path:
    """Write the example late-label pipeline spec into ``directory`` (its label folder too)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "labels" / name).mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(
        LATE_SPEC_TEMPLATE.format(
            name=name,
            n_trials=n_trials,
            interval_s=interval_s,
            min_rows=min_rows,
            min_labelled_rows=min_labelled_rows,
        ),
        encoding="utf-8",
    )
    return path


def scored_rows(n_rows: int, *, seed: int, first_id: int, drift: float = 0.0) -> pd.DataFrame:
    """Churn rows with a ``customer_id`` (``c<first_id>`` on), their label included: split them
    with :func:`without_label` and :func:`label_file`."""
    frame = make_churn_frame(n_rows, seed=seed, drift=drift)
    frame.insert(0, "customer_id", [f"c{i}" for i in range(first_id, first_id + n_rows)])
    return frame


def without_label(frame: pd.DataFrame) -> pd.DataFrame:
    """What the model scored: the rows without their label."""
    return frame.drop(columns=["churned"])


def label_file(frame: pd.DataFrame) -> pd.DataFrame:
    """The outcomes of these rows, as a label file."""
    return frame[["customer_id", "churned"]]


def bad_batch(seed: int, n_rows: int = 300) -> pd.DataFrame:
    """A batch an upstream bug broke: a renamed column and text in a numeric column."""
    frame = make_churn_frame(n_rows, seed=seed)
    frame = frame.rename(columns={"support_calls": "support_tickets"})
    frame["monthly_charges"] = frame["monthly_charges"].astype(object)
    frame.loc[frame.index[:5], "monthly_charges"] = "n/a"
    return frame


def init_workspace(directory: Path, *, name: str = "churn") -> dict[str, Path]:
    """Create a workspace: spec, landing folder with historical data, and sample batches; and a
    second pipeline ``<name>_late`` whose labels come later (its history's rows in its landing
    folder, their labels in its label folder, and in ``samples/<name>_late/`` scored batches
    and their label files to land a few batches apart).

    Returns:
        The paths written: ``spec``, ``landing``, ``samples``, ``late_spec``, ``late_landing``,
        ``late_labels``, ``late_samples``.
    """
    spec = write_spec(directory, name=name)
    landing = directory / "landing" / name
    samples = directory / "samples"
    write_table(make_churn_frame(3000, seed=1), landing / "history.csv")
    write_table(make_churn_frame(1000, seed=2), samples / "batch_01_normal.csv")
    write_table(make_churn_frame(1000, seed=3), samples / "batch_02_normal.csv")
    write_table(make_churn_frame(1000, seed=4, drift=1.0), samples / "batch_03_drifted.csv")
    write_table(make_churn_frame(1000, seed=5, drift=1.0), samples / "batch_04_drifted.csv")
    write_table(bad_batch(6), samples / "batch_05_broken.csv")
    late = f"{name}_late"
    late_spec = write_late_spec(directory, name=late)
    late_landing, late_labels = directory / "landing" / late, directory / "labels" / late
    late_samples = samples / late
    history = scored_rows(3000, seed=11, first_id=0)
    write_table(without_label(history), late_landing / "scored_00_history.csv")
    write_table(label_file(history), late_labels / "outcomes_00_history.csv")
    for i, drift in ((1, 0.0), (2, 1.0), (3, 1.0)):
        batch = scored_rows(1000, seed=11 + i, first_id=i * 10_000, drift=drift)
        kind = "drifted" if drift else "normal"
        write_table(without_label(batch), late_samples / f"scored_{i:02d}_{kind}.csv")
        write_table(label_file(batch), late_samples / f"outcomes_{i:02d}.csv")
    return {
        "spec": spec,
        "landing": landing,
        "samples": samples,
        "late_spec": late_spec,
        "late_landing": late_landing,
        "late_labels": late_labels,
        "late_samples": late_samples,
    }
