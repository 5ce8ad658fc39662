from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.config import DriftSpec
from automl.drift import (
    ColumnTest,
    DriftReport,
    EvidentlyDriftDetector,
    infer_column_kinds,
    performance_drift,
    render_drift_html,
)
from automl.errors import DriftCheckError
from tests.conftest import CATEGORICAL, NUMERIC

Churn = Callable[..., pd.DataFrame]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
#: The drift rule before issue 11, pinned by the tests of evidently's test choice and share rule.
BEFORE_ISSUE_11: dict[str, Any] = {"drift_share": 0.5, "correction": "bh", "tests": "evidently"}


def _frames(n_ref: int, n_cur: int, *, shift: float = 0.0, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)

    def make(n: int, s: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "x": rng.normal(s, 1.0, n),
                "z": rng.normal(0.0, 1.0, n),
                "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5 - s / 4, 0.3, 0.2 + s / 4]),
                "is_member": rng.random(n) < 0.3 + s / 4,
            }
        )

    return make(n_ref, 0.0), make(n_cur, shift)


# -- per-column tests: types, defaults, overrides --------------------------------------------
def test_same_distribution_is_not_drift(churn: Churn) -> None:
    report = EvidentlyDriftDetector(**BEFORE_ISSUE_11).detect(
        churn(400, seed=1), churn(300, seed=2), numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert not report.is_drifted and report.level in ("ok", "warning")
    assert report.share_drifted < 0.5
    assert {c.method for c in report.columns} <= {"ks", "chisquare", "z"}


def test_shifted_data_is_drift_and_names_the_columns(churn: Churn) -> None:
    report = EvidentlyDriftDetector().detect(
        churn(400, seed=1), churn(300, seed=2, drift=1.0), numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert report.is_drifted and report.level == "drift"
    assert {"monthly_charges", "contract", "internet_service"} <= set(report.drifted_columns)
    as_dict = report.to_dict()
    assert as_dict["drift_detected"] is True and as_dict["state"] == "drift"
    assert as_dict["columns"]["monthly_charges"]["drifted"] is True


def test_each_column_type_gets_evidentlys_test() -> None:
    ref, cur = _frames(400, 300, shift=1.0)
    numeric, categorical = infer_column_kinds(ref)
    assert (numeric, categorical) == (["x", "z"], ["plan", "is_member"])
    report = EvidentlyDriftDetector(**BEFORE_ISSUE_11).detect(
        ref, cur, numeric=numeric, categorical=categorical
    )
    kinds = {c.column: (c.kind, c.method) for c in report.columns}
    assert kinds == {
        "x": ("numeric", "ks"),
        "z": ("numeric", "ks"),
        "plan": ("categorical", "chisquare"),
        "is_member": ("boolean", "z"),
    }
    assert set(report.drifted_columns) == {"x", "plan", "is_member"}


def test_numeric_column_with_two_values_is_binary() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"flag": rng.integers(0, 2, 300).astype(float)})
    report = EvidentlyDriftDetector().detect(
        ref, ref.sample(frac=1, random_state=1), numeric=["flag"], categorical=[]
    )
    assert (report.columns[0].kind, report.columns[0].method) == ("binary", "z")


