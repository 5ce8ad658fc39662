from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.data import Schema, as_received, infer_schema, validate_batch
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
