"""The vocabulary is defined once: every metric has a task and a direction, and every place that
lists choices (spec, tuning, drift, gate, CLI) lists the vocabulary's."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
import pytest

from automl import vocab
from automl.config import (
    DriftSpec,
    GuardrailSpec,
    HysteresisSpec,
    PipelineSpec,
    RegistrySpec,
    SignificanceSpec,
    TuningSpec,
    build_section,
)
from automl.drift import ColumnTest, EvidentlyDriftDetector, Hysteresis
from automl.errors import TuningError
from automl.tracking import Guardrail, PromotionGate
from automl.tuning import (
    GREATER_IS_BETTER,
    PREDICTION_METRICS,
    TASK_METRICS,
    metric_from_predictions,
    score_model,
)
from automl.tuning._metrics import classification_scores, regression_scores, skill
from tests.conftest import churn_search


def test_every_metric_has_a_task_a_direction_and_a_perfect_score() -> None:
    assert set(vocab.METRICS) == set(vocab.PREDICTION_METRICS) == set(vocab.PERFECT_SCORE)
    for name, metric in vocab.METRICS.items():
        assert metric.name == name
        assert metric.task in vocab.TASKS
        assert isinstance(metric.greater_is_better, bool)
        assert vocab.PREDICTION_METRICS[name] is metric.greater_is_better
        # The perfect end of the scale is the end the direction points to.
        assert metric.perfect == (1.0 if metric.greater_is_better else 0.0)
    for task in vocab.TASKS:
        assert vocab.DEFAULT_METRIC[task] in vocab.PRIMARY_METRICS[task]
        assert set(vocab.PRIMARY_METRICS[task]) <= set(vocab.METRICS_BY_TASK[task])
    assert set(GREATER_IS_BETTER) == {m for ms in vocab.PRIMARY_METRICS.values() for m in ms}
    # The tuning package re-exports the vocabulary's tables, it does not define its own.
    assert GREATER_IS_BETTER is vocab.GREATER_IS_BETTER
    assert PREDICTION_METRICS is vocab.PREDICTION_METRICS


def test_the_spec_allows_exactly_the_vocabulary() -> None:
    fields = TuningSpec.model_fields
    assert get_args(fields["strategy"].annotation) == vocab.STRATEGIES
    assert get_args(get_args(fields["models"].annotation)[0]) == vocab.MODEL_FAMILIES
    assert get_args(fields["pruner"].annotation) == vocab.PRUNERS
    assert get_args(DriftSpec.model_fields["policy"].annotation) == vocab.POLICIES
    assert get_args(DriftSpec.model_fields["correction"].annotation) == vocab.CORRECTIONS
    assert get_args(SignificanceSpec.model_fields["test"].annotation) == vocab.SIGNIFICANCE_TESTS
    assert TASK_METRICS == vocab.PRIMARY_METRICS
    # The spec's allowed tuning.metric per task is the vocabulary's list, no more, no less.
    for task in vocab.TASKS:
        accepted = []
        for name in [*vocab.METRICS, "auc"]:
            raw = {
                "name": "p",
                "data": {"landing_dir": "x", "target": "y", "task": task},
                "tuning": {"metric": name},
            }
            try:
                PipelineSpec.model_validate(raw)
            except ValueError:
                continue
            accepted.append(name)
        assert tuple(accepted) == vocab.PRIMARY_METRICS[task]
    # Guardrails: every metric of the vocabulary and the resource metrics, nothing else.
    for name in [*vocab.METRICS, *vocab.RESOURCE_METRICS]:
        resource = name in vocab.RESOURCE_METRICS
        GuardrailSpec(metric=name, **({"max_ratio": 2.0} if resource else {}))
    with pytest.raises(ValueError, match="guardrail metric 'auc' is unknown"):
        GuardrailSpec(metric="auc")


def test_every_metric_is_computed_in_its_direction() -> None:
    """Each metric's scorers agree with its declared direction: a perfect model scores its
    perfect value, and a worse one scores worse in that direction."""
    y = np.array([0, 1] * 20)
    good = np.where(y == 1, 0.9, 0.1)
    noisy = np.where(np.arange(40) % 3 == 0, 1 - good, good)
    for name in vocab.METRICS_BY_TASK["classification"]:
        best = classification_scores(y, np.c_[1 - y, y].astype(float), n_classes=2)[name]
        worse = metric_from_predictions(
            name, y, (noisy > 0.5).astype(int), np.c_[1 - noisy, noisy], np.array([0, 1])
        )
        assert best == pytest.approx(vocab.PERFECT_SCORE[name], abs=1e-6)
        assert (worse < best) if vocab.PREDICTION_METRICS[name] else (worse > best)
    values = np.linspace(0.0, 1.0, 40)
    for name in vocab.METRICS_BY_TASK["regression"]:
        best = regression_scores(values, values)[name]
        worse = metric_from_predictions(name, values, values[::-1])
        assert best == pytest.approx(vocab.PERFECT_SCORE[name])
        assert (worse < best) if vocab.PREDICTION_METRICS[name] else (worse > best)
    assert skill(vocab.PERFECT_SCORE["rmse"], metric="rmse", baseline=2.0) == 1.0


def test_score_model_counts_classes_for_every_classification_metric() -> None:
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    frame = pd.DataFrame({"x": np.arange(30.0), "y": np.arange(30) % 3})
    model = DummyClassifier(strategy="prior").fit(frame[["x"]], frame["y"])
    for name in vocab.PRIMARY_METRICS["classification"]:  # multiclass scorers: no error
        assert np.isfinite(score_model(model, frame, target="y", metric=name))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"metric": "auc"}, f"unknown metric 'auc'; allowed: {', '.join(GREATER_IS_BETTER)}"),
        ({"task": "ranking"}, "unknown task 'ranking'; allowed: classification, regression"),
        (
            {"pruner": "hyperband"},
            f"unknown pruner 'hyperband'; allowed: {', '.join(vocab.PRUNERS)}",
        ),
        (
            {"models": ["catboost"]},
            f"unknown model family 'catboost'; allowed: {', '.join(vocab.MODEL_FAMILIES)}",
        ),
        (
            {"strategy": "annealing"},
            f"unknown tuning strategy 'annealing'; allowed: {', '.join(vocab.STRATEGIES)}",
        ),
    ],
)
def test_a_search_lists_the_vocabulary_when_a_choice_is_unknown(
    bad: dict[str, Any], message: str
) -> None:
    with pytest.raises(TuningError) as info:
        churn_search(**bad)
    assert str(info.value) == message


def test_grid_rule_reads_the_same_in_the_spec_and_the_search() -> None:
    spec_error = "tuning.grid names family 'mlp', which is not in models (xgboost)"
    with pytest.raises(ValueError, match=spec_error.replace("(", r"\(").replace(")", r"\)")):
        TuningSpec(grid={"mlp": {"alpha": [0.1]}})
    with pytest.raises(TuningError, match=r"tuning\.grid names family 'mlp'"):
        churn_search(grid={"mlp": {"alpha": [0.1]}})


def test_capabilities_take_the_validated_section() -> None:
    drift = DriftSpec(drift_share=0.3, correction="holm", per_column={"a": {"method": "psi"}})
    detector = EvidentlyDriftDetector.from_spec(drift, seed=3)
    assert detector.spec is drift and detector.per_column["a"].method == "psi"
    assert detector.warning_share == pytest.approx(0.15)
    hysteresis = HysteresisSpec(confirm_checks=2, window_checks=5, window_drifted=3)
    assert Hysteresis.from_spec(hysteresis).spec is hysteresis
    registry = RegistrySpec(promotion_margin=0.02, guardrails=[{"metric": "recall"}])
    assert PromotionGate.from_spec(registry).spec is registry


def test_standalone_arguments_build_the_same_section() -> None:
    """Plain arguments go through the spec's rules: same defaults, same bounds."""
    assert EvidentlyDriftDetector().spec == DriftSpec()
    assert Hysteresis().spec == HysteresisSpec()
    assert PromotionGate().spec == RegistrySpec()
    assert EvidentlyDriftDetector(drift_share=0.2, min_effect=0).spec == DriftSpec(
        drift_share=0.2, min_effect=0
    )
    # A bound only the spec declared now holds for the standalone object too.
    with pytest.raises(ValueError, match="confirm_checks must be <= 100, got 101"):
        Hysteresis(confirm_checks=101)
    with pytest.raises(ValueError, match=r"significance\.alpha must be < 0\.5, got 0\.6"):
        PromotionGate(alpha=0.6)
    with pytest.raises(ValueError, match=r"per_column\.age\.threshold must be > 0, got -1"):
        EvidentlyDriftDetector(per_column={"age": {"threshold": -1}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"^threshold must be > 0, got -1$"):
        ColumnTest("ks", -1)
    with pytest.raises(ValueError, match="guardrail metric 'speed' is unknown"):
        Guardrail("speed")
    with pytest.raises(ValueError, match="guardrail 'recall' takes max_regression"):
        PromotionGate(guardrails=[GuardrailSpec(metric="recall", max_ratio=2.0)])
    # The spec's cross-field rules read the same from a file and from code.
    with pytest.raises(ValueError, match=r"warning_share must be within \(0, drift_share=0\.3\]"):
        build_section(DriftSpec, drift_share=0.3, warning_share=0.4)


def test_search_config_from_spec_takes_every_tuning_setting() -> None:
    from automl.data import Schema
    from automl.tuning import SearchConfig

    tuning = TuningSpec(
        strategy="random",
        models=("linear", "xgboost"),
        cv=4,
        seed=7,
        pruner="none",
        split="time",
        search_space={"xgboost": {"max_depth": [2, 4]}},
    )
    schema = Schema(
        features=(("x", "numeric"), ("c", "categorical")), target="y", task="regression"
    )
    config = SearchConfig.from_spec(tuning, columns=schema, metric="mae")
    assert config == SearchConfig(
        target="y",
        task="regression",
        numeric=["x"],
        categorical=["c"],
        metric="mae",
        cv=4,
        seed=7,
        strategy="random",
        models=["linear", "xgboost"],
        search_space={"xgboost": {"max_depth": [2, 4]}},
        pruner="none",
        is_time_ordered=True,
    )
