"""Per-pipeline status and store reachability, shared by ``automl status`` and ``/status``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from automl.config import PipelineSpec
from automl.data import BatchLedger
from automl.service._champion import serving_champion
from automl.service._history import CycleHistory
from automl.state import get_engine


def pipeline_status(spec: PipelineSpec) -> dict[str, Any]:
    """Champion, last cycle, last drift check, and counts of its batches: pending (accepted, not
    yet checked), waiting in the landing folder (not yet ingested; directory sources only) and
    quarantined, with the latest quarantine reasons (the only record of them for an object
    store without a quarantine prefix); with late labels also ``state`` and ``labels``
    (labelled share, label lag, rows waiting)."""
    history = CycleHistory(spec.state_url)
    ledger = BatchLedger(spec.state_url)
    champion = serving_champion(spec)  # the state database answers; MLflow only if it cannot
    rejected = ledger.records(spec.name, status="rejected")
    reasons = [f"{r.file_name}: {r.reason}" for r in rejected]
    if spec.data.source.kind == "object_store":
        from automl.data import SeenObjects

        # Duplicates stay in the bucket (no quarantine prefix), and objects the store refuses
        # to read stay there too (tried again every pass): their reasons are here only.
        objects = SeenObjects(spec.state_url, spec.name, "batches").reasons()
        reasons += [
            reason if status == "duplicate" else f"{key}: {status}: {reason}"
            for key, status, reason in objects
            if status in ("duplicate", "denied")
        ]
    latest = history.last(spec.name)
    checked = history.last(spec.name, checked=True)
    return {
        "pipeline": spec.name,
        "model": spec.model_name,
        "champion_version": champion.version if champion else None,
        "champion_cv_score": champion.cv_score if champion else None,
        "last_cycle": latest.cycle_id if latest else None,
        "last_status": latest.status if latest else None,
        "last_finished_at": latest.finished_at if latest else None,
        "last_error": latest.error if latest else None,
        "last_drift_verdict": checked.drift_verdict if checked else None,
        "last_drift_share": checked.share_drifted if checked else None,
        "pending_batches": len(ledger.pending(spec.name)),
        "landing_files": len(waiting_files(spec)),
        "quarantined_files": len(reasons),
        "source": spec.data.source.kind,
        "quarantine_reasons": reasons[-3:],
        **_labels(spec, latest.status if latest else None),
    }


def _labels(spec: PipelineSpec, last_status: str | None) -> dict[str, Any]:
    """Late labels: the pipeline's ``state`` (``waiting_for_labels`` while a re-tune waits)
    and its ``labels`` (see :func:`automl.service._late.label_status`)."""
    if spec.data.id_column is None:
        return {}
    from automl.service._late import label_status
    from automl.service._workspace import open_workspace

    labels = label_status(open_workspace(spec), last_status=last_status)
    waiting = labels is not None and labels["waiting_for_labels"]
    return {"state": "waiting_for_labels" if waiting else "ok", "labels": labels}


def waiting_files(spec: PipelineSpec) -> list[Path]:
    """Files in the landing folder the next cycle will ingest (hidden ``.name.tmp`` files,
    still being written, are not counted); none for object-store and SQL sources."""
    if spec.data.source.kind != "directory":
        return []
    folder = spec.landing_path
    if not folder.is_dir():
        return []
    found = {
        path
        for pattern in spec.data.file_patterns
        for path in folder.glob(pattern)
        if path.is_file() and not path.name.startswith(".")
    }
    return sorted(found)


def check_stores(spec: PipelineSpec) -> dict[str, str]:
    """Reach the state database and MLflow; return the failures (empty when all answer)."""
    failing: dict[str, str] = {}
    try:
        with get_engine(spec.state_url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        failing[f"{spec.name}:state_db"] = str(exc)[:300]
    try:
        from automl.service._workspace import make_tracker

        make_tracker(spec).client.search_experiments(max_results=1)
    except Exception as exc:
        failing[f"{spec.name}:mlflow"] = str(exc)[:300]
    return failing
