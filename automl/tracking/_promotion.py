"""The promotion rule and how a decision moves the registry aliases."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from automl.tracking._mlflow import MlflowTracker

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a challenger replaces the champion, and why.

    Attributes:
        is_promoted: The verdict.
        reason: One sentence a person can read in the registry.
        metric: Primary metric both were scored with.
        greater_is_better: Direction of ``metric``.
        margin: Required improvement.
        challenger_version: The new version.
        challenger_score: Its score on the holdout.
        champion_version: The serving version before the decision (None if there was none).
        champion_score: Its score on the same holdout.
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

    @property
    def improvement(self) -> float | None:
        """Challenger minus champion, oriented so positive means better."""
        if self.champion_score is None:
            return None
        diff = self.challenger_score - self.champion_score
        return diff if self.greater_is_better else -diff

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "improvement": self.improvement}


def decide_promotion(
    *,
    metric: str,
    greater_is_better: bool,
    margin: float,
    challenger_version: str,
    challenger_score: float,
    champion_version: str | None,
    champion_score: float | None,
) -> PromotionDecision:
    """Promote when there is no champion, or the challenger beats it by at least ``margin``.

    Both scores must come from the same fresh holdout. An improvement of exactly zero never
    promotes (replacing a model by an equal one only adds risk).

    Example:
        >>> d = decide_promotion(metric="roc_auc", greater_is_better=True, margin=0.01,
        ...     challenger_version="2", challenger_score=0.83,
        ...     champion_version="1", champion_score=0.80)
        >>> d.is_promoted, round(d.improvement, 3)
        (True, 0.03)
        >>> decide_promotion(metric="rmse", greater_is_better=False, margin=0.0,
        ...     challenger_version="2", challenger_score=5.1,
        ...     champion_version="1", champion_score=5.0).is_promoted
        False
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    common = {
        "metric": metric,
        "greater_is_better": greater_is_better,
        "margin": margin,
        "challenger_version": challenger_version,
        "challenger_score": challenger_score,
        "champion_version": champion_version,
        "champion_score": champion_score,
    }
    if champion_version is None or champion_score is None:
        return PromotionDecision(is_promoted=True, reason="no champion yet", **common)  # type: ignore[arg-type]
    diff = challenger_score - champion_score
    improvement = diff if greater_is_better else -diff
    shown = f"{metric} {challenger_score:.4f} vs champion v{champion_version} {champion_score:.4f}"
    if improvement > 0 and improvement >= margin:
        reason = f"promoted: {shown} (improvement {improvement:+.4f} >= margin {margin})"
        return PromotionDecision(is_promoted=True, reason=reason, **common)  # type: ignore[arg-type]
    reason = f"rejected: {shown} (improvement {improvement:+.4f} below margin {margin})"
    return PromotionDecision(is_promoted=False, reason=reason, **common)  # type: ignore[arg-type]


def apply_promotion(tracker: MlflowTracker, model_name: str, decision: PromotionDecision) -> None:
    """Record the decision as version tags, then move the aliases.

    Tags are written first; moving ``champion`` is the single step that changes production,
    so a failure before it leaves the old champion serving. On promotion the old champion
    becomes ``previous-champion`` and the ``challenger`` alias is dropped; on rejection the
    new version keeps ``challenger``.
    """
    version = decision.challenger_version
    tags = {
        "automl.decision": "promoted" if decision.is_promoted else "rejected",
        "automl.reason": decision.reason,
        "automl.metric": decision.metric,
        "automl.challenger_score": f"{decision.challenger_score:.6f}",
        "automl.margin": decision.margin,
    }
    if decision.champion_score is not None:
        tags["automl.champion_score"] = f"{decision.champion_score:.6f}"
        tags["automl.champion_version"] = decision.champion_version or ""
    tracker.set_version_tags(model_name, version, tags)
    if not decision.is_promoted:
        tracker.set_alias(model_name, CHALLENGER, version)
        return
    if decision.champion_version is not None:
        tracker.set_alias(model_name, PREVIOUS_CHAMPION, decision.champion_version)
    tracker.set_alias(model_name, CHAMPION, version)
    tracker.delete_alias(model_name, CHALLENGER)
