"""Moving the registry aliases, each move logged before and after it happens.

Every move of ``@champion`` (a promotion by the cycle, a manual promotion, a rollback) goes
through :func:`move_logged`: an ``intent`` row in the promotion log, the alias move, then an
``applied`` or ``aborted`` row. :func:`reconcile` closes intents a crash left open from what the
registry shows, so the log always says which version serves. The decision that asks for a move
is made elsewhere (the cycle's gate, or a person); this module only carries it out, through any
:class:`~automl.tracking.AliasRegistry` (``MlflowTracker``, or ``RestRegistry`` for a person's
move against a tracking server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from automl.config import PipelineSpec
from automl.errors import TrackingError
from automl.tracking._mlflow import ModelVersionInfo
from automl.tracking._promotion import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, move_champion
from automl.tracking._promotion_log import Action, LogEntry, PromotionLog, current_actor
from automl.tracking._registry import AliasRegistry


@dataclass(frozen=True)
class AliasMove:
    """What a manual promotion or rollback did."""

    pipeline: str
    model_name: str
    action: str
    from_version: str | None
    to_version: str


def serving_version(tracker: AliasRegistry, model_name: str) -> str | None:
    """The version ``@champion`` points at, or None (no champion, or the registry is down)."""
    try:
        champion = tracker.get_alias(model_name, CHAMPION)
    except Exception:
        return None
    return champion.version if champion else None


def move_logged(
    spec: PipelineSpec,
    tracker: AliasRegistry,
    log: PromotionLog,
    *,
    action: Action,
    to_version: str,
    from_version: str | None,
    reason: str,
    actor: str,
    cycle_id: str | None = None,
    drop_challenger: bool = True,
    scores: dict[str, Any] | None = None,
) -> None:
    """Move ``@champion`` to ``to_version`` between an intent row and its outcome row.

    Raises:
        TrackingError: The registry refused the move; the outcome row says which version
            serves now (``applied`` if the move happened after all, else ``aborted``).
    """
    common: dict[str, Any] = {
        "pipeline": spec.name,
        "model_name": spec.model_name,
        "action": action,
        "actor": actor,
        "from_version": from_version,
        "to_version": to_version,
        "cycle_id": cycle_id,
        **(scores or {}),
    }
    intent = log.append(status="intent", reason=reason, **common)
    try:
        move_champion(
            tracker,
            spec.model_name,
            to_version,
            current_version=from_version,
            drop_challenger=drop_challenger,
        )
    except Exception as exc:
        serving = serving_version(tracker, spec.model_name)
        log.append(
            status="applied" if serving == to_version else "aborted",
            intent_id=intent,
            reason=f"alias move failed: {exc}; champion is v{serving}",
            **common,
        )
        raise TrackingError(
            f"pipeline {spec.name!r}: moving @champion to v{to_version} failed ({exc}); "
            f"@champion is v{serving}"
        ) from exc
    log.append(status="applied", intent_id=intent, reason=reason, **common)


def reconcile(spec: PipelineSpec, tracker: AliasRegistry, log: PromotionLog) -> list[int]:
    """Close log intents left open by a crash, finishing or undoing each alias move.

    The registry says whether ``@champion`` moved. If it did, the rest of the move is done:
    ``@previous-champion`` names the version it replaced and, for a promotion, ``@challenger``
    (which named the promoted version) is dropped, so no two aliases name one version. If it
    did not, ``@previous-champion`` is put back where the log says it was (it is set before
    ``@champion`` moves). Each intent then gets its ``applied`` or ``aborted`` row.

    Returns:
        The ids of the intents closed.

    Raises:
        TrackingError: The registry cannot be read; no intent was closed.
    """
    if not log.open_intents(spec.name):
        return []
    model = spec.model_name

    def settle(intent: LogEntry, serving: str | None) -> str:
        if serving is None:
            return ""  # no champion, or the registry cannot be read: leave the aliases
        done = []
        if serving == intent.to_version:
            previous = intent.from_version
            if (
                previous
                and previous != serving
                and _aliased(tracker, model, PREVIOUS_CHAMPION) != previous
            ):
                tracker.set_alias(model, PREVIOUS_CHAMPION, previous)
                done.append(f"@previous-champion set to v{previous}")
            challenger = _aliased(tracker, model, CHALLENGER)
            if intent.action != "rollback" and challenger == serving:
                tracker.delete_alias(model, CHALLENGER)
                done.append(f"@challenger dropped from v{serving}")
            return ", ".join(done)
        if _aliased(tracker, model, PREVIOUS_CHAMPION) == serving:
            before = log.serving_since(spec.name, serving)
            if before is not None and before.from_version and before.from_version != serving:
                tracker.set_alias(model, PREVIOUS_CHAMPION, before.from_version)
                return f"@previous-champion restored to v{before.from_version}"
            tracker.delete_alias(model, PREVIOUS_CHAMPION)
            return f"@previous-champion removed from v{serving}"
        return ""

    # Read strictly: a registry that cannot be read raises here and leaves every intent open
    # (closing them as "aborted" would guess; the next reconcile knows).
    return log.reconcile(spec.name, lambda: _aliased(tracker, model, CHAMPION), settle=settle)


def _aliased(tracker: AliasRegistry, model_name: str, alias: str) -> str | None:
    found = tracker.get_alias(model_name, alias)
    return found.version if found else None


def _target(
    tracker: AliasRegistry,
    model_name: str,
    version: str | None,
    *,
    default_alias: str,
    current: str | None,
) -> ModelVersionInfo:
    """The version to move @champion to: ``version``, else what ``default_alias`` names."""
    if version is None:
        aliased = tracker.get_alias(model_name, default_alias)
        if aliased is None:
            raise TrackingError(f"model {model_name!r} has no @{default_alias}; pass --version N")
        version = aliased.version
    try:
        target = tracker.get_version(model_name, version)
    except Exception as exc:
        raise TrackingError(f"model {model_name!r} has no version {version}: {exc}") from exc
    if target.version == current:
        raise TrackingError(f"v{target.version} of {model_name!r} is already the champion")
    return target


def promote_version(
    spec: PipelineSpec,
    tracker: AliasRegistry,
    log: PromotionLog,
    *,
    version: str | None = None,
    actor: str | None = None,
    version_tags: dict[str, str] | None = None,
) -> AliasMove:
    """Make ``version`` (default: the ``@challenger``) the champion, as a person decided.

    Args:
        spec: The pipeline.
        tracker: Its registry (``MlflowTracker``, or ``RestRegistry`` for a tracking server).
        log: Its promotion log.
        version: The version to promote; default the one ``@challenger`` names.
        actor: Who decided (default: the OS user, ``user@cli``).
        version_tags: Tags written on the version before the move (the decision record).

    Raises:
        TrackingError: No such version, no challenger to promote, or it already serves.
    """
    return _move_by_hand(
        spec, tracker, log, "manual_promote", version, actor, version_tags=version_tags
    )


def rollback(
    spec: PipelineSpec,
    tracker: AliasRegistry,
    log: PromotionLog,
    *,
    version: str | None = None,
    actor: str | None = None,
) -> AliasMove:
    """Point ``@champion`` back at ``@previous-champion`` (or at ``version``).

    The version rolled back from becomes ``@previous-champion``, so a second rollback rolls
    forward again; ``@challenger`` stays where it is.

    Raises:
        TrackingError: No champion, nothing to roll back to, or the target already serves.
    """
    return _move_by_hand(spec, tracker, log, "rollback", version, actor)


def _move_by_hand(
    spec: PipelineSpec,
    tracker: AliasRegistry,
    log: PromotionLog,
    action: Action,
    version: str | None,
    actor: str | None,
    *,
    version_tags: dict[str, str] | None = None,
) -> AliasMove:
    """A person's move of ``@champion``: a promotion (default target ``@challenger``) or a
    rollback (default ``@previous-champion``, keeping ``@challenger``)."""
    # Read strictly, before reconcile: a registry that cannot be read fails the command here,
    # with its reason, instead of reading as "no champion" (and closing open intents blind).
    current = _aliased(tracker, spec.model_name, CHAMPION)
    reconcile(spec, tracker, log)
    is_rollback = action == "rollback"
    if is_rollback and current is None:
        raise TrackingError(f"model {spec.model_name!r} has no @champion to roll back")
    target = _target(
        tracker,
        spec.model_name,
        version,
        default_alias=PREVIOUS_CHAMPION if is_rollback else CHALLENGER,
        current=current,
    ).version
    who = actor or current_actor()
    if version_tags:
        tracker.set_version_tags(spec.model_name, target, version_tags)
    reason = (
        f"rollback from v{current} to v{target} by {who}"
        if is_rollback
        else f"manual promotion of v{target} by {who}"
    )
    move_logged(
        spec,
        tracker,
        log,
        action=action,
        to_version=target,
        from_version=current,
        reason=reason,
        actor=who,
        drop_challenger=not is_rollback,
    )
    return AliasMove(spec.name, spec.model_name, action, current, target)
