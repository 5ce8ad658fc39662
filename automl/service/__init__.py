"""Service: the cycle and its steps, what it records, its history and the scheduler.

Names are loaded on first use, so a command that needs one step (``automl status``) does not
import the libraries of every other (MLflow, Optuna, evidently, APScheduler).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl._lazy import lazy_loader

if TYPE_CHECKING:
    from automl.service._cycle import new_cycle_id, run_cycle
    from automl.service._history import CycleHistory, CycleResult
    from automl.service._notify import notify
    from automl.service._promote import promote_manually, rollback
    from automl.service._record import log_tuning_result, trial_logger
    from automl.service._scheduler import AutomlService, job_id, run_pipeline_job
    from automl.service._status import check_stores, pipeline_status
    from automl.service._steps import (
        DriftOutcome,
        Registered,
        Window,
        check_drift,
        detect_drift,
        ingest,
        judge,
        promote,
        register,
        search_and_log,
        search_config,
        training_window,
        tune_window,
    )
    from automl.service._workspace import (
        Workspace,
        make_registry,
        make_tracker,
        open_workspace,
    )

_LAZY = {
    "AutomlService": "automl.service._scheduler",
    "CycleHistory": "automl.service._history",
    "CycleResult": "automl.service._history",
    "DriftOutcome": "automl.service._steps",
    "Registered": "automl.service._steps",
    "Window": "automl.service._steps",
    "Workspace": "automl.service._workspace",
    "check_drift": "automl.service._steps",
    "check_stores": "automl.service._status",
    "detect_drift": "automl.service._steps",
    "CheckedColumns": "automl.service._steps",
    "ingest": "automl.service._steps",
    "job_id": "automl.service._scheduler",
    "judge": "automl.service._steps",
    "log_tuning_result": "automl.service._record",
    "make_registry": "automl.service._workspace",
    "make_tracker": "automl.service._workspace",
    "new_cycle_id": "automl.service._cycle",
    "notify": "automl.service._notify",
    "open_workspace": "automl.service._workspace",
    "pipeline_status": "automl.service._status",
    "promote": "automl.service._steps",
    "promote_manually": "automl.service._promote",
    "register": "automl.service._steps",
    "rollback": "automl.service._promote",
    "run_cycle": "automl.service._cycle",
    "run_pipeline_job": "automl.service._scheduler",
    "search_and_log": "automl.service._steps",
    "search_config": "automl.service._steps",
    "training_window": "automl.service._steps",
    "trial_logger": "automl.service._record",
    "tune_window": "automl.service._steps",
}


__getattr__ = lazy_loader(__name__, _LAZY)


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
    "make_registry",
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
