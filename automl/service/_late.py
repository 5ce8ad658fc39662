"""Late labels in the cycle: label files every cycle, waiting for labels before a re-tune, the
label watch (the ``labels_late`` webhook) and the label-free estimate of each drift check.

A pipeline with ``data.id_column`` scores rows before their labels come. Its cycle
(:mod:`automl.service._cycle`) calls these steps:

* :func:`ingest_label_files` after the batches: label files of ``data.labels.landing_dir`` are
  joined to their rows (exactly once, :mod:`automl.data._labels`), and labels that waited too
  long for their row expire even when nothing lands.
* :func:`labels_for_retune` before a re-tune: the window holds labelled rows only, and a
  confirmed drift waits (cycle status ``waiting_for_labels``) until ``training.min_labelled_rows``
  rows from the drift on are labelled; the confirmation is kept in the drift state, so the
  cycle that finds enough labels re-tunes without a fresh confirmation.
* :func:`watch_labels`: the webhook event ``labels_late`` once per outage, when no label came
  for ``data.labels.alert_after_s``.
* :func:`estimate_check` / :func:`record_estimate` / :func:`realize_estimates`: for a
  classifier, the champion's CBPE estimate on the checked rows (calibrated on the champion's
  holdout, cached per version), logged to the cycle's run and kept; when the checked rows'
  labels have come, the realized metric and the estimate's absolute error are logged to the
  same run and kept. Regression is not estimated.
"""

from __future__ import annotations

import json
import logging
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import sqlalchemy as sa

from automl.data import (
    BatchRecord,
    LabelIngestResult,
    LabelStats,
    Schema,
    ValidationRules,
    ingest_labels,
    write_table,
)
from automl.drift import (
    ESTIMATED_METRICS,
    ConfidenceBasedEstimator,
    DriftSignal,
    PerformanceEstimate,
    estimated_performance_drift,
)
from automl.errors import AutomlError
from automl.service._notify import notify
from automl.service._workspace import Workspace
from automl.state import (
    estimates_table,
    label_watch_table,
    load_pipeline_value,
    open_state,
    save_pipeline_row,
    utcnow,
)
from automl.tracking import ModelVersionInfo

log = logging.getLogger(__name__)

#: The cycle status of a re-tune that waits for labels.
WAITING_FOR_LABELS = "waiting_for_labels"


# -- label files -----------------------------------------------------------------------------
def ingest_label_files(ws: Workspace, *, now: float | None = None) -> LabelIngestResult | None:
    """Join the label files of ``data.labels.landing_dir`` to their rows (every cycle).

    Without a label folder (labels come in batches) waiting labels older than
    ``data.max_label_wait_s`` are expired all the same. None for a pipeline without late
    labels or without a label folder.
    """
    policy = ws.label_policy
    if policy is None or ws.labels is None:
        return None
    now = time.time() if now is None else now
    folder = ws.spec.labels_landing_path
    if folder is None:
        ws.labels.expire_waiting(ws.name, max_label_wait_s=policy.max_label_wait_s, now=now)
        return None
    data = ws.spec.data
    result = ingest_labels(
        pipeline=ws.name,
        landing_dir=folder,
        paths=ws.paths,
        ledger=ws.ledger,
        policy=policy,
        rules=ValidationRules.from_spec(data),
        patterns=data.file_patterns,
        settle_s=data.settle_s,
        now=now,
    )
    if result.accepted or result.rejected:
        log.info(
            "[%s] label files: %d accepted, %d quarantined; labels %s",
            ws.name,
            len(result.accepted),
            len(result.rejected),
            result.counts,
        )
    return result


