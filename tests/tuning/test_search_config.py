from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest

from automl.config import ParamRange
from automl.errors import TuningError
from automl.tuning import SearchConfig, find_active_study
from automl.tuning._distributed import ACTIVE_ATTR, BUDGET_ATTR, SEARCH_ATTR
from automl.tuning._warmstart import GROUP_ATTR
from tests.conftest import CATEGORICAL, NUMERIC, churn_search

_config = churn_search


def test_sequences_become_tuples_and_repeated_families_collapse() -> None:
    config = _config(models=["linear", "xgboost", "linear"])
    assert config.numeric == tuple(NUMERIC) and config.categorical == tuple(CATEGORICAL)
    assert config.models == ("linear", "xgboost")
    assert config.features == (*NUMERIC, *CATEGORICAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cv = 5  # type: ignore[misc]


def test_json_round_trip_keeps_every_field() -> None:
    config = _config(
        cv=4,
        seed=7,
        strategy="grid",
        models=["xgboost", "linear"],
        search_space={"xgboost": {"max_depth": [2, 3], "subsample": 0.7}},
        grid={"linear": {"C": [0.1, 1.0]}},
        pruner="none",
        is_time_ordered=True,
    )
    assert SearchConfig.from_json(config.to_json()) == config
    assert SearchConfig.from_dict(config.to_dict()) == config


def test_json_is_plain_and_keeps_the_study_attribute_keys() -> None:
    # Workers of the same release read these keys from the study's `automl.search`.
    config = _config(search_space={"xgboost": {"max_depth": ParamRange(low=2, high=4)}})
    payload = config.to_dict()
    assert list(payload) == [
        "target",
        "task",
        "numeric",
        "categorical",
        "metric",
        "cv",
        "seed",
        "strategy",
        "models",
        "search_space",
        "grid",
        "pruner",
        "is_time_ordered",
    ]
    assert payload["numeric"] == NUMERIC and payload["models"] == ["xgboost"]
    assert payload["search_space"] == {"xgboost": {"max_depth": {"low": 2, "high": 4}}}
    assert json.loads(config.to_json()) == payload


def test_from_json_names_what_is_wrong() -> None:
    good = _config().to_dict()
    with pytest.raises(TuningError, match=r"unknown keys \['budget'\]"):
        SearchConfig.from_dict({**good, "budget": 3})
    with pytest.raises(TuningError, match=r"lacks \['metric'\]"):
        SearchConfig.from_dict({k: v for k, v in good.items() if k != "metric"})
    with pytest.raises(TuningError, match="not JSON"):
        SearchConfig.from_json("{target")
    with pytest.raises(TuningError, match="must be a JSON object"):
        SearchConfig.from_json("[1, 2]")
    with pytest.raises(TuningError, match="unknown metric 'auc'"):
        SearchConfig.from_dict({**good, "metric": "auc"})


def test_checks_that_need_no_data_fail_when_the_config_is_built() -> None:
    with pytest.raises(TuningError, match="unknown task 'ranking'"):
        _config(task="ranking")
    with pytest.raises(TuningError, match="metric 'rmse' does not fit task 'classification'"):
        _config(metric="rmse")
    with pytest.raises(TuningError, match="no feature columns"):
        _config(numeric=[], categorical=[])
    with pytest.raises(TuningError, match="target column 'churned' is also listed"):
        _config(numeric=[*NUMERIC, "churned"])
    with pytest.raises(TuningError, match="cv must be >= 2 folds, got 1"):
        _config(cv=1)
    with pytest.raises(TuningError, match="models must name at least one family"):
        _config(models=[])
    with pytest.raises(TuningError, match="unknown pruner 'hyperband'"):
        _config(pruner="hyperband")
    with pytest.raises(TuningError, match=r"tuning\.grid names family 'mlp'"):
        _config(strategy="grid", grid={"mlp": {"alpha": [0.1]}})


def test_an_active_study_carries_its_config_to_workers(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = _config(models=["linear", "xgboost"], cv=2, seed=9)
    study = optuna.create_study(study_name="churn-1", storage=storage)
    # What tune_distributed writes (it needs a database server, so it is not run here).
    for key, value in {
        GROUP_ATTR: "churn",
        SEARCH_ATTR: json.dumps({**config.to_dict(), "n_informed": 2}),
        BUDGET_ATTR: 6,
        ACTIVE_ATTR: True,
    }.items():
        study.set_user_attr(key, value)
    active = find_active_study(storage, group="churn")
    assert active is not None and active.study_name == "churn-1" and active.n_trials == 6
    assert active.search == config and active.n_informed == 2
