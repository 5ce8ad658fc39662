"""A cycle's re-tune (the search, the model's log and registration, the judge) in a child
process.

The search is the step that needs Optuna, the training rows many times over and a few hundred
MB of peak memory, and the judge loads both models (scikit-learn, XGBoost); in the service's
own process that memory would stay after the cycle (the allocator keeps it, the libraries stay
imported). In a child it goes back to the OS when the child ends, a crash or an out-of-memory
fails the cycle instead of the service, and ``tuning.memory_mb`` caps the child's memory.

:func:`retune` tunes, logs, registers and judges the new version in one child and returns the
version and the gate's decision; :func:`judge_again` judges a version an interrupted earlier
cycle registered for the same window (no search: only the judge runs in the child). Both go
through :func:`run_step`, which runs a step function here or in a child. The parent keeps
everything else: the pipeline's lock, the cycle's MLflow run (the child logs the trials and the
model into it by id), the alias move, the shadow state, the records and the history.

The child is a new interpreter running :func:`child` (not a fork: the service has threads, and
a forked child could inherit a lock another thread held; not ``multiprocessing``: its ``spawn``
re-imports the caller's main script, which would run a user's script twice). It reads the job
(spec, step, arguments) pickled on stdin, sends its log records back through a pipe (they are
emitted in the cycle's thread, with its pipeline and cycle id), then the step's progress (the
registered version, as soon as it is registered) and result: the version and its search's
figures without the fitted model, and the decision; nothing that would load the model
libraries the child exists to keep out. A service that stops sends it SIGTERM (the search ends
after its current trial, as in-process) and kills it if it has not ended within
:data:`STOP_GRACE_S`. Linux kills the child if the service's process dies.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from logging.handlers import QueueHandler
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar, cast

from automl.config import PipelineSpec
from automl.data import Schema
from automl.errors import AutomlError, TuningError
from automl.service._steps import (
    CycleInterruptedError,
    DriftOutcome,
    Registered,
    StoredHoldout,
    Window,
    judge_challenger,
    register,
    tune_window,
)
from automl.service._workspace import Workspace, open_workspace
from automl.tracking import ModelVersionInfo, PromotionDecision

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a stopping service gives the child to end its current trial before terminating it.
STOP_GRACE_S = 5.0
#: The child's program: first (before its imports take seconds) ask Linux to kill it when its
#: parent dies, and end at once if the parent died already; then run :func:`child`.
_CHILD = """import os, sys
try:
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
except Exception:
    pass
if os.getppid() != {parent}:
    sys.exit(70)