# -- waiting for labels ----------------------------------------------------------------------
@dataclass(frozen=True)
class LabelWait:
    """Whether a re-tune has the labelled rows it needs.

    Attributes:
        n_labelled: Labelled rows counted (from ``since_batch_id`` on; all when None).
        needed: ``training.min_labelled_rows`` (``min_rows`` when unset).
        since_batch_id: First batch of the confirmed drift; None: every batch (no champion
            yet, or a scheduled re-tune).
    """

    n_labelled: int
    needed: int
    since_batch_id: int | None

    @property
    def is_ready(self) -> bool:
        """Enough rows are labelled to re-tune."""
        return self.n_labelled >= self.needed

    def reason(self) -> str:
        """One sentence for the log, the run and the history."""
        where = (
            f"from batch {self.since_batch_id} on" if self.since_batch_id is not None else "in all"
        )
        return (
            f"{self.n_labelled} labelled row(s) {where}, {self.needed} needed "
            "(training.min_labelled_rows); the re-tune waits for labels"
        )


def labels_for_retune(ws: Workspace, *, since_id: int | None) -> LabelWait | None:
    """How many rows a re-tune would have labels for; None without late labels."""
    if ws.labels is None:
        return None
    training = ws.spec.training
    needed = training.min_labelled_rows or training.min_rows
    n_labelled = ws.labels.n_labelled(ws.name, since_batch_id=since_id)
    return LabelWait(n_labelled, needed, since_id)


def waiting_drift(ws: Workspace, champion: ModelVersionInfo | None) -> int | None:
    """The first batch of a confirmed drift whose re-tune waits for labels, if any (only while
    the champion it was confirmed against still serves)."""
    if ws.labels is None or champion is None:
        return None
    state = ws.drift_states.load(ws.name)
    if state.reference_version not in (None, champion.version):
        return None
    return state.waiting_since


# -- the label watch -------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelWatch:
    """What the label watch remembers between cycles.

    Attributes:
        first_seen_s: When the watch first saw rows (the outage clock while no label came).
        alerted_for_s: The quiet-since time of the outage the alert went out for; None when no
            outage is alerted.
    """

    first_seen_s: float | None = None
    alerted_for_s: float | None = None


class LabelWatchStore:
    """The label watch of each pipeline (state database).

    Args:
        url: SQLAlchemy URL of the state database.
    """

    def __init__(self, url: str) -> None:
        self._engine = open_state(url)

    def load(self, pipeline: str) -> LabelWatch:
        """The stored watch (a fresh one when none)."""
        raw = load_pipeline_value(self._engine, label_watch_table.c.state_json, pipeline)
        return LabelWatch(**json.loads(raw)) if raw else LabelWatch()

    def save(self, pipeline: str, watch: LabelWatch) -> None:
        """Store the watch."""
        values = {"state_json": json.dumps(watch.__dict__), "updated_at": utcnow()}
        save_pipeline_row(self._engine, label_watch_table, pipeline, values)


def label_silence(stats: LabelStats, watch: LabelWatch) -> float | None:
    """Since when no label has come: the newest label, or the first rows while none came."""
    return stats.last_label_s if stats.last_label_s is not None else watch.first_seen_s


def watch_labels(ws: Workspace, *, now: float | None = None) -> bool:
    """Send ``labels_late`` once when no label came for ``data.labels.alert_after_s``.

    One alert per outage: the outage is named by the time labels went quiet, and a label that
    arrives ends it (the next silence is a new outage). A webhook that is configured but fails
    is tried again next cycle.

    Returns:
        Whether the alert went out this time.
    """
    labels = ws.spec.data.labels
    limit = labels.alert_after_s if labels is not None else None
    if ws.labels is None or limit is None:
        return False
    now = time.time() if now is None else now
    store = LabelWatchStore(ws.spec.state_url)
    watch = store.load(ws.name)
    stats = ws.labels.label_stats(ws.name)
    if stats.n_rows == 0:
        return False
    if watch.first_seen_s is None:
        watch = replace(watch, first_seen_s=now)
    quiet_since = label_silence(stats, watch)
    assert quiet_since is not None
    sent = False
    if now - quiet_since <= limit:
        if watch.alerted_for_s is not None:
            log.info("[%s] labels arrive again: the labels_late outage is over", ws.name)
        watch = replace(watch, alerted_for_s=None)
    elif watch.alerted_for_s != quiet_since:
        silent_s = now - quiet_since
        log.warning(
            "[%s] no label for %.0f s (data.labels.alert_after_s=%g); %d row(s) wait for theirs",
            ws.name,
            silent_s,
            limit,
            stats.n_waiting_rows,
        )
        payload = {
            "quiet_since_s": quiet_since,
            "silent_s": round(silent_s, 1),
            "alert_after_s": limit,
            "rows_waiting": stats.n_waiting_rows,
            "labelled_share": stats.labelled_share,
        }
        sent = notify(ws.spec, "labels_late", payload)
        configured = bool(ws.spec.notify.webhook_url) and "labels_late" in ws.spec.notify.events
        if sent or not configured:
            watch = replace(watch, alerted_for_s=quiet_since)
    store.save(ws.name, watch)
    return sent


