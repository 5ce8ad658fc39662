"""Service: the cycle and its steps, what it records, its history and the scheduler.

Names are loaded on first use, so a command that needs one step (``automl status``) does not
import the libraries of every other (MLflow, Optuna, evidently, APScheduler).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automl.service._cycle import (
        DriftOutcome,
        Registered,
        Window,
        check_drift,
        detect_drift,
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

_LAZY = {
    "AutomlService": "automl.service._scheduler",
    "CycleHistory": "automl.service._history",
    "CycleResult": "automl.service._history",
    "DriftOutcome": "automl.service._cycle",
    "Registered": "automl.service._cycle",
    "Window": "automl.service._cycle",
    "Workspace": "automl.service._workspace",
    "check_drift": "automl.service._cycle",
    "check_stores": "automl.service._status",
    "detect_drift": "automl.service._cycle",
    "CheckedColumns": "automl.service._cycle",
    "ingest": "automl.service._cycle",
    "job_id": "automl.service._scheduler",
    "judge": "automl.service._cycle",
    "log_tuning_result": "automl.service._record",
    "make_tracker": "automl.service._workspace",
    "new_cycle_id": "automl.service._cycle",
    "notify": "automl.service._notify",
    "open_workspace": "automl.service._workspace",
    "pipeline_status": "automl.service._status",
    "promote": "automl.service._cycle",
    "promote_manually": "automl.service._promote",
    "register": "automl.service._cycle",
    "rollback": "automl.service._promote",
    "run_cycle": "automl.service._cycle",
    "run_pipeline_job": "automl.service._scheduler",
    "search_and_log": "automl.service._cycle",
    "search_config": "automl.service._cycle",
    "training_window": "automl.service._cycle",
    "trial_logger": "automl.service._record",
    "tune_window": "automl.service._cycle",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'automl.service' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AutomlService",
    "CheckedColumns",
    "CycleHistory",
    "CycleResult",
    "DriftOutcome",
    "Registered",
    "Window",
    "Workspace",
    "check_drift",
    "check_stores",
    "detect_drift",
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
