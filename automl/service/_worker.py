"""``automl worker``: evaluate trials of a pipeline's active study, from any host.

A worker needs what the service needs for tuning, and nothing else: the pipeline spec (its
``tuning.storage`` on a database server and its ``mlflow.tracking_uri``). It finds the active
study of the pipeline in the Optuna storage, downloads the study's training rows from the
cycle's MLflow run (an artifact, so an S3-backed tracking server works across hosts), and logs
every trial it evaluates as a nested run of that cycle's run.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from dataclasses import dataclass

import pandas as pd

from automl.config import PipelineSpec
from automl.errors import ConfigError, SchedulerError
from automl.service._record import PARENT_RUN_ATTR, ROWS_ATTR, trial_logger
from automl.service._workspace import make_tracker
from automl.tracking import MlflowTracker
from automl.tuning import ActiveStudy, find_active_study, work_on_study

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSummary:
    """What a worker did before it exited.

    Attributes:
        studies: The studies it joined, in order.
        n_trials: Trials it evaluated (over all of them).
    """

    studies: tuple[str, ...]
    n_trials: int


def _rows(tracker: MlflowTracker, active: ActiveStudy) -> pd.DataFrame:
    run_id, artifact = active.attrs.get(PARENT_RUN_ATTR), active.attrs.get(ROWS_ATTR)
    if not run_id or not artifact:
        raise SchedulerError(
            f"study {active.study_name!r} does not say where its rows are (user attributes "
            f"{PARENT_RUN_ATTR!r}, {ROWS_ATTR!r}); was it opened by an automl service of the "
            "same version?"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = tracker.download_artifact(str(run_id), str(artifact), tmp)
        return pd.read_parquet(path)


def run_worker(
    spec: PipelineSpec,
    *,
    wait: bool = False,
    wait_s: float = 60.0,
    poll_s: float = 1.0,
    stop: threading.Event | None = None,
) -> WorkerSummary:
    """Join the pipeline's active study and evaluate trials until its budget is spent.

    Args:
        spec: The pipeline; ``tuning`` must be distributed (a database server as storage).
        wait: Keep going after the study: wait for the next active study, until ``stop``.
        wait_s: Without ``wait``, how long to wait for an active study to appear.
        poll_s: How often to look for one.
        stop: Set it (e.g. on SIGTERM) to exit after the running trial.

    Returns:
        The studies joined and the number of trials evaluated.

    Raises:
        ConfigError: The spec's tuning is not distributed.
        SchedulerError: No active study appeared within ``wait_s`` (without ``wait``).
        TuningError: The storage is unreachable or the rows do not fit the study.
        TrackingError: The rows cannot be downloaded from the tracking server.
    """
    tuning = spec.tuning
    if not tuning.is_distributed or tuning.storage is None:
        raise ConfigError(
            f"pipeline {spec.name!r}: tuning.storage is {tuning.storage!r}; a worker needs a "
            "database server shared with the service (tuning.storage: "
            "postgresql+psycopg2://user@host/db)"
        )
    stop = stop or threading.Event()
    tracker = make_tracker(spec)
    joined: list[str] = []
    n_trials = 0
    deadline = time.monotonic() + wait_s
    while not stop.is_set():
        active = find_active_study(tuning.storage, group=spec.name, exclude=joined)
        if active is None:
            if not wait and time.monotonic() > deadline:
                if joined:
                    break
                raise SchedulerError(
                    f"no active tuning study of pipeline {spec.name!r} appeared in "
                    f"{wait_s:g} s; studies open while the service re-tunes: start the "
                    "service, or run the worker with --wait"
                )
            stop.wait(poll_s)
            continue
        parent = str(active.attrs.get(PARENT_RUN_ATTR, ""))
        log.info("joined study %s (budget %d trials)", active.study_name, active.n_trials)
        done = work_on_study(
            _rows(tracker, active),
            active,
            heartbeat_s=tuning.heartbeat_s,
            grace_s=tuning.grace_s,
            on_trial=trial_logger(tracker, parent, active.search.metric),
            should_stop=stop.is_set,
        )
        log.info("study %s: this worker evaluated %d trials", active.study_name, done)
        joined.append(active.study_name)
        n_trials += done
        if not wait:
            break
    return WorkerSummary(studies=tuple(joined), n_trials=n_trials)