from automl.service._retune import child
child({fd})
"""


def retune(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    window: Window,
    *,
    champion: ModelVersionInfo | None,
    stored: StoredHoldout | None,
    trigger: str | None,
    drift: DriftOutcome | None,
    stop: threading.Event | None,
    on_registered: Callable[[Registered], None] | None = None,
) -> tuple[Registered, PromotionDecision | None]:
    """Tune on ``window.train``, log and register the best model, and judge it against the
    champion: in a child process when ``tuning.in_child_process`` is set (the default), else
    here.

    Args:
        ws: The workspace.
        run_id: The cycle's MLflow run (the trials are nested runs of it).
        cycle_id: The cycle.
        schema: The pipeline's schema.
        window: The training rows and holdout.
        champion: The serving version (None: the first model).
        stored: The champion's stored holdout, for the old-population guardrail
            (:func:`~automl.service._steps.champion_holdout`).
        trigger: Why it re-tunes (see :func:`~automl.service._steps.register`).
        drift: The cycle's drift check, if any.
        stop: Set when the service is stopping.
        on_registered: Called with the version once it is registered (before the judge), so
            that a cycle that fails after it still records the version.

    Returns:
        The registered version (its search's figures without the fitted model) and the gate's
        decision (:func:`~automl.service._steps.judge_challenger`).

    Raises:
        CycleInterruptedError: ``stop`` was set during the re-tune.
        TuningError: The child died (killed, out of memory) or failed with an error that is
            not automl's (its traceback is logged).
        AutomlError: The search, the registration or the judge failed (as in-process).
    """
    args = (run_id, cycle_id, schema, window, champion, stored, trigger, drift)
    progress = cast(Callable[[Any], None] | None, on_registered)
    return run_step(ws, _retune_and_judge, args, what="re-tune", stop=stop, progress=progress)


def judge_again(
    ws: Workspace,
    schema: Schema,
    registered: Registered,
    champion: ModelVersionInfo | None,
    window: Window,
    stored: StoredHoldout | None,
    *,
    stop: threading.Event | None,
) -> PromotionDecision | None:
    """Judge a version registered for this window by an interrupted earlier cycle (found by
    :func:`~automl.service._steps.find_registered`): the judge alone, in a child process when
    ``tuning.in_child_process`` is set, else here.

    Raises:
        CycleInterruptedError: ``stop`` was set and the judge did not end within
            :data:`STOP_GRACE_S`.
        TuningError: The child died or failed with an error that is not automl's.
        AutomlError: The judge failed (as in-process).
    """
    args = (schema, registered.version, champion, window, stored)
    return run_step(ws, _judge, args, what="judge", stop=stop)


def run_step(
    ws: Workspace,
    step: Callable[..., T],
    args: tuple[Any, ...],
    *,
    what: str,
    stop: threading.Event | None,
    progress: Callable[[Any], None] | None = None,
) -> T:
    """Run ``step(ws, *args, stop=stop, progress=...)``: in a new Python process when the
    pipeline's ``tuning.in_child_process`` is set, else in this one.

    Args:
        ws: The workspace (the child opens its own from the spec).
        step: A module-level function (the child finds it by name) of the workspace, the
            ``args``, and the keywords ``stop`` (an event set when the service stops) and
            ``progress`` (a callable it may pass what it has done so far, e.g. the version it
            registered, before it goes on).
        args: Its arguments after the workspace; they, its progress and its result must
            pickle.
        what: What it does, for messages (``re-tune``, ``judge``).
        stop: Set when the service is stopping: the child gets SIGTERM (and its ``stop``
            event is set), and is killed :data:`STOP_GRACE_S` later.
        progress: Called here with what the step reports on its way.

    Raises:
        CycleInterruptedError: ``stop`` was set and the step did not finish.
        TuningError: The child died, ran out of memory, or failed with an error that is not
            automl's.
        AutomlError: The step's own error, raised again here.
    """
    if not ws.spec.tuning.in_child_process:
        return step(ws, *args, stop=stop, progress=progress or _ignore)
    job = _Job(ws.spec, step, args, what, _log_levels())
    return cast(T, _run_child(job, stop=stop, progress=progress))


def _ignore(_: Any) -> None:
    pass


# -- the steps -------------------------------------------------------------------------------
def _retune_and_judge(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    window: Window,
    champion: ModelVersionInfo | None,
    stored: StoredHoldout | None,
    trigger: str | None,
    drift: DriftOutcome | None,
    *,
    stop: threading.Event | None,
    progress: Callable[[Any], None],
) -> tuple[Registered, PromotionDecision | None]:
    tuning = tune_window(ws, run_id, cycle_id, schema, window.train, stop=stop)
    registered = register(
        ws, run_id, cycle_id, schema, window, tuning, trigger=trigger, drift=drift
    )
    # Without the fitted model: the parent does not need it, and unpickling it would load the
    # libraries the child exists to keep out.
    registered = replace(registered, tuning=replace(tuning, model=None))
    progress(registered)
    return registered, judge_challenger(ws, schema, registered.version, champion, window, stored)


def _judge(
    ws: Workspace,
    schema: Schema,
    version: ModelVersionInfo,
    champion: ModelVersionInfo | None,
    window: Window,
    stored: StoredHoldout | None,
    *,
    stop: threading.Event | None,
    progress: Callable[[Any], None],
) -> PromotionDecision | None:
    return judge_challenger(ws, schema, version, champion, window, stored)


# -- in the parent ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    spec: PipelineSpec
    step: Callable[..., Any]
    args: tuple[Any, ...]
    what: str
    log_levels: dict[str, int]


def _log_levels() -> dict[str, int]:
    """The levels set in this process (root and e.g. ``mlflow``), for the child's loggers."""
    levels = {"": logging.getLogger().level}
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


def _run_child(
    job: _Job, *, stop: threading.Event | None, progress: Callable[[Any], None] | None
) -> Any:
    memory_mb = job.spec.tuning.memory_mb
    read_fd, write_fd = os.pipe()
    package_root = str(Path(__file__).resolve().parents[2])  # this automl, whatever the path
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(parent=os.getpid(), fd=write_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,  # logs come back through the pipe; nothing else is said
            pass_fds=(write_fd,),
            env=env,
        )
    finally:
        os.close(write_fd)  # the child holds the only write end: EOF when it ends
    receive = Connection(read_fd, writable=False)
    outcome: tuple[Any, ...] | None = None
    stopping_since: float | None = None
    try:
        assert child.stdin is not None
        with child.stdin:
            pickle.dump((job, memory_mb), child.stdin)
        while outcome is None:
            if receive.poll(0.2):
                try:
                    message = receive.recv()
                except EOFError:  # the child ended without a word: killed
                    break
                if message[0] == "log":
                    _emit(message[1])
                elif message[0] == "progress":
                    if progress is not None:
                        progress(message[1])
                else:
                    outcome = message
                continue
            if stop is not None and stop.is_set():
                if stopping_since is None:
                    child.terminate()  # SIGTERM: the search ends after its current trial
                    stopping_since = time.monotonic()
                elif time.monotonic() - stopping_since > STOP_GRACE_S:
                    break
    except BrokenPipeError:  # the child died before it read the job
        pass
    finally:
        _end(child, wait_s=30.0 if outcome is not None else 0.0)
        receive.close()
    if outcome is not None and outcome[0] == "ok":
        return outcome[1]
    name = f"pipeline {job.spec.name!r}: the {job.what}'s process"
    if stopping_since is not None:
        raise CycleInterruptedError(
            f"the service is stopping; the {job.what}'s process was stopped"
            + (f": {outcome[2]}" if outcome is not None else "")
        )
    if outcome is None:
        code = child.returncode
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"ended with exit code {code}"
        )
        limit = f" (tuning.memory_mb is {memory_mb})" if memory_mb else ""
        raise TuningError(
            f"{name} {how} before it finished, e.g. out of memory{limit}; the cycle's "
            "batches stay pending"
        )
    _, error, message, details = outcome
    if isinstance(error, AutomlError):
        log.debug("%s failed in its process:\n%s", job.what, details)
        raise error
    log.error("%s failed in its process:\n%s", job.what, details)
    if memory_mb and _is_out_of_memory(error, message):
        raise TuningError(
            f"{name} ran out of memory under its limit tuning.memory_mb ({memory_mb} MB): "
            f"{message}; raise the limit (null: none); the cycle's batches stay pending"
        )
    if memory_mb:  # a failed allocation is not always reported as one (e.g. a library's thread)
        raise TuningError(
            f"the {job.what} failed in its process: {message}; its memory is limited by "
            f"tuning.memory_mb ({memory_mb} MB): if it ran out, raise the limit (null: none)"
        )
    raise TuningError(f"the {job.what} failed in its process: {message}")


