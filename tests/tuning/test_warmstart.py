from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest

from automl.tuning import (
    SearchConfig,
    TrialResult,
    close_storages,
    find_active_study,
    latest_study,
    tune,
    tune_distributed,
    work_on_study,
)
from automl.tuning._local_search import LOCAL_ATTR, n_local_trials
from tests.conftest import churn_search, fresh_postgres_database

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


def _normalized(dist: Any, value: float) -> float:
    low, high, x = float(dist.low), float(dist.high), float(value)
    if dist.log:
        low, high, x = math.log(low), math.log(high), math.log(x)
    return (x - low) / (high - low)


def test_warm_start_refines_the_best_trial_before_the_sampler_takes_over(
    churn: Churn, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    tune(churn(300, seed=1), _config(), n_trials=6, storage=storage, study_name="before")
    drifted = churn(300, seed=2, drift=1.0)

    def warm(name: str) -> list[Any]:
        tune(
            drifted,
            _config(),
            n_trials=12,
            storage=storage,
            study_name=name,
            warm_start_from="before",
            warm_start_top_k=2,
        )
        return optuna.load_study(study_name=name, storage=storage).get_trials()

    trials = warm("warm")
    n_local = n_local_trials(12)
    # 2 previous bests, then the defaults; then the local trials; then TPE.
    assert [bool(t.user_attrs.get("is_warm_start")) for t in trials[:3]] == [True, True, False]
    assert trials[2].user_attrs.get("is_defaults") is True
    assert n_local == 2
    for trial in trials[3 : 3 + n_local]:
        earlier = [t for t in trials[: trial.number] if t.state.name == "COMPLETE"]
        best = max(earlier, key=lambda t: (t.value, -t.number))
        assert trial.user_attrs[LOCAL_ATTR] == best.number
        assert set(trial.params) == set(best.params)
        for name, dist in trial.distributions.items():
            # A step of 0.1 of the (log) range per hyperparameter: far below half the range.
            step = _normalized(dist, trial.params[name]) - _normalized(dist, best.params[name])
            assert abs(step) < 0.5, (name, trial.params[name], best.params[name])
        assert trial.params != best.params
    assert all(LOCAL_ATTR not in t.user_attrs for t in trials[3 + n_local :])
    # Seeded: the same search again samples the same configurations.
    assert [t.params for t in warm("warm-again")] == [t.params for t in trials]

    tune(drifted, _config(), n_trials=12, storage=storage, study_name="cold")
    cold = optuna.load_study(study_name="cold", storage=storage).get_trials()
    assert not any(LOCAL_ATTR in t.user_attrs for t in cold)  # nothing to refine in a cold start


@pytest.mark.postgres
def test_distributed_warm_start_refines_the_best_trial_in_every_process(
    churn: Churn, postgres_url: str
) -> None:
    """Owner and worker both sample: the local trials are the first sampled ones whoever ran
    them, each around the best trial complete when it started."""
    with fresh_postgres_database("automl_warm") as url:
        try:
            tune(churn(300, seed=1), _config(), n_trials=6, storage=url, study_name="before")
            drifted = churn(300, seed=2, drift=1.0)
            worked: list[int] = []

            def worker() -> None:
                deadline = time.monotonic() + 60
                while (active := find_active_study(url, group="churn")) is None:
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.1)
                worked.append(work_on_study(drifted, active, poll_s=0.1))

            thread = threading.Thread(target=worker)
            thread.start()
            result = tune_distributed(
                drifted,
                _config(),
                n_trials=10,
                storage=url,
                study_name="after",
                study_group="churn",
                warm_start_from="before",
                warm_start_top_k=2,
                poll_s=0.1,
            )
            thread.join(timeout=120)
            assert result.n_warm_start == 2 and worked and worked[0] >= 1
            trials = optuna.load_study(study_name="after", storage=url).get_trials()
            sampled = [t for t in trials if "fixed_params" not in t.system_attrs]
            n_local = n_local_trials(10)
            local = [t for t in sampled if LOCAL_ATTR in t.user_attrs]
            assert [t.number for t in local] == [t.number for t in sampled[:n_local]]
            for trial in local:
                best = trials[trial.user_attrs[LOCAL_ATTR]]
                assert best.state.name == "COMPLETE" and set(trial.params) == set(best.params)
        finally:
            close_storages()
