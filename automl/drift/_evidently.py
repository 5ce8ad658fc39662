"""Per-column drift with evidently's statistical tests, one pass per column.

evidently's ``DataDriftPreset`` computes each column's test more than once and renders plotly
figures; the decision needs neither. This detector asks evidently which test it would pick for a
column (by type and sample size, exactly as the preset does), runs that test once, and applies
the dataset rule. The HTML report is rendered separately, only when someone will read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from automl.drift._report import ColumnDrift, DriftReport
from automl.errors import DriftCheckError


def _clean(series: pd.Series) -> pd.Series:
    # evidently drops missing and infinite values before testing; do the same.
    if pd.api.types.is_numeric_dtype(series):
        series = series.replace([np.inf, -np.inf], np.nan)
    return series.dropna()


class EvidentlyDriftDetector:
    """Decides dataset drift from evidently's per-column tests.

    Args:
        method: evidently stat test name for every column (``ks``, ``psi``, ``wasserstein``,
            ``chisquare``, ...); None lets evidently pick per column type and sample size.
        threshold: Test threshold; None uses the chosen test's default.
        drift_share: The dataset drifted when at least this share of columns drifted, in (0, 1].

    Raises:
        ValueError: ``drift_share`` or ``threshold`` is out of range.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ref = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(["a", "b"], 300)})
        >>> cur = pd.DataFrame({"x": rng.normal(1.0, size=300), "c": rng.choice(["a", "b"], 300)})
        >>> report = EvidentlyDriftDetector(drift_share=0.5).detect(
        ...     ref, cur, numeric=["x"], categorical=["c"])
        >>> report.is_drifted, report.drifted_columns, [c.method for c in report.columns]
        (True, ['x'], ['ks', 'z'])
    """

    def __init__(
        self,
        *,
        method: str | None = None,
        threshold: float | None = None,
        drift_share: float = 0.5,
    ) -> None:
        if not 0.0 < drift_share <= 1.0:
            raise ValueError(f"drift_share must be within (0, 1], got {drift_share}")
        if threshold is not None and threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.method = method
        self.threshold = threshold
        self.drift_share = drift_share

    def detect(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
    ) -> DriftReport:
        """Compare ``current`` with ``reference`` column by column and decide.

        Args:
            reference: The data the serving model was trained on.
            current: The new rows.
            numeric: Numeric columns to check.
            categorical: Categorical columns to check.

        Returns:
            The decision and per-column scores.

        Raises:
            DriftCheckError: A frame is empty, a column is missing, or a test fails or is
                unknown to evidently.
        """
        from evidently.legacy.calculations.stattests.registry import get_stattest
        from evidently.legacy.core import ColumnType

        if reference.empty or current.empty:
            raise DriftCheckError(
                f"cannot check drift on an empty frame (reference rows: {len(reference)}, "
                f"current rows: {len(current)})"
            )
        columns = [(c, "numeric") for c in numeric] + [(c, "categorical") for c in categorical]
        if not columns:
            raise DriftCheckError("no columns to check for drift")
        for frame, label in ((reference, "reference"), (current, "current")):
            absent = [c for c, _ in columns if c not in frame.columns]
            if absent:
                raise DriftCheckError(f"{label} data lacks columns {absent}")
        results: list[ColumnDrift] = []
        for name, kind in columns:
            ref, cur = _clean(reference[name]), _clean(current[name])
            if ref.empty or cur.empty:
                # A column that became (or was) entirely missing has changed, whatever a test says.
                results.append(ColumnDrift(name, kind, "all-missing", 1.0, 0.0, True))
                continue
            ctype = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
            try:
                test = get_stattest(ref, cur, ctype, self.method)
                outcome = test(ref, cur, ctype, self.threshold)
            except Exception as exc:  # evidently raises bare ValueErrors for unknown methods
                raise DriftCheckError(
                    f"drift test {self.method or 'default'!r} failed on column {name!r}: {exc}"
                ) from exc
            results.append(
                ColumnDrift(
                    column=name,
                    kind=kind,
                    method=test.name,
                    score=float(outcome.drift_score),
                    threshold=float(outcome.actual_threshold),
                    is_drifted=bool(outcome.drifted),
                )
            )
        share = sum(r.is_drifted for r in results) / len(results)
        return DriftReport(
            is_drifted=share >= self.drift_share,
            share_drifted=share,
            drift_share=self.drift_share,
            columns=tuple(results),
            n_reference=len(reference),
            n_current=len(current),
        )


def render_drift_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    path: str | Path,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    method: str | None = None,
    threshold: float | None = None,
    drift_share: float = 0.5,
) -> Path:
    """Render evidently's data-drift HTML report (slow: plots every column) to ``path``.

    Raises:
        DriftCheckError: evidently failed to build or save the report.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = [*numeric, *categorical]
    definition = DataDefinition(
        numerical_columns=list(numeric), categorical_columns=list(categorical)
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = Report(
            [
                DataDriftPreset(
                    columns=cols, method=method, threshold=threshold, drift_share=drift_share
                )
            ]
        )
        snapshot = report.run(
            Dataset.from_pandas(current[cols], data_definition=definition),
            Dataset.from_pandas(reference[cols], data_definition=definition),
        )
        snapshot.save_html(str(out))
    except Exception as exc:
        raise DriftCheckError(f"evidently could not render the drift report: {exc}") from exc
    return out
