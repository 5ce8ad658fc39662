"""Results of a drift check, as plain frozen data that crosses package boundaries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

#: A check's (or a pipeline's) drift level: nothing to do, keep watching, re-tune.
DriftLevel = Literal["ok", "warning", "drift"]


def _finite(value: float | None) -> float | None:
    # JSON has no NaN/inf: a score that could not be computed is reported as null.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column.

    Attributes:
        column: Column name.
        kind: ``numeric``, ``categorical``, ``binary`` (two values) or ``boolean``.
        method: evidently stat test name (``ks``, ``chisquare``, ``wasserstein``, ...), or
            ``schema`` (the column is missing or changed type) or ``all-missing``.
        score: The score compared with ``threshold``: a distance (drift when at or above), or a
            p-value (drift when below), adjusted for the number of columns when a correction
            applies.
        threshold: Threshold ``score`` was compared with (calibrated for distances when asked).
        is_drifted: The column's final verdict: the test (after correction, effect floor and
            calibration), a missing-rate change, unseen categories or a schema change.
        raw_score: evidently's own score for the method (before any correction).
        test_threshold: The method's threshold as configured (evidently's default when unset).
        is_test_drifted: evidently's verdict for the same method and threshold.
        is_pvalue: Whether the method's score is a p-value.
        effect: Size of the shift in [0, 1] (K-S statistic for numeric, total variation
            distance for categorical columns) when a p-value test needed it, else None.
        missing_rate_reference: Share of missing values in the reference.
        missing_rate_current: Share of missing values in the current rows.
        unseen_categories: Current values never seen in the reference (first 20).
        unseen_share: Share of current rows holding an unseen value.
        reasons: Why the column counts as drifted (``test``, ``missing_rate``,
            ``unseen_categories``, ``schema``, ``all_missing``); empty when it does not.
    """

    column: str
    kind: str
    method: str
    score: float
    threshold: float
    is_drifted: bool
    raw_score: float | None = None
    test_threshold: float | None = None
    is_test_drifted: bool | None = None
    is_pvalue: bool = False
    effect: float | None = None
    missing_rate_reference: float = 0.0
    missing_rate_current: float = 0.0
    unseen_categories: tuple[str, ...] = ()
    unseen_share: float = 0.0
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (non-finite numbers become null)."""
        return {
            "kind": self.kind,
            "method": self.method,
            "score": _finite(self.score),
            "threshold": _finite(self.threshold),
            "drifted": self.is_drifted,
            "raw_score": _finite(self.raw_score),
            "test_threshold": _finite(self.test_threshold),
            "test_drifted": self.is_test_drifted,
            "is_pvalue": self.is_pvalue,
            "effect": _finite(self.effect),
            "missing_rate_reference": self.missing_rate_reference,
            "missing_rate_current": self.missing_rate_current,
            "unseen_categories": list(self.unseen_categories),
            "unseen_share": self.unseen_share,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class DriftSignal:
    """One input to the dataset-level decision.

    Attributes:
        name: ``data`` (the column policy), ``target``, ``prediction`` or ``performance``.
        method: How it was measured (``share``, ``weighted``, a stat test name, a metric).
        score: The measured value.
        threshold: The value at which it fires.
        is_drifted: Whether it fired.
        detail: One human sentence.
    """

    name: str
    method: str
    score: float
    threshold: float
    is_drifted: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "method": self.method,
            "score": _finite(self.score),
            "threshold": _finite(self.threshold),
            "drifted": self.is_drifted,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class SchemaChange:
    """A difference between the reference's and the current rows' columns.

    Attributes:
        column: Column name.
        change: ``missing_column`` (checked, absent from the current rows), ``new_column``
            (present only in the current rows, not checked) or ``type_changed`` (numeric in
            the reference, not numeric now).
        detail: What was seen.
    """

    column: str
    change: Literal["missing_column", "new_column", "type_changed"]
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"column": self.column, "change": self.change, "detail": self.detail}


@dataclass(frozen=True)
class DriftReport:
    """Dataset-level drift decision with its per-column evidence.

    Attributes:
        is_drifted: The check's decision: at least one signal fired.
        share_drifted: Share of checked columns that drifted.
        drift_share: The policy score at or above which the data signal fires.
        columns: Per-column results, in the order checked.
        n_reference: Reference rows compared.
        n_current: Current rows compared.
        score: The policy score (``share_drifted``, or the importance-weighted share).
        policy: ``share`` or ``weighted``.
        level: ``drift`` when a signal fired, ``warning`` when the score reached
            ``warning_share``, else ``ok`` (one check; hysteresis is applied by the caller).
        warning_share: Score at which the check is a warning.
        correction: Multiple-testing correction applied to p-value tests.
        signals: Every signal considered, the data signal first.
        schema_changes: Column differences between reference and current rows.
        weights: Column weights of the ``weighted`` policy (normalized), else empty.
    """

    is_drifted: bool
    share_drifted: float
    drift_share: float
    columns: tuple[ColumnDrift, ...]
    n_reference: int
    n_current: int
    score: float = 0.0
    policy: str = "share"
    level: DriftLevel = "ok"
    warning_share: float = 1.0
    correction: str = "none"
    signals: tuple[DriftSignal, ...] = ()
    schema_changes: tuple[SchemaChange, ...] = ()
    weights: tuple[tuple[str, float], ...] = ()

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted columns."""
        return [c.column for c in self.columns if c.is_drifted]

    @property
    def fired_signals(self) -> list[str]:
        """Names of the signals that fired."""
        return [s.name for s in self.signals if s.is_drifted]

    def column(self, name: str) -> ColumnDrift:
        """The result of one column.

        Raises:
            KeyError: The column was not checked.
        """
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(
            f"column {name!r} was not checked; checked: {[c.column for c in self.columns]}"
        )

    def to_dict(self, *, state: DriftLevel | None = None) -> dict[str, Any]:
        """JSON-ready form.

        Args:
            state: The pipeline's state after hysteresis; None reports this check's level.
        """
        return {
            "drift_detected": self.is_drifted,
            "state": state or self.level,
            "level": self.level,
            "score": _finite(self.score),
            "policy": self.policy,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "warning_share": self.warning_share,
            "correction": self.correction,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "drifted_columns": self.drifted_columns,
            "signals": [s.to_dict() for s in self.signals],
            "schema_changes": [s.to_dict() for s in self.schema_changes],
            "weights": dict(self.weights),
            "columns": {c.column: c.to_dict() for c in self.columns},
        }
