"""Distributed tuning: one study on a server database, evaluated by many processes.

The cycle that re-tunes *owns* the study: it creates it in a server database (PostgreSQL),
enqueues the opening trials, describes the search in the study's user attributes and marks it
active; then it evaluates trials like any worker, waits until the budget is spent, closes the
study and refits. ``automl worker`` processes, on any host, find the active study of their
pipeline, fetch the same training rows (see ``automl.service``) and evaluate trials until the
budget is spent.

The protocol lives entirely in Optuna's storage, so nothing else needs to be reachable between
the service and the workers:

- study user attributes ``automl.group`` (pipeline), ``automl.active`` (the owner still
  collects trials), ``automl.search`` (the :class:`~automl.tuning.SearchConfig` as JSON, plus
  ``n_informed``), ``automl.n_trials`` (the budget), and whatever the owner adds (its MLflow
  parent run, where the rows are);
- the budget counts COMPLETE and PRUNED trials. Before a trial is evaluated it must be
  *admitted*: fewer than ``n_trials`` trials with a smaller number may be alive (not FAIL).
  Trial numbers are handed out by the database, so two workers racing for the last slot cannot
  both be admitted; the one that loses ends its trial as FAIL with the user attribute
  ``automl.surplus`` (never logged as a failure, only as a debug line; never counted, never a
  trial run in MLflow) and waits;
- every process heartbeats its running trial (``RDBStorage(heartbeat_interval=...)``). A
  worker that dies leaves a trial whose heartbeat stops; after ``grace_period`` any process
  fails it and re-queues its parameters as a new WAITING trial
  (``RetryHeartbeatStaleTrialCallback``), which the next free process evaluates. A finished
  trial is never lost, and the lost one is evaluated again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from automl.errors import TuningError
from automl.tuning._result import TrialResult, TuningResult
from automl.tuning._search_config import SearchConfig
from automl.tuning._storage import is_server_storage, open_storage, safe_url
from automl.tuning._tuner import Search, prepare_search
from automl.tuning._warmstart import GROUP_ATTR, Configuration

log = logging.getLogger(__name__)

ACTIVE_ATTR = "automl.active"
SEARCH_ATTR = "automl.search"
BUDGET_ATTR = "automl.n_trials"
SURPLUS_ATTR = "automl.surplus"
#: Key beside the :class:`SearchConfig` fields in ``automl.search``: warm-start trials queued.
N_INFORMED_KEY = "n_informed"
#: Trial user attribute naming the process that evaluated it (host:pid).
WORKER_ATTR = "automl.worker"
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class BudgetSpentError(Exception):
    """A trial was not admitted: the budget is taken by trials numbered before it."""


#: Where Optuna logs a trial that ended FAIL (with the exception's traceback).
_OPTUNA_TRIAL_LOGGER = "optuna.study._optimize"


class _QuietSurplus(logging.Filter):
    """Drops Optuna's warnings about the trials this thread did not admit.

    Refusing a trial is the protocol working (two processes raced for the last slot), not a
    failure; but the trial must end somehow, and Optuna logs every FAIL as a warning with a
    traceback. Only the records of this thread about its own surplus trials are dropped (by
    the exception they carry and by the trial's number): a real failure, or another study's
    trial in another thread, is logged as ever.
    """

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.numbers: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BudgetSpentError):
            return False
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed") for n in self.numbers)


def heartbeat_storage(url: str, *, heartbeat_s: int = 10, grace_s: int | None = None) -> Any:
    """An ``optuna.storages.RDBStorage`` whose running trials heartbeat and are retried if lost.

    Args:
        url: Database URL (PostgreSQL or MySQL).
        heartbeat_s: Seconds between heartbeats of a running trial (>= 1).
        grace_s: A running trial without a heartbeat for this long is failed and re-queued
            (None: twice ``heartbeat_s``).

    Raises:
        TuningError: Not a server database, bad intervals, or the database is unreachable.
    """
    if not is_server_storage(url):
        raise TuningError(
            f"distributed tuning needs a database server as tuning.storage, got {url!r}; "
            "use postgresql+psycopg2://user@host/db (SQLite files cannot be shared by hosts)"
        )
    if heartbeat_s < 1:
        raise TuningError(f"tuning.heartbeat_s must be >= 1 second, got {heartbeat_s}")
    if grace_s is not None and grace_s <= heartbeat_s:
        raise TuningError(
            f"tuning.grace_s ({grace_s}) must exceed tuning.heartbeat_s ({heartbeat_s}), or a "
            "live trial would be taken for a lost one"
        )
    return open_storage(url, heartbeat_s=heartbeat_s, grace_s=grace_s)


@dataclass(frozen=True)
class ActiveStudy:
    """A study that a cycle has opened to workers.

    Attributes:
        study_name: Its name in the storage.
        storage: Storage URL.
        group: The pipeline.
        n_trials: Budget (COMPLETE and PRUNED trials).
        search: What the study searches, as the owner described it.
        attrs: The owner's other user attributes (e.g. its MLflow run, where the rows are).
        n_informed: Warm-start trials that opened the study (they shorten the sampler's random
            start and make the first sampled trials local ones, in every process alike).
    """

    study_name: str
    storage: str
    group: str
    n_trials: int
    search: SearchConfig
    attrs: dict[str, Any]
    n_informed: int = 0


def find_active_study(
    storage: str, *, group: str, exclude: Sequence[str] = ()
) -> ActiveStudy | None:
    """The newest active study of ``group`` in ``storage``, or None.

    Raises:
        TuningError: The storage cannot be read, or the study's search description does not
            fit this version of automl (see :meth:`SearchConfig.from_dict`).
    """
    import optuna

    try:
        summaries = optuna.get_all_study_summaries(open_storage(storage), include_best_trial=False)
    except TuningError:
        raise
    except Exception as exc:
        raise TuningError(
            f"cannot read Optuna studies from {safe_url(storage)}: {exc}; check tuning.storage"
        ) from exc
    active = [
        s
        for s in summaries
        if s.user_attrs.get(GROUP_ATTR) == group
        and s.user_attrs.get(ACTIVE_ATTR) is True
        and s.study_name not in exclude
    ]
    if not active:
        return None
    newest = max(active, key=lambda s: s.study_name)  # cycle ids sort by time
    attrs = dict(newest.user_attrs)
    search = json.loads(attrs[SEARCH_ATTR])
    n_informed = int(search.pop(N_INFORMED_KEY, 0))
    return ActiveStudy(
        study_name=newest.study_name,
        storage=storage,
        group=group,
        n_trials=int(attrs[BUDGET_ATTR]),
        search=SearchConfig.from_dict(search),
        attrs=attrs,
        n_informed=n_informed,
    )


def _close_active(storage: Any, group: str) -> None:
    """Deactivate studies of ``group`` left active by an owner that died."""
    import optuna

    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        attrs = summary.user_attrs
        if attrs.get(GROUP_ATTR) == group and attrs.get(ACTIVE_ATTR) is True:
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            study.set_user_attr(ACTIVE_ATTR, False)
            log.warning("closed study %s, left active by a cycle that stopped", summary.study_name)


def _lost_numbers(trials: Sequence[Any]) -> set[int]:
    """Numbers of trials lost with their worker and re-queued (their retry stands for them)."""
    lost: set[int] = set()
    for t in trials:
        lost.update(int(n) for n in t.system_attrs.get("retry_history", ()))
    return lost


def _counted(trials: Sequence[Any]) -> list[Any]:
    """The trials that make up a search's record: finished ones, no surplus, no lost ones."""
    lost = _lost_numbers(trials)
    return [
        t
        for t in trials
        if t.state.is_finished()
        and not t.user_attrs.get(SURPLUS_ATTR)
        and not (t.state.name == "FAIL" and t.number in lost)
    ]


def evaluate_until_spent(
    search: Search,
    study: Any,
    n_trials: int,
    *,
    on_trial: Callable[[TrialResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    poll_s: float = 0.5,
) -> int:
    """Evaluate admitted trials of ``study`` until its budget is spent or ``should_stop()``.

    Returns:
        How many trials this process evaluated (surplus ones not included).
    """
    import optuna
    from optuna.trial import TrialState

    evaluated = [0]
    quiet = _QuietSurplus()

    def objective(trial: Any) -> float:
        ahead = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number < trial.number and t.state != TrialState.FAIL
        ]
        if len(ahead) >= n_trials:
            quiet.numbers.add(trial.number)
            trial.set_user_attr(SURPLUS_ATTR, True)
            log.debug(
                "trial %d of study %s not admitted: the budget of %d trials is taken by trials "
                "before it",
                trial.number,
                study.study_name,
                n_trials,
            )
            raise BudgetSpentError(f"trial {trial.number} not admitted: budget taken")
        trial.set_user_attr(WORKER_ATTR, WORKER_ID)
        return search.objective(trial)

    def callback(_study: Any, trial: Any) -> None:
        if trial.user_attrs.get(SURPLUS_ATTR):
            return
        evaluated[0] += 1
        if on_trial is not None:
            on_trial(search.trial_result(trial))

    optuna_log = logging.getLogger(_OPTUNA_TRIAL_LOGGER)
    optuna_log.addFilter(quiet)
    try:
        with search.quiet_threads():
            while not should_stop():
                optuna.storages.fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
                if done >= n_trials:
                    break
                running = sum(t.state == TrialState.RUNNING for t in trials)
                waiting = any(t.state == TrialState.WAITING for t in trials)
                if not waiting and done + running >= n_trials:
                    time.sleep(poll_s)  # every slot is taken; one may yet be lost and re-queued
                    continue
                study.optimize(
                    objective,
                    n_trials=1,
                    callbacks=[callback],
                    catch=(Exception,),
                    gc_after_trial=False,
                )
    finally:
        optuna_log.removeFilter(quiet)
    return evaluated[0]


def tune_distributed(
    frame: pd.DataFrame,
    config: SearchConfig,
    *,
    n_trials: int,
    storage: str,
    study_name: str,
    study_group: str,
    timeout_s: float | None = None,
    warm_start_from: str | None = None,
    warm_start_top_k: int = 3,
    attrs: Mapping[str, Any] | None = None,
    heartbeat_s: int = 10,
    grace_s: int | None = None,
    poll_s: float = 0.5,
    on_trial: Callable[[TrialResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TuningResult:
    """Own a study that workers share: open it, evaluate trials too, close it, refit the best.

    The arguments mean what they mean for :func:`automl.tuning.tune` (``n_jobs`` and
    ``patience`` do not apply: parallelism comes from the workers). ``config`` goes to the
    workers as JSON in the study's ``automl.search`` user attribute (see
    :meth:`SearchConfig.to_json`). ``attrs`` are added to the study's user attributes before it
    is marked active, so a worker that finds it can find the rows too. The search ends when
    ``n_trials`` trials are COMPLETE or PRUNED (or at ``timeout_s``, or when ``should_stop()``),
    and no trial is running any more.

    Returns:
        The result over the trials of every process; ``on_trial`` saw only this process's.

    Raises:
        TuningError: Bad arguments, the storage is not a reachable database server, or no
            trial completed.
    """
    import optuna
    from optuna.trial import TrialState

    started = time.perf_counter()
    # The owner searches exactly what the workers will read back from the study: the JSON form.
    shared = config.to_dict()
    search = prepare_search(frame, SearchConfig.from_dict(shared), n_trials=n_trials)
    rdb = heartbeat_storage(storage, heartbeat_s=heartbeat_s, grace_s=grace_s)
    previous = search.previous_configurations(rdb, warm_start_from, warm_start_top_k)
    _close_active(rdb, study_group)
    # n_jobs=2: the TPE sampler treats running trials as "constant liars", so processes that
    # sample at the same time do not pick the same point.
    study = search.create_study(
        rdb, study_name, n_trials=n_trials, n_jobs=2, previous=previous, load_if_exists=False
    )
    queued, n_warm = search.opening_trials(previous)
    if config.strategy == "grid":
        n_trials = len(queued)
    for params, trial_attrs in queued:
        study.enqueue_trial(params, user_attrs=trial_attrs, skip_if_exists=True)
    # Workers seed their samplers' start as the owner did: the informed trials count too.
    n_informed = sum(c.family in search.spaces for c in previous)
    for key, value in {
        **(attrs or {}),
        GROUP_ATTR: study_group,
        SEARCH_ATTR: json.dumps({**shared, N_INFORMED_KEY: n_informed}),
        BUDGET_ATTR: n_trials,
    }.items():
        study.set_user_attr(key, value)
    study.set_user_attr(ACTIVE_ATTR, True)  # last: a worker finds a complete description
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    timed_out = [False]

    def stop_now() -> bool:
        if deadline is not None and time.monotonic() > deadline:
            timed_out[0] = True
            return True
        return should_stop()

    try:
        evaluate_until_spent(
            search, study, n_trials, on_trial=on_trial, should_stop=stop_now, poll_s=poll_s
        )
    finally:
        study.set_user_attr(ACTIVE_ATTR, False)
    # Trials other processes are still evaluating finish (or are found lost) before the refit.
    while True:
        optuna.storages.fail_stale_trials(study)
        if not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            break
        if should_stop():
            break
        time.sleep(poll_s)
    trials = sorted(_counted(study.get_trials(deepcopy=False)), key=lambda t: t.number)
    results = [search.trial_result(t) for t in trials]
    n_done = sum(r.state in ("COMPLETE", "PRUNED") for r in results)
    return search.result(
        study,
        results,
        stop_reason="timeout" if timed_out[0] and n_done < n_trials else "n_trials",
        warm_start_from=warm_start_from,
        n_warm=n_warm,
        started=started,
    )


def work_on_study(
    frame: pd.DataFrame,
    active: ActiveStudy,
    *,
    heartbeat_s: int = 10,
    grace_s: int | None = None,
    poll_s: float = 0.5,
    on_trial: Callable[[TrialResult], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Evaluate trials of an active study until its budget is spent or it is closed.

    Args:
        frame: The study's training rows (the same the owner tunes on).
        active: The study (see :func:`find_active_study`).
        heartbeat_s: Heartbeat of this worker's running trial.
        grace_s: See :func:`heartbeat_storage`.
        poll_s: Pause while every slot of the budget is taken.
        on_trial: Called after each trial this worker evaluated.
        should_stop: Checked between trials (e.g. SIGTERM).

    Returns:
        How many trials this worker evaluated.

    Raises:
        TuningError: The rows do not fit the study's search, or the storage is unreachable.
    """
    import optuna

    search = prepare_search(frame, active.search, n_trials=active.n_trials)
    rdb = heartbeat_storage(active.storage, heartbeat_s=heartbeat_s, grace_s=grace_s)
    informed = [Configuration(search.config.models[0], {}, 0.0, -1)] * active.n_informed
    # Each process samples with its own seed; sharing the owner's would repeat its choices.
    study = search.create_study(
        rdb,
        active.study_name,
        n_trials=active.n_trials,
        n_jobs=2,
        previous=informed,
        seed=int.from_bytes(os.urandom(4), "big"),
        load_if_exists=True,
    )

    def closed() -> bool:
        try:
            is_active = study.user_attrs.get(ACTIVE_ATTR) is True
        except optuna.exceptions.OptunaError:
            return True
        return should_stop() or not is_active

    return evaluate_until_spent(
        search, study, active.n_trials, on_trial=on_trial, should_stop=closed, poll_s=poll_s
    )
