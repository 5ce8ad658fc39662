from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.data import (
    Schema,
    ValidationRules,
    as_received,
    check_batch,
    infer_schema,
    validate_batch,
)
from automl.errors import DataValidationError


@pytest.fixture
def schema() -> Schema:
    frame = pd.DataFrame({"age": [30, 41], "plan": ["basic", "pro"], "churned": [0, 1]})
    return infer_schema(frame, target="churned", task="classification")


def test_infer_schema_kinds_and_json_roundtrip(schema: Schema) -> None:
    assert schema.features == (("age", "numeric"), ("plan", "categorical"))
    assert Schema.from_json(schema.to_json()) == schema


def test_infer_schema_needs_target() -> None:
    with pytest.raises(DataValidationError, match="target column 'y' is missing") as info:
        infer_schema(pd.DataFrame({"a": [1]}), target="y", task="regression")
    assert info.value.reason_code == "no_target"


def test_valid_batch_gets_canonical_dtypes(schema: Schema) -> None:
    batch = pd.DataFrame({"plan": ["pro", None], "age": [50, 60], "churned": [1.0, 0.0]})
    out = validate_batch(batch, schema, source="b.csv")
    assert list(out.columns) == ["age", "plan", "churned"]
    assert out["age"].dtype == np.float64
    assert out["plan"].tolist()[0] == "pro" and pd.isna(out["plan"].tolist()[1])
    assert out["churned"].dtype == np.int64


@pytest.mark.parametrize(
    ("batch", "code", "text"),
    [
        (pd.DataFrame({"age": [], "plan": [], "churned": []}), "empty", "no rows"),
        (pd.DataFrame({"age": [1], "churned": [0]}), "missing_columns", "missing columns ['plan']"),
        (
            pd.DataFrame({"age": [1], "plan": ["a"], "x": [2], "churned": [0]}),
            "unexpected_columns",
            "unexpected columns ['x']",
        ),
        (pd.DataFrame({"age": [1], "plan": ["a"]}), "no_target", "target column 'churned'"),
        (
            pd.DataFrame({"age": [1, "n/a", 3], "plan": ["a", "b", "c"], "churned": [0, 1, 0]}),
            "bad_dtype",
            "column 'age' must be numeric but 1 value(s) are not, e.g. ['n/a'] at data row(s) [1]",
        ),
        (
            pd.DataFrame({"age": [1.0], "plan": ["a"], "churned": [np.nan]}),
            "no_target",
            "has no values",
        ),
    ],
)
def test_bad_batches_are_rejected_with_code_and_location(
    schema: Schema, batch: pd.DataFrame, code: str, text: str
) -> None:
    with pytest.raises(DataValidationError) as info:
        validate_batch(batch, schema, source="landing/b7.csv")
    assert info.value.reason_code == code
    assert "landing/b7.csv" in str(info.value)
    assert text in str(info.value)


def test_rows_without_label_are_dropped(schema: Schema) -> None:
    batch = pd.DataFrame({"age": [1, 2, 3], "plan": ["a", "b", "c"], "churned": [0, np.nan, 1]})
    out = validate_batch(batch, schema, source="b.csv")
    assert out["age"].tolist() == [1.0, 3.0]


def test_regression_target_must_be_numeric() -> None:
    schema = Schema(features=(("x", "numeric"),), target="y", task="regression")
    with pytest.raises(DataValidationError, match="must be numeric for regression"):
        validate_batch(pd.DataFrame({"x": [1, 2], "y": ["a", 2]}), schema, source="r.csv")


# -- validation rules: what a model can learn from ---------------------------------------------


