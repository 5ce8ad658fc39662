"""One cycle of a pipeline: ingest, check drift, re-tune, register, judge, promote, record.

The re-tune (search, registration) and the judge run in a child process by default
(:mod:`automl.service._retune`); the alias move, the shadow state and the records stay here.

:func:`run_cycle` takes the pipeline's lock and records the outcome; :func:`_cycle` is the story
itself, one screen that calls each step by name. The steps are plain functions with typed inputs
and frozen results (:class:`DriftOutcome`, :class:`Window`, :class:`Registered`,
:class:`Shadowed`, :class:`~automl.tracking.PromotionDecision`), imported from
:mod:`automl.service._steps`, which re-exports them from one module per group of steps
(``_steps_drift``, ``_steps_tune``, ``_steps_judge``, ``_steps_shadow``, the results in
``_steps_types``); what a step writes to MLflow is in :mod:`automl.service._record`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from automl.config import PipelineSpec
from automl.data import IngestResult, LabelIngestResult, LabelStats, load_batches
from automl.drift import PerformanceEstimate
from automl.errors import AutomlError
from automl.service import _record as record
from automl.service._history import CycleResult
from automl.service._late import (
    WAITING_FOR_LABELS,
    LabelWait,
    estimate_check,
    estimate_signals,
    ingest_label_files,
    labels_for_retune,
    realize_estimates,
    record_estimate,
    waiting_drift,
    watch_labels,
)
from automl.service._lock import pipeline_lock
from automl.service._logging import cycle_context
from automl.service._notify import notify
from automl.service._poison import quarantine_poison
from automl.service._recover import recover_interrupted
from automl.service._retune import judge_again, retune
from automl.service._steps import (
    CycleInterruptedError,
    DriftOutcome,
    Registered,
    Shadowed,
    champion_holdout,
    check_drift,
    drift_event,
    find_registered,
    ingest,
    keep_out,
    promote,
    save_drift_state,
    score_shadow,
    shadow_has_news,
    start_shadow,
    training_window,
)
from automl.service._workspace import Workspace, open_workspace
from automl.state import utcnow
from automl.tracking import CHAMPION, MlflowTracker, PromotionDecision, reconcile

log = logging.getLogger(__name__)


def new_cycle_id() -> str:
    """A sortable unique cycle id: UTC time to the microsecond plus a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"


@dataclass
class _Trail:
    """The step results of a running cycle, kept so a failure still records what was done."""

    pipeline: str
    cycle_id: str
    metric: str
    started_at: str = field(default_factory=utcnow)
    ingested: IngestResult | None = None
    labelled: LabelIngestResult | None = None
    waiting: LabelWait | None = None
    estimate: PerformanceEstimate | None = None
    stats: LabelStats | None = None
    n_rows: int = 0
    run_id: str | None = None
    verdict: str | None = None
    drift: DriftOutcome | None = None
    registered: Registered | None = None
    decision: PromotionDecision | None = None
    shadow: Shadowed | None = None
    champion_version: str | None = None

    def keep_registered(self, registered: Registered) -> None:
        """Note the re-tune's version as soon as it is registered (a judge that fails after
        it still leaves the version in the failed cycle's record)."""
        self.registered = registered

    def result(self, *, status: str | None = None, error: str | None = None) -> CycleResult:
        """The cycle's result: ``status`` given, else what the steps that ran say."""
        if status is None and self.waiting is not None:
            status = WAITING_FOR_LABELS
        if status is None:
            status = "retuned" if self.registered else ("no_drift" if self.run_id else "no_data")
        report = self.drift.report if self.drift else None
        tuning = self.registered.tuning if self.registered else None
        decision = self.decision
        version = self.registered.version.version if self.registered else None
        promoted = decision.is_promoted if decision else None
        if self.registered and decision is None and version == self.champion_version:
            promoted = True  # an interrupted cycle had finished promoting it
        return CycleResult(
            pipeline=self.pipeline,
            cycle_id=self.cycle_id,
            status=status,  # type: ignore[arg-type]
            started_at=self.started_at,
            finished_at=utcnow(),
            accepted_files=tuple(r.file_name for r in self.ingested.accepted)
            if self.ingested
            else (),
            rejected_files=tuple(r.file_name for r in self.ingested.rejected)
            if self.ingested
            else (),
            n_rows=self.n_rows,
            drift_verdict=self.verdict,
            share_drifted=report.share_drifted if report else None,
            drifted_columns=tuple(report.drifted_columns) if report else (),
            n_trials=tuning.n_trials if tuning else 0,
            best_cv_score=tuning.best_score if tuning else None,
            default_cv_score=tuning.default_score if tuning else None,
            challenger_score=decision.challenger_score if decision else None,
            champion_score=decision.champion_score if decision else None,
            model_version=version,
            is_promoted=promoted,
            champion_version=self.champion_version,
            run_id=self.run_id,
            error=error,
            metric=self.metric,
            shadow_version=self.shadow.version if self.shadow else None,
            shadow_outcome=self.shadow.decision.outcome if self.shadow else None,
            shadow_batches=self.shadow.n_batches if self.shadow else 0,
            labels_joined=self.labelled.counts.joined if self.labelled else 0,
            labelled_rows=self.waiting.n_labelled if self.waiting else None,
            labels_needed=self.waiting.needed if self.waiting else None,
            estimated_metric=self.estimate.metric if self.estimate else None,
            estimated_score=self.estimate.value if self.estimate else None,
            estimated_reference=self.estimate.reference_value if self.estimate else None,
            labelled_share=self.stats.labelled_share if self.stats else None,
            rows_waiting_label=self.stats.n_waiting_rows if self.stats else None,
            label_lag_p50_s=self.stats.lag_p50_s if self.stats else None,
            label_lag_p95_s=self.stats.lag_p95_s if self.stats else None,
        )


