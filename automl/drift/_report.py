"""Results of a drift check, as plain frozen data that crosses package boundaries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column.

    Attributes:
        column: Column name.
        kind: ``numeric`` or ``categorical``.
        method: evidently stat test name (``ks``, ``chisquare``, ``wasserstein``, ...).
        score: The test's statistic: a p-value for tests (drift when below the threshold) or a
            distance (drift when at or above the threshold), as evidently defines per method.
        threshold: Threshold the score was compared with.
        is_drifted: The column's verdict.
    """

    column: str
    kind: str
    method: str
    score: float
    threshold: float
    is_drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """Dataset-level drift decision with its per-column evidence.

    Attributes:
        is_drifted: The dataset-level decision.
        share_drifted: Share of checked columns that drifted.
        drift_share: The share at or above which the dataset counts as drifted.
        columns: Per-column results, in schema order.
        n_reference: Reference rows compared.
        n_current: Current rows compared.
    """

    is_drifted: bool
    share_drifted: float
    drift_share: float
    columns: tuple[ColumnDrift, ...]
    n_reference: int
    n_current: int

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted columns."""
        return [c.column for c in self.columns if c.is_drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "drift_detected": self.is_drifted,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "drifted_columns": self.drifted_columns,
            "columns": {c.column: asdict(c) for c in self.columns},
        }
