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


def bad_batch(seed: int, n_rows: int = 300) -> pd.DataFrame:
    """A batch an upstream bug broke: a renamed column and text in a numeric column."""
    frame = make_churn_frame(n_rows, seed=seed)
    frame = frame.rename(columns={"support_calls": "support_tickets"})
    frame["monthly_charges"] = frame["monthly_charges"].astype(object)
    frame.loc[frame.index[:5], "monthly_charges"] = "n/a"
    return frame


def init_workspace(directory: Path, *, name: str = "churn") -> dict[str, Path]:
    """Create a workspace: spec, landing folder with historical data, and sample batches.

    Returns:
        The paths written: ``spec``, ``landing``, ``samples``.
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
    return {"spec": spec, "landing": landing, "samples": samples}
