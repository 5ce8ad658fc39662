"""Drift hysteresis state, one row per pipeline in the workspace state database."""

from __future__ import annotations

from automl.drift._hysteresis import DriftState
from automl.state import (
    drift_state_table,
    load_pipeline_value,
    open_state,
    save_pipeline_row,
    utcnow,
)


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
        text = load_pipeline_value(self._engine, drift_state_table.c.state_json, pipeline)
        return DriftState.from_json(text) if text else DriftState()

    def save(self, pipeline: str, state: DriftState) -> None:
        """Store the state (replacing the previous one)."""
        values = {"state_json": state.to_json(), "updated_at": utcnow()}
        save_pipeline_row(self._engine, drift_state_table, pipeline, values)