#: How allocation failures read: Python's, NumPy's, a shared library that could not be mapped,
#: C++'s, the C library's.
_OUT_OF_MEMORY = (
    "MemoryError",
    "Unable to allocate",
    "failed to map segment",
    "bad_alloc",
    "Cannot allocate memory",
)


def _is_out_of_memory(error: BaseException | None, message: str) -> bool:
    return isinstance(error, MemoryError) or any(mark in message for mark in _OUT_OF_MEMORY)


def _end(child: subprocess.Popen[bytes], *, wait_s: float) -> None:
    """Let the child end by itself within ``wait_s``, else terminate it, then kill it."""
    for wait, end in ((wait_s, child.terminate), (5.0, child.kill), (None, None)):
        try:
            child.wait(wait)
            return
        except subprocess.TimeoutExpired:
            if end is not None:
                end()


def _emit(record: logging.LogRecord) -> None:
    """Handle a child's record here, in the cycle's thread (which adds its context)."""
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


# -- in the child ------------------------------------------------------------------------------
class _PipeQueue:
    """What :class:`QueueHandler` puts records into: the pipe to the parent (one writer at a
    time: Optuna's parallel trials log from several threads)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def put_nowait(self, record: logging.LogRecord) -> None:
        self.send(("log", record))

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self._conn.send(message)


def _limit_memory(memory_mb: int | None) -> None:
    if memory_mb is None:
        return
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def child(fd: int) -> None:  # pragma: no cover - runs in the child process (tests/service)
    """The child's entry point: read the job from stdin, run its step, and send every log
    record, the step's progress and its result (or error) through the pipe ``fd``."""
    conn = Connection(fd, readable=False)
    pipe = _PipeQueue(conn)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # the parent is stopping
    job, memory_mb = pickle.load(sys.stdin.buffer)
    try:
        _limit_memory(memory_mb)
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(QueueHandler(pipe))  # type: ignore[arg-type]
        for name, level in job.log_levels.items():
            logging.getLogger(name or None).setLevel(level)
        limit = f", memory limit {memory_mb} MB" if memory_mb else ""
        log.info("%s in process %d%s", _DOING.get(job.what, job.what), os.getpid(), limit)
        ws = open_workspace(job.spec)
        result = job.step(ws, *job.args, stop=stop, progress=lambda v: pipe.send(("progress", v)))
        pipe.send(("ok", result))
    except BaseException as exc:
        pipe.send(("error", _portable(exc), f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


#: What the child's first log line says it is doing.
_DOING = {"re-tune": "re-tuning", "judge": "judging"}


def _portable(exc: BaseException) -> BaseException | None:
    """The exception if it survives pickling (automl's own errors do), else None."""
    try:
        return cast(BaseException, pickle.loads(pickle.dumps(exc)))
    except Exception:
        return None
