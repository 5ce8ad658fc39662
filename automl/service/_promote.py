"""Decisions by a person: ``automl promote`` and ``automl rollback``.

The registry side (the logged alias move, reconcile) is :mod:`automl.tracking`; this adds what
the service owns around it: the workspace, the decision's version tags and the webhook. Against
a tracking server the aliases move over MLflow's REST API (:func:`make_registry`), so neither
command imports MLflow.
"""

from __future__ import annotations

from automl.config import PipelineSpec
from automl.service import _record as record
from automl.service._notify import notify
from automl.service._workspace import make_registry
from automl.tracking import AliasMove, PromotionLog, current_actor, promote_version
from automl.tracking import rollback as rollback_version


def promote_manually(
    spec: PipelineSpec, *, version: str | None = None, actor: str | None = None
) -> AliasMove:
    """Make ``version`` (default: the ``@challenger``) the champion, as a person decided.

    Raises:
        TrackingError: No such version, no challenger to promote, or it already serves.
    """
    who = actor or current_actor()
    move = promote_version(
        spec,
        make_registry(spec),
        PromotionLog(spec.state_url),
        version=version,
        actor=who,
        version_tags=record.manual_decision_tags(who),
    )
    notify(
        spec, "promotion", {"version": move.to_version, "previous": move.from_version, "actor": who}
    )
    return move


def rollback(
    spec: PipelineSpec, *, version: str | None = None, actor: str | None = None
) -> AliasMove:
    """Point ``@champion`` back at ``@previous-champion`` (or at ``version``).

    The version rolled back from becomes ``@previous-champion``, so a second rollback rolls
    forward again. The drift reference follows the champion automatically.

    Raises:
        TrackingError: No champion, nothing to roll back to, or the target already serves.
    """
    move = rollback_version(
        spec, make_registry(spec), PromotionLog(spec.state_url), version=version, actor=actor
    )
    notify(
        spec,
        "promotion",
        {"version": move.to_version, "previous": move.from_version, "rollback": True},
    )
    return move