def test_large_reference_switches_to_distance_tests_like_evidently(churn: Churn) -> None:
    report = EvidentlyDriftDetector(**BEFORE_ISSUE_11).detect(
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


def test_per_column_overrides_win_over_the_global_choice(churn: Churn) -> None:
    detector = EvidentlyDriftDetector(
        method="psi",
        per_column={
            "age": ColumnTest(method="wasserstein", threshold=0.3),
            "contract": ColumnTest(threshold=0.5),
        },
    )
    report = detector.detect(
        churn(400, seed=1),
        churn(300, seed=2),
        numeric=["age", "tenure_months"],
        categorical=["contract"],
    )
    got = {c.column: (c.method, c.threshold) for c in report.columns}
    assert got == {
        "age": ("wasserstein", 0.3),
        "tenure_months": ("psi", 0.1),
        "contract": ("psi", 0.5),
    }


def test_overrides_from_the_spec(churn: Churn) -> None:
    spec = DriftSpec.model_validate(
        {
            "per_column": {"age": {"method": "ks", "threshold": 0.01}},
            "correction": "none",
            "tests": "evidently",
        }
    )
    report = EvidentlyDriftDetector.from_spec(spec).detect(
        churn(1500, seed=1), churn(300, seed=2), numeric=["age", "monthly_charges"], categorical=[]
    )
    assert (report.column("age").method, report.column("age").threshold) == ("ks", 0.01)
    assert report.column("monthly_charges").method == "wasserstein"


def test_override_of_an_unchecked_column_or_wrong_kind_is_an_error(churn: Churn) -> None:
    ref = churn(200, seed=1)
    with pytest.raises(DriftCheckError, match=r"not checked: \['nope'\]"):
        EvidentlyDriftDetector(per_column={"nope": ColumnTest("ks")}).detect(
            ref, ref, numeric=["age"], categorical=[]
        )
    with pytest.raises(DriftCheckError, match="'ks' does not apply to categorical"):
        EvidentlyDriftDetector(per_column={"contract": ColumnTest("ks")}).detect(
            ref, ref, numeric=[], categorical=["contract"]
        )


# -- missing values, unseen categories, schema changes ------------------------------------
def test_missing_rate_change_drifts_a_column_even_when_the_values_do_not_move(churn: Churn) -> None:
    ref, cur = churn(400, seed=1), churn(400, seed=2)
    cur.loc[cur.index[:120], "age"] = np.nan  # 30% missing, the rest unchanged
    col = EvidentlyDriftDetector().detect(ref, cur, numeric=["age"], categorical=[]).column("age")
    assert col.is_drifted and col.reasons == ("missing_rate",)
    assert col.missing_rate_current == pytest.approx(0.3) and col.missing_rate_reference == 0
    off = EvidentlyDriftDetector(missing_rate_delta=None).detect(
        ref, cur, numeric=["age"], categorical=[]
    )
    assert not off.column("age").is_drifted


def test_unseen_categories_are_listed_and_drift_the_column(churn: Churn) -> None:
    ref, cur = churn(1500, seed=1), churn(400, seed=2)
    cur.loc[cur.index[:60], "payment_method"] = "crypto"  # 15% of rows, a value never seen
    col = (
        EvidentlyDriftDetector()
        .detect(ref, cur, numeric=[], categorical=["payment_method"])
        .column("payment_method")
    )
    assert col.unseen_categories == ("crypto",) and col.unseen_share == pytest.approx(0.15)
    assert "unseen_categories" in col.reasons and col.is_drifted


def test_column_gone_missing_counts_as_drift(churn: Churn) -> None:
    cur = churn(300, seed=2)
    cur["age"] = np.nan
    report = EvidentlyDriftDetector().detect(
        churn(400, seed=1), cur, numeric=["age"], categorical=[]
    )
    assert report.columns[0].method == "all-missing" and report.columns[0].is_drifted


def test_schema_changes_are_reported_not_raised(churn: Churn) -> None:
    ref, cur = churn(400, seed=1), churn(300, seed=2)
    cur = cur.drop(columns=["age"]).assign(coupon="none")
    cur["tenure_months"] = "unknown"
    report = EvidentlyDriftDetector().detect(
        ref, cur, numeric=["age", "tenure_months", "monthly_charges"], categorical=["contract"]
    )
    changes = {c.column: c.change for c in report.schema_changes}
    assert changes == {
        "age": "missing_column",
        "tenure_months": "type_changed",
        "coupon": "new_column",
    }
    assert report.column("age").method == "schema" and report.column("age").is_drifted
    assert report.column("tenure_months").reasons == ("schema",)
    assert "coupon" not in [c.column for c in report.columns]
    assert report.to_dict()["schema_changes"][0]["change"] == "missing_column"


# -- false-alarm control -------------------------------------------------------------------
def test_corrections_control_false_alarms_over_columns() -> None:
    rng = np.random.default_rng(17)
    cols = [f"c{i}" for i in range(20)]
    ref = pd.DataFrame({c: rng.normal(size=300) for c in cols})
    cur = pd.DataFrame({c: rng.normal(size=300) for c in cols})
    cur["c0"] += 0.25  # a real but modest shift in one column
    raw = EvidentlyDriftDetector(correction="none", min_effect=0).detect(
        ref, cur, numeric=cols, categorical=[]
    )
    holm = EvidentlyDriftDetector(correction="holm", min_effect=0).detect(
        ref, cur, numeric=cols, categorical=[]
    )
    bonf = EvidentlyDriftDetector(correction="bonferroni", min_effect=0).detect(
        ref, cur, numeric=cols, categorical=[]
    )
    bh = EvidentlyDriftDetector(correction="bh", min_effect=0).detect(
        ref, cur, numeric=cols, categorical=[]
    )
    assert set(holm.drifted_columns) <= set(bh.drifted_columns) <= set(raw.drifted_columns)
    c0 = raw.column("c0")
    assert c0.score == c0.raw_score and c0.is_test_drifted is not None
    assert holm.column("c0").raw_score == c0.raw_score
    assert (
        holm.column("c0").score >= c0.raw_score
        and bonf.column("c0").score >= holm.column("c0").score
    )
    # Uncorrected, noise flags columns; corrected, it does not (family-wise error at 5%).
    noise = [c for c in raw.drifted_columns if c != "c0"]
    assert noise, "seed chosen so that uncorrected tests raise a false alarm"
    assert holm.drifted_columns == ["c0"]
    assert set(bonf.drifted_columns) <= set(holm.drifted_columns)


def test_effect_floor_ignores_tiny_shifts_on_large_samples() -> None:
    rng = np.random.default_rng(4)
    n = 60_000
    ref = pd.DataFrame({"x": rng.normal(size=n)})
    cur = pd.DataFrame({"x": rng.normal(0.05, 1.0, n)})  # significant, but 2% of mass moved
    floor = EvidentlyDriftDetector(method="ks").detect(ref, cur, numeric=["x"], categorical=[])
    col = floor.column("x")
    assert col.raw_score < 1e-10 and col.is_test_drifted  # evidently would flag it
    assert col.effect == pytest.approx(0.02, abs=0.01) and not col.is_drifted
    no_floor = EvidentlyDriftDetector(method="ks", min_effect=0).detect(
        ref, cur, numeric=["x"], categorical=[]
    )
    assert no_floor.column("x").is_drifted


def test_calibration_raises_distance_thresholds_to_the_noise_level() -> None:
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"x": rng.exponential(size=1200)})
    cur = pd.DataFrame({"x": rng.exponential(size=40)})  # no drift, but a tiny batch: noisy
    plain = EvidentlyDriftDetector(**BEFORE_ISSUE_11).detect(
        ref, cur, numeric=["x"], categorical=[]
    )
    calibrated = EvidentlyDriftDetector(**BEFORE_ISSUE_11, calibration_resamples=60).detect(
        ref, cur, numeric=["x"], categorical=[]
    )
    assert plain.column("x").method == "wasserstein" and plain.column("x").threshold == 0.1
    assert plain.column("x").is_drifted  # 0.1 std is within noise at 40 rows
    assert calibrated.column("x").threshold > 0.1
    assert not calibrated.column("x").is_drifted
    assert calibrated.column("x").test_threshold == 0.1


