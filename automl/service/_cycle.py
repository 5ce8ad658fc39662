"""One cycle of a pipeline: ingest, check drift, re-tune, register, judge and promote.

``run_cycle`` is a plain function: the CLI runs it once, the scheduler calls it on a schedule,
tests call it directly. It combines the capabilities; none of them knows about the others.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from automl.config import PipelineSpec
from automl.data import (
    BatchLedger,
    BatchRecord,
    PipelinePaths,
    Schema,
    frame_sha256,
    ingest_landing,
    load_batches,
    select_window,
    split_holdout,
    utcnow,
    window_time_range,
    write_table,
)
from automl.drift import (
    DriftReport,
    DriftSignal,
    EvidentlyDriftDetector,
    Hysteresis,
    HysteresisDecision,
    performance_drift,
    render_drift_html,
    sensitivity_weights,
)
from automl.errors import AutomlError
from automl.service._audit import PromotionLog
from automl.service._drift_state import DriftStateStore
from automl.service._history import CycleHistory, CycleResult
from automl.service._lock import pipeline_lock
from automl.service._logging import cycle_context
from automl.service._notify import notify
from automl.service._promote import judge_and_promote, reconcile
from automl.service._tuning_log import log_tuning_result, trial_logger
from automl.tracking import CHAMPION, MlflowTracker, ModelVersionInfo
from automl.tuning import (
    SearchConfig,
    TrialResult,
    TuningResult,
    latest_study,
    tune,
    tune_distributed,
)

log = logging.getLogger(__name__)

#: Where a distributed re-tune leaves its training rows for the workers (an artifact of the
#: cycle's MLflow run), and the study attributes that point workers to them.
ROWS_ARTIFACT = "tuning/train.parquet"
PARENT_RUN_ATTR = "automl.parent_run_id"
ROWS_ATTR = "automl.rows_artifact"


def new_cycle_id() -> str:
    """A sortable unique cycle id: UTC time to the microsecond plus a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"


def search_config(spec: PipelineSpec, schema: Schema) -> SearchConfig:
    """What a pipeline's re-tune searches: the schema's columns and the spec's ``tuning``.

    Raises:
        TuningError: The spec's tuning section does not fit the schema (e.g. a metric of the
            other task, the target among the features).
    """
    tuning = spec.tuning
    return SearchConfig(
        target=schema.target,
        task=schema.task,
        numeric=schema.numeric,
        categorical=schema.categorical,
        metric=spec.metric,
        cv=tuning.cv,
        seed=tuning.seed,
        strategy=tuning.strategy,
        models=tuning.models,
        search_space=tuning.search_space,
        grid=tuning.grid,
        pruner=tuning.pruner,
        is_time_ordered=tuning.split == "time",
    )


def make_tracker(spec: PipelineSpec) -> MlflowTracker:
    """The MLflow adapter for a pipeline (local artifact root when tracking to a local file)."""
    local = spec.mlflow.tracking_uri is None
    return MlflowTracker(
        spec.tracking_uri,
        spec.experiment_name,
        artifact_location=spec.artifact_location if local else None,
    )


