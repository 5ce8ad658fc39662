"""Service: the cycle, its history, and the scheduler that runs it."""

from __future__ import annotations

from automl.service._cycle import make_tracker, new_cycle_id, run_cycle
from automl.service._history import CycleHistory, CycleResult
from automl.service._scheduler import AutomlService, job_id

__all__ = [
    "AutomlService",
    "CycleHistory",
    "CycleResult",
    "job_id",
    "make_tracker",
    "new_cycle_id",
    "run_cycle",
]
