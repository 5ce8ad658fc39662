"""Reconcile finishes or undoes every alias move a crash cut short (real MLflow registry)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from automl.config import PipelineSpec
from automl.tracking import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    MlflowTracker,
    PromotionLog,
    reconcile,
)
from automl.tracking import move_logged as _move

ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)


@pytest.fixture
def registry(
    write_spec: Callable[..., PipelineSpec], tmp_path: Path
) -> tuple[PipelineSpec, MlflowTracker, PromotionLog]:
    """A pipeline whose model has versions 1 to 3 in a real (SQLite) registry."""
    from automl.service import make_tracker

    spec = write_spec()
    tracker = make_tracker(spec)
    tracker.client.create_registered_model(spec.model_name)
    for _ in range(3):
        tracker.client.create_model_version(spec.model_name, source=(tmp_path / "m").as_uri())
    return spec, tracker, PromotionLog(spec.state_url)


def _aliases(tracker: MlflowTracker, model: str) -> dict[str, str]:
    found = {a: tracker.get_alias(model, a) for a in ALIASES}
    return {a: v.version for a, v in found.items() if v is not None}


def _intent(log: PromotionLog, spec: PipelineSpec, action: str, frm: str | None, to: str) -> int:
    return log.append(
        pipeline=spec.name,
        model_name=spec.model_name,
        action=action,  # type: ignore[arg-type]
        status="intent",
        actor="service",
        from_version=frm,
        to_version=to,
    )


def _promote_in_turn(
    spec: PipelineSpec, tracker: MlflowTracker, log: PromotionLog, *versions: str
) -> None:
    """Promote each version in turn through a completed (logged) alias move."""
    previous = None
    for version in versions:
        _move(spec, tracker, log, action="promote", to_version=version,
              from_version=previous, reason=f"promote v{version}", actor="service")  # fmt: skip
        previous = version


def test_kill_right_after_champion_moved_is_finished_by_reconcile(
    registry: tuple[PipelineSpec, MlflowTracker, PromotionLog],
) -> None:
    spec, tracker, log = registry
    model = spec.model_name
    _promote_in_turn(spec, tracker, log, "1")
    # What `promote` and `move_champion` had done when the process was killed: @challenger
    # on the candidate, the intent written, @previous-champion and then @champion moved.
    tracker.set_alias(model, CHALLENGER, "2")
    intent = _intent(log, spec, "promote", "1", "2")
    tracker.set_alias(model, PREVIOUS_CHAMPION, "1")
    tracker.set_alias(model, CHAMPION, "2")
    assert _aliases(tracker, model) == {CHAMPION: "2", CHALLENGER: "2", PREVIOUS_CHAMPION: "1"}

    assert reconcile(spec, tracker, log) == [intent]
    assert _aliases(tracker, model) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}
    closing = log.entries(spec.name)[-1]
    assert (closing.intent_id, closing.status, closing.actor) == (intent, "applied", "reconcile")
    assert "@challenger dropped from v2" in (closing.reason or "")
    assert reconcile(spec, tracker, log) == []  # nothing left open


def test_kill_before_previous_champion_was_set_is_finished_too(
    registry: tuple[PipelineSpec, MlflowTracker, PromotionLog],
) -> None:
    spec, tracker, log = registry
    model = spec.model_name
    _promote_in_turn(spec, tracker, log, "1", "2")
    # A manual promotion of v3 whose @champion moved while @previous-champion still said v1.
    tracker.set_alias(model, CHALLENGER, "3")
    _intent(log, spec, "manual_promote", "2", "3")
    tracker.set_alias(model, CHAMPION, "3")
    reconcile(spec, tracker, log)
    assert _aliases(tracker, model) == {CHAMPION: "3", PREVIOUS_CHAMPION: "2"}


def test_kill_between_previous_champion_and_champion_is_rolled_back(
    registry: tuple[PipelineSpec, MlflowTracker, PromotionLog],
) -> None:
    spec, tracker, log = registry
    model = spec.model_name
    _promote_in_turn(spec, tracker, log, "1", "2")
    assert _aliases(tracker, model) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}
    tracker.set_alias(model, CHALLENGER, "3")
    intent = _intent(log, spec, "promote", "2", "3")
    tracker.set_alias(model, PREVIOUS_CHAMPION, "2")  # killed before @champion moved
    assert reconcile(spec, tracker, log) == [intent]
    # v2 still serves; @previous-champion is v1 again, as the log says; v3 stays a candidate.
    assert _aliases(tracker, model) == {CHAMPION: "2", CHALLENGER: "3", PREVIOUS_CHAMPION: "1"}
    assert log.entries(spec.name)[-1].status == "aborted"


def test_an_aborted_first_move_leaves_no_previous_champion(
    registry: tuple[PipelineSpec, MlflowTracker, PromotionLog],
) -> None:
    spec, tracker, log = registry
    model = spec.model_name
    _promote_in_turn(spec, tracker, log, "1")
    _intent(log, spec, "promote", "1", "2")
    tracker.set_alias(model, PREVIOUS_CHAMPION, "1")
    reconcile(spec, tracker, log)
    assert _aliases(tracker, model) == {CHAMPION: "1"}


def test_a_rollback_keeps_the_challenger_where_it_was(
    registry: tuple[PipelineSpec, MlflowTracker, PromotionLog],
) -> None:
    spec, tracker, log = registry
    model = spec.model_name
    _promote_in_turn(spec, tracker, log, "1", "2")
    tracker.set_alias(model, CHALLENGER, "3")
    _intent(log, spec, "rollback", "2", "1")
    tracker.set_alias(model, PREVIOUS_CHAMPION, "2")
    tracker.set_alias(model, CHAMPION, "1")  # killed right after the move
    reconcile(spec, tracker, log)
    assert _aliases(tracker, model) == {CHAMPION: "1", CHALLENGER: "3", PREVIOUS_CHAMPION: "2"}
    assert log.entries(spec.name)[-1].status == "applied"


def test_an_unreadable_registry_leaves_the_intents_open(
    registry: tuple[PipelineSpec, MlflowTracker, PromotionLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from automl.errors import AutomlError

    spec, tracker, log = registry
    _promote_in_turn(spec, tracker, log, "1")
    intent = _intent(log, spec, "promote", "1", "2")
    with socket.socket() as s:  # a port nothing listens on: the registry is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = MlflowTracker(f"http://127.0.0.1:{port}", "e")
    with pytest.raises(AutomlError):
        reconcile(spec, down, log)
    assert [e.id for e in log.open_intents(spec.name)] == [intent]  # not closed blind
    assert log.entries(spec.name)[-1].status == "intent"
    # Once the registry answers, the intent is closed from what it shows (v1 still serves).
    assert reconcile(spec, tracker, log) == [intent]
    assert log.entries(spec.name)[-1].status == "aborted"
