"""The logged model's ``python_function`` entry point: rows as clients send them in, predictions
(and class probabilities on request) out.

Every model automl logs carries a copy of this file as ``code/automl_pyfunc.py`` and names it
as its pyfunc ``loader_module``, so ``mlflow.pyfunc.load_model``, ``mlflow models serve`` and
a Spark UDF all go through it. It must therefore import only the standard library, numpy,
pandas and mlflow, never ``automl``: the model has to load where automl is not installed
(tests/tracking/test_pyfunc.py loads it in such a process). automl's own callers (``automl
predict``, the promotion gate) use the same :func:`predict_frame`.

The scikit-learn model inside is unchanged and still loads with ``mlflow.sklearn.load_model``;
that flavour expects canonical rows (numeric float64, categorical text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: The module name the copy gets inside a logged model.
LOADER_MODULE = "automl_pyfunc"
#: The ``params`` key that switches the output, and its values.
PREDICT_METHOD = "predict_method"
PREDICT_METHODS = ("predict", "predict_proba")


def _numbers(name: str, col: pd.Series) -> np.ndarray[Any, Any]:
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "fiub":
        return col.to_numpy(dtype="float64")
    try:  # nullable integers, objects from JSON (None, pd.NA, numbers as text)
        values = pd.to_numeric(col.astype(object).where(col.notna(), np.nan))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {name!r} must be numeric: {exc}") from exc
    return np.asarray(values, dtype="float64")


def _text(col: pd.Series) -> np.ndarray[Any, Any]:
    values = col.to_numpy(dtype=object, copy=True)
    gaps = pd.isna(values)
    if pd.api.types.infer_dtype(values, skipna=True) != "string":
        values = np.array(
            [v if gap else str(v) for v, gap in zip(values, gaps, strict=True)], dtype=object
        )
    values[gaps] = np.nan
    return values


def to_model_frame(data: pd.DataFrame, features: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Rows as clients send them, as the model was trained on them.

    Numeric columns become float64 (integers, nullable integers, JSON numbers and nulls);
    categorical columns become text with missing values as NaN (``True`` becomes ``"True"``).
    Mirrors ``automl.data.coerce_features``, which cannot be imported here.

    Args:
        data: The rows; extra columns are ignored.
        features: ``(name, kind)`` pairs, kind ``numeric`` or ``categorical``, in model order.

    Raises:
        ValueError: A feature column is missing, or a numeric column holds text.
    """
    missing = [name for name, _ in features if name not in data.columns]
    if missing:
        raise ValueError(
            f"missing feature columns {missing}; the model needs {[n for n, _ in features]}"
        )
    columns = {
        name: _numbers(name, data[name]) if kind == "numeric" else _text(data[name])
        for name, kind in features
    }
    return pd.DataFrame(columns, index=data.index)


def predict_frame(model: Any, frame: pd.DataFrame, *, with_proba: bool) -> pd.DataFrame:
    """A fitted model's predictions as a frame: ``prediction``, then ``proba_<class>`` columns.

    What ``automl predict`` writes beside the input columns, what the pyfunc returns with
    ``params={"predict_method": "predict_proba"}``, and what the promotion gate scores.

    Args:
        model: A fitted scikit-learn model (classifier or regressor).
        frame: Rows in the model's training format (see :func:`to_model_frame`).
        with_proba: Add one probability column per class, in the order of ``model.classes_``.

    Raises:
        ValueError: ``with_proba`` for a model without ``predict_proba`` (a regressor).
    """
    out = pd.DataFrame({"prediction": np.asarray(model.predict(frame))}, index=frame.index)
    if with_proba:
        if not hasattr(model, "predict_proba"):
            raise ValueError(
                f"{type(model).__name__} has no class probabilities (a regressor?); "
                'use predict_method "predict"'
            )
        proba = np.asarray(model.predict_proba(frame), dtype="float64")
        for i, label in enumerate(model.classes_):
            out[f"proba_{label}"] = proba[:, i]
    return out


class ChampionModel:
    """What ``mlflow.pyfunc`` wraps: converts the rows, predicts, shapes the output.

    Args:
        model: The fitted scikit-learn model.
        features: ``(name, kind)`` pairs in model order.
    """

    def __init__(self, model: Any, features: Sequence[Sequence[str]]) -> None:
        self.model = model
        self.features = [(str(name), str(kind)) for name, kind in features]

    def get_raw_model(self) -> Any:
        """The scikit-learn model (``PyFuncModel.get_raw_model()`` returns it)."""
        return self.model

    def predict(self, data: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Labels (or values), or with ``predict_method: predict_proba`` a frame of the label
        and one ``proba_<class>`` column per class.

        Raises:
            ValueError: Unknown ``predict_method``, or probabilities asked of a regressor.
        """
        method = (params or {}).get(PREDICT_METHOD) or "predict"
        if method not in PREDICT_METHODS:
            raise ValueError(
                f"{PREDICT_METHOD} {method!r} is not one of {', '.join(PREDICT_METHODS)}"
            )
        frame = to_model_frame(pd.DataFrame(data), self.features)
        if method == "predict":
            return np.asarray(self.model.predict(frame))
        return predict_frame(self.model, frame, with_proba=True)


def _load_pyfunc(path: str, model_config: Mapping[str, Any] | None = None) -> ChampionModel:
    """MLflow's loader hook: the scikit-learn flavour of the same model directory, wrapped."""
    import mlflow.sklearn

    features = (model_config or {}).get("features")
    if not features:
        raise ValueError(
            f"model at {path} has no feature list in its pyfunc config; log it with automl"
        )
    return ChampionModel(mlflow.sklearn.load_model(path), features)
