"""Drift: per-column tests (evidently's, computed once), the dataset-level decision, hysteresis
(and where its state is kept) and the HTML report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl._lazy import lazy_loader
from automl.vocab import CORRECTIONS, POLICIES, TEST_CHOICES, Correction, Policy, TestChoice

if TYPE_CHECKING:
    from automl.drift._estimate import (
        ESTIMATED_METRICS,
        ConfidenceBasedEstimator,
        PerformanceEstimate,
        estimated_performance_drift,
        expected_roc_auc,
    )
    from automl.drift._evidently import (
        ColumnTest,
        EvidentlyDriftDetector,
        infer_column_kinds,
        render_drift_html,
    )
    from automl.drift._hysteresis import DriftState, Hysteresis, HysteresisDecision
    from automl.drift._importance import sensitivity_weights
    from automl.drift._policy import adjust_pvalues, performance_drift
    from automl.drift._reference import REFERENCE_CACHE, ReferenceCache, ReferenceProfile
    from automl.drift._report import ColumnDrift, DriftLevel, DriftReport, DriftSignal, SchemaChange
    from automl.drift._state_store import DriftStateStore

#: Where each name is defined: imported on first use, so importing the package stays light.
_LAZY = {
    "ColumnDrift": "automl.drift._report",
    "ColumnTest": "automl.drift._evidently",
    "ConfidenceBasedEstimator": "automl.drift._estimate",
    "DriftLevel": "automl.drift._report",
    "DriftReport": "automl.drift._report",
    "DriftSignal": "automl.drift._report",
    "DriftState": "automl.drift._hysteresis",
    "DriftStateStore": "automl.drift._state_store",
    "ESTIMATED_METRICS": "automl.drift._estimate",
    "EvidentlyDriftDetector": "automl.drift._evidently",
    "Hysteresis": "automl.drift._hysteresis",
    "HysteresisDecision": "automl.drift._hysteresis",
    "PerformanceEstimate": "automl.drift._estimate",
    "REFERENCE_CACHE": "automl.drift._reference",
    "ReferenceCache": "automl.drift._reference",
    "ReferenceProfile": "automl.drift._reference",
    "SchemaChange": "automl.drift._report",
    "adjust_pvalues": "automl.drift._policy",
    "estimated_performance_drift": "automl.drift._estimate",
    "expected_roc_auc": "automl.drift._estimate",
    "infer_column_kinds": "automl.drift._evidently",
    "performance_drift": "automl.drift._policy",
    "render_drift_html": "automl.drift._evidently",
    "sensitivity_weights": "automl.drift._importance",
}


__getattr__ = lazy_loader(__name__, _LAZY)


__all__ = [
    "CORRECTIONS",
    "ESTIMATED_METRICS",
    "POLICIES",
    "REFERENCE_CACHE",
    "TEST_CHOICES",
    "ColumnDrift",
    "ColumnTest",
    "ConfidenceBasedEstimator",
    "Correction",
    "DriftLevel",
    "DriftReport",
    "DriftSignal",
    "DriftState",
    "DriftStateStore",
    "EvidentlyDriftDetector",
    "Hysteresis",
    "HysteresisDecision",
    "PerformanceEstimate",
    "Policy",
    "ReferenceCache",
    "ReferenceProfile",
    "SchemaChange",
    "TestChoice",
    "adjust_pvalues",
    "estimated_performance_drift",
    "expected_roc_auc",
    "infer_column_kinds",
    "performance_drift",
    "render_drift_html",
    "sensitivity_weights",
]
