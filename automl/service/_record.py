"""Everything a cycle writes to MLflow: tag names, the run, drift, tuning, lineage, decisions.

One module so that what a run, a trial or a registered version carries is defined in one place:
the MLflow UI, ``automl status`` and the workers read these names. The ``automl tune`` command
logs its search with the same functions, so a one-shot search leaves the same record.

Per trial: a nested run with its family, hyperparameters, CV mean/std, secondary metrics,
train-vs-validation gap, fit status, fit time and peak memory. On the cycle's run: the batches it
consumed, the drift check (``drift.json``, HTML on drift), the search (``trials.csv`` and the
HTML report with its PNG plots), the model, the gate's decision (``promotion.json``).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `automl promote` needs the tag names, not these libraries
    from automl.data import BatchRecord
    from automl.drift import DriftReport, HysteresisDecision
    from automl.tracking import MlflowTracker, PromotionDecision, RunSummary, ShadowState
    from automl.tuning import TrialResult, TuningResult

log = logging.getLogger(__name__)

# -- tag names -------------------------------------------------------------------------------
#: On every cycle run (and on its versions): which pipeline and cycle wrote it.
PIPELINE = "automl.pipeline"
CYCLE_ID = "automl.cycle_id"
#: Why a run failed or was interrupted.
ERROR = "automl.error"
#: The drift check on the cycle run.
DRIFT_VERDICT = "automl.drift_verdict"
DRIFT_CHECK = "automl.drift_check"
DRIFT_REASON = "automl.drift_reason"
DRIFT_SIGNALS = "automl.drift_signals"
DRIFTED_COLUMNS = "automl.drifted_columns"
#: Late labels: why the cycle's re-tune waits for labels.
WAITING_FOR_LABELS = "automl.waiting_for_labels"
#: The re-tune on the cycle run.
DISTRIBUTED = "automl.distributed"
REUSED_VERSION = "automl.reused_version"
TUNING_STOP_REASON = "automl.tuning_stop_reason"
MODEL_VERSION = "automl.model_version"
DECISION = "automl.decision"
#: Lineage on a registered version.
TRIGGER = "automl.trigger"
DRIFT_SHARE = "automl.drift_share"
DRIFT_RUN_ID = "automl.drift_run_id"
TUNING_RUN_ID = "automl.tuning_run_id"
WINDOW_ROWS = "automl.window_rows"
HOLDOUT_ROWS = "automl.holdout_rows"
WINDOW_SHA256 = "automl.window_sha256"
DATA_FROM = "automl.data_from"
DATA_TO = "automl.data_to"
CV_SCORE = "automl.cv_score"
CV_SCORE_STD = "automl.cv_score_std"
METRIC = "automl.metric"
MODEL_FAMILY = "automl.model_family"
BEST_PARAMS = "automl.best_params"
#: The gate's decision on a registered version.
REASON = "automl.reason"
CHALLENGER_SCORE = "automl.challenger_score"
CHAMPION_SCORE = "automl.champion_score"
CHAMPION_VERSION = "automl.champion_version"
MARGIN = "automl.margin"
GATE_TEST = "automl.gate_test"
GATE_CI = "automl.gate_ci"
GATE_P_VALUE = "automl.gate_p_value"
GATE_GUARDRAILS = "automl.gate_guardrails"
APPROVED_BY = "automl.approved_by"
#: The challenger in shadow a cycle scored.
SHADOW_VERSION = "automl.shadow_version"
#: On each trial's nested run.
TRIAL_NUMBER = "automl.trial_number"
IS_DEFAULTS = "automl.is_defaults"
IS_WARM_START = "automl.is_warm_start"
TRIAL_STATE = "automl.trial_state"
FIT_STATUS = "automl.fit_status"
#: On a one-shot ``automl tune`` run.
COMMAND = "automl.command"
DATA = "automl.data"

#: Where a distributed re-tune leaves its training rows for the workers (an artifact of the
#: cycle's MLflow run), and the study attributes that point workers to them.
ROWS_ARTIFACT = "tuning/train.parquet"
PARENT_RUN_ATTR = "automl.parent_run_id"
ROWS_ATTR = "automl.rows_artifact"


# -- the cycle's run -------------------------------------------------------------------------
def start_cycle_run(
    tracker: MlflowTracker, pipeline: str, cycle_id: str, pending: Sequence[BatchRecord]
) -> str:
    """Open the cycle's parent run, with the batches it consumes as params."""
    run_id = tracker.start_run(f"cycle-{cycle_id}", tags={PIPELINE: pipeline, CYCLE_ID: cycle_id})
    tracker.log_params(
        run_id,
        {
            "pipeline": pipeline,
            "new_batches": len(pending),
            "new_rows": sum(r.n_rows for r in pending),
            "batch_files": ",".join(r.file_name for r in pending)[:500],
        },
    )
    return run_id


