"""Drift: per-column tests (evidently's, computed once), the dataset-level decision, hysteresis
(and where its state is kept) and the HTML report."""

from __future__ import annotations

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
from automl.vocab import CORRECTIONS, POLICIES, TEST_CHOICES, Correction, Policy, TestChoice

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
