"""What a cycle does first about a cycle that a crash cut short (kill -9, OOM, power loss).

A cycle's MLflow run stays RUNNING until the cycle is over, registration and promotion
included, so a run found RUNNING while holding the pipeline's lock is a cycle that never ended.
:func:`recover_interrupted` closes it as FAILED, records it as a ``failed`` cycle in the
history (error ``interrupted: ...``) and fails the Optuna trials its search left RUNNING. Its
batches are still pending (they are marked consumed last), so this cycle re-does its work; a
version it had registered is found by its data window and judged again, and alias moves it
left half-done are closed by :func:`automl.tracking.reconcile`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from automl.service import _record as record
from automl.service._history import CycleResult
from automl.service._workspace import Workspace
from automl.state import utcnow
from automl.tuning import fail_stale_trials

log = logging.getLogger(__name__)


def recover_interrupted(ws: Workspace, cycle_id: str) -> list[CycleResult]:
    """Close the cycles of ``ws``'s pipeline that a crash left open; return their history rows.

    Call it while holding the pipeline's lock (no live cycle of it can own an open run).

    Args:
        ws: The pipeline's workspace.
        cycle_id: The cycle doing the recovery (named in the rows it writes).
    """
    spec = ws.spec
    rows = []
    for orphan in record.fail_orphaned_runs(ws.tracker, ws.name):
        lost_id = orphan.tags.get(record.CYCLE_ID) or f"run-{orphan.run_id}"
        _fail_trials(ws, lost_id)
        if ws.history.find(ws.name, lost_id) is not None:
            continue  # it recorded its outcome and died just before closing its run
        started = datetime.fromtimestamp(orphan.start_time_ms / 1000, UTC).isoformat()
        row = CycleResult(
            pipeline=spec.name,
            cycle_id=lost_id,
            status="failed",
            started_at=started,
            finished_at=utcnow(),
            run_id=orphan.run_id,
            error=f"{record.INTERRUPTED}; found and closed by cycle {cycle_id}",
            metric=spec.metric,
        )
        ws.history.record(row)
        rows.append(row)
    return rows


def _fail_trials(ws: Workspace, lost_id: str) -> None:
    tuning = ws.spec.tuning
    storage = tuning.storage
    if storage is None:
        local = ws.spec.workspace_dir / "optuna.db"
        if not local.exists():
            return
        storage = f"sqlite:///{local}"
    distributed = tuning.is_distributed
    try:
        fail_stale_trials(
            storage,
            study_name_prefix=f"{ws.name}-{lost_id}",
            heartbeat_s=tuning.heartbeat_s if distributed else None,
            grace_s=tuning.grace_s if distributed else None,
        )
    except Exception as exc:  # the study store may be what failed; the cycle goes on
        log.warning("[%s] could not fail the trials of cycle %s: %s", ws.name, lost_id, exc)