def is_labels_late(ws: Workspace, stats: LabelStats, *, now: float | None = None) -> bool:
    """Whether labels have been quiet for longer than ``data.labels.alert_after_s`` (now, or
    when the last cycle's watch alerted and no label came since)."""
    labels = ws.spec.data.labels
    limit = labels.alert_after_s if labels is not None else None
    if limit is None or stats.n_rows == 0:
        return False
    watch = LabelWatchStore(ws.spec.state_url).load(ws.name)
    quiet_since = label_silence(stats, watch)
    if quiet_since is None:
        return False
    if watch.alerted_for_s is not None and watch.alerted_for_s == quiet_since:
        return True
    now = time.time() if now is None else now
    return now - quiet_since > limit


# -- the label-free estimate -----------------------------------------------------------------
@dataclass(frozen=True)
class CheckEstimate:
    """The champion's estimated metric on the rows of a drift check, and the realized one.

    Attributes:
        id: Row id in the state database.
        cycle_id: The cycle that checked the rows.
        run_id: Its MLflow run (the realized metric is logged there too).
        champion_version: The model estimated.
        batch_ids: The checked batches.
        metric: ``roc_auc`` or ``accuracy``.
        estimate: The CBPE estimate.
        reference_value: The metric on the champion's holdout (the naive estimate).
        n_rows: Rows estimated on.
        checked_s: When (seconds since the epoch).
        realized: The metric on those rows once labelled; None until then.
        n_labelled: Rows the realized metric covers.
        realized_s: When it was realized.
    """

    id: int
    cycle_id: str
    run_id: str | None
    champion_version: str
    batch_ids: tuple[int, ...]
    metric: str
    estimate: float
    reference_value: float
    n_rows: int
    checked_s: float
    realized: float | None = None
    n_labelled: int | None = None
    realized_s: float | None = None

    @property
    def abs_error(self) -> float | None:
        """``|estimate - realized|``; None before the labels came."""
        return None if self.realized is None else abs(self.estimate - self.realized)

    @property
    def naive_abs_error(self) -> float | None:
        """``|reference_value - realized|``: the error of "nothing changed"."""
        return None if self.realized is None else abs(self.reference_value - self.realized)


