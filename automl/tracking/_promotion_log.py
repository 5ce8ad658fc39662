"""The promotion log: an append-only record of every registry decision and alias move.

Each alias move is written twice: an ``intent`` row before the registry is touched and an
``applied`` or ``aborted`` row after. A process killed in between leaves an intent without an
outcome; :meth:`PromotionLog.reconcile` then reads the registry and appends what actually
happened, so the log always says which version is serving.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from automl.state import open_state, promotions_table, utcnow

Action = Literal[
    "promote", "reject", "await_approval", "manual_promote", "rollback", "shadow", "shadow_drop"
]
Status = Literal["intent", "applied", "aborted", "recorded"]
#: The actions that move ``@champion`` (each logged as an intent, then its outcome).
CHAMPION_MOVES: tuple[Action, ...] = ("promote", "manual_promote", "rollback")


def current_actor() -> str:
    """Who is acting: ``user@automl`` for commands, ``service`` for scheduled cycles."""
    try:
        return f"{getpass.getuser()}@cli"
    except Exception:  # no user name in some containers
        return "unknown@cli"


@dataclass(frozen=True)
class LogEntry:
    """One row of the promotion log."""

    id: int
    pipeline: str
    model_name: str
    action: str
    status: str
    intent_id: int | None
    from_version: str | None
    to_version: str | None
    metric: str | None
    challenger_score: float | None
    champion_score: float | None
    reason: str | None
    actor: str
    cycle_id: str | None
    created_at: str


class PromotionLog:
    """Append-only promotion log in the workspace state database.

    Args:
        url: SQLAlchemy URL of the state database.
    """

    def __init__(self, url: str) -> None:
        self._engine = open_state(url)

    def append(
        self,
        *,
        pipeline: str,
        model_name: str,
        action: Action,
        status: Status,
        actor: str,
        intent_id: int | None = None,
        from_version: str | None = None,
        to_version: str | None = None,
        metric: str | None = None,
        challenger_score: float | None = None,
        champion_score: float | None = None,
        reason: str | None = None,
        cycle_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append a row and return its id (rows are never updated or deleted)."""
        with self._engine.begin() as conn:
            result = conn.execute(
                promotions_table.insert().values(
                    pipeline=pipeline,
                    model_name=model_name,
                    action=action,
                    status=status,
                    intent_id=intent_id,
                    from_version=from_version,
                    to_version=to_version,
                    metric=metric,
                    challenger_score=challenger_score,
                    champion_score=champion_score,
                    reason=reason,
                    actor=actor,
                    cycle_id=cycle_id,
                    created_at=utcnow(),
                    details_json=json.dumps(details, default=str) if details else None,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def entries(self, pipeline: str) -> list[LogEntry]:
        """All rows of a pipeline, oldest first."""
        t = promotions_table
        query = sa.select(t).where(t.c.pipeline == pipeline).order_by(t.c.id)
        with self._engine.connect() as conn:
            return [
                LogEntry(**{k: v for k, v in row._mapping.items() if k != "details_json"})
                for row in conn.execute(query)
            ]

    def open_intents(self, pipeline: str) -> list[LogEntry]:
        """Intents with no outcome row (the process stopped between the two)."""
        rows = self.entries(pipeline)
        closed = {r.intent_id for r in rows if r.intent_id is not None}
        return [r for r in rows if r.status == "intent" and r.id not in closed]

    def reconcile(
        self,
        pipeline: str,
        champion_version: Callable[[], str | None],
        *,
        settle: Callable[[LogEntry, str | None], str] | None = None,
    ) -> list[int]:
        """Close open intents from what the registry says now; return the intents closed.

        Args:
            pipeline: Pipeline name.
            champion_version: Reads the version ``@champion`` points at now.
            settle: Called with each open intent and the serving version before its outcome
                row is written; finishes or undoes the rest of the move and returns what it
                did (added to the row's reason).
        """
        closed = []
        for intent in self.open_intents(pipeline):
            serving = champion_version()
            applied = serving == intent.to_version
            note = settle(intent, serving) if settle is not None else ""
            self.append(
                pipeline=pipeline,
                model_name=intent.model_name,
                action=intent.action,  # type: ignore[arg-type]
                status="applied" if applied else "aborted",
                actor="reconcile",
                intent_id=intent.id,
                from_version=intent.from_version,
                to_version=intent.to_version,
                reason=f"interrupted; registry shows champion v{serving} "
                f"({'move completed' if applied else 'move did not happen'})"
                + (f"; {note}" if note else ""),
            )
            closed.append(intent.id)
        return closed

    def champion_move(self, pipeline: str) -> LogEntry | None:
        """The newest applied move of ``@champion``: its ``to_version`` is the champion, as far
        as the log knows (None when no move was ever applied).

        Every move automl makes goes through the log, so this answers "which version serves"
        from the state database alone, without an MLflow client. It does not know about an
        intent still open (check :meth:`open_intents` first: only the registry knows whether
        that move happened) nor about an alias moved outside automl.
        """
        t = promotions_table
        query = (
            sa.select(t)
            .where(
                t.c.pipeline == pipeline,
                t.c.status == "applied",
                t.c.action.in_(CHAMPION_MOVES),
            )
            .order_by(t.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return LogEntry(**{k: v for k, v in row._mapping.items() if k != "details_json"})

    def serving_since(self, pipeline: str, version: str) -> LogEntry | None:
        """The newest applied move that made ``version`` the champion, or None."""
        applied = [
            e for e in self.entries(pipeline) if e.status == "applied" and e.to_version == version
        ]
        return applied[-1] if applied else None
