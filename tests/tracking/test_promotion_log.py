"""The promotion log on its own: append-only rows, open intents, and reconcile from the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from automl.state import promotions_table
from automl.tracking import PromotionLog


@pytest.fixture
def log(tmp_path: Path) -> PromotionLog:
    return PromotionLog(f"sqlite:///{tmp_path / 'automl.db'}")


def _intent(log: PromotionLog, to_version: str, *, pipeline: str = "churn") -> int:
    return log.append(
        pipeline=pipeline,
        model_name=f"{pipeline}-model",
        action="promote",
        status="intent",
        actor="service",
        from_version="1",
        to_version=to_version,
    )


def test_append_returns_increasing_ids_and_entries_come_back_oldest_first(
    log: PromotionLog,
) -> None:
    first = log.append(
        pipeline="churn",
        model_name="churn-model",
        action="reject",
        status="recorded",
        actor="service",
        to_version="2",
        metric="roc_auc",
        challenger_score=0.7,
        champion_score=0.8,
        reason="challenger worse",
        cycle_id="c1",
        details={"margin": 0.01},
    )
    other = _intent(log, "5", pipeline="other")
    second = _intent(log, "3")
    assert first < other < second

    entries = log.entries("churn")
    assert [e.id for e in entries] == [first, second]
    e = entries[0]
    assert (e.action, e.status, e.actor, e.to_version, e.metric, e.cycle_id) == (
        "reject",
        "recorded",
        "service",
        "2",
        "roc_auc",
        "c1",
    )
    assert (e.challenger_score, e.champion_score, e.reason) == (0.7, 0.8, "challenger worse")
    with log._engine.connect() as conn:  # details are kept in the row, not in LogEntry
        details = conn.execute(
            sa.select(promotions_table.c.details_json).where(promotions_table.c.id == first)
        ).scalar()
    assert details == '{"margin": 0.01}'
    assert [e.id for e in log.entries("other")] == [other]


def test_an_intent_is_open_until_an_outcome_row_names_it(log: PromotionLog) -> None:
    done = _intent(log, "2")
    log.append(
        pipeline="churn",
        model_name="churn-model",
        action="promote",
        status="applied",
        actor="service",
        intent_id=done,
        to_version="2",
    )
    pending = _intent(log, "3")
    assert [e.id for e in log.open_intents("churn")] == [pending]
    assert log.open_intents("other") == []


def test_reconcile_closes_each_open_intent_from_what_the_registry_shows(
    log: PromotionLog,
) -> None:
    moved = _intent(log, "2")  # the alias move happened before the process died
    not_moved = _intent(log, "3")  # the process died before the move
    _intent(log, "9", pipeline="other")
    asked: list[int] = []

    def champion() -> str:
        asked.append(1)
        return "2"

    assert log.reconcile("churn", champion) == [moved, not_moved]
    assert len(asked) == 2  # read per intent: the registry may change in between
    closing = {e.intent_id: e for e in log.entries("churn") if e.intent_id is not None}
    assert (closing[moved].status, closing[moved].actor) == ("applied", "reconcile")
    assert (closing[not_moved].status, closing[not_moved].to_version) == ("aborted", "3")
    assert "registry shows champion v2" in (closing[not_moved].reason or "")
    assert "move did not happen" in (closing[not_moved].reason or "")

    assert log.open_intents("churn") == []
    assert log.reconcile("churn", champion) == []  # nothing left: no new rows
    assert len(log.entries("churn")) == 4
    assert [e.to_version for e in log.open_intents("other")] == ["9"]
