"""Drift: per-column tests (evidently), the dataset-level decision and its HTML report."""

from __future__ import annotations

from automl.drift._evidently import EvidentlyDriftDetector, render_drift_html
from automl.drift._report import ColumnDrift, DriftReport

__all__ = ["ColumnDrift", "DriftReport", "EvidentlyDriftDetector", "render_drift_html"]
