"""Batch schemas: which columns a pipeline expects, of which kind, and validation against them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from automl.errors import DataValidationError

ColumnKind = Literal["numeric", "categorical"]
#: How a column arrived in the first batch, as the reader typed it (``pandas.read_csv`` makes a
#: column of whole numbers without gaps ``int64``, and one with a gap ``float64``).
RawType = Literal["integer", "float", "boolean", "string"]
Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Schema:
    """The columns a pipeline expects.

    Attributes:
        features: ``(name, kind)`` per feature column, in order.
        target: Name of the label column.
        task: ``classification`` or ``regression``.
        raw_types: ``(name, raw type)`` per feature column of the first batch as read, before
            canonical dtypes; what :func:`as_received` restores for model signatures. Empty
            for schemas stored before it was recorded.
    """

    features: tuple[tuple[str, ColumnKind], ...]
    target: str
    task: Task
    raw_types: tuple[tuple[str, RawType], ...] = ()

    @property
    def feature_names(self) -> list[str]:
        """Feature column names in order."""
        return [name for name, _ in self.features]

    @property
    def numeric(self) -> list[str]:
        """Numeric feature names."""
        return [name for name, kind in self.features if kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        """Categorical feature names."""
        return [name for name, kind in self.features if kind == "categorical"]

    def to_json(self) -> str:
        """Serialize to a JSON string."""
        return json.dumps(
            {
                "features": [list(f) for f in self.features],
                "target": self.target,
                "task": self.task,
                "raw_types": [list(r) for r in self.raw_types],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Inverse of :meth:`to_json`."""
        raw = json.loads(text)
        return cls(
            features=tuple((str(n), k) for n, k in raw["features"]),
            target=raw["target"],
            task=raw["task"],
            raw_types=tuple((str(n), t) for n, t in raw.get("raw_types", [])),
        )


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def _raw_type(series: pd.Series) -> RawType:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if _is_numeric(series):
        return "float"
    present = series.dropna()
    # read_csv gives a column of True/False with a gap as objects, not as bool.
    if len(present) and all(isinstance(v, bool | np.bool_) for v in present):
        return "boolean"
    return "string"


def infer_schema(frame: pd.DataFrame, *, target: str, task: Task) -> Schema:
    """Infer a schema from a first batch: numeric dtypes are numeric, everything else categorical.

    The batch's dtypes as read are kept too (:attr:`Schema.raw_types`).

    Raises:
        DataValidationError: The target column is missing or the frame has no feature column.

    Example:
        >>> df = pd.DataFrame({"age": [30, 41], "plan": ["basic", "pro"], "churned": [0, 1]})
        >>> schema = infer_schema(df, target="churned", task="classification")
        >>> schema.features, schema.raw_types
        ((('age', 'numeric'), ('plan', 'categorical')), (('age', 'integer'), ('plan', 'string')))
    """
    if target not in frame.columns:
        raise DataValidationError(
            f"target column {target!r} is missing; columns present: {list(frame.columns)}",
            reason_code="no_target",
        )
    features = tuple(
        (str(c), "numeric" if _is_numeric(frame[c]) else "categorical")
        for c in frame.columns
        if c != target
    )
    if not features:
        raise DataValidationError("the batch has no feature column besides the target")
    raw_types = tuple((name, _raw_type(frame[name])) for name, _ in features)
    return Schema(features=features, target=target, task=task, raw_types=raw_types)  # type: ignore[arg-type]


def _normalize_target(series: pd.Series, task: Task) -> pd.Series:
    if task == "regression":
        numeric = pd.to_numeric(series, errors="coerce")
        return numeric.astype("float64")
    if _is_numeric(series):
        values = series.to_numpy(dtype="float64")
        if np.all(np.isclose(values, np.round(values))):
            return series.astype("int64")
    return series.astype(str)


def coerce_features(frame: pd.DataFrame, schema: Schema, *, source: str) -> pd.DataFrame:
    """The schema's feature columns with canonical dtypes: numeric float64, categorical text.

    Models are logged with that signature, so rows to score go through this first (MLflow
    refuses, e.g., int64 where the signature says double).

    Raises:
        DataValidationError: A feature column is missing or a numeric column holds text.
    """
    missing = [c for c in schema.feature_names if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{source}: missing columns {missing}; expected {schema.feature_names}",
            reason_code="missing_columns",
        )
    out = pd.DataFrame(index=frame.index)
    for name, kind in schema.features:
        col = frame[name]
        if kind == "numeric":
            coerced = pd.to_numeric(col, errors="coerce")
            bad = coerced.isna() & col.notna()
            if bad.any():
                rows = [int(i) for i in np.flatnonzero(bad.to_numpy())[:3]]
                examples = [col.iloc[i] for i in rows]
                raise DataValidationError(
                    f"{source}: column {name!r} must be numeric but {int(bad.sum())} value(s) "
                    f"are not, e.g. {examples!r} at data row(s) {rows} (0-based, header excluded)",
                    reason_code="bad_dtype",
                )
            out[name] = coerced.astype("float64")
        else:
            out[name] = col.astype(object).where(col.isna(), col.astype(str))
    return out