class EstimateStore:
    """The estimates of every drift check of a workspace's pipelines (state database).

    Args:
        url: SQLAlchemy URL of the state database.
    """

    def __init__(self, url: str) -> None:
        self._engine = open_state(url)

    def add(
        self,
        *,
        pipeline: str,
        cycle_id: str,
        run_id: str | None,
        champion_version: str,
        batch_ids: Sequence[int],
        estimate: PerformanceEstimate,
        now: float,
    ) -> None:
        """Keep a check's estimate until its rows' labels come."""
        with self._engine.begin() as conn:
            conn.execute(
                estimates_table.insert().values(
                    pipeline=pipeline,
                    cycle_id=cycle_id,
                    run_id=run_id,
                    champion_version=champion_version,
                    batch_ids=json.dumps(list(batch_ids)),
                    metric=estimate.metric,
                    estimate=estimate.value,
                    reference_value=estimate.reference_value,
                    n_rows=estimate.n_rows,
                    checked_s=now,
                )
            )

    def realize(self, estimate_id: int, *, realized: float, n_labelled: int, now: float) -> None:
        """Record the realized metric of an estimate."""
        t = estimates_table
        with self._engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.id == estimate_id)
                .values(realized=realized, n_labelled=n_labelled, realized_s=now)
            )

    def list(self, pipeline: str, *, realized: bool | None = None) -> list[CheckEstimate]:
        """A pipeline's estimates, oldest first; ``realized`` True/False filters."""
        t = estimates_table
        query = sa.select(t).where(t.c.pipeline == pipeline).order_by(t.c.id)
        if realized is True:
            query = query.where(t.c.realized_s.is_not(None))
        elif realized is False:
            query = query.where(t.c.realized_s.is_(None))
        with self._engine.connect() as conn:
            rows = [r._mapping for r in conn.execute(query)]
        return [
            CheckEstimate(
                id=int(m["id"]),
                cycle_id=str(m["cycle_id"]),
                run_id=m["run_id"],
                champion_version=str(m["champion_version"]),
                batch_ids=tuple(int(b) for b in json.loads(m["batch_ids"])),
                metric=str(m["metric"]),
                estimate=float(m["estimate"]),
                reference_value=float(m["reference_value"]),
                n_rows=int(m["n_rows"]),
                checked_s=float(m["checked_s"]),
                realized=None if m["realized"] is None else float(m["realized"]),
                n_labelled=None if m["n_labelled"] is None else int(m["n_labelled"]),
                realized_s=None if m["realized_s"] is None else float(m["realized_s"]),
            )
            for m in rows
        ]


#: Calibrations fitted in this process: (state URL, pipeline, version) -> estimator.
_CALIBRATIONS: dict[tuple[str, str, str], ConfidenceBasedEstimator] = {}


def keep_holdout(ws: Workspace, version: str, holdout: pd.DataFrame) -> None:
    """Keep the rows a version was judged on (late labels): its CBPE calibration set."""
    if ws.labels is None:
        return
    path = ws.paths.reference / f"v{version}.holdout.parquet"
    if not path.exists():
        write_table(holdout, path)


def estimated_metric(ws: Workspace) -> str | None:
    """The metric a late-label classifier's checks estimate: the pipeline's metric when it is
    ``roc_auc`` or ``accuracy``, else ``roc_auc``; None for regression."""
    if ws.spec.data.task != "classification":
        return None
    return ws.spec.metric if ws.spec.metric in ESTIMATED_METRICS else "roc_auc"


def _calibration(
    ws: Workspace, champion: ModelVersionInfo, schema: Schema, model: Any
) -> ConfidenceBasedEstimator | None:
    """The champion's CBPE calibration on its holdout: fitted once per version, kept in memory
    and next to the holdout (``reference/<pipeline>/v<N>.cbpe.pkl``, written by this
    workspace only)."""
    key = (ws.spec.state_url, ws.name, champion.version)
    if key in _CALIBRATIONS:
        return _CALIBRATIONS[key]
    holdout_path = ws.paths.reference / f"v{champion.version}.holdout.parquet"
    cache = ws.paths.reference / f"v{champion.version}.cbpe.pkl"
    if cache.exists():
        with cache.open("rb") as fh:
            estimator: ConfidenceBasedEstimator = pickle.load(fh)
    elif holdout_path.exists():
        holdout = pd.read_parquet(holdout_path)
        proba = model.predict_proba(holdout[schema.feature_names])
        estimator = ConfidenceBasedEstimator().fit(
            proba, holdout[schema.target].to_numpy(), classes=list(model.classes_)
        )
        with cache.open("wb") as fh:
            pickle.dump(estimator, fh)
    else:
        log.info(
            "[%s] no holdout of champion v%s at %s: no performance estimate (a champion "
            "trained before late labels, or elsewhere)",
            ws.name,
            champion.version,
            holdout_path,
        )
        return None
    _CALIBRATIONS[key] = estimator
    return estimator