# -- dataset policies and signals ----------------------------------------------------------
def test_drift_share_rule_is_at_least(churn: Churn) -> None:
    ref, cur = churn(400, seed=1), churn(300, seed=2, drift=1.0)
    report = EvidentlyDriftDetector(drift_share=1.0).detect(
        ref, cur, numeric=NUMERIC, categorical=CATEGORICAL
    )
    assert report.share_drifted < 1.0 and not report.is_drifted
    assert report.score == report.share_drifted and report.policy == "share"


def test_warning_level_between_warning_share_and_drift_share() -> None:
    ref, cur = _frames(400, 300, shift=0.0, seed=1)
    cur["x"] += 1.0  # one of four columns
    report = EvidentlyDriftDetector(drift_share=0.5).detect(
        ref, cur, numeric=["x", "z"], categorical=["plan", "is_member"]
    )
    assert report.drifted_columns == ["x"] and report.share_drifted == 0.25
    assert (report.is_drifted, report.level, report.warning_share) == (False, "warning", 0.25)


def test_weighted_policy_follows_the_columns_that_matter() -> None:
    ref, cur = _frames(400, 300, seed=2)
    cur["x"] += 1.0
    detector = EvidentlyDriftDetector(policy="weighted", drift_share=0.5)
    cols = {"numeric": ["x", "z"], "categorical": ["plan", "is_member"]}
    important = detector.detect(ref, cur, weights={"x": 8.0, "z": 1.0, "plan": 1.0}, **cols)
    assert important.share_drifted == 0.25 and important.score == pytest.approx(0.8)
    assert important.is_drifted and dict(important.weights)["is_member"] == 0.0
    ignored = detector.detect(ref, cur, weights={"x": 0.0, "z": 1.0, "plan": 1.0}, **cols)
    assert ignored.score == 0.0 and not ignored.is_drifted
    uniform = detector.detect(ref, cur, weights=None, **cols)
    assert uniform.score == pytest.approx(0.25)
    assert "every column weighs the same" in uniform.signals[0].detail


def test_target_drift_is_a_signal_when_labels_are_present(churn: Churn) -> None:
    ref, cur = churn(600, seed=1), churn(600, seed=2)
    cur["churned"] = (np.random.default_rng(0).random(600) < 0.6).astype(int)
    report = EvidentlyDriftDetector().detect(
        ref,
        cur,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        target="churned",
        target_kind="categorical",
    )
    target = next(s for s in report.signals if s.name == "target")
    assert target.method == "z" and target.is_drifted
    assert report.is_drifted and report.fired_signals == ["target"]
    assert report.share_drifted < 0.5  # the features alone would not have said drift


