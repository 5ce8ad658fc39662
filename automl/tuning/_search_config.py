"""What a search looks at: the data's columns, the task, the metric, the folds and the space.

A :class:`SearchConfig` is the description that :func:`automl.tuning.tune`,
:func:`automl.tuning.tune_distributed` and every ``automl worker`` share. The budget (trials,
time, parallel jobs, patience) and where the study lives (storage, names, warm start) are not
part of it: they are the options of one run of the search.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from automl.config import check_search
from automl.errors import TuningError
from automl.tuning._space import ParamOverride
from automl.tuning._strategies import check_strategy
from automl.vocab import PRUNERS, Pruner, Strategy, Task, check_choice, check_metric, check_models

if TYPE_CHECKING:
    from automl.config import TuningSpec


class Columns(Protocol):
    """What a search needs to know of a table's schema (``automl.data.Schema`` has it)."""

    @property
    def target(self) -> str:
        """Label column."""

    @property
    def task(self) -> Task:
        """``classification`` or ``regression``."""

    @property
    def numeric(self) -> Sequence[str]:
        """Numeric feature columns."""

    @property
    def categorical(self) -> Sequence[str]:
        """Categorical feature columns."""


def _plain(value: object) -> object:
    """JSON for the values a pipeline spec puts in ``search_space`` (``ParamRange``)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # automl.config.ParamRange (any pydantic model)
        return dump(exclude_none=True)
    raise TypeError(f"not JSON-serializable: {value!r}")


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """The description of a search: which columns, task, metric, folds, strategy and space.

    Sequences are stored as tuples and repeated model families are dropped (first one kept).
    Everything that can be checked without the data is checked here; the columns are checked
    against the rows by :func:`automl.tuning.tune`.

    Attributes:
        target: Label column.
        task: ``classification`` (binary or multiclass) or ``regression``.
        numeric: Numeric feature columns.
        categorical: Categorical feature columns (at least one feature column in all).
        metric: Primary metric that fits the task (see :data:`automl.vocab.PRIMARY_METRICS`).
        cv: Number of folds (>= 2).
        seed: Seeds the sampler, the folds and the models: with ``n_jobs=1`` a search is
            reproducible.
        strategy: ``bayesian`` (multivariate TPE, default), ``gp`` (Gaussian process; needs the
            ``gp`` extra), ``random``, ``grid`` (exhaustive over ``grid``), ``genetic``
            (NSGA-II) or ``cmaes``.
        models: Families to search (see :data:`automl.tuning.MODEL_FAMILIES`); several make one
            conditional space with the family as its first choice.
        search_space: Per family (one of ``models``), per hyperparameter, a narrower range or a
            fixed value (see :func:`automl.tuning.family_space`).
        grid: Per family (one of ``models``), per hyperparameter, the values to try; required
            by strategy ``grid``.
        pruner: ``median`` stops trials whose first-fold learning curve (boosting rounds,
            epochs; folds for the other families) trails the median; ``none``.
        is_time_ordered: Rows are in time order: validate only on rows after the training rows
            (forward-chaining folds) instead of stratified or shuffled k-fold.

    Raises:
        TuningError: Unknown task, metric, family, strategy or pruner; a metric that does not
            fit the task; no feature column, or the target among them; ``cv`` < 2;
            ``search_space`` or ``grid`` naming a family not in ``models``; strategy ``grid``
            without a grid; strategy ``gp`` without PyTorch.

    Example:
        >>> config = SearchConfig(target="y", task="regression", numeric=["x1", "x2"],
        ...                       categorical=[], metric="rmse", models=["linear", "linear"])
        >>> config.numeric, config.models
        (('x1', 'x2'), ('linear',))
        >>> SearchConfig.from_json(config.to_json()) == config
        True
        >>> config.to_dict()["models"]
        ['linear']
        >>> SearchConfig(target="y", task="regression", numeric=["x1"], categorical=[],
        ...              metric="roc_auc")
        Traceback (most recent call last):
        ...
        automl.errors.TuningError: metric 'roc_auc' does not fit task 'regression'; allowed: rmse, mae, r2
    """  # noqa: E501

    target: str
    task: Task
    numeric: Sequence[str]
    categorical: Sequence[str]
    metric: str
    cv: int = 3
    seed: int = 42
    strategy: Strategy = "bayesian"
    models: Sequence[str] = ("xgboost",)
    search_space: Mapping[str, Mapping[str, ParamOverride]] = field(default_factory=dict)
    grid: Mapping[str, Mapping[str, Sequence[object]]] | None = None
    pruner: Pruner = "median"
    is_time_ordered: bool = False

    def __post_init__(self) -> None:
        # Frozen: normalize through object.__setattr__, before anything reads the fields.
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "models", tuple(dict.fromkeys(self.models)))
        # The rules a pipeline spec shares (automl.vocab, automl.config): one message each.
        check_metric(self.metric, self.task, error=TuningError)
        features = (*self.numeric, *self.categorical)
        if not features:
            raise TuningError("no feature columns: give at least one numeric or categorical column")
        if self.target in features:
            raise TuningError(f"target column {self.target!r} is also listed as a feature")
        if self.cv < 2:
            raise TuningError(f"cv must be >= 2 folds, got {self.cv}")
        check_models(self.models, error=TuningError)
        check_strategy(self.strategy)
        check_choice(self.pruner, PRUNERS, name="pruner", error=TuningError)
        check_search(self.strategy, self.models, self.search_space, self.grid, error=TuningError)

    @classmethod
    def from_spec(cls, tuning: TuningSpec, *, columns: Columns, metric: str) -> SearchConfig:
        """The search a pipeline's ``tuning`` section describes, over a schema's columns.

        Args:
            tuning: The validated ``tuning`` section of a pipeline spec.
            columns: The target, task and feature columns (an ``automl.data.Schema``).
            metric: The pipeline's primary metric (``PipelineSpec.metric``: the task's default
                filled in).

        Raises:
            TuningError: The section does not fit the columns (no feature column, or the
                target among them).
        """
        # A setting of the search and of the section with the same name means the same thing
        # (cv, seed, strategy, models, search_space, grid, pruner): it is taken as it is.
        shared = {f.name for f in dataclasses.fields(cls)} & set(type(tuning).model_fields)
        settings = {name: getattr(tuning, name) for name in shared - {"metric"}}
        return cls(
            target=columns.target,
            task=columns.task,
            numeric=columns.numeric,
            categorical=columns.categorical,
            metric=metric,
            is_time_ordered=tuning.split == "time",
            **settings,
        )

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns, numeric first."""
        return (*self.numeric, *self.categorical)

    def to_dict(self) -> dict[str, Any]:
        """The description as plain JSON values (lists, dicts, strings, numbers).

        Range overrides given as pydantic models (``automl.config.ParamRange``) become dicts
        of their set fields.
        """
        payload = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        plain: dict[str, Any] = json.loads(json.dumps(payload, default=_plain))
        return plain

    def to_json(self) -> str:
        """The description as a JSON object (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> SearchConfig:
        """The description written by :meth:`to_dict` (possibly by another process).

        Raises:
            TuningError: Unknown or missing keys, or values that fail the checks above.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(payload) - set(names))
        if unknown:
            raise TuningError(
                f"search description has unknown keys {unknown}; allowed: {', '.join(names)}; "
                "was it written by another automl version? run the same version everywhere"
            )
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in payload]
        if missing:
            raise TuningError(f"search description lacks {missing}; got keys {sorted(payload)}")
        return cls(**payload)

    @classmethod
    def from_json(cls, text: str) -> SearchConfig:
        """The description written by :meth:`to_json`.

        Raises:
            TuningError: Not a JSON object, or see :meth:`from_dict`.
        """
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TuningError(f"search description is not JSON ({exc}): {text[:200]!r}") from exc
        if not isinstance(payload, dict):
            raise TuningError(f"search description must be a JSON object, got {text[:200]!r}")
        return cls.from_dict(payload)
