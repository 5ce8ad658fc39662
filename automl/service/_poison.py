"""A pipeline never poisons itself: a pending batch that breaks every cycle is quarantined.

Validation at ingest cannot foresee everything a model or a drift test will choke on. Batches
stay pending until a cycle ends, so one accepted batch that makes the cycle's steps fail would
fail every later cycle too, and the pipeline would never re-tune again. After
``data.max_batch_failures`` failed cycles in a row (every further ``max_batch_failures`` too),
:func:`quarantine_poison` looks for the batch to blame:

1. **Probe each pending batch alone** (newest first, at most :data:`MAX_PROBES`): the cycle's
   data steps on that batch plus the newest rows the pipeline already consumed (up to
   ``training.min_rows``): the drift check against those rows (with evidently's HTML report
   when the spec renders one) and a one-trial search (the first family's library defaults, by
   the spec's cross-validation). A batch that fails a step on its own is quarantined.
2. **A control first**: when the consumed rows alone already fail the probe, the data is not
   what breaks and nothing is quarantined.
3. **Together but not alone**: when no batch fails alone but the pending batches together
   fail the probe, the newest pending batch is quarantined (the next failures move on to the
   next one).
4. **Nothing fails**: the failures come from elsewhere (an unreachable MLflow server, a full
   disk): no batch is quarantined, whatever the count. A store outage never costs data.

A quarantined batch gets ledger status ``rejected`` with the reason, its stored rows move to
``quarantine/<pipeline>/`` beside a ``.reason.txt``, and the webhook gets a ``quarantine``
event. The next cycle goes on without it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from automl.data import BatchRecord, Schema, load_batches
from automl.service._history import CycleResult
from automl.service._notify import notify
from automl.service._workspace import Workspace

log = logging.getLogger(__name__)

#: Pending batches probed one by one at most (the newest ones).
MAX_PROBES = 20


def failure_streak(history: Sequence[CycleResult]) -> int:
    """Failed cycles in a row at the head of ``history`` (newest first).

    ``skipped`` (another instance had the lock) and ``interrupted`` (the service was
    stopping) neither break nor extend a streak.

    Example:
        >>> rows = [CycleResult("p", str(i), s, "", "") for i, s in
        ...         enumerate(["failed", "skipped", "failed", "no_drift", "failed"])]
        >>> failure_streak(rows)
        2
    """
    streak = 0
    for row in history:
        if row.status in ("skipped", "interrupted"):
            continue
        if row.status != "failed":
            break
        streak += 1
    return streak


def quarantine_poison(ws: Workspace, *, cycle_id: str) -> list[BatchRecord]:
    """After a failed cycle: quarantine the pending batch that keeps failing the pipeline.

    Called on the failure path of a cycle (after its ``failed`` row is recorded) and after a
    crashed cycle is recorded failed; a no-op until the failure streak reaches a multiple of
    ``data.max_batch_failures``. Never raises: the cycle's own failure is what gets reported.

    Args:
        ws: The pipeline's workspace.
        cycle_id: The cycle that just failed (named in the reasons).

    Returns:
        The batches quarantined (as they were before).
    """
    limit = ws.spec.data.max_batch_failures
    if not limit:
        return []
    try:
        streak = failure_streak(ws.history.list(ws.name, limit=limit * 50))
        if streak < limit or streak % limit:
            return []
        pending = ws.ledger.pending(ws.name)
        schema = ws.ledger.get_schema(ws.name)
        if not pending or schema is None:
            return []
        log.warning(
            "[%s] %d cycles failed in a row with %d batch(es) pending; probing them",
            ws.name,
            streak,
            len(pending),
        )
        blamed = find_poison(ws, schema, pending)
        for batch, why in blamed:
            _quarantine(ws, batch, why, streak=streak, cycle_id=cycle_id)
        return [batch for batch, _ in blamed]
    except Exception:
        log.exception("[%s] looking for a poisoned batch failed", ws.name)
        return []


def find_poison(
    ws: Workspace, schema: Schema, pending: Sequence[BatchRecord]
) -> list[tuple[BatchRecord, str]]:
    """The pending batches to blame for failing cycles, each with why (see the module doc)."""
    base = _consumed_rows(ws, pending)
    if not base.empty:
        control = _probe(ws, schema, base, base.iloc[:0])
        if control is not None:
            log.warning(
                "[%s] the %d rows already consumed fail the probe too (%s): not the new data",
                ws.name,
                len(base),
                control,
            )
            return []
    blamed = []
    for batch in list(reversed(pending))[:MAX_PROBES]:
        error = _probe(ws, schema, base, load_batches([batch]))
        if error is not None:
            blamed.append((batch, f"on its own it fails the cycle's {error}"))
    if blamed:
        return blamed
    together = _probe(ws, schema, base, load_batches(list(pending)))
    if together is None:
        log.warning(
            "[%s] no pending batch fails the cycle's data steps, alone or together: the "
            "failures come from elsewhere; nothing quarantined",
            ws.name,
        )
        return []
    newest = pending[-1]
    return [
        (
            newest,
            f"the {len(pending)} pending batches together fail the cycle's {together}; none "
            "fails alone, so the newest is quarantined first",
        )
    ]


def _consumed_rows(ws: Workspace, pending: Sequence[BatchRecord]) -> pd.DataFrame:
    """The newest rows the pipeline consumed before (up to ``training.min_rows``)."""
    waiting = {r.id for r in pending}
    consumed = [r for r in ws.ledger.records(ws.name, status="accepted") if r.id not in waiting]
    rows: list[BatchRecord] = []
    count = 0
    for record in reversed(consumed):
        if count >= ws.spec.training.min_rows:
            break
        rows.insert(0, record)
        count += record.n_rows
    return load_batches(rows).tail(ws.spec.training.min_rows).reset_index(drop=True)


def _probe(ws: Workspace, schema: Schema, base: pd.DataFrame, rows: pd.DataFrame) -> str | None:
    """The cycle's data steps on ``base`` + ``rows``: None when they pass, else what failed.

    The cycle's own drift check (with evidently's HTML report when the spec renders one) and
    search, without MLflow, state or hysteresis; the search is one trial (library defaults).
    """
    from automl.service._steps import CheckedColumns, detect_drift, search_config
    from automl.tuning import tune

    spec = ws.spec
    if not base.empty and not rows.empty:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                detect_drift(
                    spec.drift,
                    base,
                    rows,
                    CheckedColumns.of_schema(spec.drift, schema),
                    seed=spec.tuning.seed,
                    html_path=Path(tmp) / "drift.html",
                    html_report=spec.drift.html_report,
                )
        except Exception as exc:
            return f"drift check: {type(exc).__name__}: {exc}"
    try:
        # Trial 0 is the first family's library defaults whatever the strategy; "random"
        # needs no grid and no extra (a "grid" or "gp" spec probes the same way).
        config = replace(search_config(spec, schema), strategy="random", grid=None)
        tune(pd.concat([base, rows], ignore_index=True), config, n_trials=1, timeout_s=120.0)
    except Exception as exc:
        return f"training: {type(exc).__name__}: {exc}"
    return None


def _quarantine(ws: Workspace, batch: BatchRecord, why: str, *, streak: int, cycle_id: str) -> None:
    reason = f"poison: quarantined after {streak} failed cycles in a row: {why}"
    moved = None
    if batch.stored_path is not None and batch.stored_path.exists():
        ws.paths.quarantine.mkdir(parents=True, exist_ok=True)
        moved = ws.paths.quarantine / f"{batch.file_name}.{batch.sha256[:16]}.parquet"
        shutil.move(str(batch.stored_path), moved)
        moved.with_name(moved.name + ".reason.txt").write_text(
            f"file: {batch.file_name}\nsha256: {batch.sha256}\nreason_code: poison\n"
            f"reason: {reason}\n",
            encoding="utf-8",
        )
    ws.ledger.quarantine(ws.name, batch.id, reason, stored_path=moved)
    log.error("[%s] %s: %s", ws.name, batch.file_name, reason)
    notify(
        ws.spec,
        "quarantine",
        {
            "cycle_id": cycle_id,
            "file": batch.file_name,
            "sha256": batch.sha256,
            "batch_id": batch.id,
            "rows": batch.n_rows,
            "reason": reason,
            "quarantine_path": str(moved) if moved else None,
        },
    )