def test_prediction_drift_from_two_prediction_arrays(churn: Churn) -> None:
    rng = np.random.default_rng(1)
    ref, cur = churn(500, seed=1), churn(500, seed=2)
    same = EvidentlyDriftDetector().detect(
        ref,
        cur,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        predictions=(rng.beta(2, 5, 500), rng.beta(2, 5, 500)),
    )
    moved = EvidentlyDriftDetector().detect(
        ref,
        cur,
        numeric=NUMERIC,
        categorical=CATEGORICAL,
        predictions=(rng.beta(2, 5, 500), rng.beta(4, 3, 500)),
    )
    assert not next(s for s in same.signals if s.name == "prediction").is_drifted
    signal = next(s for s in moved.signals if s.name == "prediction")
    assert signal.method == "ks" and signal.is_drifted and moved.is_drifted


def test_performance_drift_signal_decides(churn: Churn) -> None:
    ok = performance_drift(
        reference_score=0.80, current_score=0.79, tolerance=0.02, metric="roc_auc"
    )
    bad = performance_drift(
        reference_score=10.0, current_score=13.0, tolerance=2.0, greater_is_better=False
    )
    assert not ok.is_drifted and bad.is_drifted and bad.score == 3.0
    ref = churn(300, seed=1)
    report = EvidentlyDriftDetector().detect(
        ref, churn(300, seed=2), numeric=NUMERIC, categorical=CATEGORICAL, signals=[bad]
    )
    assert report.is_drifted and report.fired_signals == ["performance"]
    assert report.to_dict()["signals"][-1]["name"] == "performance"


# -- errors, parity with the preset, HTML --------------------------------------------------
def test_errors_are_clear(churn: Churn) -> None:
    ref = churn(100, seed=1)
    with pytest.raises(DriftCheckError, match="empty frame"):
        EvidentlyDriftDetector().detect(ref, ref.iloc[:0], numeric=["age"], categorical=[])
    with pytest.raises(DriftCheckError, match=r"reference data lacks columns \['nope'\]"):
        EvidentlyDriftDetector().detect(ref, ref, numeric=["nope"], categorical=[])
    with pytest.raises(DriftCheckError, match="'no-such-test' failed on column 'age'"):
        EvidentlyDriftDetector(method="no-such-test").detect(
            ref, ref, numeric=["age"], categorical=[]
        )
    with pytest.raises(ValueError, match="drift_share"):
        EvidentlyDriftDetector(drift_share=0)
    with pytest.raises(ValueError, match="correction must be one of"):
        EvidentlyDriftDetector(correction="sidak")  # type: ignore[arg-type]