def end_cycle_run(
    tracker: MlflowTracker, run_id: str, status: str, *, error: str | None = None
) -> None:
    """Close the cycle's run: ``FINISHED``, ``FAILED`` or ``KILLED``, with the error as a tag."""
    if error is not None:
        tracker.set_tags(run_id, {ERROR: error[:5000]})
    tracker.end_run(run_id, status)  # type: ignore[arg-type]


#: The error an orphaned cycle run is closed with (and its failed history row carries).
INTERRUPTED = "interrupted: the process running this cycle stopped before it ended"


def fail_orphaned_runs(tracker: MlflowTracker, pipeline: str) -> list[RunSummary]:
    """Close runs of a pipeline left RUNNING by a process that died (kill -9, OOM).

    Call it while holding the pipeline's lock, so no live cycle of it can own them. A cycle's
    run stays RUNNING until the cycle ends (registration and promotion included), so a run
    found RUNNING here is a cycle that never finished.

    Returns:
        The cycle runs closed, as they were before (their tags name the cycle).
    """
    orphans = tracker.find_runs(
        f"attributes.status = 'RUNNING' and tags.`{PIPELINE}` = '{pipeline}'"
    )
    closed = []
    for run_id in orphans:
        summary = tracker.run_summary(run_id)
        children = tracker.find_runs(
            f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{run_id}'"
        )
        for child in children:
            tracker.end_run(child, "FAILED")
        end_cycle_run(tracker, run_id, "FAILED", error=INTERRUPTED)
        log.warning(
            "[%s] marked orphaned run %s (and %d trial runs) FAILED",
            pipeline,
            run_id,
            len(children),
        )
        closed.append(summary)
    return closed


def record_verdict(tracker: MlflowTracker, run_id: str, verdict: str) -> None:
    """Tag why the cycle tunes without a drift check (``no_champion``, ``scheduled``)."""
    tracker.set_tags(run_id, {DRIFT_VERDICT: verdict})


def record_drift(
    tracker: MlflowTracker,
    run_id: str,
    payload: Mapping[str, Any],
    report: DriftReport,
    decision: HysteresisDecision,
) -> None:
    """Log a drift check: ``drift.json``, per-column scores, and the verdict as tags."""
    tracker.log_json(run_id, payload, "drift.json")
    tracker.log_metrics(
        run_id,
        {
            "drift_score": report.score,
            "drift_share_drifted": report.share_drifted,
            "drift_n_drifted_columns": len(report.drifted_columns),
            **{f"drift_score.{c.column}": c.score for c in report.columns},
        },
    )
    tracker.set_tags(
        run_id,
        {
            DRIFT_VERDICT: decision.level,
            DRIFT_CHECK: report.level,
            DRIFT_REASON: decision.reason[:5000],
            DRIFT_SIGNALS: ",".join(report.fired_signals),
            DRIFTED_COLUMNS: ",".join(report.drifted_columns),
        },
    )


def record_waiting(
    tracker: MlflowTracker, run_id: str, n_labelled: int, needed: int, reason: str
) -> None:
    """Late labels: the re-tune waits; the labelled rows it counted and needs, and why."""
    tracker.log_metrics(run_id, {"labelled_rows": n_labelled, "labels_needed": needed})
    tracker.set_tags(run_id, {WAITING_FOR_LABELS: reason[:5000]})


# -- tuning ----------------------------------------------------------------------------------
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
                TRIAL_NUMBER: str(trial.number),
                MODEL_FAMILY: trial.model_family,
                IS_DEFAULTS: str(trial.is_defaults).lower(),
                IS_WARM_START: str(trial.is_warm_start).lower(),
                TRIAL_STATE: trial.state,
                FIT_STATUS: trial.fit_status,
                **({ERROR: trial.error[:5000]} if trial.error else {}),
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
    tracker.set_tags(run_id, {TUNING_STOP_REASON: result.stop_reason})
    tracker.log_table(run_id, result.trials, "trials.csv")
    from automl.tuning import write_tuning_report

    with tempfile.TemporaryDirectory() as tmp:
        folder = report_dir or Path(tmp)
        for path in write_tuning_report(result, folder, title=title):
            tracker.log_artifact(run_id, path, artifact_dir="tuning")


