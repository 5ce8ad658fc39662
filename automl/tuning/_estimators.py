"""Model pipelines: preprocessing and estimator in one scikit-learn object that takes raw frames."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from automl.errors import TuningError
from automl.tuning._space import XGBOOST_DEFAULTS
from automl.vocab import MODEL_FAMILIES, Task, unknown_choice

__all__ = [
    "XGBOOST_DEFAULTS",
    "LabelEncodedClassifier",
    "build_model",
    "decode_labels",
    "make_preprocessor",
]

#: Rounds (epochs) without improvement before a tuned trial stops early.
EARLY_STOPPING_ROUNDS = {"xgboost": 20, "hist_gradient_boosting": 10, "mlp": 10}


class LabelEncodedClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Wraps a classifier that needs labels 0..K-1 so it takes and returns the original labels.

    No longer built (see :func:`decode_labels`): kept so that models logged by earlier
    versions, which pickled this class, still load.

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


def decode_labels(classifier: Any, *, name: str = "model") -> Any:
    """``classifier`` fit on labels encoded as 0..K-1, taking and returning the original labels.

    A soft-voting ensemble of one member is scikit-learn's own label-encoding wrapper: it
    encodes ``y`` with a ``LabelEncoder``, fits the member, and its ``predict_proba`` is the
    member's (the average of one), its ``predict`` the most probable original label. Unlike a
    wrapper class of our own, it unpickles wherever scikit-learn is installed, so a logged
    model does not need automl to load.

    Args:
        classifier: An unfitted classifier (or pipeline) with ``predict_proba``.
        name: The member's name in ``named_estimators_``.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> X, y = [[0.0], [1.0], [2.0], [3.0]], ["no", "no", "yes", "yes"]
        >>> model = decode_labels(LogisticRegression()).fit(X, y)
        >>> model.classes_.tolist(), model.predict([[0.2], [2.8]]).tolist()
        (['no', 'yes'], ['no', 'yes'])
    """
    from sklearn.ensemble import VotingClassifier

    return VotingClassifier([(name, classifier)], voting="soft")


def make_preprocessor(family: str, *, numeric: Sequence[str], categorical: Sequence[str]) -> Any:
    """The preprocessing step a family needs, as an unfitted ``ColumnTransformer``.

    Categorical columns are imputed with a ``missing`` level and one-hot encoded; levels unseen
    in training map to all zeros, so new categories in production never crash the model.
    XGBoost and histogram gradient boosting take numeric NaN natively (they learn where missing
    values go); the other tree families get median imputation; linear models and the MLP also
    get standard scaling, which their regularization and optimizers assume.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            # A missing text value is None as often as NaN (Parquet, JSON null); the imputer
            # above only sees NaN, and None would otherwise become a level of its own.
            (
                "impute_none",
                SimpleImputer(missing_values=None, strategy="constant", fill_value="missing"),
            ),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    numeric_steps: Any
    if family in ("xgboost", "hist_gradient_boosting"):
        numeric_steps = "passthrough"
    elif family in ("random_forest", "extra_trees"):
        numeric_steps = SimpleImputer(strategy="median", keep_empty_features=True)
    else:
        numeric_steps = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
    return ColumnTransformer(
        [("num", numeric_steps, list(numeric)), ("cat", categorical_steps, list(categorical))],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def _xgboost(task: Task, params: Mapping[str, Any], seed: int, tuned: bool, **kw: Any) -> Any:
    from xgboost import XGBClassifier, XGBRegressor

    extra: dict[str, Any] = {}
    if tuned:
        extra = {"early_stopping_rounds": EARLY_STOPPING_ROUNDS["xgboost"]}
        if kw.get("eval_metric"):
            extra["eval_metric"] = kw["eval_metric"]
    common = {"random_state": seed, "n_jobs": 1, "tree_method": "hist", **extra, **params}
    return XGBClassifier(**common) if task == "classification" else XGBRegressor(**common)


def _forest(family: str, task: Task, params: Mapping[str, Any], seed: int) -> Any:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    classes = {
        ("random_forest", "classification"): RandomForestClassifier,
        ("random_forest", "regression"): RandomForestRegressor,
        ("extra_trees", "classification"): ExtraTreesClassifier,
        ("extra_trees", "regression"): ExtraTreesRegressor,
    }
    args = dict(params)
    if args.get("max_samples") == 1.0:
        args["max_samples"] = None  # the library default: every row, no float rounding
    return classes[family, task](random_state=seed, n_jobs=1, **args)


def _hist_gb(task: Task, params: Mapping[str, Any], seed: int, tuned: bool) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    extra: dict[str, Any] = {}
    if tuned:
        # Scoring on the loss keeps early stopping incremental (a scorer re-predicts every
        # round); validation_score_ then holds the negative loss per iteration.
        extra = {
            "early_stopping": True,
            "scoring": "loss",
            "validation_fraction": 0.1,
            "n_iter_no_change": EARLY_STOPPING_ROUNDS["hist_gradient_boosting"],
        }
    cls = (
        HistGradientBoostingClassifier
        if task == "classification"
        else HistGradientBoostingRegressor
    )
    return cls(random_state=seed, **extra, **params)


def _linear(task: Task, params: Mapping[str, Any], seed: int) -> Any:
    from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge

    args = dict(params)
    penalty = args.pop("penalty", "l2")
    l1_ratio = float(args.pop("l1_ratio", 0.5))
    if task == "classification":
        ratio = {"l2": 0.0, "l1": 1.0}.get(penalty, l1_ratio)
        # lbfgs (the library default) only does l2; saga does l1 and elastic net.
        solver = "lbfgs" if ratio == 0.0 else "saga"
        max_iter = 100 if solver == "lbfgs" else 1000
        return LogisticRegression(
            l1_ratio=ratio, solver=solver, max_iter=max_iter, random_state=seed, **args
        )
    if penalty == "l2":
        return Ridge(**args)
    if penalty == "l1":
        return Lasso(random_state=seed, max_iter=5000, **args)
    return ElasticNet(l1_ratio=l1_ratio, random_state=seed, max_iter=5000, **args)


def _mlp(task: Task, params: Mapping[str, Any], seed: int, tuned: bool) -> Any:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    args = dict(params)
    layers = int(args.pop("hidden_layers", 1))
    units = int(args.pop("hidden_units", 100))
    extra: dict[str, Any] = {}
    if tuned:
        extra = {
            "early_stopping": True,
            "validation_fraction": 0.1,
            "n_iter_no_change": EARLY_STOPPING_ROUNDS["mlp"],
        }
    cls = MLPClassifier if task == "classification" else MLPRegressor
    return cls(hidden_layer_sizes=(units,) * layers, random_state=seed, **extra, **args)


def make_estimator(
    family: str,
    *,
    task: Task,
    params: Mapping[str, Any],
    seed: int,
    is_tuned: bool = True,
    eval_metric: str | None = None,
) -> Any:
    """The unfitted estimator of a family with these hyperparameters.

    Args:
        family: One of :data:`automl.tuning.MODEL_FAMILIES`.
        task: ``classification`` or ``regression``.
        params: Hyperparameters as the search space names them.
        seed: Random state.
        is_tuned: Tuned trials of iterative families stop early on a validation split; the
            library-defaults trial does not (that is the library default).
        eval_metric: XGBoost's early-stopping metric.

    Raises:
        TuningError: Unknown family.
    """
    if family == "xgboost":
        return _xgboost(task, params, seed, is_tuned, eval_metric=eval_metric)
    if family in ("random_forest", "extra_trees"):
        return _forest(family, task, params, seed)
    if family == "hist_gradient_boosting":
        return _hist_gb(task, params, seed, is_tuned)
    if family == "linear":
        return _linear(task, params, seed)
    if family == "mlp":
        return _mlp(task, params, seed, is_tuned)
    raise TuningError(unknown_choice(family, MODEL_FAMILIES, name="model family"))


def build_model(
    *,
    task: Task,
    numeric: Sequence[str],
    categorical: Sequence[str],
    params: Mapping[str, Any],
    seed: int,
    encode_labels: bool = False,
    family: str = "xgboost",
    is_tuned: bool = False,
) -> Any:
    """An unfitted pipeline (preprocessing + estimator) that takes the raw feature frame.

    With ``encode_labels`` (classification labels other than 0..K-1, which XGBoost needs) an
    XGBoost pipeline is wrapped by :func:`decode_labels`. Either way the model is plain
    scikit-learn (and XGBoost), so the logged model loads wherever those are installed.

    Args:
        task: ``classification`` or ``regression``.
        numeric: Numeric feature columns.
        categorical: Categorical feature columns.
        params: The family's hyperparameters.
        seed: Random state.
        encode_labels: Labels are not 0..K-1.
        family: Model family.
        is_tuned: Stop early on an internal split (iterative families); the final refit of a
            tuned XGBoost passes its averaged number of rounds instead.

    Example:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"x": [0.1, 0.4, 0.8, 0.9] * 5, "c": ["a", "b", "a", "b"] * 5})
        >>> model = build_model(task="regression", numeric=["x"], categorical=["c"],
        ...                     params={"alpha": 1.0, "penalty": "l2"}, seed=0, family="linear")
        >>> model.fit(frame, frame["x"] * 2).predict(frame.assign(c="new")).shape
        (20,)
    """
    from sklearn.pipeline import Pipeline

    pre = make_preprocessor(family, numeric=numeric, categorical=categorical)
    estimator = make_estimator(family, task=task, params=params, seed=seed, is_tuned=is_tuned)
    pipeline = Pipeline([("pre", pre), ("model", estimator)])
    if encode_labels and task == "classification" and family == "xgboost":
        return decode_labels(pipeline, name=family)
    return pipeline
