"""Promotion decisions and how they move the registry aliases."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from automl.vocab import Approval

if TYPE_CHECKING:  # the gate's numpy is not needed to move an alias (``automl promote``)
    from automl.tracking._gate import GateResult
    from automl.tracking._registry import AliasRegistry

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a challenger replaces the champion, and why.

    Attributes:
        is_promoted: The verdict (False while awaiting manual approval).
        reason: One sentence a person can read in the registry.
        metric: Primary metric both were scored with.
        greater_is_better: Direction of ``metric``.
        margin: Required improvement.
        challenger_version: The new version.
        challenger_score: Its score on the holdout.
        champion_version: The serving version before the decision (None if there was none).
        champion_score: Its score on the same holdout.
        awaiting_approval: Manual mode: the challenger waits for ``automl promote``.
        in_shadow: Shadow mode: the challenger passed the holdout gate and waits as
            ``@challenger`` for the evidence of the next batches.
        gate: The full gate evaluation (None when there was no champion to compare with).
    """

    is_promoted: bool
    reason: str
    metric: str
    greater_is_better: bool
    margin: float
    challenger_version: str
    challenger_score: float
    champion_version: str | None = None
    champion_score: float | None = None
    awaiting_approval: bool = False
    in_shadow: bool = False
    gate: GateResult | None = None

    @property
    def improvement(self) -> float | None:
        """Challenger minus champion, oriented so positive means better."""
        if self.champion_score is None:
            return None
        diff = self.challenger_score - self.champion_score
        return diff if self.greater_is_better else -diff

    @property
    def outcome(self) -> str:
        """``promoted``, ``rejected``, ``awaiting_approval`` or ``shadow``."""
        if self.in_shadow:
            return "shadow"
        if self.awaiting_approval:
            return "awaiting_approval"
        return "promoted" if self.is_promoted else "rejected"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "improvement": self.improvement, "outcome": self.outcome}


def decide_promotion(
    *,
    metric: str,
    greater_is_better: bool,
    margin: float,
    challenger_version: str,
    challenger_score: float,
    champion_version: str | None,
    champion_score: float | None,
    gate: GateResult | None = None,
    approval: Approval = "auto",
) -> PromotionDecision:
    """Decide a promotion from the holdout scores and, when given, the full gate.

    With no champion the challenger is promoted. Otherwise, with a ``gate``, its verdict
    decides (margin, significance, guardrails); without one, the challenger must beat the
    champion by more than zero and at least ``margin``. In ``manual`` approval mode nothing is
    promoted: the decision waits for a person (``automl promote``) and says what the gate found.

    Example:
        >>> d = decide_promotion(metric="roc_auc", greater_is_better=True, margin=0.01,
        ...     challenger_version="2", challenger_score=0.83,
        ...     champion_version="1", champion_score=0.80)
        >>> d.is_promoted, round(d.improvement, 3)
        (True, 0.03)
        >>> decide_promotion(metric="rmse", greater_is_better=False, margin=0.0,
        ...     challenger_version="2", challenger_score=5.1,
        ...     champion_version="1", champion_score=5.0).outcome
        'rejected'
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    common: dict[str, Any] = {
        "metric": metric,
        "greater_is_better": greater_is_better,
        "margin": margin,
        "challenger_version": challenger_version,
        "challenger_score": challenger_score,
        "champion_version": champion_version,
        "champion_score": champion_score,
        "gate": gate,
    }
    if champion_version is None or champion_score is None:
        verdict, reason = True, "no champion yet"
    else:
        diff = challenger_score - champion_score
        improvement = diff if greater_is_better else -diff
        shown = (
            f"{metric} {challenger_score:.4f} vs champion v{champion_version} {champion_score:.4f}"
        )
        if gate is not None:
            verdict = gate.passed
            why = "; ".join(gate.reasons) or f"improvement {improvement:+.4f} passed every check"
        else:
            verdict = improvement > 0 and improvement >= margin
            cmp = ">=" if verdict else "below"
            why = f"improvement {improvement:+.4f} {cmp} margin {margin}"
        reason = f"{'passed' if verdict else 'failed'} the gate: {shown} ({why})"
    if approval == "manual":
        return PromotionDecision(
            is_promoted=False,
            awaiting_approval=True,
            reason=f"awaiting manual approval; {reason}",
            **common,
        )
    label = "promoted" if verdict else "rejected"
    if reason != "no champion yet":
        reason = f"{label}: {reason.split(': ', 1)[1]}"
    return PromotionDecision(is_promoted=verdict, reason=reason, **common)


def move_champion(
    tracker: AliasRegistry,
    model_name: str,
    new_version: str,
    *,
    current_version: str | None,
    drop_challenger: bool = True,
) -> None:
    """Make ``new_version`` the champion; the current one becomes ``previous-champion``.

    ``champion`` moves in one registry call, the last one that matters: if anything fails
    before it, the old champion still serves; ``previous-champion`` is set first and, should
    the move then fail, still names the version that is serving. With ``drop_challenger``
    the ``challenger`` alias is removed afterwards (a promotion settles the open candidacy;
    a rollback keeps it).
    """
    if current_version is not None and current_version != new_version:
        tracker.set_alias(model_name, PREVIOUS_CHAMPION, current_version)
    tracker.set_alias(model_name, CHAMPION, new_version)
    if drop_challenger:
        tracker.delete_alias(model_name, CHALLENGER)
