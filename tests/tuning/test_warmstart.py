from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from automl.tuning import SearchConfig, TrialResult, latest_study, tune
from tests.conftest import churn_search

Churn = Callable[..., pd.DataFrame]


def _config(**kw: Any) -> SearchConfig:
    return churn_search(cv=2, seed=5, pruner="none", **kw)


def test_warm_start_reruns_the_previous_best_configurations_first(
    churn: Churn, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    before = tune(
        churn(300, seed=1),
        _config(),
        n_trials=6,
        storage=storage,
        study_name="churn-1",
        study_group="churn",
    )
    assert latest_study(storage, group="churn") == "churn-1"
    assert latest_study(storage, group="churn", exclude="churn-1") is None
    assert latest_study(storage, group="churn-eu") is None  # groups never mix

    previous = before.trials[before.trials["state"] == "COMPLETE"].sort_values(
        ["cv_mean", "number"], ascending=[False, True]
    )
    top = [
        {k[6:]: v for k, v in row.items() if k.startswith("param_")}
        for row in previous.head(2).to_dict(orient="records")
    ]
    drifted = churn(300, seed=2, drift=1.0)
    seen: list[TrialResult] = []
    after = tune(
        drifted,
        _config(),
        n_trials=5,
        storage=storage,
        study_name="churn-2",
        study_group="churn",
        warm_start_from="churn-1",
        warm_start_top_k=2,
        on_trial=seen.append,
    )
    assert [t.params for t in seen[:2]] == top
    assert all(t.is_warm_start for t in seen[:2]) and not seen[2].is_warm_start
    # Re-evaluated on the drifted rows: scores are fresh, not the previous study's.
    old_scores = previous["cv_mean"].head(2).tolist()
    assert [t.cv_mean for t in seen[:2]] != old_scores
    assert after.n_warm_start == 2 and after.warm_start_from == "churn-1"
    # The defaults still run (unless a previous best already was the defaults).
    assert sum(t.is_defaults for t in seen) == 1
    assert latest_study(storage, group="churn") == "churn-2"


def test_warm_start_skips_families_no_longer_searched(churn: Churn, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tune(
        churn(200, seed=1),
        _config(models=["linear"]),
        n_trials=3,
        storage=storage,
        study_name="a",
        study_group="g",
    )
    seen: list[TrialResult] = []
    result = tune(
        churn(200, seed=2),
        _config(models=["xgboost"]),
        n_trials=2,
        storage=storage,
        study_name="b",
        warm_start_from="a",
        on_trial=seen.append,
    )
    assert result.n_warm_start == 0 and seen[0].is_defaults
