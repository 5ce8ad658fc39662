"""coerce_features builds its frame at once: the values, dtypes and index of column by column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data import Schema, coerce_features
from automl.errors import DataValidationError


def _column_by_column(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for name, kind in schema.features:
        col = frame[name]
        if kind == "numeric":
            out[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            out[name] = col.astype(object).where(col.isna(), col.astype(str))
    return out


FRAME = pd.DataFrame(
    {
        "ints": [1, 2, 3, 4],
        "floats": [0.5, np.nan, 2.0, 3.5],
        "text_numbers": ["1.5", "2", None, "4e3"],
        "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
        "plan": ["basic", None, "pro", "basic"],
        "codes": [10, 20, 10, 30],
        "flags": [True, False, True, None],
        "blank": [None, None, None, None],
        "mixed": ["a", 1, 2.5, None],
        "y": [0, 1, 0, 1],
    },
    index=[7, 7, 3, 1],  # duplicated, unordered labels: nothing may be aligned on them
)
SCHEMA = Schema(
    features=(
        ("ints", "numeric"),
        ("floats", "numeric"),
        ("text_numbers", "numeric"),
        ("nullable", "numeric"),
        ("plan", "categorical"),
        ("codes", "categorical"),
        ("flags", "categorical"),
        ("blank", "categorical"),
        ("mixed", "categorical"),
    ),
    target="y",
    task="classification",
)


def test_same_frame_as_column_by_column() -> None:
    ours = coerce_features(FRAME, SCHEMA, source="t")
    expected = _column_by_column(FRAME, SCHEMA)
    pd.testing.assert_frame_equal(ours, expected)
    assert list(ours.index) == [7, 7, 3, 1]
    assert ours["codes"].tolist() == ["10", "20", "10", "30"]
    assert ours["plan"].isna().tolist() == [False, True, False, False]
    ours.loc[:, "floats"] = 0.0  # a copy: the input is untouched
    assert FRAME["floats"].iloc[0] == 0.5


def test_text_in_a_numeric_column_is_still_refused() -> None:
    bad = FRAME.assign(ints=["1", "x", "3", "4"])
    with pytest.raises(DataValidationError, match=r"'ints' must be numeric .* \['x'\]"):
        coerce_features(bad, SCHEMA, source="t")
