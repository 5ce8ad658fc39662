"""What the steps of a cycle return: the frozen results the steps' modules share, and the
error that ends a cycle early. Re-exported by :mod:`automl.service._steps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from automl.drift import DriftReport, HysteresisDecision
from automl.errors import AutomlError
from automl.tracking import ModelVersionInfo, PromotionDecision

if TYPE_CHECKING:  # the search's libraries load when a re-tune runs, not with the service
    from automl.tuning import TuningResult


class CycleInterruptedError(AutomlError):
    """The service is stopping; the cycle ended early and its batches stay pending."""


# -- what the steps return -------------------------------------------------------------------
@dataclass(frozen=True)
class DriftOutcome:
    """A drift check and what the pipeline's hysteresis made of it.

    Attributes:
        report: The check's evidence (columns, signals, score).
        decision: The pipeline's state after it: ``level`` ``drift`` means re-tune now.
    """

    report: DriftReport
    decision: HysteresisDecision


@dataclass(frozen=True)
class Window:
    """The rows a re-tune trains on and the newest rows that judge it.

    Attributes:
        train: Tuning rows, oldest first.
        holdout: The newest ``training.holdout_fraction`` of the window.
        sha256: Content hash of ``train`` (a version trained on it is not trained again).
        data_from: When the oldest batch behind the window was received.
        data_to: When the newest was received.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    sha256: str
    data_from: str
    data_to: str


@dataclass(frozen=True)
class Registered:
    """The version a re-tune produced (or found already registered for the same window).

    Attributes:
        version: The registered version.
        tuning: The search behind it; None when it was registered by an earlier attempt.
    """

    version: ModelVersionInfo
    tuning: TuningResult | None = None

    @property
    def is_reused(self) -> bool:
        """Registered by an interrupted earlier cycle on the same window."""
        return self.tuning is None


@dataclass(frozen=True)
class Shadowed:
    """A challenger in shadow, scored beside the champion on this cycle's new rows.

    Attributes:
        version: The challenger.
        decision: The gate over every batch scored in shadow so far: ``outcome`` is
            ``shadow`` (keep waiting), ``promoted`` (now the champion) or ``rejected``
            (dropped after ``registry.shadow_max_batches``).
        n_batches: Cycles of new rows it has been scored on, this one included.
    """

    version: str
    decision: PromotionDecision
    n_batches: int
