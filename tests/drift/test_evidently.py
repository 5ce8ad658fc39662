from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.drift import EvidentlyDriftDetector, render_drift_html
from automl.errors import DriftCheckError
from tests.conftest import CATEGORICAL, NUMERIC

Churn = Callable[..., pd.DataFrame]


def test_same_distribution_is_not_drift(churn: Churn) -> None:
    report = EvidentlyDriftDetector().detect(
        churn(400, seed=1), churn(300, seed=2), numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert not report.is_drifted
    assert report.share_drifted < 0.5
    assert {c.method for c in report.columns} <= {"ks", "chisquare", "z"}


def test_shifted_data_is_drift_and_names_the_columns(churn: Churn) -> None:
    report = EvidentlyDriftDetector().detect(
        churn(400, seed=1), churn(300, seed=2, drift=1.0), numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert report.is_drifted
    assert {"monthly_charges", "contract", "internet_service"} <= set(report.drifted_columns)
    as_dict = report.to_dict()
    assert as_dict["drift_detected"] is True
    assert as_dict["columns"]["monthly_charges"]["is_drifted"] is True


def test_large_reference_switches_to_distance_tests_like_evidently(churn: Churn) -> None:
    report = EvidentlyDriftDetector().detect(
        churn(1500, seed=1), churn(300, seed=2), numeric=NUMERIC, categorical=CATEGORICAL
    )
    methods = {c.column: c.method for c in report.columns}
    assert methods["monthly_charges"] == "wasserstein"
    assert methods["contract"] == "jensenshannon"


def test_method_and_threshold_override(churn: Churn) -> None:
    report = EvidentlyDriftDetector(method="psi", threshold=0.2).detect(
        churn(400, seed=1),
        churn(300, seed=2),
        numeric=["monthly_charges"],
        categorical=["contract"],
    )
    assert [(c.method, c.threshold) for c in report.columns] == [("psi", 0.2), ("psi", 0.2)]


def test_drift_share_rule_is_at_least(churn: Churn) -> None:
    ref, cur = churn(400, seed=1), churn(300, seed=2, drift=1.0)
    report = EvidentlyDriftDetector(drift_share=1.0).detect(
        ref, cur, numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert report.share_drifted < 1.0 and not report.is_drifted


def test_column_gone_missing_counts_as_drift(churn: Churn) -> None:
    cur = churn(300, seed=2)
    cur["age"] = np.nan
    report = EvidentlyDriftDetector().detect(
        churn(400, seed=1), cur, numeric=["age"], categorical=[]
    )
    assert report.columns[0].method == "all-missing" and report.columns[0].is_drifted


def test_errors_are_clear(churn: Churn) -> None:
    ref = churn(100, seed=1)
    with pytest.raises(DriftCheckError, match="empty frame"):
        EvidentlyDriftDetector().detect(ref, ref.iloc[:0], numeric=["age"], categorical=[])
    with pytest.raises(DriftCheckError, match=r"lacks columns \['nope'\]"):
        EvidentlyDriftDetector().detect(ref, ref, numeric=["nope"], categorical=[])
    with pytest.raises(DriftCheckError, match="'no-such-test' failed on column 'age'"):
        EvidentlyDriftDetector(method="no-such-test").detect(
            ref, ref, numeric=["age"], categorical=[]
        )
    with pytest.raises(ValueError, match="drift_share"):
        EvidentlyDriftDetector(drift_share=0)


def test_verdicts_match_evidently_data_drift_preset(churn: Churn) -> None:
    """The fast path must decide exactly as evidently's own preset does."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = churn(500, seed=3), churn(400, seed=4, drift=0.3)
    cols = NUMERIC + CATEGORICAL
    ours = EvidentlyDriftDetector().detect(ref, cur, numeric=NUMERIC, categorical=CATEGORICAL)
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset(columns=cols)]).run(
        Dataset.from_pandas(cur[cols], data_definition=definition),
        Dataset.from_pandas(ref[cols], data_definition=definition),
    )
    theirs: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            theirs[config["column"]] = float(metric["value"])
    assert set(theirs) == set(cols)
    for col in ours.columns:
        assert col.score == pytest.approx(theirs[col.column], rel=1e-9, abs=1e-12), col.column


def test_html_report_is_written(tmp_path: Path, churn: Churn) -> None:
    out = render_drift_html(
        churn(200, seed=1),
        churn(200, seed=2, drift=1.0),
        tmp_path / "r" / "drift.html",
        numeric=["age"],
        categorical=["contract"],
    )
    text = out.read_text()
    assert out.exists() and len(text) > 10_000 and "<html" in text.lower()