class _Cycle:
    """State of one running cycle; split into steps so each reads on its own."""

    def __init__(
        self,
        spec: PipelineSpec,
        cycle_id: str,
        *,
        force_retune: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.spec = spec
        self.cycle_id = cycle_id
        self.force_retune = force_retune
        self.stop = stop
        self.paths = PipelinePaths(spec.workspace_dir, spec.name)
        self.ledger = BatchLedger(spec.state_url)
        self.tracker = make_tracker(spec)
        self.audit = PromotionLog(spec.state_url)
        self.report_dir = self.paths.reports / cycle_id
        self.result = CycleResult(
            pipeline=spec.name,
            cycle_id=cycle_id,
            status="no_data",
            started_at=utcnow(),
            finished_at=utcnow(),
            metric=spec.metric,
        )
        self.run_id: str | None = None

    def update(self, **changes: Any) -> None:
        self.result = replace(self.result, **changes)

    # -- steps -------------------------------------------------------------------------
    def ingest(self) -> None:
        spec = self.spec
        outcome = ingest_landing(
            pipeline=spec.name,
            landing_dir=spec.landing_path,
            paths=self.paths,
            ledger=self.ledger,
            target=spec.data.target,
            task=spec.data.task,
            patterns=spec.data.file_patterns,
        )
        self.update(
            accepted_files=tuple(r.file_name for r in outcome.accepted),
            rejected_files=tuple(r.file_name for r in outcome.rejected),
        )

    def reference_for(self, champion: ModelVersionInfo, pending_ids: set[int]) -> pd.DataFrame:
        path = self.paths.reference / f"v{champion.version}.parquet"
        if path.exists():
            return pd.read_parquet(path)
        # The champion was not trained by this workspace (or its file is gone): compare with
        # the newest rows checked before, so drift still means "changed since last time".
        log.warning(
            "[%s %s] reference of champion v%s not found at %s; using recent checked rows",
            self.spec.name,
            self.cycle_id,
            champion.version,
            path,
        )
        accepted = self.ledger.records(self.spec.name, status="accepted")
        earlier = [r for r in accepted if r.id not in pending_ids]
        return load_batches(earlier).tail(self.spec.training.max_rows)

    def champion_evidence(
        self,
        schema: Schema,
        champion: ModelVersionInfo,
        reference: pd.DataFrame,
        current: pd.DataFrame,
    ) -> tuple[dict[str, float] | None, tuple[Any, Any] | None, list[DriftSignal]]:
        """What the champion adds to a drift check: column weights, its predictions on the
        reference and the new rows, and its performance on the new (labelled) rows."""
        drift, features, target = self.spec.drift, schema.feature_names, schema.target
        needs_weights = drift.policy == "weighted" and drift.weights is None
        if not (needs_weights or drift.prediction_drift or drift.performance_tolerance is not None):
            return drift.weights, None, []
        from automl.tuning import GREATER_IS_BETTER, score_model

        model = self.tracker.load_model(champion)
        classify = schema.task == "classification" and hasattr(model, "predict_proba")

        def predict(frame: pd.DataFrame) -> Any:
            rows = frame[features]
            return model.predict_proba(rows) if classify else model.predict(rows)

        weights = drift.weights
        if needs_weights:
            weights = sensitivity_weights(predict, reference, features, seed=self.spec.tuning.seed)
        predictions = None
        if drift.prediction_drift:
            ref_out, cur_out = predict(reference), predict(current)
            if classify and ref_out.shape[1] == 2:  # binary: the positive-class probability
                predictions = (ref_out[:, 1], cur_out[:, 1])
            elif classify:  # multiclass: the predicted class
                predictions = (model.predict(reference[features]), model.predict(current[features]))
            else:
                predictions = (ref_out, cur_out)
        signals: list[DriftSignal] = []
        validation = champion.tags.get("automl.cv_score")
        if drift.performance_tolerance is not None and validation and target in current.columns:
            metric = self.spec.metric
            try:
                now_score = score_model(model, current, target=target, metric=metric)
            except ValueError as exc:  # e.g. one class only in the batch: no AUC to compare
                log.warning("[%s %s] no performance check: %s", self.spec.name, self.cycle_id, exc)
            else:
                signals.append(
                    performance_drift(
                        reference_score=float(validation),
                        current_score=now_score,
                        tolerance=drift.performance_tolerance,
                        greater_is_better=GREATER_IS_BETTER[metric],
                        metric=metric,
                    )
                )
        return weights, predictions, signals

    def check_drift(
        self,
        schema: Schema,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        champion: ModelVersionInfo,
        first_batch_id: int,
    ) -> tuple[DriftReport, HysteresisDecision]:
        spec, run_id = self.spec, self.run_id
        assert run_id is not None
        columns = spec.drift.columns or tuple(schema.feature_names)
        unknown = [c for c in columns if c not in schema.feature_names]
        if unknown:
            raise AutomlError(
                f"drift.columns names unknown columns {unknown}; features: {schema.feature_names}"
            )
        stray = sorted(set(spec.drift.per_column) - set(columns) - {schema.target})
        if stray:
            raise AutomlError(
                f"drift.per_column names columns that are not checked: {stray}; "
                f"checked: {list(columns)}"
            )
        numeric = [c for c in schema.numeric if c in columns]
        categorical = [c for c in schema.categorical if c in columns]
        detector = EvidentlyDriftDetector.from_spec(spec.drift, seed=spec.tuning.seed)
        weights, predictions, signals = self.champion_evidence(schema, champion, reference, current)
        report = detector.detect(
            reference,
            current,
            numeric=numeric,
            categorical=categorical,
            weights=weights,
            target=schema.target if spec.drift.target_drift else None,
            target_kind="categorical" if schema.task == "classification" else "numeric",
            predictions=predictions,
            signals=signals,
        )
        # Hysteresis: the check is evidence; the pipeline's state decides whether to re-tune.
        hysteresis = Hysteresis.from_spec(spec.drift.hysteresis)
        state = hysteresis.rebase(DriftStateStore(spec.state_url).load(spec.name), champion.version)
        decision = hysteresis.observe(
            state,
            is_drifted=report.is_drifted,
            is_warning=report.level == "warning",
            now=time.time(),
            batch_id=first_batch_id,
        )
        self.report_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "pipeline": spec.name,
            "cycle_id": self.cycle_id,
            **report.to_dict(state=decision.level),
            "state_reason": decision.reason,
        }
        self.tracker.log_json(run_id, payload, "drift.json")
        (self.report_dir / "drift.json").write_text(
            json.dumps(payload, indent=2, default=str), encoding="utf-8"
        )
        self.tracker.log_metrics(
            run_id,
            {
                "drift_score": report.score,
                "drift_share_drifted": report.share_drifted,
                "drift_n_drifted_columns": len(report.drifted_columns),
                **{f"drift_score.{c.column}": c.score for c in report.columns},
            },
        )
        self.tracker.set_tags(
            run_id,
            {
                "automl.drift_verdict": decision.level,
                "automl.drift_check": report.level,
                "automl.drift_reason": decision.reason[:5000],
                "automl.drift_signals": ",".join(report.fired_signals),
                "automl.drifted_columns": ",".join(report.drifted_columns),
            },
        )
        html_mode = spec.drift.html_report
        if html_mode == "always" or (html_mode == "on_drift" and report.is_drifted):
            html = render_drift_html(
                reference,
                current,
                self.report_dir / "drift.html",
                numeric=numeric,
                categorical=categorical,
                method=spec.drift.method,
                threshold=spec.drift.threshold,
                drift_share=spec.drift.drift_share,
                per_column=detector.per_column,
            )
            self.tracker.log_artifact(run_id, html)
        self.update(
            drift_verdict=decision.level,
            share_drifted=report.share_drifted,
            drifted_columns=tuple(report.drifted_columns),
        )
        return report, decision

    def save_drift_state(self, decision: HysteresisDecision | None) -> None:
        """Store the hysteresis state; a re-tune starts the cool-down, a promotion rebases."""
        store = DriftStateStore(self.spec.state_url)
        state = decision.state if decision is not None else store.load(self.spec.name)
        if self.result.status == "retuned":
            promoted = self.result.model_version if self.result.is_promoted else None
            state = Hysteresis.from_spec(self.spec.drift.hysteresis).after_retune(
                state, now=time.time(), promoted_version=promoted
            )
        store.save(self.spec.name, state)

    def retune(
        self, schema: Schema, since_id: int | None, champion: ModelVersionInfo | None
    ) -> None:
        spec, run_id, tracker = self.spec, self.run_id, self.tracker
        assert run_id is not None
        accepted = self.ledger.records(spec.name, status="accepted")
        window = select_window(
            accepted,
            since_id=since_id,
            min_rows=spec.training.min_rows,
            max_rows=spec.training.max_rows,
            policy=spec.training.window,
        )
        train, holdout = split_holdout(window, fraction=spec.training.holdout_fraction)
        metric = spec.metric
        window_hash = frame_sha256(train)
        if self.reuse_version(window_hash, champion, holdout, schema):
            return
        tuning = spec.tuning
        storage = tuning.storage or f"sqlite:///{spec.workspace_dir / 'optuna.db'}"
        study_name = f"{spec.name}-{self.cycle_id}"
        # Warm start from the pipeline's previous study: its best configurations are re-run
        # first on the new window (their old scores are stale after drift).
        previous = (
            latest_study(storage, group=spec.name, exclude=study_name)
            if tuning.warm_start
            else None
        )
        tracker.log_params(
            run_id,
            {
                "window_rows": len(window),
                "train_rows": len(train),
                "holdout_rows": len(holdout),
                "metric": metric,
                "strategy": tuning.strategy,
                "models": ",".join(tuning.models),
                "n_trials_budget": tuning.n_trials,
                "cv": tuning.cv,
                "split": tuning.split,
                "pruner": tuning.pruner,
                "patience": tuning.patience,
                "n_jobs": tuning.n_jobs,
                "study_name": study_name,
                "warm_start_from": previous or "",
            },
        )

        on_trial = self.stoppable(trial_logger(tracker, run_id, metric))
        config = search_config(spec, schema)
        run: dict[str, Any] = {
            "n_trials": tuning.n_trials,
            "timeout_s": tuning.timeout_s,
            "storage": storage,
            "study_name": study_name,
            "study_group": spec.name,
            "warm_start_from": previous,
            "warm_start_top_k": tuning.warm_start_top_k,
            "on_trial": on_trial,
        }
        if tuning.is_distributed:
            result = self.tune_with_workers(train, config, run)
        else:
            result = tune(train, config, n_jobs=tuning.n_jobs, patience=tuning.patience, **run)
        log_tuning_result(
            tracker,
            run_id,
            result,
            report_dir=self.report_dir / "tuning",
            title=f"Tuning report: {spec.name}, cycle {self.cycle_id}",
        )
        features = schema.feature_names
        model_uri = tracker.log_model(run_id, result.model, input_example=train[features].head(5))
        data_from, data_to = window_time_range(
            accepted, since_id=since_id, n_rows=len(window), policy=spec.training.window
        )
        version = tracker.register(
            model_uri,
            spec.model_name,
            run_id=run_id,
            tags={
                "automl.pipeline": spec.name,
                "automl.cycle_id": self.cycle_id,
                "automl.trigger": self.result.drift_verdict or "unknown",
                "automl.drift_share": self.result.share_drifted
                if self.result.share_drifted is not None
                else "",
                "automl.drift_run_id": run_id,
                "automl.tuning_run_id": run_id,
                "automl.window_rows": len(train),
                "automl.holdout_rows": len(holdout),
                "automl.window_sha256": window_hash,
                "automl.data_from": data_from,
                "automl.data_to": data_to,
                "automl.cv_score": f"{result.best_score:.6f}",
                "automl.cv_score_std": f"{result.best_score_std:.6f}",
                "automl.metric": metric,
                "automl.model_family": result.model_family,
                "automl.best_params": json.dumps(result.best_params, default=str)[:5000],
            },
            description=(
                f"{result.model_family} tuned by automl cycle {self.cycle_id} of pipeline "
                f"{spec.name!r} after {self.result.drift_verdict or 'a scheduled check'}: "
                f"{result.n_trials} trials, CV {metric} {result.best_score:.4f} "
                f"(defaults {result.default_score:.4f}), trained on {len(train)} rows received "
                f"{data_from} .. {data_to}; judged on the newest {len(holdout)} rows."
            ),
        )
        # The model's training rows become the drift reference if it is promoted.
        write_table(train, self.paths.reference / f"v{version.version}.parquet")
        self.update(
            status="retuned",
            n_trials=result.n_trials,
            best_cv_score=result.best_score,
            default_cv_score=result.default_score,
            model_version=version.version,
        )
        self.judge(schema, version, champion, holdout)

    def tune_with_workers(
        self, train: pd.DataFrame, config: SearchConfig, run: dict[str, Any]
    ) -> TuningResult:
        """Open the study to ``automl worker`` processes and evaluate trials with them.

        The rows go to the workers as a Parquet artifact of this cycle's MLflow run: every
        worker already needs the tracking server (its trials are nested runs of this run), and
        the server proxies artifacts to the object store, so no shared file system is needed.
        """
        tuning, run_id = self.spec.tuning, self.run_id
        assert run_id is not None
        with tempfile.TemporaryDirectory() as tmp:
            rows = write_table(train, Path(tmp) / ROWS_ARTIFACT.rsplit("/", 1)[-1])
            self.tracker.log_artifact(run_id, rows, artifact_dir=ROWS_ARTIFACT.rsplit("/", 1)[0])
        self.tracker.set_tags(run_id, {"automl.distributed": "true"})
        log.info(
            "[%s %s] study %s open to workers (budget %d trials)",
            self.spec.name,
            self.cycle_id,
            run["study_name"],
            tuning.n_trials,
        )
        stop = self.stop
        return tune_distributed(
            train,
            config,
            attrs={
                PARENT_RUN_ATTR: run_id,
                ROWS_ATTR: ROWS_ARTIFACT,
                "automl.cycle_id": self.cycle_id,
            },
            heartbeat_s=tuning.heartbeat_s,
            grace_s=tuning.grace_s,
            should_stop=stop.is_set if stop is not None else (lambda: False),
            **run,
        )

    def reuse_version(
        self,
        window_hash: str,
        champion: ModelVersionInfo | None,
        holdout: pd.DataFrame,
        schema: Schema,
    ) -> bool:
        """Idempotence: a version already trained on this exact window is not trained again."""
        spec = self.spec
        existing = self.tracker.find_versions(
            spec.model_name, tag="automl.window_sha256", value=window_hash
        )
        if not existing:
            return False
        version = existing[0]
        log.info(
            "[%s %s] v%s was already trained on this data window; not registering another",
            spec.name,
            self.cycle_id,
            version.version,
        )
        assert self.run_id is not None
        self.tracker.set_tags(self.run_id, {"automl.reused_version": version.version})
        self.update(status="retuned", model_version=version.version)
        if champion is not None and champion.version == version.version:
            self.update(is_promoted=True)  # the interrupted cycle had finished promoting it
            return True
        # Judged or not before the interruption, judge again: the gate is deterministic, and
        # a promotion whose alias move never happened is completed this way.
        self.judge(schema, version, champion, holdout)
        return True

    def judge(
        self,
        schema: Schema,
        version: ModelVersionInfo,
        champion: ModelVersionInfo | None,
        holdout: pd.DataFrame,
    ) -> None:
        """Gate the new version against the champion and record the decision."""
        run_id, metric = self.run_id, self.spec.metric
        assert run_id is not None
        decision = judge_and_promote(
            self.spec,
            self.tracker,
            self.audit,
            schema=schema,
            version=version,
            champion=champion,
            holdout=holdout,
            cycle_id=self.cycle_id,
        )
        self.tracker.log_json(run_id, decision.to_dict(), "promotion.json")
        scores = {f"holdout_{metric}": decision.challenger_score}
        if decision.champion_score is not None:
            scores[f"champion_holdout_{metric}"] = decision.champion_score
        self.tracker.log_metrics(run_id, scores)
        self.tracker.set_tags(
            run_id,
            {"automl.model_version": version.version, "automl.decision": decision.outcome},
        )
        self.update(
            challenger_score=decision.challenger_score,
            champion_score=decision.champion_score,
            model_version=version.version,
            is_promoted=decision.is_promoted,
        )

    # -- the cycle ---------------------------------------------------------------------
    def run(self) -> CycleResult:
        spec = self.spec
        self.ingest()
        reconcile(spec, self.tracker, self.audit)
        self.fail_orphaned_runs()
        pending = self.ledger.pending(spec.name)
        schema = self.ledger.get_schema(spec.name)
        champion = self.tracker.get_alias(spec.model_name, CHAMPION)
        has_data = bool(self.ledger.records(spec.name, status="accepted"))
        nothing_new = not pending and champion is not None and not self.force_retune
        if schema is None or not has_data or nothing_new:
            self.update(champion_version=champion.version if champion else None)
            return self.result
        current = load_batches(pending)
        self.update(n_rows=len(current))
        self.run_id = self.start_run(pending)
        if not pending:  # a forced re-tune with nothing new: tune on the newest rows
            self.update(drift_verdict="scheduled")
            self.tracker.set_tags(self.run_id, {"automl.drift_verdict": "scheduled"})
            assert champion is not None
            self.retune(schema, since_id=None, champion=champion)
            return self.finish([])
        decision: HysteresisDecision | None = None
        if champion is None:
            self.update(drift_verdict="no_champion")
            self.tracker.set_tags(self.run_id, {"automl.drift_verdict": "no_champion"})
            self.retune(schema, since_id=None, champion=None)
        else:
            reference = self.reference_for(champion, {r.id for r in pending})
            report, decision = self.check_drift(schema, reference, current, champion, pending[0].id)
            if decision.level == "drift":  # "warning" (unconfirmed, cool-down) does not re-tune
                notify(
                    spec,
                    "drift",
                    {
                        "cycle_id": self.cycle_id,
                        "run_id": self.run_id,
                        **report.to_dict(state=decision.level),
                    },
                )
                since_id = decision.since_batch_id or pending[0].id
                self.retune(schema, since_id=since_id, champion=champion)
            elif self.force_retune:
                self.retune(schema, since_id=None, champion=champion)
            else:
                self.update(status="no_drift")
        self.save_drift_state(decision)
        return self.finish([r.id for r in pending])

    def finish(self, batch_ids: list[int]) -> CycleResult:
        """Mark the batches consumed (last, so a crash leaves them pending) and close the run."""
        spec = self.spec
        self.ledger.mark_checked(spec.name, batch_ids, self.cycle_id)
        final = self.tracker.get_alias(spec.model_name, CHAMPION)
        self.update(champion_version=final.version if final else None)
        assert self.run_id is not None
        self.tracker.end_run(self.run_id, "FINISHED")
        return self.result

    def start_run(self, pending: list[BatchRecord]) -> str:
        """Open the cycle's parent MLflow run, with the batches it consumes as params."""
        spec = self.spec
        run_id = self.tracker.start_run(
            f"cycle-{self.cycle_id}",
            tags={"automl.pipeline": spec.name, "automl.cycle_id": self.cycle_id},
        )
        self.run_id = run_id
        self.update(run_id=run_id)
        self.tracker.log_params(
            run_id,
            {
                "pipeline": spec.name,
                "new_batches": len(pending),
                "new_rows": sum(r.n_rows for r in pending),
                "batch_files": ",".join(r.file_name for r in pending)[:500],
            },
        )
        return run_id

    def stoppable(self, on_trial: Callable[[TrialResult], None]) -> Callable[[TrialResult], None]:
        """Wrap a trial callback so a stopping service ends the search after this trial."""

        def wrapped(trial: TrialResult) -> None:
            on_trial(trial)
            if self.stop is not None and self.stop.is_set():
                raise CycleInterruptedError(
                    f"the service is stopping; tuning stopped after trial {trial.number}"
                )

        return wrapped

    def fail_orphaned_runs(self) -> None:
        """Close runs of this pipeline left RUNNING by a process that died (kill -9, OOM).

        Called while holding the pipeline's lock, so no live cycle of it can own them.
        """
        spec = self.spec
        orphans = self.tracker.find_runs(
            f"attributes.status = 'RUNNING' and tags.`automl.pipeline` = '{spec.name}'"
        )
        for run_id in orphans:
            children = self.tracker.find_runs(
                f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{run_id}'"
            )
            for child in children:
                self.tracker.end_run(child, "FAILED")
            self.tracker.set_tags(
                run_id, {"automl.error": "interrupted: the process running this cycle stopped"}
            )
            self.tracker.end_run(run_id, "FAILED")
            log.warning(
                "[%s %s] marked orphaned run %s (and %d trial runs) FAILED",
                spec.name,
                self.cycle_id,
                run_id,
                len(children),
            )


