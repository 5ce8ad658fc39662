"""Everything a cycle writes to MLflow: tag names, the run, drift, tuning, lineage, decisions.

One module so that what a run, a trial or a registered version carries is defined in one place:
the MLflow UI, ``automl status`` and the workers read these names. The ``automl tune`` command
logs its search with the same functions, so a one-shot search leaves the same record.

Per trial: a nested run with its family, hyperparameters, CV mean/std, secondary metrics,
train-vs-validation gap, fit status, fit time and peak memory. On the cycle's run: the batches it
consumed, the drift check (``drift.json``, HTML on drift), the search (``trials.csv`` and the
HTML report with its PNG plots), the model and its lineage (``lineage.json``), the gate's
decision (``promotion.json``).

What the MLflow UI shows is written to be read: a cycle's run is named by its outcome
(``churn #12 drift -> v3 promoted``) and described in a few markdown lines; a trial's run spans
the trial's real time, and a pruned one is FINISHED with its reason; a registered version
carries a few tags (pipeline, trigger, window, score, decision).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `automl promote` needs the tag names, not these libraries
    import pandas as pd

    from automl.data import BatchRecord
    from automl.drift import DriftReport, HysteresisDecision
    from automl.service._history import CycleResult
    from automl.tracking import (
        MlflowTracker,
        ModelVersionInfo,
        PromotionDecision,
        RunSummary,
        ShadowState,
    )
    from automl.tuning import TrialResult, TuningResult

log = logging.getLogger(__name__)

# -- tag names -------------------------------------------------------------------------------
#: On every cycle run (and on its versions): which pipeline and cycle wrote it.
PIPELINE = "automl.pipeline"
CYCLE_ID = "automl.cycle_id"
#: On a cycle run: its number among the pipeline's cycle runs (1, 2, ...), as in its name.
CYCLE_NUMBER = "automl.cycle_number"
#: MLflow's run description (markdown), shown on the run's page.
NOTE = "mlflow.note.content"
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
#: The gate's decision: ``promoted``, ``rejected``, ``shadow`` or ``awaiting_approval`` (on the
#: cycle run and on the version), and its reason (on the run).
DECISION = "automl.decision"
REASON = "automl.reason"
#: A registered version carries a few tags a person reads in the registry: why it was tuned,
#: on which rows, how it scored; its full lineage is the artifact ``lineage.json`` of the run
#: that registered it (see :class:`Lineage`).
TRIGGER = "automl.trigger"
WINDOW = "automl.window"
SCORE = "automl.score"
APPROVED_BY = "automl.approved_by"
#: The challenger in shadow a cycle scored.
SHADOW_VERSION = "automl.shadow_version"
#: On each trial's nested run.
TRIAL_NUMBER = "automl.trial_number"
MODEL_FAMILY = "automl.model_family"
IS_DEFAULTS = "automl.is_defaults"
IS_WARM_START = "automl.is_warm_start"
#: ``complete``, ``pruned`` or ``failed``; a pruned trial's run is FINISHED (the pruner did
#: its job) and says why it was stopped in ``automl.pruned_reason``.
TRIAL_STATE = "automl.trial_state"
PRUNED_REASON = "automl.pruned_reason"
FIT_STATUS = "automl.fit_status"
#: On a one-shot ``automl tune`` run.
COMMAND = "automl.command"
DATA = "automl.data"
#: The run artifact holding the lineage of the version the run registered.
LINEAGE_ARTIFACT = "lineage.json"
#: On a cycle run that registered a version: the digest of its training rows (a re-run after a
#: crash finds the version by it). Versions registered before ``lineage.json`` carry it too.
WINDOW_SHA256 = "automl.window_sha256"

#: Where a distributed re-tune leaves its training rows for the workers (an artifact of the
#: cycle's MLflow run), and the study attributes that point workers to them.
ROWS_ARTIFACT = "tuning/train.parquet"
PARENT_RUN_ATTR = "automl.parent_run_id"
ROWS_ATTR = "automl.rows_artifact"

#: A registered version's own holdout rows (a seeded sample of at most
#: ``registry.old_population.max_rows`` rows it did not train on), an artifact of the run that
#: registered it, and the version tag that says how many rows it holds: the evidence of the
#: old-population guardrail when the version is the champion. Versions registered before this
#: existed have no tag.
HOLDOUT_ARTIFACT = "guard/holdout.parquet"
HOLDOUT_STORED = "automl.holdout_stored"


# -- the cycle's run -------------------------------------------------------------------------
def next_cycle_number(tracker: MlflowTracker, pipeline: str) -> int:
    """The number the pipeline's next cycle run gets: one more than its newest one's.

    Runs from before cycle numbers existed are counted once (the first numbered run follows
    them). Call it while holding the pipeline's lock, so two cycles never share a number.
    """
    newest = tracker.search_runs(
        f"tags.`{PIPELINE}` = '{pipeline}'",
        order_by=["attributes.start_time DESC"],
        max_results=10,
    )
    numbers = [int(r.tags[CYCLE_NUMBER]) for r in newest if r.tags.get(CYCLE_NUMBER, "").isdigit()]
    if numbers:
        return max(numbers) + 1
    if not newest:
        return 1
    return len(tracker.search_runs(f"tags.`{PIPELINE}` = '{pipeline}'", max_results=50000)) + 1


def start_cycle_run(
    tracker: MlflowTracker, pipeline: str, cycle_id: str, pending: Sequence[BatchRecord]
) -> str:
    """Open the cycle's parent run, named ``<pipeline> #<n> running`` (renamed when it ends),
    with the batches it consumes as params."""
    number = next_cycle_number(tracker, pipeline)
    run_id = tracker.start_run(
        f"{pipeline} #{number} running",
        tags={PIPELINE: pipeline, CYCLE_ID: cycle_id, CYCLE_NUMBER: str(number)},
    )
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
    tracker: MlflowTracker,
    run_id: str,
    status: str,
    *,
    error: str | None = None,
    result: CycleResult | None = None,
    decision: PromotionDecision | None = None,
    version: ModelVersionInfo | None = None,
) -> None:
    """Close the cycle's run: ``FINISHED``, ``FAILED`` or ``KILLED``, named by its outcome.

    The run is renamed (see :func:`cycle_run_name`, e.g. ``churn #12 drift -> v3 promoted``)
    and described in a few markdown lines (see :func:`describe_cycle`) from what it recorded
    and what the cycle gives; the error, if any, is the tag ``automl.error``.

    Args:
        tracker: The MLflow adapter.
        run_id: The cycle's run.
        status: The run's final status.
        error: Why the cycle failed or was interrupted.
        result: The cycle's result (None for a run a crash left open: its name then says
            ``failed`` or ``interrupted`` from ``status``).
        decision: The gate's decision, if the cycle judged a version.
        version: The version the cycle registered or re-used.
    """
    summary = tracker.run_summary(run_id)
    cycle_status: str = (
        result.status
        if result is not None
        else {"FAILED": "failed", "KILLED": "interrupted"}.get(status, "finished")
    )
    tags = summary.tags
    number = tags.get(CYCLE_NUMBER)
    name = cycle_run_name(
        tags.get(PIPELINE) or (result.pipeline if result else "cycle"),
        int(number) if number and number.isdigit() else None,
        status=cycle_status,
        trigger=(result.drift_verdict if result else None) or tags.get(DRIFT_VERDICT),
        version=version.version if version else tags.get(MODEL_VERSION),
        outcome=_outcome(tags, result, decision),
        shadow=(result.shadow_version, result.shadow_outcome) if result else None,
    )
    note = describe_cycle(
        summary,
        status=cycle_status,
        error=error,
        result=result,
        decision=decision,
        window=version.tags.get(WINDOW) if version is not None else None,
    )
    tracker.set_tags(run_id, {NOTE: note, **({ERROR: error[:5000]} if error is not None else {})})
    tracker.rename_run(run_id, name)
    tracker.end_run(run_id, status)  # type: ignore[arg-type]


def _outcome(
    tags: Mapping[str, str], result: CycleResult | None, decision: PromotionDecision | None
) -> str | None:
    if decision is not None:
        return decision.outcome
    if tags.get(DECISION):
        return tags[DECISION]
    if result is not None and result.is_promoted:
        return "promoted"  # re-used and already champion: an interrupted cycle promoted it
    return None


#: How a drift verdict (the cycle's trigger) reads in a run name.
TRIGGER_LABELS = {
    "ok": "no drift",
    "warning": "drift warning",
    "drift": "drift",
    "no_champion": "no champion",
    "scheduled": "scheduled",
}
#: Cycle statuses a run name does not spell out (its trigger and version say it all).
_PLAIN_STATUSES = ("retuned", "no_drift", "no_data", "finished")


def cycle_run_name(
    pipeline: str,
    number: int | None,
    *,
    status: str,
    trigger: str | None,
    version: str | None = None,
    outcome: str | None = None,
    shadow: tuple[str | None, str | None] | None = None,
) -> str:
    """The name a cycle's run shows in the MLflow UI: pipeline, number, trigger, outcome.

    Any status reads by its words (``waiting_for_labels`` -> ``waiting for labels``); a plain
    ``retuned`` or ``no_drift`` is said by the trigger and the version's outcome.

    Args:
        pipeline: The pipeline.
        number: The cycle's number (None: left out).
        status: The cycle's status (``retuned``, ``no_drift``, ``failed``, ...).
        trigger: The drift verdict or why it tuned (see :data:`TRIGGER_LABELS`).
        version: The version it registered or re-used.
        outcome: The gate's decision on it (``promoted``, ``rejected``, ...).
        shadow: The challenger in shadow the cycle scored and what its evidence decided.

    Example:
        >>> cycle_run_name("churn", 12, status="retuned", trigger="drift", version="3",
        ...                outcome="promoted")
        'churn #12 drift -> v3 promoted'
        >>> cycle_run_name("churn", 13, status="no_drift", trigger="ok")
        'churn #13 no drift'
        >>> cycle_run_name("churn", 15, status="failed", trigger=None)
        'churn #15 failed'
        >>> cycle_run_name("churn", 16, status="waiting_for_labels", trigger="drift")
        'churn #16 drift -> waiting for labels'
    """
    head = pipeline if number is None else f"{pipeline} #{number}"
    label = TRIGGER_LABELS.get(trigger, trigger.replace("_", " ")) if trigger else None
    tail = None
    if version is not None:
        tail = f"v{version} {outcome.replace('_', ' ')}" if outcome else f"v{version}"
    if status not in _PLAIN_STATUSES:
        words = status.replace("_", " ")
        tail = f"{tail} {words}" if tail and not outcome else words
    name = " ".join(p for p in (head, label) if p)
    if tail:
        name = f"{name} -> {tail}" if label else f"{name} {tail}"
    if shadow is not None and shadow[0] and shadow[1] in ("promoted", "rejected"):
        name += f", shadow v{shadow[0]} {shadow[1]}"
    return name


def describe_cycle(
    summary: RunSummary,
    *,
    status: str,
    error: str | None = None,
    result: CycleResult | None = None,
    decision: PromotionDecision | None = None,
    window: str | None = None,
) -> str:
    """A cycle run's description (markdown): what it checked, the drift verdict, the window,
    the search, the decision and why, and the error if it failed.

    Args:
        summary: The run as recorded so far (its params, metrics and tags).
        status: The cycle's status.
        error: Why it failed or was interrupted.
        result: The cycle's result, when it ended in-process.
        decision: The gate's decision, if any.
        window: The data window of the version it registered or re-used, in words.
    """
    tags, metrics, params = summary.tags, summary.metrics, summary.params
    lines = [
        f"Cycle `{tags.get(CYCLE_ID, summary.run_id)}` of pipeline `{tags.get(PIPELINE)}`: "
        f"**{status.replace('_', ' ')}**.",
        "",
    ]
    data = f"{params.get('new_batches', '0')} new batch(es), {params.get('new_rows', '0')} rows"
    if result is not None and result.rejected_files:
        data += f"; {len(result.rejected_files)} file(s) quarantined"
    lines.append(f"- **Data**: {data}")
    verdict = (result.drift_verdict if result else None) or tags.get(DRIFT_VERDICT)
    if verdict == "no_champion":
        lines.append("- **Drift**: not checked (no champion yet); tuned on the accepted rows")
    elif verdict == "scheduled":
        lines.append("- **Drift**: not checked (scheduled re-tune on the newest rows)")
    elif verdict is not None:
        drift = f"**{TRIGGER_LABELS.get(verdict, verdict)}**"
        share = metrics.get("drift_share_drifted")
        if share is not None:
            drift += f", {share:.0%} of the columns drifted"
        if tags.get(DRIFTED_COLUMNS):
            drift += f" ({tags[DRIFTED_COLUMNS].replace(',', ', ')})"
        if tags.get(DRIFT_REASON):
            drift += f": {tags[DRIFT_REASON]}"
        lines.append(f"- **Drift**: {drift}")
    if window:
        lines.append(f"- **Window**: {window}")
    if tags.get(REUSED_VERSION):
        lines.append(
            f"- **Search**: none, v{tags[REUSED_VERSION]} was already trained on this window"
        )
    elif "n_trials" in metrics:
        metric = params.get("metric") or (result.metric if result else "score")
        search = f"{int(metrics['n_trials'])} trials ({int(metrics.get('n_pruned', 0))} pruned)"
        best = metrics.get(f"best_cv_{metric}")
        if best is not None:
            search += f", best CV {metric} {best:.4f}"
            search += f" ({params['best_model_family']})" if "best_model_family" in params else ""
        default = metrics.get(f"default_cv_{metric}")
        if default is not None:
            search += f", library defaults {default:.4f}"
        if tags.get(TUNING_STOP_REASON):
            search += f"; stopped by {tags[TUNING_STOP_REASON]}"
        lines.append(f"- **Search**: {search}")
    if decision is not None:
        reason = decision.reason.removeprefix(f"{decision.outcome}: ")
        lines.append(
            f"- **Decision**: v{decision.challenger_version} **{decision.outcome}**: {reason}"
        )
    elif result is not None and result.is_promoted and result.model_version:
        lines.append(
            f"- **Decision**: v{result.model_version} is champion (an interrupted attempt "
            "promoted it)"
        )
    if result is not None and result.shadow_version:
        lines.append(
            f"- **Shadow**: v{result.shadow_version} scored on the new rows: "
            f"{result.shadow_outcome} after {result.shadow_batches} batch(es)"
        )
    if result is not None and result.champion_version:
        lines.append(f"- **Champion** after the cycle: v{result.champion_version}")
    if error is not None:
        lines.append(f"- **Error**: {' '.join(error.split())[:2000]}")  # one list item
    return "\n".join(lines) + "\n"


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
        end_cycle_run(tracker, run_id, "FAILED", error=INTERRUPTED)  # named "... failed"
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

    The run spans the trial's real start and end (Optuna's times, not the logging's). Complete
    and pruned trials end FINISHED (a pruned trial is the pruner doing its job, not a failure:
    ``automl.trial_state`` is ``pruned`` and ``automl.pruned_reason`` says at which fold or
    round and at what value); failed ones FAILED (with the error as the tag ``automl.error``).
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
        state = TRIAL_STATES.get(trial.state, trial.state.lower())
        reason = trial.error[:5000] if trial.error else None
        tracker.log_nested_run(
            parent_run_id,
            f"trial-{trial.number:03d} {trial.model_family}"
            + (" pruned" if state == "pruned" else ""),
            params={"model_family": trial.model_family, **trial.params},
            metrics=metrics,
            tags={
                TRIAL_NUMBER: str(trial.number),
                MODEL_FAMILY: trial.model_family,
                IS_DEFAULTS: str(trial.is_defaults).lower(),
                IS_WARM_START: str(trial.is_warm_start).lower(),
                TRIAL_STATE: state,
                FIT_STATUS: trial.fit_status,
                **({PRUNED_REASON if state == "pruned" else ERROR: reason} if reason else {}),
            },
            status="FAILED" if state == "failed" else "FINISHED",
            start_time_ms=_epoch_ms(trial.started_at),
            end_time_ms=_epoch_ms(trial.finished_at),
        )

    return log_trial


#: Optuna's trial states as the tag ``automl.trial_state`` says them.
TRIAL_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def _epoch_ms(moment: datetime | None) -> int | None:
    # Optuna records naive local times; timestamp() reads a naive time as local time.
    return None if moment is None else int(moment.timestamp() * 1000)


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
@dataclass(frozen=True)
class Lineage:
    """Where a registered version came from: ``lineage.json`` on the run that registered it.

    Attributes:
        pipeline: The pipeline.
        cycle_id: The cycle that tuned it.
        run_id: The cycle's MLflow run (drift check, search, model).
        trigger: Why it was tuned (``no_champion``, ``scheduled`` or the drift verdict).
        drift_share: Share of drifted columns of the check that triggered it, if any.
        train_rows: Rows it was tuned and trained on.
        holdout_rows: The newest rows of the window, kept aside to judge it.
        window_sha256: Digest of the training rows (a re-run finds the version by it).
        data_from: When the oldest batch of the window was received (ISO time).
        data_to: When the newest was received.
        metric: The primary metric.
        cv_score: Its CV mean.
        cv_score_std: Its CV standard deviation.
        model_family: The model family.
        best_params: The hyperparameters.
    """

    pipeline: str
    cycle_id: str
    run_id: str
    trigger: str
    drift_share: float | None
    train_rows: int
    holdout_rows: int
    window_sha256: str
    data_from: str
    data_to: str
    metric: str
    cv_score: float
    cv_score_std: float
    model_family: str
    best_params: dict[str, Any]


#: The CV score tag of versions registered before ``lineage.json`` (read, never written).
_LEGACY_CV_SCORE = "automl.cv_score"


def version_cv_score(
    tracker: MlflowTracker, version: ModelVersionInfo, metric: str
) -> float | None:
    """A registered version's CV score in ``metric``: the ``best_cv_<metric>`` of the run that
    registered it (or the tag of a version registered before ``lineage.json``); None when
    there is none (another metric, a version from outside automl)."""
    legacy = version.tags.get(_LEGACY_CV_SCORE)
    if legacy is not None:
        try:
            value = float(legacy)
        except ValueError:
            return None
        return None if math.isnan(value) else value
    if not version.run_id:
        return None
    try:
        score = tracker.run_summary(version.run_id).metrics.get(f"best_cv_{metric}")
    except Exception as exc:  # the run was deleted: no reference score, no performance check
        log.warning("no CV score for v%s: run %s: %s", version.version, version.run_id, exc)
        return None
    return None if score is None or math.isnan(score) else score


def find_by_window(
    tracker: MlflowTracker, model_name: str, window_sha256: str
) -> list[ModelVersionInfo]:
    """Versions of ``model_name`` trained on exactly this window (by its digest), newest first:
    those of the runs tagged with it, and those tagged with it before ``lineage.json``."""
    found = {
        v.version: v
        for run_id in tracker.find_runs(f"tags.`{WINDOW_SHA256}` = '{window_sha256}'")
        for v in tracker.find_run_versions(model_name, run_id)
    }
    for v in tracker.find_versions(model_name, tag=WINDOW_SHA256, value=window_sha256):
        found.setdefault(v.version, v)
    return sorted(found.values(), key=lambda v: int(v.version), reverse=True)


def _short_time(iso: str) -> str:
    """``2026-11-29T11:49:03+00:00`` -> ``2026-11-29 11:49``."""
    return iso[:16].replace("T", " ") if len(iso) >= 16 else iso


def window_text(lineage: Lineage) -> str:
    """The data window in words: rows, when they were received, the holdout."""
    span = f"{_short_time(lineage.data_from)} .. {_short_time(lineage.data_to)}"
    if lineage.data_from[:16] == lineage.data_to[:16]:
        span = _short_time(lineage.data_to)
    return f"{lineage.train_rows} rows received {span} UTC; newest {lineage.holdout_rows} held out"


def record_lineage(
    tracker: MlflowTracker,
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
) -> dict[str, str]:
    """Record a model's lineage on its run before it is registered; return its version tags.

    The run gets ``lineage.json`` (see :class:`Lineage`) and the tag ``automl.window_sha256``
    (so a re-run finds the version even if it crashed right after registering it). The version
    tags are the few a person reads: ``automl.pipeline``, ``automl.trigger``, ``automl.window``
    and ``automl.score`` (the gate's decision adds ``automl.decision`` and rewrites the score).
    """
    lineage = Lineage(
        pipeline=pipeline,
        cycle_id=cycle_id,
        run_id=run_id,
        trigger=trigger or "unknown",
        drift_share=drift_share,
        train_rows=train_rows,
        holdout_rows=holdout_rows,
        window_sha256=window_sha256,
        data_from=data_from,
        data_to=data_to,
        metric=result.metric,
        cv_score=result.best_score,
        cv_score_std=result.best_score_std,
        model_family=result.model_family,
        best_params=dict(result.best_params),
    )
    tracker.log_json(run_id, asdict(lineage), LINEAGE_ARTIFACT)
    tracker.set_tags(run_id, {WINDOW_SHA256: window_sha256})
    return {
        PIPELINE: pipeline,
        TRIGGER: lineage.trigger,
        WINDOW: window_text(lineage),
        SCORE: f"CV {result.metric} {result.best_score:.4f} ± {result.best_score_std:.4f} "
        f"({result.model_family})",
    }


def record_reused(tracker: MlflowTracker, run_id: str, version: str) -> None:
    """Mark a cycle that found its model already registered (a re-run after a crash)."""
    tracker.set_tags(run_id, {REUSED_VERSION: version})


def decision_tags(decision: PromotionDecision) -> dict[str, str]:
    """The version tags that record a decision in the registry: the outcome and the holdout
    scores in words (the whole decision is ``promotion.json`` on the cycle's run)."""
    metric = decision.metric
    score = f"holdout {metric} {decision.challenger_score:.4f}"
    if decision.champion_score is not None:
        score += f" vs {decision.champion_score:.4f} of v{decision.champion_version}"
    gate = decision.gate
    if gate is not None and gate.ci_low is not None and gate.ci_high is not None:
        score += f", gain 95% CI [{gate.ci_low:+.4f}, {gate.ci_high:+.4f}]"
    elif gate is not None and gate.p_value is not None:
        score += f", p = {gate.p_value:.3g}"
    return {DECISION: decision.outcome, SCORE: score}


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
        run_id,
        {
            MODEL_VERSION: decision.challenger_version,
            DECISION: decision.outcome,
            REASON: decision.reason[:5000],
        },
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


def record_holdout(
    tracker: MlflowTracker, run_id: str, model_name: str, version: str, rows: pd.DataFrame
) -> None:
    """Keep a version's holdout rows with it: ``guard/holdout.parquet`` on its run, then the
    version tag ``automl.holdout_stored`` (rows), so a tag always points to a stored file."""
    from automl.data import write_table

    folder, name = HOLDOUT_ARTIFACT.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_table(rows, Path(tmp) / name)
        tracker.log_artifact(run_id, path, artifact_dir=folder)
    tracker.set_version_tags(model_name, version, {HOLDOUT_STORED: str(len(rows))})
