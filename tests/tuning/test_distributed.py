"""Distributed tuning on a real PostgreSQL study: admission to the budget, and what is logged.

The other process of each test is this test itself, holding trials through a second Optuna
handle on the same database: it takes the budget's slots at a chosen moment, which a race
between real workers does only now and then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from automl.tuning import (
    ActiveStudy,
    SearchConfig,
    TrialResult,
    close_storages,
    tune_distributed,
    work_on_study,
)
from automl.tuning._distributed import SURPLUS_ATTR
from automl.tuning._tuner import prepare_search
from tests.conftest import churn_search, fresh_postgres_database

Churn = Callable[..., pd.DataFrame]

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database("automl_dist") as fresh:
        try:
            yield fresh
        finally:
            close_storages()


def _config(**kw: Any) -> SearchConfig:
    return churn_search(cv=2, seed=0, pruner="none", **kw)


def _optuna_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("optuna")]


def test_a_trial_not_admitted_is_neither_logged_as_a_failure_nor_counted(
    churn: Churn, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process takes the last two slots of the budget (3) after the owner's first
    trial, and a trial waits in the queue: the owner's next trial (number 3) is not admitted.
    Optuna would log it as a failed trial with a traceback; it is a debug line, and the
    search's record holds the three trials of the budget, none failed."""
    frame = churn(200, seed=1)
    config = _config(models=["linear"])
    search = prepare_search(frame, config, n_trials=3)
    seen: list[TrialResult] = []
    helpers: list[threading.Thread] = []

    def other_process(study: Any, held: list[Any]) -> None:
        # Evaluate the held trials once the owner's trial 3 has been refused.
        deadline = time.monotonic() + 60
        while study.get_trials(deepcopy=False)[3].state != TrialState.FAIL:
            assert time.monotonic() < deadline, "trial 3 was never refused"
            time.sleep(0.05)
        for trial in held:
            study.tell(trial, search.objective(trial))

    def on_trial(result: TrialResult) -> None:
        seen.append(result)
        if result.number == 0:  # the owner's first trial is done: take the last two slots
            study = optuna.load_study(study_name="s", storage=url)
            held = [study.ask(), study.ask()]
            study.enqueue_trial({})  # queued work makes the owner ask for a trial anyway
            helpers.append(threading.Thread(target=other_process, args=(study, held)))
            helpers[0].start()

    caplog.set_level(logging.DEBUG, logger="automl.tuning._distributed")
    result = tune_distributed(
        frame,
        config,
        n_trials=3,
        storage=url,
        study_name="s",
        study_group="g",
        heartbeat_s=1,
        poll_s=0.05,
        on_trial=on_trial,
    )
    helpers[0].join(timeout=60)

    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    refused = trials[3]
    assert refused.state == TrialState.FAIL and refused.user_attrs[SURPLUS_ATTR] is True
    # What users see: the trials table, the trials logged (on_trial feeds MLflow), the counts.
    assert result.trials["number"].tolist() == [0, 1, 2]
    assert (result.trials["state"] == "COMPLETE").all() and result.n_trials == 3
    assert [r.number for r in seen] == [0]
    # No warning, no traceback: one debug line says why.
    optuna_logged = _optuna_records(caplog)
    assert not [r for r in optuna_logged if r.levelno >= logging.WARNING], [
        r.getMessage() for r in optuna_logged
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert not any("BudgetSpentError" in r.getMessage() for r in caplog.records)
    debug = [r for r in caplog.records if "not admitted" in r.getMessage()]
    assert [r.levelno for r in debug] == [logging.DEBUG]
    assert debug[0].getMessage().startswith("trial 3 of study s not admitted: the budget of 3")


def test_a_worker_keeps_quiet_about_a_refused_trial_but_logs_and_records_a_real_failure(
    churn: Churn, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker refused a trial (quiet), then, with a slot free, evaluates one that fails for
    a real reason: Optuna's warning and traceback are logged, and the trial records why."""
    frame = churn(200, seed=1)
    # A fixed value scikit-learn refuses: every trial fails when it fits.
    config = _config(models=["random_forest"], search_space={"random_forest": {"max_features": 0}})
    study = optuna.create_study(study_name="w", storage=url, direction="maximize")
    study.set_user_attr("automl.active", True)
    held = [study.ask(), study.ask()]  # another process holds the budget (2) ...
    study.enqueue_trial({})  # ... and a trial waits: the worker asks for it, and is refused
    active = ActiveStudy(
        study_name="w", storage=url, group="g", n_trials=2, search=config, attrs={}
    )
    seen: list[TrialResult] = []

    def should_stop() -> bool:
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.FAIL for t in trials[3:]):
            return True  # the real failure happened
        if trials[2].state == TrialState.FAIL and trials[0].state == TrialState.RUNNING:
            study.tell(held[0], state=TrialState.FAIL)  # the other process lost a trial
        return False

    caplog.set_level(logging.DEBUG, logger="automl.tuning._distributed")
    evaluated = work_on_study(
        frame, active, heartbeat_s=1, poll_s=0.05, on_trial=seen.append, should_stop=should_stop
    )

    trials = study.get_trials(deepcopy=False)
    assert trials[2].user_attrs.get(SURPLUS_ATTR) is True
    (failed,) = [t for t in trials if "error" in t.user_attrs]
    assert failed.number == 3 and failed.state == TrialState.FAIL
    error = failed.user_attrs["error"]
    assert error.startswith("InvalidParameterError: The 'max_features' parameter")
    assert evaluated == 1 and [(r.number, r.error) for r in seen] == [(3, error)]
    warnings = [r for r in _optuna_records(caplog) if r.levelno >= logging.WARNING]
    assert warnings and all(r.getMessage().startswith("Trial 3 failed") for r in warnings)
    assert any(r.exc_info for r in warnings)  # the real failure keeps its traceback
    assert not any("BudgetSpentError" in r.getMessage() for r in caplog.records)
    study.tell(held[1], state=TrialState.FAIL)