def _numeric_as_received(col: pd.Series, raw: RawType | None) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce").astype("float64")
    present = values.dropna()
    is_whole = bool(np.isfinite(present).all() and (present == present.round()).all())
    has_gaps = bool(values.isna().any())
    # An integer column with a gap reaches pandas as float64 (and MLflow has no nullable
    # integer type); whole floats with gaps are taken for such a column.
    if is_whole and (raw == "integer" or (raw == "float" and has_gaps)):
        return values.astype("Int64") if has_gaps else values.astype("int64")
    return values


def _categorical_as_received(col: pd.Series, raw: RawType | None) -> pd.Series:
    text = col.astype(object).where(col.isna(), col.astype(str))
    present = set(text.dropna())
    if raw != "boolean" or not present <= {"True", "False"}:
        return text
    flags = text.map({"True": True, "False": False})
    return flags.astype("boolean") if text.isna().any() else flags.astype(bool)


def as_received(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The schema's feature columns with the dtypes clients send, from canonical rows.

    Stored batches are canonical (numeric float64, categorical text); a client reading a landed
    file with ``pandas.read_csv`` gets ``int64`` for an integer column instead, and ``bool`` for
    a column of True/False. A model's signature and input example are built from this frame,
    so they describe the data as sent. Per column (of the whole frame):

    - integer in the first batch, whole numbers: ``int64``, or nullable ``Int64`` when a value
      is missing (a float column of whole numbers with gaps is taken for integers too);
    - other numeric: ``float64``;
    - boolean in the first batch, only True/False: ``bool``, or nullable ``boolean`` with gaps;
    - other categorical: text (``object``), missing values kept.

    Schemas stored before raw types were recorded give the canonical dtypes back.

    Example:
        >>> first = pd.DataFrame({"calls": [1, 2], "vip": [True, False], "y": [0, 1]})
        >>> schema = infer_schema(first, target="y", task="classification")
        >>> rows = pd.DataFrame({"calls": [3.0, np.nan], "vip": ["False", "True"]})
        >>> as_received(rows, schema).dtypes.astype(str).to_dict()
        {'calls': 'Int64', 'vip': 'bool'}
    """
    raw = dict(schema.raw_types)
    out = pd.DataFrame(index=frame.index)
    for name, kind in schema.features:
        if kind == "numeric":
            out[name] = _numeric_as_received(frame[name], raw.get(name))
        else:
            out[name] = _categorical_as_received(frame[name], raw.get(name))
    return out


def validate_batch(frame: pd.DataFrame, schema: Schema, *, source: str) -> pd.DataFrame:
    """Check a batch against a schema and return it with canonical dtypes.

    Numeric features become float64, categorical features strings (missing stays missing),
    rows whose label is missing are dropped.

    Args:
        frame: The batch as read.
        schema: The pipeline's schema.
        source: Where the batch came from, used in messages (a file name).

    Returns:
        The batch with columns in schema order (features, then target).

    Raises:
        DataValidationError: The batch is empty, misses or adds columns, a numeric column holds
            non-numeric values, or no row has a label. ``reason_code`` says which.
    """
    if frame.empty:
        raise DataValidationError(f"{source}: batch has no rows", reason_code="empty")
    expected = [*schema.feature_names, schema.target]
    missing = [c for c in expected if c not in frame.columns]
    if schema.target in missing:
        raise DataValidationError(
            f"{source}: target column {schema.target!r} is missing", reason_code="no_target"
        )
    unexpected = [str(c) for c in frame.columns if c not in expected]
    if missing or unexpected:
        parts = [f"missing columns {missing}"] if missing else []
        parts += [f"unexpected columns {unexpected}"] if unexpected else []
        raise DataValidationError(
            f"{source}: schema change: {'; '.join(parts)}; expected {expected}",
            reason_code="missing_columns" if missing else "unexpected_columns",
        )
    out = coerce_features(frame, schema, source=source)
    target = frame[schema.target]
    labelled = target.notna()
    if not labelled.any():
        raise DataValidationError(
            f"{source}: target column {schema.target!r} has no values", reason_code="no_target"
        )
    out[schema.target] = target
    out = out.loc[labelled].reset_index(drop=True)
    out[schema.target] = _normalize_target(out[schema.target], schema.task)
    if schema.task == "regression" and out[schema.target].isna().any():
        raise DataValidationError(
            f"{source}: target column {schema.target!r} must be numeric for regression",
            reason_code="bad_dtype",
        )
    return out