def _batch(**columns: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {"age": [1, 2, 3, 4], "plan": ["a", "b", "a", "b"]}
    return pd.DataFrame({**base, "churned": [0, 1, 0, 1], **columns})


def _known(schema: Schema) -> Schema:
    return check_batch(_batch(), schema, source="first.csv").schema


def test_first_batch_learns_classes_and_json_keeps_them(schema: Schema) -> None:
    learned = _known(schema)
    assert learned.classes == (0, 1)
    assert Schema.from_json(learned.to_json()) == learned
    old = '{"features": [["age", "numeric"]], "target": "churned", "task": "classification"}'
    assert Schema.from_json(old).classes is None  # stored before classes existed


@pytest.mark.parametrize(
    ("columns", "code", "text"),
    [
        ({"age": [None] * 4}, "empty_column", "column 'age' has no value in any of its 4 row(s)"),
        ({"plan": [None] * 4}, "empty_column", "data rows 0-3"),
        ({"age": [1, np.inf, 3, -np.inf]}, "non_finite", "[inf, -inf] at data row(s) [1, 3]"),
        ({"age": [1, 2, 3e16, 4]}, "out_of_range", "[3e+16] at data row(s) [2]"),
        ({"churned": [0, 1, 2, 1]}, "new_class", "class(es) [2] the pipeline has never seen"),
        ({"churned": [0, 1, "yes", 1]}, "label_type", "1 text label(s) ['yes'] at data row(s) [2]"),
        ({"churned": [0, 1, 0.5, 1]}, "label_type", "not whole numbers, e.g. [0.5]"),
        ({"churned": [0, 1, np.inf, 1]}, "label_type", "[inf] at data row(s) [2]"),
    ],
)
def test_rules_reject_what_a_model_cannot_learn(
    schema: Schema, columns: dict[str, list[object]], code: str, text: str
) -> None:
    with pytest.raises(DataValidationError) as info:
        check_batch(_batch(**columns), _known(schema), source="landing/b9.csv")
    assert info.value.reason_code == code
    assert str(info.value).startswith("landing/b9.csv: ")
    assert text in str(info.value), str(info.value)


def test_empty_column_message_quotes_the_file_as_written(schema: Schema) -> None:
    raw = pd.DataFrame({"age": ["n/a"] * 3 + ["NULL"]})
    with pytest.raises(DataValidationError, match=r"as written: 'n/a' \(3x\), 'NULL' \(1x\)"):
        check_batch(_batch(age=[None] * 4), _known(schema), source="b.csv", raw=lambda: raw)


def test_text_label_pipeline_keeps_text_and_treats_numbers_as_unseen_classes(
    schema: Schema,
) -> None:
    first = check_batch(_batch(churned=["no", "yes", "no", "yes"]), schema, source="a.csv")
    assert first.schema.classes == ("no", "yes") and first.frame["churned"].tolist()[1] == "yes"
    with pytest.raises(DataValidationError, match=r"class\(es\) \['1'\]") as info:
        check_batch(_batch(churned=["no", 1, "no", "yes"]), first.schema, source="b.csv")
    assert info.value.reason_code == "new_class"


def test_options_accept_new_classes_huge_values_and_empty_columns(schema: Schema) -> None:
    known = _known(schema)
    rules = ValidationRules(new_classes="accept", max_abs_value=None, allow_empty_columns=("plan",))
    out = check_batch(
        _batch(churned=[0, 1, 2, 1], age=[1, 2, 1e300, 4], plan=[None] * 4),
        known,
        source="b.csv",
        rules=rules,
    )
    assert out.schema.classes == (0, 1, 2) and out.frame["churned"].dtype == np.int64
    assert out.frame["age"].max() == 1e300
    with pytest.raises(DataValidationError, match="non-finite"):
        check_batch(_batch(age=[np.inf, 1, 2, 3]), known, source="b.csv", rules=rules)


def test_a_single_known_class_still_learns_the_second(schema: Schema) -> None:
    one = check_batch(_batch(churned=[0, 0, 0, 0]), schema, source="a.csv").schema
    assert one.classes == (0,)
    assert check_batch(_batch(), one, source="b.csv").schema.classes == (0, 1)


def test_quarantine_rows_returns_the_bad_rows_with_their_row_numbers(schema: Schema) -> None:
    rules = ValidationRules(bad_values="quarantine_rows")
    out = check_batch(_batch(age=[1, np.inf, 3, 4]), _known(schema), source="b.csv", rules=rules)
    assert out.frame["age"].tolist() == [1.0, 3.0, 4.0]
    assert out.bad_rows["row"].tolist() == [1] and out.bad_rows_reason.startswith("non_finite: ")


def test_regression_target_checks_name_rows_and_values() -> None:
    schema = Schema(features=(("x", "numeric"),), target="y", task="regression")
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.5, "lots", 2.0]})
    with pytest.raises(DataValidationError, match=r"\['lots'\] at data row\(s\) \[1\]"):
        validate_batch(frame, schema, source="r.csv")
    with pytest.raises(DataValidationError) as info:
        validate_batch(pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 1e20]}), schema, source="r.csv")
    assert info.value.reason_code == "out_of_range" and "column 'y'" in str(info.value)


