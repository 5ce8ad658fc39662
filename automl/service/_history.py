"""Cycle history: one row per cycle in the workspace state database."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from automl.state import cycles_table, open_state

CycleStatus = Literal[
    "no_data", "no_drift", "retuned", "waiting_for_labels", "failed", "interrupted", "skipped"
]


@dataclass(frozen=True)
class CycleResult:
    """What one cycle of a pipeline did.

    Attributes:
        pipeline: Pipeline name.
        cycle_id: Unique id (also tagged on the MLflow run).
        status: ``no_data`` (nothing new), ``no_drift`` (checked, champion kept), ``retuned``
            (a model was tuned, registered and judged), ``waiting_for_labels`` (late labels: a
            re-tune is due but too few rows have labels yet), ``failed``, ``interrupted`` (the
            service was stopping; batches stay pending) or ``skipped`` (another instance holds
            the pipeline's lock; not recorded in the history).
        started_at: ISO time.
        finished_at: ISO time.
        accepted_files: Files accepted by this cycle's ingest.
        rejected_files: Files quarantined by this cycle's ingest.
        n_rows: Rows in the new batches.
        drift_verdict: The pipeline's drift state after this cycle's check and hysteresis:
            ``ok``, ``warning`` (drift seen but not confirmed, or in cool-down: no re-tune),
            ``drift`` (re-tuned), ``no_champion``, or None when not checked.
        share_drifted: Share of drifted columns, when checked.
        drifted_columns: Names of drifted columns.
        n_trials: Tuning trials run (0 when not tuned).
        best_cv_score: CV score of the best trial.
        default_cv_score: CV score of the library defaults (trial 0).
        challenger_score: The new model's holdout score.
        champion_score: The serving model's score on the same holdout.
        model_version: Registered version of the new model.
        is_promoted: Whether the new model became champion.
        champion_version: The champion after the cycle.
        run_id: MLflow parent run id.
        error: Failure message when ``status`` is ``failed``.
        shadow_version: The challenger in shadow that this cycle scored, if any.
        shadow_outcome: What its evidence decided: ``shadow`` (still waiting), ``promoted``
            or ``rejected`` (dropped).
        shadow_batches: Cycles of new rows it has been scored on, this one included.
        labels_joined: Late labels: labels that joined their rows in this cycle's ingest.
        labelled_rows: Late labels, a re-tune due: labelled rows it counted (from the drift on).
        labels_needed: ... and how many it needs (``training.min_labelled_rows``).
        labelled_share: Late labels: share of the pipeline's rows with a label after the cycle.
        rows_waiting_label: ... rows still without one.
        label_lag_p50_s: ... median label lag (label arrival - row arrival), seconds.
        label_lag_p95_s: ... its 95th percentile.
        estimated_metric: Late labels, classification: the metric the check estimated.
        estimated_score: ... the champion's label-free (CBPE) estimate on the new rows.
        estimated_reference: ... the same metric on the champion's holdout (naive estimate).
    """

    pipeline: str
    cycle_id: str
    status: CycleStatus
    started_at: str
    finished_at: str
    accepted_files: tuple[str, ...] = ()
    rejected_files: tuple[str, ...] = ()
    n_rows: int = 0
    drift_verdict: str | None = None
    share_drifted: float | None = None
    drifted_columns: tuple[str, ...] = ()
    n_trials: int = 0
    best_cv_score: float | None = None
    default_cv_score: float | None = None
    challenger_score: float | None = None
    champion_score: float | None = None
    model_version: str | None = None
    is_promoted: bool | None = None
    champion_version: str | None = None
    run_id: str | None = None
    error: str | None = None
    metric: str | None = field(default=None)
    shadow_version: str | None = None
    shadow_outcome: str | None = None
    shadow_batches: int = 0
    labels_joined: int = 0
    labelled_rows: int | None = None
    labels_needed: int | None = None
    labelled_share: float | None = None
    rows_waiting_label: int | None = None
    label_lag_p50_s: float | None = None
    label_lag_p95_s: float | None = None
    estimated_metric: str | None = None
    estimated_score: float | None = None
    estimated_reference: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CycleResult:
        """Inverse of :meth:`to_dict`."""
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        for key in ("accepted_files", "rejected_files", "drifted_columns"):
            known[key] = tuple(known.get(key) or ())
        return cls(**known)


class CycleHistory:
    """Append-only record of cycles.

    Args:
        url: SQLAlchemy URL of the state database.
    """

    def __init__(self, url: str) -> None:
        self._engine = open_state(url)

    def record(self, result: CycleResult) -> None:
        """Store a finished cycle."""
        with self._engine.begin() as conn:
            conn.execute(
                cycles_table.insert().values(
                    cycle_id=result.cycle_id,
                    pipeline=result.pipeline,
                    status=result.status,
                    started_at=result.started_at,
                    finished_at=result.finished_at,
                    result_json=json.dumps(result.to_dict(), default=str),
                )
            )

    def list(self, pipeline: str, *, limit: int | None = None) -> list[CycleResult]:
        """Cycles of a pipeline, newest first."""
        t = cycles_table
        query = (
            sa.select(t.c.result_json)
            .where(t.c.pipeline == pipeline)
            .order_by(t.c.finished_at.desc(), t.c.cycle_id.desc())
        )
        if limit:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [CycleResult.from_dict(json.loads(row[0])) for row in conn.execute(query)]

    def find(self, pipeline: str, cycle_id: str) -> CycleResult | None:
        """The recorded cycle with this id, or None."""
        t = cycles_table
        query = sa.select(t.c.result_json).where(t.c.pipeline == pipeline, t.c.cycle_id == cycle_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return CycleResult.from_dict(json.loads(row[0])) if row else None

    def last(self, pipeline: str, *, checked: bool = False) -> CycleResult | None:
        """The newest cycle; with ``checked``, the newest one that ran a drift check."""
        for result in self.list(pipeline):
            if not checked or result.drift_verdict in ("drift", "warning", "ok"):
                return result
        return None