def estimate_check(
    ws: Workspace, schema: Schema, champion: ModelVersionInfo, current: pd.DataFrame
) -> PerformanceEstimate | None:
    """The champion's label-free estimate on the checked rows (late-label classifiers only).

    None without late labels, for regression, for a champion without a kept holdout, or when
    the holdout cannot calibrate (one class only): the check goes on without it.
    """
    metric = estimated_metric(ws)
    if ws.labels is None or metric is None or not len(current):
        return None
    model = ws.tracker.load_model(champion)
    if not hasattr(model, "predict_proba"):
        return None
    try:
        estimator = _calibration(ws, champion, schema, model)
        if estimator is None:
            return None
        proba = model.predict_proba(current[schema.feature_names])
        return estimator.estimate(proba, metric=metric)  # type: ignore[arg-type]
    except (AutomlError, ValueError) as exc:
        log.warning("[%s] no performance estimate: %s", ws.name, exc)
        return None


def estimate_signals(ws: Workspace, estimate: PerformanceEstimate | None) -> list[DriftSignal]:
    """The estimate as a drift signal when ``drift.estimated_performance_tolerance`` is set."""
    tolerance = ws.spec.drift.estimated_performance_tolerance
    if estimate is None or tolerance is None:
        return []
    return [estimated_performance_drift(estimate, tolerance=tolerance)]


def record_estimate(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    champion: ModelVersionInfo,
    pending: Sequence[BatchRecord],
    estimate: PerformanceEstimate,
    *,
    now: float | None = None,
) -> None:
    """Log the estimate to the cycle's run and keep it until the rows' labels come."""
    now = time.time() if now is None else now
    ws.tracker.log_metrics(
        run_id,
        {
            f"estimated_{estimate.metric}": estimate.value,
            f"estimated_{estimate.metric}_reference": estimate.reference_value,
            "estimated_rows": estimate.n_rows,
        },
    )
    EstimateStore(ws.spec.state_url).add(
        pipeline=ws.name,
        cycle_id=cycle_id,
        run_id=run_id,
        champion_version=champion.version,
        batch_ids=[r.id for r in pending],
        estimate=estimate,
        now=now,
    )


