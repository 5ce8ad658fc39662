"""Logging a search to MLflow: one nested run per trial, the result and its report on the parent.

Shared by the cycle's re-tune and the one-shot ``automl tune`` command, so both leave the same
record: per trial its family, hyperparameters, CV mean/std, secondary metrics, train-vs-
validation gap and fit status, fit time and peak memory; on the parent the best configuration,
the trials table and the HTML report with its PNG plots.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from automl.tracking import MlflowTracker
from automl.tuning import TrialResult, TuningResult, write_tuning_report


def trial_logger(
    tracker: MlflowTracker, parent_run_id: str, metric: str
) -> Callable[[TrialResult], None]:
    """A ``tune(on_trial=...)`` callback that logs each trial as a nested run.

    Complete trials end FINISHED, pruned ones KILLED, failed ones FAILED (with the error as
    the tag ``automl.error``).
    """

    def log_trial(trial: TrialResult) -> None:
        metrics = {
            f"cv_{metric}": trial.cv_mean,
            f"cv_{metric}_std": trial.cv_std,
            f"train_{metric}": trial.train_mean,
            "fit_gap": trial.fit_gap,
            "fit_time_s": trial.fit_time_s,
            "peak_memory_mb": trial.peak_memory_mb,
            **{f"val_{k}": v for k, v in trial.metrics.items()},
        }
        if trial.fitted_rounds is not None:
            metrics["fitted_rounds"] = trial.fitted_rounds
        tracker.log_nested_run(
            parent_run_id,
            f"trial-{trial.number:03d}",
            params={"model_family": trial.model_family, **trial.params},
            metrics=metrics,
            tags={
                "automl.trial_number": str(trial.number),
                "automl.model_family": trial.model_family,
                "automl.is_defaults": str(trial.is_defaults).lower(),
                "automl.is_warm_start": str(trial.is_warm_start).lower(),
                "automl.trial_state": trial.state,
                "automl.fit_status": trial.fit_status,
                **({"automl.error": trial.error[:5000]} if trial.error else {}),
            },
            status=(
                "FINISHED"
                if trial.state == "COMPLETE"
                else "KILLED"
                if trial.state == "PRUNED"
                else "FAILED"
            ),
        )

    return log_trial


def log_tuning_result(
    tracker: MlflowTracker,
    run_id: str,
    result: TuningResult,
    *,
    report_dir: Path | None = None,
    title: str = "Tuning report",
) -> None:
    """Log a finished search on its parent run.

    Params ``best_model_family`` and ``best_<param>``; metrics ``best_cv_<metric>`` (and std),
    ``default_cv_<metric>``, ``baseline_cv_<metric>``, ``n_trials``, ``n_pruned``,
    ``n_warm_start``, ``tuning_time_s``; the tag ``automl.tuning_stop_reason``; artifacts
    ``trials.csv`` and ``tuning/`` (``tuning_report.html`` and its PNG plots).

    Args:
        tracker: The MLflow adapter.
        run_id: The parent run.
        result: The search.
        report_dir: Where to keep the report locally too (None: a temporary folder).
        title: Report title.
    """
    metric = result.metric
    tracker.log_params(
        run_id,
        {"best_model_family": result.model_family}
        | {f"best_{k}": v for k, v in result.best_params.items()},
    )
    tracker.log_metrics(
        run_id,
        {
            f"best_cv_{metric}": result.best_score,
            f"best_cv_{metric}_std": result.best_score_std,
            f"default_cv_{metric}": result.default_score,
            f"baseline_cv_{metric}": result.baseline_score,
            "n_trials": result.n_trials,
            "n_pruned": result.n_pruned,
            "n_warm_start": result.n_warm_start,
            "tuning_time_s": result.elapsed_s,
        },
    )
    tracker.set_tags(run_id, {"automl.tuning_stop_reason": result.stop_reason})
    tracker.log_table(run_id, result.trials, "trials.csv")
    with tempfile.TemporaryDirectory() as tmp:
        folder = report_dir or Path(tmp)
        for path in write_tuning_report(result, folder, title=title):
            tracker.log_artifact(run_id, path, artifact_dir="tuning")