def test_rules_validate_their_options() -> None:
    with pytest.raises(ValueError, match="new_classes"):
        ValidationRules(new_classes="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_abs_value"):
        ValidationRules(max_abs_value=0)


def test_rules_come_from_the_spec() -> None:
    from automl.config import DataSpec

    data = DataSpec.model_validate(
        {
            "landing_dir": "l",
            "target": "y",
            "new_classes": "accept",
            "max_abs_value": 1e6,
            "bad_values": "quarantine_rows",
            "allow_empty_columns": ["notes"],
        }
    )
    assert ValidationRules.from_spec(data) == ValidationRules(
        new_classes="accept",
        max_abs_value=1e6,
        bad_values="quarantine_rows",
        allow_empty_columns=("notes",),
    )
    assert ValidationRules.from_spec(DataSpec(landing_dir="l", target="y")) == ValidationRules()


def test_raw_types_are_the_first_batch_as_read_csv_typed_it(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text(
        "calls,visits,spend,vip,trial,plan,y\n"
        "1,3,10.5,True,False,basic,0\n"
        "2,,20.0,False,,pro,1\n"
        "4,1,7.25,True,True,,0\n"
    )
    frame = pd.read_csv(tmp_path / "b.csv")
    schema = infer_schema(frame, target="y", task="classification")
    assert dict(schema.raw_types) == {
        "calls": "integer",
        "visits": "float",  # an integer column with a gap reads as float64
        "spend": "float",
        "vip": "boolean",
        "trial": "boolean",  # True/False with a gap reads as objects
        "plan": "string",
    }
    assert Schema.from_json(schema.to_json()) == schema

    canonical = validate_batch(frame, schema, source="b.csv")
    sent = as_received(canonical, schema)
    assert sent.dtypes.astype(str).to_dict() == {
        "calls": "int64",
        "visits": "Int64",
        "spend": "float64",
        "vip": "bool",
        "trial": "boolean",
        "plan": "object",
    }
    assert sent["visits"].tolist()[:1] == [3] and sent["visits"].isna().tolist() == [0, 1, 0]
    assert sent["plan"].tolist()[:2] == ["basic", "pro"] and pd.isna(sent["plan"].iloc[2])


def test_as_received_follows_the_window_not_only_the_first_batch(schema: Schema) -> None:
    later = pd.DataFrame({"age": [30.0, np.nan], "plan": ["a", "b"]})
    assert str(as_received(later, schema)["age"].dtype) == "Int64"  # a gap arrived since
    fractional = pd.DataFrame({"age": [30.5, 41.0], "plan": ["a", "b"]})
    assert as_received(fractional, schema)["age"].dtype == np.float64


def test_a_schema_stored_before_raw_types_gives_canonical_dtypes() -> None:
    old = Schema.from_json(
        '{"features": [["age", "numeric"], ["plan", "categorical"]], '
        '"target": "churned", "task": "classification"}'
    )
    assert old.raw_types == ()
    rows = pd.DataFrame({"age": [30.0, 41.0], "plan": ["basic", "pro"]})
    assert as_received(rows, old).dtypes.astype(str).tolist() == ["float64", "object"]


def test_integer_labels_take_the_short_path_to_the_same_result(schema: Schema) -> None:
    ints = pd.DataFrame({"age": [50, 60, 70], "plan": ["pro", "basic", None], "churned": [1, 0, 1]})
    floats = ints.assign(churned=[1.0, 0.0, 1.0])  # the general path
    a, b = check_batch(ints, schema, source="i.csv"), check_batch(floats, schema, source="f.csv")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.frame["churned"].dtype == np.int64 and a.schema == b.schema
    assert list(a.bad_rows.columns) == [*ints.columns, "row"] and len(a.bad_rows) == 0
    assert a.bad_rows["row"].dtype == np.int64
    # Whole numbers beyond 2**53 are no class labels, on either path.
    huge = ints.assign(churned=np.array([2**60, 0, 1], dtype=np.int64))
    with pytest.raises(DataValidationError, match="not whole numbers") as caught:
        check_batch(huge, schema, source="h.csv")
    assert caught.value.reason_code == "label_type"
