"""Model pipelines: preprocessing and estimator in one scikit-learn object that takes raw frames."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

Task = Literal["classification", "regression"]

#: XGBoost's own defaults for the tuned hyperparameters (xgboost 2.x/3.x), used as trial 0.
XGBOOST_DEFAULTS: dict[str, float | int] = {
    "n_estimators": 100,
    "learning_rate": 0.3,
    "max_depth": 6,
    "min_child_weight": 1.0,
    "subsample": 1.0,
    "colsample_bytree": 1.0,
    "reg_lambda": 1.0,
    "reg_alpha": 0.0,
}


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Wraps a classifier that needs labels 0..K-1 so it takes and returns the original labels.

    Args:
        estimator: The classifier (or pipeline) to fit on encoded labels.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: pd.DataFrame, y: pd.Series, **fit_params: Any) -> LabelEncodedClassifier:  # noqa: N803
        """Fit on ``y`` encoded as 0..K-1."""
        self.classes_, encoded = np.unique(np.asarray(y), return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(X, encoded, **fit_params)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray[Any, Any]:  # noqa: N803
        """Predict original labels."""
        return np.asarray(self.classes_[np.asarray(self.estimator_.predict(X), dtype=int)])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray[Any, Any]:  # noqa: N803
        """Class probabilities, columns in the order of ``classes_``."""
        return np.asarray(self.estimator_.predict_proba(X))


def build_model(
    *,
    task: Task,
    numeric: Sequence[str],
    categorical: Sequence[str],
    params: dict[str, Any],
    seed: int,
    encode_labels: bool = False,
) -> Any:
    """An unfitted XGBoost pipeline that takes the raw feature frame.

    With ``encode_labels`` (classification labels other than 0..K-1) the pipeline is wrapped
    in :class:`LabelEncodedClassifier`; otherwise it is plain scikit-learn and XGBoost, so the
    logged model loads wherever those are installed.

    Numeric columns pass through (XGBoost handles missing values itself); categorical columns
    are imputed with a ``missing`` level and one-hot encoded, ignoring categories unseen in
    training so new levels in production do not crash the model.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBClassifier, XGBRegressor

    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    pre = ColumnTransformer(
        [("num", "passthrough", list(numeric)), ("cat", categorical_steps, list(categorical))],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    common = {"random_state": seed, "n_jobs": 1, "tree_method": "hist", **params}
    if task == "classification":
        classifier = Pipeline([("pre", pre), ("model", XGBClassifier(**common))])
        return LabelEncodedClassifier(classifier) if encode_labels else classifier
    return Pipeline([("pre", pre), ("model", XGBRegressor(**common))])
