"""The shared vocabulary: tasks, metrics with their direction, strategies, families and the
other fixed choices, each defined once.

Every other module imports these names from here (the spec's ``Literal`` fields, the tuner's
tables, the promotion gate's directions), so adding a metric or a strategy is one edit here.
The tables derived from :data:`METRICS` keep the names and shapes callers already use
(``GREATER_IS_BETTER``, ``PREDICTION_METRICS``, ``PRIMARY_METRICS``, ...).

Example:
    >>> METRICS["rmse"].task, METRICS["rmse"].greater_is_better
    ('regression', False)
    >>> PRIMARY_METRICS["classification"], DEFAULT_METRIC["regression"]
    (('roc_auc', 'accuracy', 'f1', 'log_loss'), 'rmse')
    >>> check_choice("annealing", STRATEGIES, name="tuning strategy")
    Traceback (most recent call last):
    ...
    ValueError: unknown tuning strategy 'annealing'; allowed: bayesian, gp, random, grid, genetic, cmaes
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "CLASSIFICATION_METRICS",
    "CORRECTIONS",
    "DEFAULT_METRIC",
    "GREATER_IS_BETTER",
    "METRICS",
    "METRICS_BY_TASK",
    "MODEL_FAMILIES",
    "PERFECT_SCORE",
    "POLICIES",
    "PREDICTION_METRICS",
    "PRIMARY_METRICS",
    "PRUNERS",
    "REGRESSION_METRICS",
    "RESOURCE_METRICS",
    "SIGNIFICANCE_TESTS",
    "STRATEGIES",
    "TASKS",
    "TEST_CHOICES",
    "Approval",
    "BadValues",
    "ColumnKind",
    "Correction",
    "Metric",
    "ModelFamily",
    "NewClasses",
    "Policy",
    "Pruner",
    "SignificanceTest",
    "Strategy",
    "Task",
    "TestChoice",
    "check_choice",
    "check_metric",
    "check_models",
    "unknown_choice",
]

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)

#: The kind of a feature column (schema inference, drift tests).
ColumnKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class Metric:
    """A quality metric of a model's predictions.

    Attributes:
        name: The name used in specs, MLflow and reports.
        task: The task whose predictions it scores.
        greater_is_better: Whether a larger value is better.
        perfect: The best value it can take (the "perfect" end of its scale).
        is_primary: Whether a search can optimize it (``tuning.metric``); the others are
            recorded per trial and usable as guardrails only.
    """

    name: str
    task: Task
    greater_is_better: bool
    perfect: float
    is_primary: bool = True


_ALL_METRICS = (
    Metric("roc_auc", "classification", greater_is_better=True, perfect=1.0),
    Metric("accuracy", "classification", greater_is_better=True, perfect=1.0),
    Metric("f1", "classification", greater_is_better=True, perfect=1.0),
    Metric("log_loss", "classification", greater_is_better=False, perfect=0.0),
    Metric("precision", "classification", greater_is_better=True, perfect=1.0, is_primary=False),
    Metric("recall", "classification", greater_is_better=True, perfect=1.0, is_primary=False),
    Metric("rmse", "regression", greater_is_better=False, perfect=0.0),
    Metric("mae", "regression", greater_is_better=False, perfect=0.0),
    Metric("r2", "regression", greater_is_better=True, perfect=1.0),
)
#: Every metric by name, primary metrics of each task first (their order is the listed order).
METRICS: dict[str, Metric] = {m.name: m for m in _ALL_METRICS}

#: Metrics a search can optimize, per task (the spec's allowed ``tuning.metric``).
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    task: tuple(m.name for m in _ALL_METRICS if m.task == task and m.is_primary) for task in TASKS
}
#: Every metric of each task (primary and secondary), as recorded for each trial.
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    task: tuple(m.name for m in _ALL_METRICS if m.task == task) for task in TASKS
}
CLASSIFICATION_METRICS = PRIMARY_METRICS["classification"]
REGRESSION_METRICS = PRIMARY_METRICS["regression"]
#: The primary metric a pipeline optimizes when its spec names none.
DEFAULT_METRIC: dict[str, str] = {"classification": "roc_auc", "regression": "rmse"}

#: Direction of each primary metric.
GREATER_IS_BETTER: dict[str, bool] = {
    m.name: m.greater_is_better for m in _ALL_METRICS if m.is_primary
}
#: Direction of every metric computable from stored predictions (the promotion gate's).
PREDICTION_METRICS: dict[str, bool] = {m.name: m.greater_is_better for m in _ALL_METRICS}
#: The best value of each metric.
PERFECT_SCORE: dict[str, float] = {m.name: m.perfect for m in _ALL_METRICS}
#: Guardrails measured on the models themselves (new/old ratio, lower is better).
RESOURCE_METRICS: tuple[str, ...] = ("latency_ms", "model_size_mb")

Strategy = Literal["bayesian", "gp", "random", "grid", "genetic", "cmaes"]
#: Every search strategy, the default first.
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
Pruner = Literal["median", "none"]
PRUNERS: tuple[Pruner, ...] = get_args(Pruner)
ModelFamily = Literal[
    "xgboost", "random_forest", "extra_trees", "hist_gradient_boosting", "linear", "mlp"
]
#: Every model family, in the order reports list them.
MODEL_FAMILIES: tuple[ModelFamily, ...] = get_args(ModelFamily)

#: Dataset drift policy: share of drifted columns, or their importance-weighted share.
Policy = Literal["share", "weighted"]
POLICIES: tuple[Policy, ...] = get_args(Policy)
#: Multiple-testing correction of the per-column p-values.
Correction = Literal["none", "bonferroni", "holm", "bh"]
CORRECTIONS: tuple[Correction, ...] = get_args(Correction)
#: How a column without an explicit method gets its drift test: two-sample p-value tests by
#: cardinality at every size, or the test evidently's DataDriftPreset picks.
TestChoice = Literal["two_sample", "evidently"]
TEST_CHOICES: tuple[TestChoice, ...] = get_args(TestChoice)

#: How the promotion gate judges whether an improvement is real.
SignificanceTest = Literal["bootstrap", "mcnemar", "none"]
SIGNIFICANCE_TESTS: tuple[SignificanceTest, ...] = get_args(SignificanceTest)
#: Whether the gate's verdict moves the aliases at once or waits for ``automl promote``.
Approval = Literal["auto", "manual"]
#: What ingest does with a label it has not seen before.
NewClasses = Literal["reject", "accept"]
#: What ingest does with non-finite or out-of-range numbers: reject the file or quarantine rows.
BadValues = Literal["reject_file", "quarantine_rows"]


def unknown_choice(value: object, allowed: Iterable[str], *, name: str) -> str:
    """The message for a value that is not one of ``allowed``.

    Example:
        >>> unknown_choice("hyperband", PRUNERS, name="pruner")
        "unknown pruner 'hyperband'; allowed: median, none"
    """
    return f"unknown {name} {value!r}; allowed: {', '.join(allowed)}"


def check_choice(
    value: object,
    allowed: Iterable[str],
    *,
    name: str,
    error: type[Exception] = ValueError,
) -> None:
    """Fail unless ``value`` is one of ``allowed``, naming the choice, the value and the options.

    Args:
        value: What was given.
        allowed: The valid choices, in the order to list them.
        name: What the choice is, as the message says it (``"metric"``, ``"model family"``).
        error: The exception to raise (each capability raises its own).

    Raises:
        Exception: ``error``, with the message of :func:`unknown_choice`.
    """
    options = tuple(allowed)
    if value not in options:
        raise error(unknown_choice(value, options, name=name))


def check_metric(
    metric: str, task: str, *, name: str = "metric", error: type[Exception] = ValueError
) -> None:
    """Fail unless ``metric`` is a primary metric of ``task``.

    Args:
        metric: The metric to optimize.
        task: ``classification`` or ``regression``.
        name: How the message names the metric (``"tuning.metric"`` in a spec).
        error: The exception to raise.

    Raises:
        Exception: ``error``: unknown task, unknown metric, or a metric of the other task.

    Example:
        >>> check_metric("rmse", "classification")
        Traceback (most recent call last):
        ...
        ValueError: metric 'rmse' does not fit task 'classification'; allowed: roc_auc, accuracy, f1, log_loss
    """  # noqa: E501
    check_choice(task, TASKS, name="task", error=error)
    check_choice(metric, GREATER_IS_BETTER, name=name, error=error)
    allowed = PRIMARY_METRICS[task]
    if metric not in allowed:
        raise error(f"{name} {metric!r} does not fit task {task!r}; allowed: {', '.join(allowed)}")


def check_models(models: Iterable[str], *, error: type[Exception] = ValueError) -> None:
    """Fail unless ``models`` names at least one model family and only known ones.

    Raises:
        Exception: ``error``: no family, or an unknown one.
    """
    names = tuple(models)
    if not names:
        raise error(f"models must name at least one family; allowed: {', '.join(MODEL_FAMILIES)}")
    for family in names:
        check_choice(family, MODEL_FAMILIES, name="model family", error=error)
