"""The cycle history on its own: what is recorded comes back, newest first, per pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from automl.service import CycleHistory, CycleResult
from automl.service._history import CycleStatus


def _cycle(
    cycle_id: str,
    finished_at: str,
    *,
    pipeline: str = "churn",
    status: CycleStatus = "no_drift",
    **fields: Any,
) -> CycleResult:
    return CycleResult(
        pipeline=pipeline,
        cycle_id=cycle_id,
        status=status,
        started_at="2025-01-01T00:00:00+00:00",
        finished_at=finished_at,
        **fields,
    )


@pytest.fixture
def history(tmp_path: Path) -> CycleHistory:
    return CycleHistory(f"sqlite:///{tmp_path / 'automl.db'}")


def test_cycles_read_back_newest_first_per_pipeline(history: CycleHistory) -> None:
    first = _cycle(
        "c1",
        "2025-01-01T01:00:00+00:00",
        status="retuned",
        accepted_files=("a.csv",),
        drifted_columns=("age", "plan"),
        share_drifted=0.25,
        is_promoted=True,
        metric="roc_auc",
    )
    second = _cycle("c2", "2025-01-01T02:00:00+00:00", status="no_data")
    # Recorded out of order: the history sorts by finish time, then by id on a tie.
    tie = _cycle("c3", "2025-01-01T02:00:00+00:00", status="failed", error="boom")
    for result in (tie, first, second):
        history.record(result)
    history.record(_cycle("x1", "2025-01-01T09:00:00+00:00", pipeline="other"))

    assert history.list("churn") == [tie, second, first]  # every field as recorded
    assert history.list("churn", limit=2) == [tie, second]
    assert history.last("churn") == tie
    assert [r.cycle_id for r in history.list("other")] == ["x1"]
    assert history.list("nobody") == [] and history.last("nobody") is None


def test_last_checked_skips_cycles_without_a_drift_check(history: CycleHistory) -> None:
    history.record(_cycle("c1", "2025-01-01T01:00:00+00:00", drift_verdict="warning"))
    history.record(_cycle("c2", "2025-01-01T02:00:00+00:00", drift_verdict="no_champion"))
    history.record(_cycle("c3", "2025-01-01T03:00:00+00:00", status="no_data"))

    assert history.last("churn").cycle_id == "c3"  # type: ignore[union-attr]
    assert history.last("churn", checked=True).cycle_id == "c1"  # type: ignore[union-attr]
    history.record(_cycle("c4", "2025-01-01T04:00:00+00:00", drift_verdict="ok"))
    assert history.last("churn", checked=True).cycle_id == "c4"  # type: ignore[union-attr]


def test_a_cycle_id_is_recorded_once(history: CycleHistory) -> None:
    history.record(_cycle("c1", "2025-01-01T01:00:00+00:00"))
    with pytest.raises(sa.exc.IntegrityError):
        history.record(_cycle("c1", "2025-01-01T02:00:00+00:00"))
    assert len(history.list("churn")) == 1


def test_two_histories_on_one_database_see_each_other(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'automl.db'}"
    CycleHistory(url).record(_cycle("c1", "2025-01-01T01:00:00+00:00"))
    assert [r.cycle_id for r in CycleHistory(url).list("churn")] == ["c1"]