def record_search_params(tracker: MlflowTracker, run_id: str, params: Mapping[str, Any]) -> None:
    """Log what a re-tune was asked to do (window sizes, strategy, budget, study)."""
    tracker.log_params(run_id, params)


def record_distributed(tracker: MlflowTracker, run_id: str, train_path: Path) -> None:
    """Leave the training rows for the workers as an artifact, and mark the run distributed."""
    tracker.log_artifact(run_id, train_path, artifact_dir=ROWS_ARTIFACT.rsplit("/", 1)[0])
    tracker.set_tags(run_id, {DISTRIBUTED: "true"})


# -- registration and the decision -----------------------------------------------------------
def lineage_tags(
    *,
    pipeline: str,
    cycle_id: str,
    run_id: str,
    trigger: str | None,
    drift_share: float | None,
    train_rows: int,
    holdout_rows: int,
    window_sha256: str,
    data_from: str,
    data_to: str,
    result: TuningResult,
) -> dict[str, Any]:
    """The tags a registered version carries: where it came from and how it scored in CV."""
    return {
        PIPELINE: pipeline,
        CYCLE_ID: cycle_id,
        TRIGGER: trigger or "unknown",
        DRIFT_SHARE: drift_share if drift_share is not None else "",
        DRIFT_RUN_ID: run_id,
        TUNING_RUN_ID: run_id,
        WINDOW_ROWS: train_rows,
        HOLDOUT_ROWS: holdout_rows,
        WINDOW_SHA256: window_sha256,
        DATA_FROM: data_from,
        DATA_TO: data_to,
        CV_SCORE: f"{result.best_score:.6f}",
        CV_SCORE_STD: f"{result.best_score_std:.6f}",
        METRIC: result.metric,
        MODEL_FAMILY: result.model_family,
        BEST_PARAMS: json.dumps(result.best_params, default=str)[:5000],
    }


def record_reused(tracker: MlflowTracker, run_id: str, version: str) -> None:
    """Mark a cycle that found its model already registered (a re-run after a crash)."""
    tracker.set_tags(run_id, {REUSED_VERSION: version})


def decision_tags(decision: PromotionDecision) -> dict[str, str]:
    """The version tags that record a decision in the registry."""
    tags = {
        DECISION: decision.outcome,
        REASON: decision.reason[:5000],
        METRIC: decision.metric,
        CHALLENGER_SCORE: f"{decision.challenger_score:.6f}",
        MARGIN: str(decision.margin),
    }
    if decision.champion_score is not None:
        tags[CHAMPION_SCORE] = f"{decision.champion_score:.6f}"
        tags[CHAMPION_VERSION] = decision.champion_version or ""
    gate = decision.gate
    if gate is not None:
        tags[GATE_TEST] = gate.test
        if gate.ci_low is not None:
            tags[GATE_CI] = f"[{gate.ci_low:.6f}, {gate.ci_high:.6f}]"
        if gate.p_value is not None:
            tags[GATE_P_VALUE] = f"{gate.p_value:.6g}"
        if gate.guardrails:
            tags[GATE_GUARDRAILS] = json.dumps([asdict(g) for g in gate.guardrails])[:5000]
    return tags


def manual_decision_tags(actor: str) -> dict[str, str]:
    """The version tags of a promotion a person approved."""
    return {DECISION: "promoted", APPROVED_BY: actor}


def record_decision(tracker: MlflowTracker, run_id: str, decision: PromotionDecision) -> None:
    """Log the gate's decision on the cycle's run: ``promotion.json``, scores and tags."""
    metric = decision.metric
    tracker.log_json(run_id, decision.to_dict(), "promotion.json")
    scores = {f"holdout_{metric}": decision.challenger_score}
    if decision.champion_score is not None:
        scores[f"champion_holdout_{metric}"] = decision.champion_score
    tracker.log_metrics(run_id, scores)
    tracker.set_tags(
        run_id, {MODEL_VERSION: decision.challenger_version, DECISION: decision.outcome}
    )


def record_shadow(
    tracker: MlflowTracker, run_id: str, state: ShadowState, now: PromotionDecision
) -> None:
    """Log this cycle's shadow scores of the challenger and the champion on the new rows."""
    metric = now.metric
    scores = {
        f"shadow_{metric}": now.challenger_score,
        "shadow_batches": len(state.batches),
        "shadow_rows": state.batches[-1].n_rows,
    }
    if now.champion_score is not None:
        scores[f"shadow_champion_{metric}"] = now.champion_score
    tracker.log_metrics(run_id, scores)
    tracker.set_tags(run_id, {SHADOW_VERSION: state.version})
