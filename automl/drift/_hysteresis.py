"""Hysteresis: from a sequence of drift checks to ``ok`` / ``warning`` / ``drift``.

A single drifted check is evidence, not yet a reason to spend a re-tune. :class:`Hysteresis`
keeps a short memory of checks (:class:`DriftState`, persisted per pipeline by the service) and
confirms drift after ``confirm_checks`` consecutive drifted checks, or when ``window_drifted``
of the last ``window_checks`` checks drifted (a cumulative window tolerates one calm batch in a
drifting stream). A confirmed drift within the cool-down after a re-tune only warns. After a
re-tune, and whenever the champion changes (promotion, rollback), the memory is cleared: the
reference is rebased on the new champion's training rows, and evidence gathered against the old
reference no longer counts.

The state machine is pure: the caller passes the clock (``now``, seconds) and stores the state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from automl.config import HysteresisSpec, build_section
from automl.drift._report import DriftLevel


@dataclass(frozen=True)
class DriftState:
    """What a pipeline remembers between drift checks.

    Attributes:
        reference_version: Champion version whose training rows are the reference.
        recent: ``(is_drifted, first_batch_id)`` of the latest checks since the last rebase,
            oldest first (only as many as the rules need).
        level: Level decided by the latest check.
        n_checks: Checks since the state was created.
        checks_since_retune: Checks since the last re-tune; None before the first one.
        last_retune_at: Time of the last re-tune (seconds, the caller's clock); None before.
        streak_since: First batch of the current run of consecutive drifted checks.
        waiting_since: Late labels: a confirmed drift whose re-tune waits for labels, by the
            first batch of its evidence; None when no re-tune waits. It survives calm checks
            (the drift was confirmed) and is cleared by a re-tune or a new champion.
    """

    reference_version: str | None = None
    recent: tuple[tuple[bool, int | None], ...] = ()
    level: DriftLevel = "ok"
    n_checks: int = 0
    checks_since_retune: int | None = None
    last_retune_at: float | None = None
    streak_since: int | None = None
    waiting_since: int | None = None

    def to_json(self) -> str:
        """Serialize to a JSON string."""
        return json.dumps(
            {
                "reference_version": self.reference_version,
                "recent": [list(r) for r in self.recent],
                "level": self.level,
                "n_checks": self.n_checks,
                "checks_since_retune": self.checks_since_retune,
                "last_retune_at": self.last_retune_at,
                "streak_since": self.streak_since,
                "waiting_since": self.waiting_since,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> DriftState:
        """Inverse of :meth:`to_json`."""
        raw: dict[str, Any] = json.loads(text)
        return cls(
            reference_version=raw.get("reference_version"),
            recent=tuple(
                (bool(d), None if b is None else int(b)) for d, b in raw.get("recent", [])
            ),
            level=raw.get("level", "ok"),
            n_checks=int(raw.get("n_checks", 0)),
            checks_since_retune=raw.get("checks_since_retune"),
            last_retune_at=raw.get("last_retune_at"),
            streak_since=raw.get("streak_since"),
            waiting_since=raw.get("waiting_since"),
        )


@dataclass(frozen=True)
class HysteresisDecision:
    """The outcome of one check under hysteresis.

    Attributes:
        level: ``ok``, ``warning`` or ``drift`` (``drift`` means: re-tune now).
        state: The state to store.
        reason: One sentence saying why.
        since_batch_id: With ``drift``, the first batch of the evidence (where the training
            window should start); else None.
    """

    level: DriftLevel
    state: DriftState
    reason: str
    since_batch_id: int | None = None


class Hysteresis:
    """Confirms drift over several checks and enforces a cool-down between re-tunes.

    The settings are those of a pipeline's ``drift.hysteresis`` section
    (:class:`automl.config.HysteresisSpec`), which checks them: :meth:`from_spec` takes a
    validated section, and the arguments below are validated by building one.

    Args:
        confirm_checks: Drift after this many consecutive drifted checks (>= 1; 1 = at once).
        window_checks: With ``window_drifted``: drift when at least ``window_drifted`` of the
            last ``window_checks`` checks drifted. Either rule confirms.
        window_drifted: See ``window_checks``.
        cooldown_checks: Checks after a re-tune during which a confirmed drift only warns (3).
        cooldown_s: Seconds after a re-tune during which a confirmed drift only warns.

    Raises:
        ValueError: A parameter breaks the section's rules; the message names it, the rule and
            the value.

    Example:
        >>> h = Hysteresis(confirm_checks=2, cooldown_checks=1)
        >>> state = h.rebase(DriftState(), "1")
        >>> levels = []
        >>> for t, drifted in enumerate([True, False, True, True]):
        ...     d = h.observe(state, is_drifted=drifted, now=float(t), batch_id=t)
        ...     state = d.state
        ...     levels.append(d.level)
        >>> levels, d.since_batch_id
        (['warning', 'ok', 'warning', 'drift'], 2)
        >>> state = h.after_retune(state, now=4.0, promoted_version="2")
        >>> [h.observe(state, is_drifted=True, now=5.0).level, state.reference_version]
        ['warning', '2']
    """

    def __init__(
        self,
        *,
        confirm_checks: int = 1,
        window_checks: int | None = None,
        window_drifted: int | None = None,
        cooldown_checks: int = 3,
        cooldown_s: float = 0.0,
    ) -> None:
        spec = build_section(
            HysteresisSpec,
            confirm_checks=confirm_checks,
            window_checks=window_checks,
            window_drifted=window_drifted,
            cooldown_checks=cooldown_checks,
            cooldown_s=cooldown_s,
        )
        self._configure(spec)

    @classmethod
    def from_spec(cls, spec: HysteresisSpec) -> Hysteresis:
        """The hysteresis a pipeline's validated ``drift.hysteresis`` section describes."""
        hysteresis = cls.__new__(cls)
        hysteresis._configure(spec)
        return hysteresis

    def _configure(self, spec: HysteresisSpec) -> None:
        self.spec = spec
        self.confirm_checks = spec.confirm_checks
        self.window_checks = spec.window_checks
        self.window_drifted = spec.window_drifted
        self.cooldown_checks = spec.cooldown_checks
        self.cooldown_s = spec.cooldown_s
        self._memory = max(spec.confirm_checks, spec.window_checks or 0)

    def rebase(self, state: DriftState, reference_version: str | None) -> DriftState:
        """Point the state at the serving champion; a new champion clears the evidence."""
        if state.reference_version == reference_version:
            return state
        return replace(
            state,
            reference_version=reference_version,
            recent=(),
            level="ok",
            streak_since=None,
            waiting_since=None,
        )

    def _cooling(self, state: DriftState, now: float) -> str | None:
        if state.checks_since_retune is None:
            return None
        if state.checks_since_retune <= self.cooldown_checks:
            return f"check {state.checks_since_retune} of a {self.cooldown_checks}-check cool-down"
        if state.last_retune_at is not None and now - state.last_retune_at < self.cooldown_s:
            left = self.cooldown_s - (now - state.last_retune_at)
            return f"{left:.0f} s of a {self.cooldown_s:g} s cool-down left"
        return None

    def observe(
        self,
        state: DriftState,
        *,
        is_drifted: bool,
        now: float,
        is_warning: bool = False,
        batch_id: int | None = None,
    ) -> HysteresisDecision:
        """Fold one check into the state and decide.

        Args:
            state: The stored state (after :meth:`rebase`).
            is_drifted: The check's dataset-level decision.
            now: Current time in seconds (any clock, the same one every call).
            is_warning: The check was elevated without being drifted.
            batch_id: First batch of the check (so a re-tune can start its window there).

        Returns:
            The level, the new state and the reason.
        """
        recent = (*state.recent, (bool(is_drifted), batch_id))[-self._memory :]
        since_retune = None if state.checks_since_retune is None else state.checks_since_retune + 1
        continues = bool(state.recent) and state.recent[-1][0]
        streak_since = (state.streak_since if continues else batch_id) if is_drifted else None
        new_state = replace(
            state,
            recent=recent,
            n_checks=state.n_checks + 1,
            checks_since_retune=since_retune,
            streak_since=streak_since,
        )
        streak = 0
        for drifted, _ in reversed(recent):
            if not drifted:
                break
            streak += 1
        since: int | None = None
        reason = ""
        if streak >= self.confirm_checks:
            since = streak_since
            reason = f"{streak} consecutive drifted check(s) (confirm after {self.confirm_checks})"
        elif self.window_checks is not None and self.window_drifted is not None:
            window = recent[-self.window_checks :]
            hits = [b for d, b in window if d]
            if len(hits) >= self.window_drifted:
                since = hits[0]
                reason = (
                    f"{len(hits)} of the last {len(window)} checks drifted "
                    f"(confirm at {self.window_drifted} of {self.window_checks})"
                )
        level: DriftLevel
        if reason:
            cooling = self._cooling(new_state, now)
            if cooling is None:
                level = "drift"
            else:
                level, reason, since = "warning", f"drift confirmed but {cooling}", None
        elif is_drifted:
            level = "warning"
            reason = f"drifted check {streak} of {self.confirm_checks} needed to confirm"
        elif is_warning:
            level, reason = "warning", "drift score above the warning level"
        else:
            level, reason = "ok", "no drift"
        return HysteresisDecision(
            level=level,
            state=replace(new_state, level=level),
            reason=reason,
            since_batch_id=since if level == "drift" else None,
        )

    def wait_for_labels(self, state: DriftState, since_batch_id: int) -> DriftState:
        """Keep a confirmed drift whose re-tune waits for labels (late labels): the next
        cycle re-tunes from ``since_batch_id`` once enough rows after it are labelled, without
        a fresh confirmation. An earlier waiting drift keeps its start."""
        since = since_batch_id
        if state.waiting_since is not None:
            since = min(state.waiting_since, since_batch_id)
        return replace(state, waiting_since=since)

    def after_retune(
        self, state: DriftState, *, now: float, promoted_version: str | None = None
    ) -> DriftState:
        """Start the cool-down and clear the evidence; rebase when a new champion was promoted.

        Args:
            state: The state after the check that triggered the re-tune.
            now: Current time in seconds.
            promoted_version: The new champion's version, or None when the champion stayed.
        """
        return replace(
            state,
            reference_version=promoted_version or state.reference_version,
            recent=(),
            streak_since=None,
            waiting_since=None,
            level="ok",
            checks_since_retune=0,
            last_retune_at=now,
        )