# -- the cycle -------------------------------------------------------------------------------
def _cycle(
    ws: Workspace, trail: _Trail, *, force_retune: bool, stop: threading.Event | None
) -> None:
    """Ingest -> drift -> tune -> register -> judge -> promote -> record, for one pipeline."""
    spec, tracker = ws.spec, ws.tracker
    trail.ingested = ingest(ws)
    trail.labelled = ingest_label_files(ws)  # late labels: join label files to their rows
    reconcile(spec, tracker, ws.promotions)  # close alias moves a crash left half-done
    if recover_interrupted(ws, trail.cycle_id):  # runs a crash left open: failed cycles
        quarantine_poison(ws, cycle_id=trail.cycle_id)
    realize_estimates(ws)  # late labels: estimates of earlier checks whose labels came
    watch_labels(ws)  # late labels: one webhook when labels stop coming
    pending = ws.ledger.pending(ws.name)
    schema = ws.ledger.get_schema(ws.name)
    champion = tracker.get_alias(spec.model_name, CHAMPION)
    trail.champion_version = champion.version if champion else None
    has_data = bool(ws.ledger.records(ws.name, status="accepted"))
    waited_since = waiting_drift(ws, champion)  # a confirmed drift waiting for labels
    if schema is None or not has_data:
        return
    if not pending and champion and not force_retune and shadow_has_news(ws):
        # Late labels came for the rows a challenger in shadow waits on (or its wait is over):
        # judge it, nothing else; a re-tune that waits for labels goes on next cycle.
        run_id = trail.run_id = record.start_cycle_run(tracker, ws.name, trail.cycle_id, pending)
        trail.shadow = score_shadow(ws, run_id, trail.cycle_id, schema, champion, load_batches([]))
        final = tracker.get_alias(spec.model_name, CHAMPION)
        trail.champion_version = final.version if final else None
        record.end_cycle_run(tracker, run_id, "FINISHED")
        return
    if not pending and champion and not force_retune and waited_since is None:
        return  # nothing new to look at
    if not pending and (champion is None or waited_since is not None) and not force_retune:
        wait = labels_for_retune(ws, since_id=waited_since)
        if wait is not None and not wait.is_ready:  # still waiting: no run until labels come
            trail.waiting = wait
            return
    current = load_batches(pending)
    trail.n_rows = len(current)
    run_id = trail.run_id = record.start_cycle_run(tracker, ws.name, trail.cycle_id, pending)

    since_id: int | None = None
    if champion is None:
        trail.verdict = "no_champion"
        record.record_verdict(tracker, run_id, trail.verdict)
    elif not pending and waited_since is not None:  # the labels a waiting drift needed came
        trail.verdict = "drift"
        record.record_verdict(tracker, run_id, trail.verdict)
        since_id = waited_since
    elif not pending:  # a scheduled re-tune with nothing new: tune on the newest rows
        trail.verdict = "scheduled"
        record.record_verdict(tracker, run_id, trail.verdict)
    else:
        if ws.spec.registry.shadow_batches:  # evidence first: the challenger may now serve
            trail.shadow = score_shadow(ws, run_id, trail.cycle_id, schema, champion, current)
            champion = tracker.get_alias(spec.model_name, CHAMPION) or champion
        trail.estimate = estimate_check(ws, schema, champion, current)
        drift = check_drift(
            ws,
            run_id,
            trail.cycle_id,
            schema,
            champion,
            pending,
            current,
            extra_signals=estimate_signals(ws, trail.estimate),
        )
        if trail.estimate is not None:
            record_estimate(ws, run_id, trail.cycle_id, champion, pending, trail.estimate)
        trail.drift = drift
        trail.verdict = drift.decision.level
        if drift.decision.level == "drift":  # "warning" (unconfirmed, cool-down) does not
            notify(
                spec, "drift", {"cycle_id": trail.cycle_id, "run_id": run_id, **drift_event(drift)}
            )
            since_id = drift.decision.since_batch_id or pending[0].id
        waited_since = waiting_drift(ws, champion)  # a promotion in shadow clears it
        if waited_since is not None:  # confirmed before, still waiting: re-tune from there
            since_id = waited_since if since_id is None else min(since_id, waited_since)
            trail.verdict = "drift"
    is_retune = champion is None or not pending or since_id is not None or force_retune

    if is_retune:  # late labels: a re-tune needs its labelled rows
        wait = labels_for_retune(ws, since_id=since_id)
        if wait is not None and not wait.is_ready:
            trail.waiting = wait
            record.record_waiting(tracker, run_id, wait.n_labelled, wait.needed, wait.reason())
            log.info("[%s %s] %s", ws.name, trail.cycle_id, wait.reason())
            is_retune = False
    if is_retune:
        # The champion's own holdout stays out of the challenger's training: the evidence of
        # the old-population guardrail (off: None, and the window is unchanged).
        stored = champion_holdout(ws, schema, champion)
        window = keep_out(ws, schema, training_window(ws, since_id=since_id), stored)
        registered = find_registered(ws, run_id, window)
        if registered is None:  # tune, log, register and judge: in a child process by default
            trail.registered, decision = retune(
                ws,
                run_id,
                trail.cycle_id,
                schema,
                window,
                champion=champion,
                stored=stored,
                trigger=trail.verdict,
                drift=trail.drift,
                stop=stop,
                on_registered=trail.keep_registered,
            )
        else:  # registered by an interrupted earlier cycle: judged again (in a child too)
            trail.registered = registered
            decision = judge_again(ws, schema, registered, champion, window, stored, stop=stop)
        if decision is not None:  # None: the version is the champion already
            if decision.is_promoted and champion is not None and spec.registry.shadow_batches:
                decision = start_shadow(ws, decision, trail.cycle_id)
            trail.decision = decision
            promote(ws, decision, trail.cycle_id)
            record.record_decision(tracker, run_id, decision)

    waits = trail.waiting is not None and since_id is not None and champion is not None
    if pending or trail.registered is not None or waits:
        # A scheduled re-tune on old rows leaves the hysteresis as it is; a drift whose
        # re-tune waits for labels is kept confirmed.
        result = trail.result()
        promoted = result.model_version if result.is_promoted else None
        save_drift_state(
            ws,
            trail.drift,
            is_retuned=trail.registered is not None and (bool(pending) or since_id is not None),
            promoted=promoted,
            waiting_since=since_id if waits else None,
        )
    ws.ledger.mark_checked(ws.name, [r.id for r in pending], trail.cycle_id)  # last: a crash
    final = tracker.get_alias(spec.model_name, CHAMPION)  # leaves the batches pending
    trail.champion_version = final.version if final else None
    _close_run(tracker, trail, "FINISHED", trail.result())


