"""One cycle of a pipeline: ingest, check drift, re-tune, register, judge and promote.

``run_cycle`` is a plain function: the CLI runs it once, the scheduler calls it on a schedule,
tests call it directly. It combines the capabilities; none of them knows about the others.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from automl.config import PipelineSpec
from automl.data import (
    BatchLedger,
    PipelinePaths,
    Schema,
    frame_sha256,
    ingest_landing,
    load_batches,
    select_window,
    split_holdout,
    utcnow,
    write_table,
)
from automl.drift import DriftReport, EvidentlyDriftDetector, render_drift_html
from automl.errors import AutomlError
from automl.service._history import CycleHistory, CycleResult
from automl.tracking import (
    CHALLENGER,
    CHAMPION,
    MlflowTracker,
    ModelVersionInfo,
    apply_promotion,
    decide_promotion,
)
from automl.tuning import GREATER_IS_BETTER, TrialResult, score_model, tune

log = logging.getLogger(__name__)


def new_cycle_id() -> str:
    """A sortable unique cycle id: UTC time to the microsecond plus a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"


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

    def __init__(self, spec: PipelineSpec, cycle_id: str) -> None:
        self.spec = spec
        self.cycle_id = cycle_id
        self.paths = PipelinePaths(spec.workspace_dir, spec.name)
        self.ledger = BatchLedger(spec.state_url)
        self.tracker = make_tracker(spec)
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

    def check_drift(
        self, schema: Schema, reference: pd.DataFrame, current: pd.DataFrame
    ) -> DriftReport:
        spec, run_id = self.spec, self.run_id
        assert run_id is not None
        columns = spec.drift.columns or tuple(schema.feature_names)
        unknown = [c for c in columns if c not in schema.feature_names]
        if unknown:
            raise AutomlError(
                f"drift.columns names unknown columns {unknown}; features: {schema.feature_names}"
            )
        numeric = [c for c in schema.numeric if c in columns]
        categorical = [c for c in schema.categorical if c in columns]
        detector = EvidentlyDriftDetector(
            method=spec.drift.method,
            threshold=spec.drift.threshold,
            drift_share=spec.drift.drift_share,
        )
        report = detector.detect(reference, current, numeric=numeric, categorical=categorical)
        self.report_dir.mkdir(parents=True, exist_ok=True)
        payload = {"pipeline": spec.name, "cycle_id": self.cycle_id, **report.to_dict()}
        self.tracker.log_json(run_id, payload, "drift.json")
        (self.report_dir / "drift.json").write_text(
            pd.Series(payload).to_json(indent=2), encoding="utf-8"
        )
        self.tracker.log_metrics(
            run_id,
            {
                "drift_share_drifted": report.share_drifted,
                "drift_n_drifted_columns": len(report.drifted_columns),
                **{f"drift_score.{c.column}": c.score for c in report.columns},
            },
        )
        verdict = "drift" if report.is_drifted else "ok"
        self.tracker.set_tags(
            run_id,
            {
                "automl.drift_verdict": verdict,
                "automl.drifted_columns": ",".join(report.drifted_columns),
            },
        )
        if report.is_drifted:
            html = render_drift_html(
                reference,
                current,
                self.report_dir / "drift.html",
                numeric=numeric,
                categorical=categorical,
                method=spec.drift.method,
                threshold=spec.drift.threshold,
                drift_share=spec.drift.drift_share,
            )
            self.tracker.log_artifact(run_id, html)
        self.update(
            drift_verdict=verdict,
            share_drifted=report.share_drifted,
            drifted_columns=tuple(report.drifted_columns),
        )
        return report

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
        )
        train, holdout = split_holdout(window, fraction=spec.training.holdout_fraction)
        target, metric = schema.target, spec.metric
        tracker.log_params(
            run_id,
            {
                "window_rows": len(window),
                "train_rows": len(train),
                "holdout_rows": len(holdout),
                "metric": metric,
                "strategy": spec.tuning.strategy,
                "n_trials_budget": spec.tuning.n_trials,
                "cv": spec.tuning.cv,
            },
        )

        def log_trial(trial: TrialResult) -> None:
            tracker.log_nested_run(
                run_id,
                f"trial-{trial.number:03d}",
                params=trial.params,
                metrics={
                    f"cv_{metric}": trial.cv_mean,
                    f"cv_{metric}_std": trial.cv_std,
                    f"train_{metric}": trial.train_mean,
                    "fit_time_s": trial.fit_time_s,
                },
                tags={
                    "automl.trial_number": str(trial.number),
                    "automl.is_defaults": str(trial.is_defaults).lower(),
                    "automl.trial_state": trial.state,
                },
                status="FINISHED" if trial.state == "COMPLETE" else "FAILED",
            )

        result = tune(
            train,
            target=target,
            task=schema.task,
            numeric=schema.numeric,
            categorical=schema.categorical,
            metric=metric,
            n_trials=spec.tuning.n_trials,
            timeout_s=spec.tuning.timeout_s,
            cv=spec.tuning.cv,
            seed=spec.tuning.seed,
            strategy=spec.tuning.strategy,
            storage=f"sqlite:///{spec.workspace_dir / 'optuna.db'}",
            study_name=f"{spec.name}-{self.cycle_id}",
            on_trial=log_trial,
        )
        tracker.log_params(run_id, {f"best_{k}": v for k, v in result.best_params.items()})
        tracker.log_metrics(
            run_id,
            {
                f"best_cv_{metric}": result.best_score,
                f"best_cv_{metric}_std": result.best_score_std,
                f"default_cv_{metric}": result.default_score,
                "n_trials": result.n_trials,
            },
        )
        tracker.log_table(run_id, result.trials, "trials.csv")
        features = schema.feature_names
        model_uri = tracker.log_model(run_id, result.model, input_example=train[features].head(5))
        window_hash = frame_sha256(train)
        version = tracker.register(
            model_uri,
            spec.model_name,
            run_id=run_id,
            tags={
                "automl.pipeline": spec.name,
                "automl.cycle_id": self.cycle_id,
                "automl.window_rows": len(train),
                "automl.window_sha256": window_hash,
                "automl.cv_score": f"{result.best_score:.6f}",
                "automl.model_family": result.model_family,
            },
            description=(
                f"{result.model_family} tuned by automl cycle {self.cycle_id} on {len(train)} rows "
                f"({result.n_trials} trials, CV {metric} {result.best_score:.4f})."
            ),
        )
        # The model's training rows become the drift reference if it is promoted.
        write_table(train, self.paths.reference / f"v{version.version}.parquet")
        if champion is not None:
            tracker.set_alias(spec.model_name, CHALLENGER, version.version)
        # Judge the models that would serve: both loaded back from the registry.
        challenger_score = score_model(
            tracker.load_model(version.uri), holdout, target=target, metric=metric
        )
        champion_score = (
            score_model(tracker.load_model(champion.uri), holdout, target=target, metric=metric)
            if champion is not None
            else None
        )
        decision = decide_promotion(
            metric=metric,
            greater_is_better=GREATER_IS_BETTER[metric],
            margin=spec.registry.promotion_margin,
            challenger_version=version.version,
            challenger_score=challenger_score,
            champion_version=champion.version if champion else None,
            champion_score=champion_score,
        )
        apply_promotion(tracker, spec.model_name, decision)
        tracker.log_json(run_id, decision.to_dict(), "promotion.json")
        tracker.log_metrics(
            run_id,
            {
                f"holdout_{metric}": challenger_score,
                **(
                    {f"champion_holdout_{metric}": champion_score}
                    if champion_score is not None
                    else {}
                ),
            },
        )
        tracker.set_tags(
            run_id,
            {
                "automl.model_version": version.version,
                "automl.decision": "promoted" if decision.is_promoted else "rejected",
            },
        )
        log.info("[%s %s] %s", spec.name, self.cycle_id, decision.reason)
        self.update(
            status="retuned",
            n_trials=result.n_trials,
            best_cv_score=result.best_score,
            default_cv_score=result.default_score,
            challenger_score=challenger_score,
            champion_score=champion_score,
            model_version=version.version,
            is_promoted=decision.is_promoted,
        )

    # -- the cycle ---------------------------------------------------------------------
    def run(self) -> CycleResult:
        spec = self.spec
        self.ingest()
        pending = self.ledger.pending(spec.name)
        schema = self.ledger.get_schema(spec.name)
        champion = self.tracker.get_alias(spec.model_name, CHAMPION)
        has_data = bool(self.ledger.records(spec.name, status="accepted"))
        if schema is None or not has_data or (not pending and champion is not None):
            self.update(champion_version=champion.version if champion else None)
            return self.result
        current = load_batches(pending)
        self.update(n_rows=len(current))
        self.run_id = self.tracker.start_run(
            f"cycle-{self.cycle_id}",
            tags={"automl.pipeline": spec.name, "automl.cycle_id": self.cycle_id},
        )
        self.update(run_id=self.run_id)
        self.tracker.log_params(
            self.run_id,
            {
                "pipeline": spec.name,
                "new_batches": len(pending),
                "new_rows": len(current),
                "batch_files": ",".join(r.file_name for r in pending)[:500],
            },
        )
        if champion is None:
            self.update(drift_verdict="no_champion")
            self.tracker.set_tags(self.run_id, {"automl.drift_verdict": "no_champion"})
            self.retune(schema, since_id=None, champion=None)
        else:
            reference = self.reference_for(champion, {r.id for r in pending})
            report = self.check_drift(schema, reference, current)
            if report.is_drifted:
                self.retune(schema, since_id=pending[0].id, champion=champion)
            else:
                self.update(status="no_drift")
        self.ledger.mark_checked(spec.name, [r.id for r in pending], self.cycle_id)
        final = self.tracker.get_alias(spec.model_name, CHAMPION)
        self.update(champion_version=final.version if final else None)
        self.tracker.end_run(self.run_id, "FINISHED")
        return self.result


def run_cycle(
    spec: PipelineSpec, *, cycle_id: str | None = None, raise_on_failure: bool = True
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

    Returns:
        What the cycle did.

    Raises:
        AutomlError: The cycle failed and ``raise_on_failure`` is set. Either way a failed
            cycle is recorded as ``failed`` in the history, its MLflow run (if any) ends as
            FAILED and its batches stay pending for the next cycle.
    """
    cycle = _Cycle(spec, cycle_id or new_cycle_id())
    history = CycleHistory(spec.state_url)
    try:
        result = cycle.run()
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
