"""Service: the cycle and its steps, what it records, its history and the scheduler."""

from __future__ import annotations

from automl.service._cycle import (
    DriftOutcome,
    Registered,
    Window,
    check_drift,
    detect_drift,
    drift_columns,
    ingest,
    judge,
    new_cycle_id,
    promote,
    register,
    run_cycle,
    search_and_log,
    search_config,
    training_window,
    tune_window,
)
from automl.service._history import CycleHistory, CycleResult
from automl.service._notify import notify
from automl.service._promote import promote_manually, rollback
from automl.service._record import log_tuning_result, trial_logger
from automl.service._scheduler import AutomlService, job_id, run_pipeline_job
from automl.service._status import check_stores, pipeline_status
from automl.service._workspace import Workspace, make_tracker, open_workspace

__all__ = [
    "AutomlService",
    "CycleHistory",
    "CycleResult",
    "DriftOutcome",
    "Registered",
    "Window",
    "Workspace",
    "check_drift",
    "check_stores",
    "detect_drift",
    "drift_columns",
    "ingest",
    "job_id",
    "judge",
    "log_tuning_result",
    "make_tracker",
    "new_cycle_id",
    "notify",
    "open_workspace",
    "pipeline_status",
    "promote",
    "promote_manually",
    "register",
    "rollback",
    "run_cycle",
    "run_pipeline_job",
    "search_and_log",
    "search_config",
    "training_window",
    "trial_logger",
    "tune_window",
]
