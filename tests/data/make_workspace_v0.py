# ruff: noqa: I001  (imports modules of commit 75b031c, which no longer exist: see the docstring)
"""Regenerate ``tests/data/workspace_v0.db``: a state database as automl wrote it before versions.

The file stands for every workspace created before ``automl/state.py`` existed (schema version
0: the tables, no ``automl_schema_version``). It must be written by that code, so run this
script in a checkout of commit 75b031c (the last commit before the state module)::

    git worktree add /tmp/automl-v0 75b031c
    cd /tmp/automl-v0
    PYTHONPATH=. python $REPO/tests/data/make_workspace_v0.py $REPO/tests/data

It writes ``workspace_v0.db`` (SQLite, with the rows below) and ``workspace_v0_postgresql.sql``
(the DDL that code emits for PostgreSQL, which the PostgreSQL upgrade test replays).
The rows are the constants below; ``tests/test_state.py`` imports them and checks that each
row reads back exactly through today's stores after the upgrade. Timestamps the stores stamp
themselves are pinned to :data:`STAMP` so the file is the same on every run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

STAMP = "2025-01-02T03:04:05+00:00"

#: ``BatchLedger.add`` keyword arguments, in insertion order (ids 1, 2, 3).
BATCHES: list[dict[str, Any]] = [
    {
        "pipeline": "churn",
        "sha256": "a" * 64,
        "file_name": "batch_001.csv",
        "status": "accepted",
        "stored_path": "workspace/batches/churn/aaaa.parquet",
        "n_rows": 400,
    },
    {
        "pipeline": "churn",
        "sha256": "b" * 64,
        "file_name": "bad.csv",
        "status": "rejected",
        "reason": "missing column 'age'",
    },
    {
        "pipeline": "churn",
        "sha256": "c" * 64,
        "file_name": "batch_002.csv",
        "status": "accepted",
        "stored_path": "workspace/batches/churn/cccc.parquet",
        "n_rows": 250,
    },
]
#: Batch ids marked checked by a cycle.
CHECKED: dict[str, Any] = {"ids": [1], "cycle_id": "cycle-1"}
#: The churn pipeline's schema, as ``Schema`` fields.
SCHEMA: dict[str, Any] = {
    "target": "churned",
    "task": "classification",
    "features": [["age", "numeric"], ["plan", "categorical"]],
}
#: ``CycleResult`` fields, in recording order.
CYCLES: list[dict[str, Any]] = [
    {
        "pipeline": "churn",
        "cycle_id": "cycle-1",
        "status": "retuned",
        "started_at": "2025-01-02T03:00:00+00:00",
        "finished_at": "2025-01-02T03:01:00+00:00",
        "accepted_files": ["batch_001.csv"],
        "rejected_files": ["bad.csv"],
        "n_rows": 400,
        "drift_verdict": "drift",
        "share_drifted": 0.5,
        "drifted_columns": ["age"],
        "n_trials": 3,
        "best_cv_score": 0.81,
        "default_cv_score": 0.78,
        "challenger_score": 0.8,
        "champion_score": 0.75,
        "model_version": "2",
        "is_promoted": True,
        "champion_version": "2",
        "run_id": "run-1",
        "metric": "roc_auc",
    },
    {
        "pipeline": "churn",
        "cycle_id": "cycle-2",
        "status": "no_data",
        "started_at": "2025-01-02T04:00:00+00:00",
        "finished_at": "2025-01-02T04:00:01+00:00",
    },
    {
        "pipeline": "other",
        "cycle_id": "cycle-3",
        "status": "failed",
        "started_at": "2025-01-02T05:00:00+00:00",
        "finished_at": "2025-01-02T05:00:02+00:00",
        "error": "boom",
    },
]
#: ``DriftState`` fields per pipeline.
DRIFT_STATES: dict[str, dict[str, Any]] = {
    "churn": {
        "reference_version": "2",
        "recent": [[True, 1], [False, None]],
        "level": "warning",
        "n_checks": 4,
        "checks_since_retune": 1,
        "last_retune_at": 1735787045.5,
        "streak_since": None,
    },
}
#: ``PromotionLog.append`` keyword arguments, in order (ids 1, 2, 3); ``intent_id`` refers to
#: those ids. Row 3 is an intent with no outcome (a process killed between the two rows).
PROMOTIONS: list[dict[str, Any]] = [
    {
        "pipeline": "churn",
        "model_name": "churn-model",
        "action": "promote",
        "status": "intent",
        "actor": "service",
        "from_version": "1",
        "to_version": "2",
        "metric": "roc_auc",
        "challenger_score": 0.8,
        "champion_score": 0.75,
        "reason": "challenger beats champion",
        "cycle_id": "cycle-1",
        "details": {"margin": 0.0},
    },
    {
        "pipeline": "churn",
        "model_name": "churn-model",
        "action": "promote",
        "status": "applied",
        "actor": "service",
        "intent_id": 1,
        "from_version": "1",
        "to_version": "2",
        "cycle_id": "cycle-1",
    },
    {
        "pipeline": "churn",
        "model_name": "churn-model",
        "action": "rollback",
        "status": "intent",
        "actor": "alice@cli",
        "from_version": "2",
        "to_version": "1",
        "reason": "manual rollback",
    },
]


def postgresql_ddl() -> str:
    """The statements the stores of the day run to create their tables on PostgreSQL."""
    import sqlalchemy as sa

    import automl.data._ledger as ledger_module
    import automl.service._audit as audit_module
    import automl.service._drift_state as drift_state_module
    import automl.service._history as history_module

    statements: list[str] = []
    engine = sa.create_mock_engine(
        "postgresql+psycopg2://",
        lambda sql, *_, **__: statements.append(str(sql.compile(dialect=engine.dialect)).strip()),
    )
    for module in (ledger_module, history_module, drift_state_module, audit_module):
        module._meta.create_all(engine, checkfirst=False)
    return "".join(f"{s};\n" for s in statements)


def main(folder: Path) -> None:
    """Write ``workspace_v0.db`` and ``workspace_v0_postgresql.sql`` into ``folder``."""
    (folder / "workspace_v0_postgresql.sql").write_text(postgresql_ddl(), encoding="utf-8")
    path = folder / "workspace_v0.db"
    import automl.data._ledger as ledger_module
    import automl.service._audit as audit_module
    import automl.service._drift_state as drift_state_module
    from automl.data import BatchLedger, Schema
    from automl.drift import DriftState
    from automl.service._audit import PromotionLog
    from automl.service._drift_state import DriftStateStore
    from automl.service._history import CycleHistory, CycleResult

    def pinned() -> str:
        return STAMP

    # Deterministic file: the stores stamp rows with their module's utcnow.
    ledger_module.utcnow = pinned
    audit_module.utcnow = pinned
    drift_state_module.utcnow = pinned

    if path.exists():
        path.unlink()
    url = f"sqlite:///{path}"
    ledger = BatchLedger(url)
    for batch in BATCHES:
        stored = batch.get("stored_path")
        ledger.add(**{**batch, "stored_path": Path(stored) if stored else None})
    ledger.mark_checked("churn", CHECKED["ids"], CHECKED["cycle_id"])
    ledger.save_schema(
        "churn",
        Schema(
            target=SCHEMA["target"],
            task=SCHEMA["task"],
            features=tuple((name, kind) for name, kind in SCHEMA["features"]),
        ),
    )
    history = CycleHistory(url)
    for cycle in CYCLES:
        history.record(CycleResult.from_dict(cycle))
    drift_states = DriftStateStore(url)
    for pipeline, fields in DRIFT_STATES.items():
        drift_states.save(
            pipeline,
            DriftState(**{**fields, "recent": tuple(tuple(r) for r in fields["recent"])}),
        )
    log = PromotionLog(url)
    for row in PROMOTIONS:
        log.append(**row)

    from automl.data import get_engine

    # One self-contained file: fold the write-ahead log into it before it is committed.
    engine = get_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
    engine.dispose()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
