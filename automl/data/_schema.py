"""Batch schemas: which columns a pipeline expects, of which kind, and validation against them."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from automl.errors import DataValidationError
from automl.vocab import ColumnKind, Task


@dataclass(frozen=True)
class Schema:
    """The columns a pipeline expects.

    Attributes:
        features: ``(name, kind)`` per feature column, in order.
        target: Name of the label column.
        task: ``classification`` or ``regression``.
    """

    features: tuple[tuple[str, ColumnKind], ...]
    target: str
    task: Task

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
            {"features": [list(f) for f in self.features], "target": self.target, "task": self.task}
        )

    @classmethod
    def from_json(cls, text: str) -> Schema:
        """Inverse of :meth:`to_json`."""
        raw = json.loads(text)
        return cls(
            features=tuple((str(n), k) for n, k in raw["features"]),
            target=raw["target"],
            task=raw["task"],
        )


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def infer_schema(frame: pd.DataFrame, *, target: str, task: Task) -> Schema:
    """Infer a schema from a first batch: numeric dtypes are numeric, everything else categorical.

    Raises:
        DataValidationError: The target column is missing or the frame has no feature column.

    Example:
        >>> df = pd.DataFrame({"age": [30, 41], "plan": ["basic", "pro"], "churned": [0, 1]})
        >>> infer_schema(df, target="churned", task="classification").features
        (('age', 'numeric'), ('plan', 'categorical'))
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
    return Schema(features=features, target=target, task=task)  # type: ignore[arg-type]


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