class CycleInterruptedError(AutomlError):
    """The service is stopping; the cycle ended early and its batches stay pending."""


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
    cycle = _Cycle(spec, cycle_id, force_retune=force_retune, stop=stop)
    history = CycleHistory(spec.state_url)
    try:
        with cycle_context(spec.name, cycle_id):
            result = cycle.run()
            log.info(
                "cycle %s: %d new file(s), %d quarantined, drift %s, champion v%s",
                result.status,
                len(result.accepted_files),
                len(result.rejected_files),
                result.drift_verdict,
                result.champion_version,
            )
    except CycleInterruptedError as exc:
        log.warning("[%s %s] %s", spec.name, cycle.cycle_id, exc)
        if cycle.run_id is not None:
            try:
                cycle.tracker.set_tags(cycle.run_id, {"automl.error": str(exc)})
                cycle.tracker.end_run(cycle.run_id, "KILLED")
            except Exception:
                log.warning("[%s %s] could not mark the run KILLED", spec.name, cycle.cycle_id)
        cycle.update(status="interrupted", error=str(exc), finished_at=utcnow())
        history.record(cycle.result)
        return cycle.result
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        log.exception("[%s %s] cycle failed: %s", spec.name, cycle.cycle_id, message)
        if cycle.run_id is not None:
            try:
                cycle.tracker.set_tags(cycle.run_id, {"automl.error": message[:5000]})
                cycle.tracker.end_run(cycle.run_id, "FAILED")
            except Exception:  # MLflow may be the thing that is down
                log.warning(
                    "[%s %s] could not mark the MLflow run FAILED", spec.name, cycle.cycle_id
                )
        cycle.update(status="failed", error=message, finished_at=utcnow())
        history.record(cycle.result)
        notify(spec, "failure", {"cycle_id": cycle.cycle_id, "error": message})
        if not raise_on_failure:
            return cycle.result
        if isinstance(exc, AutomlError):
            raise
        raise AutomlError(
            f"pipeline {spec.name!r} cycle {cycle.cycle_id} failed: {message}"
        ) from exc
    result = replace(result, finished_at=utcnow())
    history.record(result)
    return result
