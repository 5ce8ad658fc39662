"""Drift hysteresis state, one row per pipeline in the workspace state database."""

from __future__ import annotations

import sqlalchemy as sa

from automl.drift._hysteresis import DriftState
from automl.state import drift_state_table, open_state, utcnow


class DriftStateStore:
    """Loads and saves each pipeline's :class:`~automl.drift.DriftState`.

    Args:
        url: SQLAlchemy URL of the state database.

    Example:
        >>> store = DriftStateStore("sqlite://")
        >>> store.load("churn") == DriftState()
        True
        >>> store.save("churn", DriftState(reference_version="3", n_checks=2))
        >>> store.load("churn").reference_version
        '3'
    """

    def __init__(self, url: str) -> None:
        self._engine = open_state(url)

    def load(self, pipeline: str) -> DriftState:
        """The stored state, or a fresh one when the pipeline has none yet."""
        t = drift_state_table
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(t.c.state_json).where(t.c.pipeline == pipeline)).first()
        return DriftState.from_json(row[0]) if row else DriftState()

    def save(self, pipeline: str, state: DriftState) -> None:
        """Store the state (replacing the previous one)."""
        t = drift_state_table
        values = {"state_json": state.to_json(), "updated_at": utcnow()}
        with self._engine.begin() as conn:
            updated = conn.execute(t.update().where(t.c.pipeline == pipeline).values(**values))
            if updated.rowcount == 0:
                conn.execute(t.insert().values(pipeline=pipeline, **values))
