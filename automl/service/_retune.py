"""A cycle's re-tune (the search, the model's log and its registration) in a child process.

The search is the only step that needs Optuna, the training rows many times over and a few
hundred MB of peak memory; in the service's own process that memory would stay after the
cycle (the allocator keeps it, the libraries stay imported). In a child it goes back to the
OS when the child ends, a crash or an out-of-memory in tuning fails the cycle instead of the
service, and ``tuning.memory_mb`` caps the child's memory.

The parent keeps everything else: the pipeline's lock, the cycle's MLflow run (the child logs
the trials and the model into it by id), the history. The child is a new interpreter running
:func:`child` (not a fork: the service has threads, and a forked child could inherit a lock
another thread held; not ``multiprocessing``: its ``spawn`` re-imports the caller's main
script, which would run a user's script twice). It reads the job (spec, window, drift check)
pickled on stdin, sends its log records back through a pipe (they are emitted in the cycle's
thread, with its pipeline and cycle id), and then the registered version and the search's
figures (without the fitted model: the parent does not need it, and unpickling it would load
the libraries the child exists to keep out). A service that stops sends it SIGTERM (the search
ends after its current trial, as in-process) and kills it if it has not ended within
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
from dataclasses import dataclass, replace
from logging.handlers import QueueHandler
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

from automl.config import PipelineSpec
from automl.data import Schema
from automl.errors import AutomlError, TuningError
from automl.service._steps import (
    CycleInterruptedError,
    DriftOutcome,
    Registered,
    Window,
    register,
    tune_window,
)
from automl.service._workspace import Workspace, open_workspace

log = logging.getLogger(__name__)

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
    trigger: str | None,
    drift: DriftOutcome | None,
    stop: threading.Event | None,
) -> Registered:
    """Tune on ``window.train``, log and register the best model: in a child process when
    ``tuning.in_child_process`` is set (the default), else here.

    Args:
        ws: The workspace.
        run_id: The cycle's MLflow run (the trials are nested runs of it).
        cycle_id: The cycle.
        schema: The pipeline's schema.
        window: The training rows and holdout.
        trigger: Why it re-tunes (see :func:`~automl.service._steps.register`).
        drift: The cycle's drift check, if any.
        stop: Set when the service is stopping.

    Raises:
        CycleInterruptedError: ``stop`` was set during the re-tune.
        TuningError: The child died (killed, out of memory) or failed with an error that is
            not automl's (its traceback is logged).
        AutomlError: The search or the registration failed (as in-process).
    """
    tuning = ws.spec.tuning
    if not tuning.in_child_process:
        result = tune_window(ws, run_id, cycle_id, schema, window.train, stop=stop)
        return register(ws, run_id, cycle_id, schema, window, result, trigger=trigger, drift=drift)
    job = _Job(ws.spec, run_id, cycle_id, schema, window, trigger, drift, _log_levels())
    return _run_child(job, stop=stop, memory_mb=tuning.memory_mb)


@dataclass(frozen=True)
class _Job:
    spec: PipelineSpec
    run_id: str
    cycle_id: str
    schema: Schema
    window: Window
    trigger: str | None
    drift: DriftOutcome | None
    log_levels: dict[str, int]


def _log_levels() -> dict[str, int]:
    """The levels set in this process (root and e.g. ``mlflow``), for the child's loggers."""
    levels = {"": logging.getLogger().level}
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


def _run_child(job: _Job, *, stop: threading.Event | None, memory_mb: int | None) -> Registered:
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
        return cast(Registered, outcome[1])
    if stopping_since is not None:
        raise CycleInterruptedError(
            "the service is stopping; the re-tune's process was stopped"
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
            f"pipeline {job.spec.name!r}: the re-tune's process {how} before it finished, "
            f"e.g. out of memory{limit}; the cycle's batches stay pending"
        )
    _, error, message, details = outcome
    if isinstance(error, AutomlError):
        log.debug("re-tune failed in its process:\n%s", details)
        raise error
    log.error("re-tune failed in its process:\n%s", details)
    raise TuningError(f"the re-tune failed in its process: {message}")


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
        with self._lock:
            self._conn.send(("log", record))


def _limit_memory(memory_mb: int | None) -> None:
    if memory_mb is None:
        return
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def child(fd: int) -> None:  # pragma: no cover - runs in the child process (tests/service)
    """The child's entry point: read the job from stdin, tune, log and register, and send the
    version (or the error) and every log record through the pipe ``fd``."""
    conn = Connection(fd, readable=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # the parent is stopping
    job, memory_mb = pickle.load(sys.stdin.buffer)
    _limit_memory(memory_mb)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(QueueHandler(_PipeQueue(conn)))  # type: ignore[arg-type]
    for name, level in job.log_levels.items():
        logging.getLogger(name or None).setLevel(level)
    try:
        limit = f", memory limit {memory_mb} MB" if memory_mb else ""
        log.info("re-tuning in process %d%s", os.getpid(), limit)
        ws = open_workspace(job.spec)
        tuning = tune_window(ws, job.run_id, job.cycle_id, job.schema, job.window.train, stop=stop)
        registered = register(
            ws,
            job.run_id,
            job.cycle_id,
            job.schema,
            job.window,
            tuning,
            trigger=job.trigger,
            drift=job.drift,
        )
        conn.send(("ok", replace(registered, tuning=replace(tuning, model=None))))
    except BaseException as exc:
        conn.send(("error", _portable(exc), f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


def _portable(exc: BaseException) -> BaseException | None:
    """The exception if it survives pickling (automl's own errors do), else None."""
    try:
        return cast(BaseException, pickle.loads(pickle.dumps(exc)))
    except Exception:
        return None
