"""How a model is written: a signature of the rows as clients send them, the scikit-learn
flavour, and a pyfunc entry point that converts those rows and can return probabilities.

The MLmodel file gets two flavours over one pickle: ``sklearn`` (``mlflow.sklearn.load_model``
returns the fitted model, as before) and ``python_function`` whose loader is the copy of
:mod:`automl.tracking._pyfunc` under ``code/`` with the feature list in its ``config``.
"""

from __future__ import annotations

import pickle
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from automl.tracking import _pyfunc


def _is_nullable(dtype: Any) -> bool:
    # MLflow has no nullable integer or boolean column type: ``long`` refuses a float column
    # with NaN (how pandas reads an integer column with a gap) and ``double`` refuses ``int64``.
    # Such columns are declared ``any``, and the model converts them.
    return isinstance(dtype, pd.api.extensions.ExtensionDtype) and (
        pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    )


def input_schema(example: pd.DataFrame) -> Any:
    """The MLflow input schema of rows typed like ``example``, every column required.

    ``int64`` -> ``long``, float -> ``double``, ``bool`` -> ``boolean``, nullable ``Int64`` /
    ``boolean`` -> ``any``, anything else -> ``string``.
    """
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import AnyType

    specs: list[Any] = []
    for name, dtype in example.dtypes.items():
        col_type: Any
        if _is_nullable(dtype):
            col_type = AnyType()  # type: ignore[no-untyped-call]
        elif pd.api.types.is_bool_dtype(dtype):
            col_type = DataType.boolean
        elif pd.api.types.is_integer_dtype(dtype):
            col_type = DataType.long
        elif pd.api.types.is_float_dtype(dtype):
            col_type = DataType.double
        else:
            col_type = DataType.string
        specs.append(ColSpec(col_type, str(name), required=True))
    return Schema(specs)


def feature_kinds(example: pd.DataFrame) -> list[list[str]]:
    """``[name, kind]`` per column: numeric for numbers (not booleans), else categorical."""
    return [
        [
            str(name),
            "numeric"
            if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            else "categorical",
        ]
        for name, dtype in example.dtypes.items()
    ]


def use_installed_loader() -> None:
    """In this process, resolve the models' loader module to automl's own, not to the copy
    inside each model: one module for every model loaded here, the same code ``automl
    predict`` runs. MLflow imports a ``code/`` module once per process anyway."""
    sys.modules.setdefault(_pyfunc.LOADER_MODULE, _pyfunc)


def save_model(
    path: str,
    mlflow_model: Any = None,
    *,
    sk_model: Any,
    features: list[list[str]],
    **kwargs: Any,
) -> None:
    """Save ``sk_model`` with both flavours (called by ``mlflow.models.Model.log``).

    Args:
        path: Empty local directory to write the model into.
        mlflow_model: The ``Model`` being logged.
        sk_model: The fitted scikit-learn model.
        features: ``[name, kind]`` in model order (see :func:`feature_kinds`).
        **kwargs: Passed to ``mlflow.sklearn.save_model`` (signature, input_example, ...).
    """
    import mlflow.sklearn
    from mlflow.models import Model

    mlflow_model = mlflow_model if mlflow_model is not None else Model()
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / f"{_pyfunc.LOADER_MODULE}.py"
        shutil.copyfile(_pyfunc.__file__, code)
        mlflow.sklearn.save_model(
            sk_model, path, mlflow_model=mlflow_model, code_paths=[str(code)], **kwargs
        )
    pyfunc = mlflow_model.flavors["python_function"]
    pyfunc["loader_module"] = _pyfunc.LOADER_MODULE
    pyfunc["config"] = {"features": features}
    mlflow_model.save(str(Path(path) / "MLmodel"))


def load_model_dir(path: str | Path) -> Any:
    """The fitted scikit-learn model of a model directory automl logged, without MLflow.

    Reads the ``sklearn`` flavour of ``MLmodel`` and unpickles its file as
    ``mlflow.sklearn.load_model`` does, so ``automl predict`` scores with the same object
    without importing MLflow (about a second of start-up). Formats other than pickle and
    cloudpickle (e.g. skops) are left to MLflow.

    Args:
        path: A local copy of the model's artifacts (the folder holding ``MLmodel``).

    Raises:
        ValueError: The folder has no ``MLmodel`` with a ``sklearn`` flavour.
    """
    import yaml

    folder = Path(path)
    try:
        flavor = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))["flavors"][
            "sklearn"
        ]
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(f"{folder}: no MLmodel with a sklearn flavour ({exc})") from exc
    file = folder / str(flavor.get("pickled_model", "model.pkl"))
    serialization = flavor.get("serialization_format", "cloudpickle")
    if serialization not in ("cloudpickle", "pickle"):
        import mlflow.sklearn

        return mlflow.sklearn.load_model(str(folder))
    with file.open("rb") as handle:
        # cloudpickle writes standard pickles; they load with pickle once cloudpickle is
        # importable (it is, beside MLflow), as mlflow.sklearn's own loader does.
        return pickle.load(handle)  # the workspace's own registered model