def realize_estimates(ws: Workspace, *, now: float | None = None) -> list[CheckEstimate]:
    """Score the estimates whose rows' labels came: the realized metric and the absolute error,
    logged to the run that made the estimate and kept.

    An estimate is realized once every checked row is labelled, or once
    ``data.max_label_wait_s`` passed since the check with the labels that came by then.

    Returns:
        The estimates realized now.
    """
    if ws.labels is None:
        return []
    from automl.tuning import score_model

    now = time.time() if now is None else now
    store = EstimateStore(ws.spec.state_url)
    open_ = store.list(ws.name, realized=False)
    if not open_:
        return []
    schema = ws.ledger.get_schema(ws.name)
    if schema is None:
        return []
    accepted = {r.id: r for r in ws.ledger.records(ws.name, status="accepted")}
    waited = ws.spec.data.max_label_wait_s
    per_batch = ws.labels.labelled_per_batch(ws.name)  # one query: which checks can be scored
    done: list[CheckEstimate] = []
    for estimate in open_:
        n_labelled = sum(per_batch.get(b, 0) for b in estimate.batch_ids)
        is_due = now - estimate.checked_s >= waited
        if not n_labelled or (n_labelled < estimate.n_rows and not is_due):
            continue
        records = [accepted[b] for b in estimate.batch_ids if b in accepted]
        rows = ws.labels.load_labelled(records)
        try:
            version = ws.tracker.get_version(ws.spec.model_name, estimate.champion_version)
            model = ws.tracker.load_model(version)
            frame = rows[[*schema.feature_names, schema.target]]
            realized = score_model(model, frame, target=schema.target, metric=estimate.metric)
        except (AutomlError, ValueError) as exc:
            log.warning("[%s] estimate of cycle %s not scored: %s", ws.name, estimate.cycle_id, exc)
            if is_due:  # it will not get better: close it without a value
                store.realize(estimate.id, realized=float("nan"), n_labelled=len(rows), now=now)
            continue
        store.realize(estimate.id, realized=realized, n_labelled=len(rows), now=now)
        result = replace(estimate, realized=realized, n_labelled=len(rows), realized_s=now)
        if estimate.run_id is not None:
            try:
                ws.tracker.log_metrics(
                    estimate.run_id,
                    {
                        f"realized_{estimate.metric}": realized,
                        "estimate_abs_error": result.abs_error or 0.0,
                        "naive_abs_error": result.naive_abs_error or 0.0,
                        "realized_rows": len(rows),
                    },
                )
            except AutomlError as exc:  # the run may have been deleted
                log.warning("[%s] could not log to run %s: %s", ws.name, estimate.run_id, exc)
        log.info(
            "[%s] cycle %s: estimated %s %.4f, realized %.4f on %d labelled row(s) "
            "(error %.4f; naive %.4f)",
            ws.name,
            estimate.cycle_id,
            estimate.metric,
            estimate.estimate,
            realized,
            len(rows),
            result.abs_error,
            result.naive_abs_error,
        )
        done.append(result)
    return done


# -- status ----------------------------------------------------------------------------------
def label_status(ws: Workspace, *, last_status: str | None = None) -> dict[str, Any] | None:
    """A late-label pipeline's labels for ``automl status`` and ``/status``; None without.

    Keys: ``labelled_share``, ``rows``, ``labelled_rows``, ``rows_waiting``,
    ``labels_waiting_for_rows``, ``conflicts``, ``expired``, ``lag_p50_s``, ``lag_p95_s``,
    ``last_label_s``, ``labels_late`` (quiet beyond ``data.labels.alert_after_s``),
    ``waiting_for_labels`` (a re-tune waits: a drift kept confirmed, or the last cycle said
    so), ``labelled_since_drift`` and ``labels_needed`` while a drift waits, and the latest
    realized estimate (``estimate``, ``realized``, ``estimate_abs_error``).
    """
    if ws.labels is None:
        return None
    stats = ws.labels.label_stats(ws.name)
    state = ws.drift_states.load(ws.name)
    is_waiting = state.waiting_since is not None or last_status == WAITING_FOR_LABELS
    out: dict[str, Any] = {
        "labelled_share": stats.labelled_share,
        "rows": stats.n_rows,
        "labelled_rows": stats.n_labelled,
        "rows_waiting": stats.n_waiting_rows,
        "labels_waiting_for_rows": stats.n_waiting_labels,
        "conflicts": stats.n_conflicts,
        "expired": stats.n_expired,
        "lag_p50_s": stats.lag_p50_s,
        "lag_p95_s": stats.lag_p95_s,
        "last_label_s": stats.last_label_s,
        "labels_late": is_labels_late(ws, stats),
        "waiting_for_labels": is_waiting,
    }
    if state.waiting_since is not None:
        wait = labels_for_retune(ws, since_id=state.waiting_since)
        assert wait is not None
        out["labelled_since_drift"], out["labels_needed"] = wait.n_labelled, wait.needed
    realized = EstimateStore(ws.spec.state_url).list(ws.name, realized=True)
    if realized and realized[-1].realized is not None:
        last = realized[-1]
        out.update(
            estimate_metric=last.metric,
            estimate=last.estimate,
            realized=last.realized,
            estimate_abs_error=last.abs_error,
        )
    return out