def run_cycle(
    spec: PipelineSpec,
    *,
    cycle_id: str | None = None,
    raise_on_failure: bool = True,
    force_retune: bool = False,
    stop: threading.Event | None = None,
    lock: bool = True,
) -> CycleResult:
    """Run one cycle of a pipeline and record it in the workspace history.

    New files in the landing directory are ingested (bad ones quarantined). When there is no
    champion yet, a model is tuned on the accepted data. Otherwise the new batches are compared
    with the champion's training rows; on drift a model is tuned on the data since the drift,
    registered, and promoted only if it beats the champion on the same fresh holdout.

    Args:
        spec: The pipeline.
        cycle_id: Id to use (default: a new sortable id).
        raise_on_failure: Raise when the cycle fails (the CLI); False returns the ``failed``
            result instead (the scheduler, which must keep running).
        force_retune: Re-tune even without drift (a scheduled re-tune), on the newest rows.
        stop: When set during tuning, the search ends after the current trial and the cycle
            ends ``interrupted`` (its MLflow run KILLED, its batches still pending).
        lock: Take the pipeline's lock first (see :func:`pipeline_lock`); when another
            instance holds it, return a ``skipped`` result at once.

    Returns:
        What the cycle did.

    Raises:
        AutomlError: The cycle failed and ``raise_on_failure`` is set. Either way a failed
            cycle is recorded as ``failed`` in the history, its MLflow run (if any) ends as
            FAILED and its batches stay pending for the next cycle.
    """
    cycle_id = cycle_id or new_cycle_id()
    if lock:
        with pipeline_lock(spec) as acquired:
            if not acquired:
                log.info("[%s] another instance holds the pipeline's lock; skipping", spec.name)
                now = utcnow()
                return CycleResult(spec.name, cycle_id, "skipped", now, now)
            return run_cycle(
                spec,
                cycle_id=cycle_id,
                raise_on_failure=raise_on_failure,
                force_retune=force_retune,
                stop=stop,
                lock=False,
            )
    ws = open_workspace(spec)
    trail = _Trail(spec.name, cycle_id, spec.metric)
    try:
        with cycle_context(spec.name, cycle_id):
            _cycle(ws, trail, force_retune=force_retune, stop=stop)
            if ws.labels is not None:
                trail.stats = ws.labels.label_stats(ws.name)
            result = trail.result()
            log.info(
                "cycle %s: %d new file(s), %d quarantined, drift %s, champion v%s",
                result.status,
                len(result.accepted_files),
                len(result.rejected_files),
                result.drift_verdict,
                result.champion_version,
            )
    except CycleInterruptedError as exc:
        log.warning("[%s %s] %s", spec.name, cycle_id, exc)
        result = trail.result(status="interrupted", error=str(exc))
        _close_run(ws.tracker, trail, "KILLED", result, quiet=True)
        ws.history.record(result)
        return result
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        # An AutomlError says what and where in one line; anything else is a bug: traceback.
        report = log.error if isinstance(exc, AutomlError) else log.exception
        report("[%s %s] cycle failed: %s", spec.name, cycle_id, message)
        result = trail.result(status="failed", error=message)
        _close_run(ws.tracker, trail, "FAILED", result, quiet=True)
        ws.history.record(result)
        quarantine_poison(ws, cycle_id=cycle_id)  # a batch that fails every cycle goes
        notify(spec, "failure", {"cycle_id": cycle_id, "error": message})
        if not raise_on_failure:
            return result
        if isinstance(exc, AutomlError):
            raise
        raise AutomlError(f"pipeline {spec.name!r} cycle {cycle_id} failed: {message}") from exc
    ws.history.record(result)
    return result


def _close_run(
    tracker: MlflowTracker, trail: _Trail, status: str, result: CycleResult, *, quiet: bool = False
) -> None:
    """End the cycle's run, named and described by ``result`` (``quiet``: a failure to reach
    MLflow is logged, not raised, as the cycle has already failed)."""
    if trail.run_id is None:
        return
    try:
        record.end_cycle_run(
            tracker,
            trail.run_id,
            status,
            error=result.error,
            result=result,
            decision=trail.decision,
            version=trail.registered.version if trail.registered else None,
        )
    except Exception:  # MLflow may be the thing that is down
        if not quiet:
            raise
        log.warning(
            "[%s %s] could not mark the MLflow run %s", trail.pipeline, trail.cycle_id, status
        )