def test_verdicts_match_evidently_data_drift_preset(churn: Churn) -> None:
    """The fast path computes exactly evidently's statistics and verdicts."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur = churn(500, seed=3), churn(400, seed=4, drift=0.3)
    cols = NUMERIC + CATEGORICAL
    ours = EvidentlyDriftDetector(correction="none", min_effect=0, tests="evidently").detect(
        ref, cur, numeric=NUMERIC, categorical=CATEGORICAL
    )
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset(columns=cols)], include_tests=True).run(
        Dataset.from_pandas(cur[cols], data_definition=definition),
        Dataset.from_pandas(ref[cols], data_definition=definition),
    )
    theirs: dict[str, float] = {}
    their_verdicts: dict[str, bool] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            theirs[config["column"]] = float(metric["value"])
    for test in snapshot.dict()["tests"]:
        column = test["metric_config"]["params"].get("column")
        if test["id"] == "drift" and column is not None:
            their_verdicts[column] = test["status"] == "FAIL"
    assert set(theirs) == set(cols) == set(their_verdicts)
    for col in ours.columns:
        assert col.score == pytest.approx(theirs[col.column], rel=1e-9, abs=1e-12), col.column
        assert col.is_test_drifted == their_verdicts[col.column], col.column


def test_html_report_is_written(tmp_path: Path, churn: Churn) -> None:
    out = render_drift_html(
        churn(200, seed=1),
        churn(200, seed=2, drift=1.0),
        tmp_path / "r" / "drift.html",
        numeric=["age"],
        categorical=["contract"],
        per_column={"age": ColumnTest("wasserstein", 0.2)},
    )
    text = out.read_text()
    assert out.exists() and len(text) > 10_000 and "<html" in text.lower()


def test_html_report_renders_in_a_child_process_and_its_error_comes_back(tmp_path: Path) -> None:
    code = (
        "import sys; from automl.data import make_churn_frame as f;"
        "from automl.drift import render_drift_html as r;"
        f"r(f(100, seed=1), f(100, seed=2), {str(tmp_path / 'd.html')!r},"
        " numeric=['age'], categorical=['contract']);"
        "print('evidently' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # rendered, and evidently stayed out of this process
    assert (tmp_path / "d.html").stat().st_size > 10_000
    frame = pd.DataFrame({"age": [1.0, 2.0, 3.0]})
    with pytest.raises(DriftCheckError, match="evidently could not render the drift report: "):
        render_drift_html(
            frame, frame, tmp_path / "x.html", numeric=["age"], categorical=[], method="no_such"
        )


# -- the pipeline default: any one column, Holm, two-sample tests (issue 11) ---------------
def _population(n: int = 1200, seed: int = 11) -> pd.DataFrame:
    """Correlated continuous columns plus a 3-valued, a binary and a categorical column."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n)
    return pd.DataFrame(
        {
            "income": np.exp(0.5 * base + rng.normal(0, 0.5, n)),
            "age": np.clip(45 + 8 * base + rng.normal(0, 10, n), 18, 90).round(),
            "spend": rng.gamma(2.0, 30.0, n),
            "visits": rng.normal(10, 3, n),
            "score": rng.uniform(0, 1, n),
            "plan_level": rng.choice([1.0, 2.0, 3.0], n, p=[0.5, 0.3, 0.2]),
            "is_member": (rng.random(n) < 0.4).astype(float),
            "region": rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


def _draw(
    frame: pd.DataFrame, rng: np.random.Generator, column: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """300 reference rows; 300 current rows from the rest, uniform or with selection bias of
    weight 4 along ``column`` (rows in its upper half by rank, ties at random, 4x as likely)."""
    order = rng.permutation(len(frame))
    ref, pool = frame.iloc[order[:300]], order[300:]
    weights = np.ones(len(pool))
    if column is not None:
        rank = np.lexsort((rng.random(len(pool)), frame[column].to_numpy()[pool]))
        weights[rank[len(pool) // 2 :]] = 4.0
    cur = frame.iloc[rng.choice(pool, 300, replace=False, p=weights / weights.sum())]
    return ref, cur


def _check(spec: DriftSpec, ref: pd.DataFrame, cur: pd.DataFrame) -> DriftReport:
    numeric, categorical = infer_column_kinds(ref)
    return EvidentlyDriftDetector.from_spec(spec).detect(
        ref, cur, numeric=numeric, categorical=categorical
    )


@pytest.mark.parametrize(
    ("column", "method"),
    [("income", "ks"), ("plan_level", "chisquare_2samp"), ("region", "chisquare_2samp")],
)
def test_default_flags_one_column_moved_by_selection_bias(column: str, method: str) -> None:
    ref, cur = _draw(_population(), np.random.default_rng(3), column)
    report = _check(DriftSpec(), ref, cur)
    assert report.is_drifted and report.drifted_columns == [column]
    assert report.column(column).method == method
    assert (report.drift_share, report.correction) == (0.01, "holm")
    # The default before issue 11 (share of columns >= 0.5) let the same batch through.
    before = _check(DriftSpec(drift_share=0.5, correction="bh", tests="evidently"), ref, cur)
    assert not before.is_drifted


def test_two_sample_chi_square_sees_a_low_cardinality_shift_better_than_ks() -> None:
    from scipy.stats import ks_2samp

    population, rng = _population(), np.random.default_rng(7)
    for _ in range(10):
        ref, cur = _draw(population, rng, "plan_level")
        col = _check(DriftSpec(), ref, cur).column("plan_level")
        assert col.method == "chisquare_2samp" and col.raw_score is not None
        assert col.raw_score < ks_2samp(ref["plan_level"], cur["plan_level"]).pvalue


def test_default_keeps_false_alarms_near_5_percent_where_evidentlys_tests_do_not() -> None:
    population, rng = _population(), np.random.default_rng(5)
    draws = [_draw(population, rng) for _ in range(150)]
    default = sum(_check(DriftSpec(), ref, cur).is_drifted for ref, cur in draws)
    # Any column with evidently's tests: its chi-square takes the reference shares as exact.
    naive = sum(_check(DriftSpec(tests="evidently"), ref, cur).is_drifted for ref, cur in draws)
    # Holm bounds it at 5%: 5.6% over 1,000 such draws, 11 of these 150; evidently's tests 30.
    assert default <= 15
    assert naive >= 2 * default
