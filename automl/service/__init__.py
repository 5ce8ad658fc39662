"""Service: the cycle, its history, and the scheduler that runs it."""

from __future__ import annotations

from automl.service._audit import LogEntry, PromotionLog
from automl.service._cycle import make_tracker, new_cycle_id, run_cycle
from automl.service._drift_state import DriftStateStore
from automl.service._history import CycleHistory, CycleResult
from automl.service._notify import notify
from automl.service._promote import AliasMove, judge_and_promote, promote_manually, rollback
from automl.service._scheduler import AutomlService, job_id, run_pipeline_job
from automl.service._status import check_stores, pipeline_status
from automl.service._tuning_log import log_tuning_result, trial_logger

__all__ = [
    "AliasMove",
    "AutomlService",
    "CycleHistory",
    "CycleResult",
    "DriftStateStore",
    "LogEntry",
    "PromotionLog",
    "check_stores",
    "job_id",
    "judge_and_promote",
    "log_tuning_result",
    "make_tracker",
    "new_cycle_id",
    "notify",
    "pipeline_status",
    "promote_manually",
    "rollback",
    "run_cycle",
    "run_pipeline_job",
    "trial_logger",
]
