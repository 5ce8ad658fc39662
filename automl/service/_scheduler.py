"""The long-running service: APScheduler 3.x calls each pipeline's cycle on its schedule.

Jobs per pipeline: ``cycle:<name>`` (the drift check on ``schedule.interval_s`` or
``schedule.cron``), ``retune:<name>`` (a forced re-tune on ``schedule.retune_interval_s`` or
``retune_cron``, when set) and ``retry:<name>`` (a one-off retry with exponential backoff after
a failed cycle). Every job has an explicit id, ``replace_existing``, coalescing,
``max_instances=1`` and a misfire grace time. A cycle runs only while holding its pipeline's
lock (see :mod:`automl.service._lock`), so two service instances never run one pipeline at once.

Served from a folder, the service re-reads it every ``reload_interval_s`` seconds: new specs
get jobs, changed schedules are rescheduled, removed specs lose their jobs. The job store can be
persistent (SQLAlchemy URL): jobs and their next run times then survive a restart. A job store
belongs to exactly one running scheduler; never point two services at the same one.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from automl.config import PipelineSpec, load_spec
from automl.errors import AutomlError, ConfigError, SchedulerError
from automl.service._cycle import run_cycle
from automl.service._history import CycleResult
from automl.service._observe import ServiceMetrics, StatusServer

log = logging.getLogger(__name__)

#: Seconds a missed run may be late and still run (coalesced into one), at least.
MISFIRE_GRACE_S = 300
#: First retry delay after a failed cycle; doubles per consecutive failure up to the interval.
RETRY_BASE_S = 5.0

#: Set when the process is stopping: running cycles stop after their current trial.
STOP = threading.Event()


class _RunningCycles:
    """How many cycles run in this process right now (what a stop waits for)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.count += delta


_running = _RunningCycles()


def job_id(spec: PipelineSpec, kind: str = "cycle") -> str:
    """The scheduler job id of a pipeline's job (``cycle``, ``retune`` or ``retry``)."""
    return f"{kind}:{spec.name}"


def default_jobstore_url(folder: Path) -> str:
    """A SQLite job store in ``folder``, one per host (a job store has one scheduler)."""
    return f"sqlite:///{folder.resolve() / f'.automl-jobs-{socket.gethostname()}.db'}"


def run_pipeline_job(spec_ref: str | PipelineSpec, kind: str = "cycle") -> dict[str, Any]:
    """Run one cycle of a pipeline if its lock is free (the scheduler's job function).

    Module-level so a persistent job store can reference it by name. A spec given as a path
    is read afresh on every run, so edits to a spec take effect at its next cycle.

    Returns:
        The cycle's result as a dict, or ``{"skipped": True, ...}`` when another instance holds
        the pipeline's lock, or ``{"failed_to_load": ...}`` when the spec no longer loads.
    """
    try:
        spec = load_spec(spec_ref) if isinstance(spec_ref, str) else spec_ref
    except ConfigError as exc:
        log.error("cannot run %s: %s", spec_ref, exc)
        return {"failed_to_load": str(exc), "spec": str(spec_ref)}
    _running.add(1)
    try:
        result = run_cycle(spec, raise_on_failure=False, force_retune=kind == "retune", stop=STOP)
    finally:
        _running.add(-1)
    if result.status == "skipped":
        return {"skipped": True, "pipeline": spec.name}
    return result.to_dict()


def _trigger(spec: PipelineSpec, kind: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    schedule = spec.schedule
    cron = schedule.cron if kind == "cycle" else schedule.retune_cron
    interval = schedule.interval_s if kind == "cycle" else schedule.retune_interval_s
    field = "cron" if kind == "cycle" else "retune_cron"
    if cron:
        try:
            return CronTrigger.from_crontab(cron, timezone=UTC)
        except ValueError as exc:
            raise SchedulerError(
                f"pipeline {spec.name!r}: schedule.{field} {cron!r} is not a valid crontab "
                f"expression: {exc}"
            ) from exc
    if interval is None:
        if kind == "cycle":
            raise SchedulerError(
                f"pipeline {spec.name!r}: set schedule.interval_s or schedule.cron"
            )
        return None
    return IntervalTrigger(seconds=interval, timezone=UTC)


def _grace_s(spec: PipelineSpec) -> int:
    interval = spec.schedule.interval_s or 3600.0
    return int(max(MISFIRE_GRACE_S, min(interval, 3600.0)))


class AutomlService:
    """Runs every pipeline's cycle on its schedule until stopped.

    Args:
        source: The pipelines: a folder of specs (re-read every ``reload_interval_s``) or a
            list of specs (fixed).
        on_cycle: Called after every cycle (success or failure) with its result.
        max_workers: Cycles that may run at once (default: one per pipeline, 2 to 4).
        jobstore_url: SQLAlchemy URL of a persistent job store (None: in memory).
        http_host: Interface of the status endpoint.
        http_port: Port of the status endpoint (None: no endpoint; 0: any free port).
        reload_interval_s: How often a folder is re-read.
        stop_grace_s: How long :meth:`stop` waits for running cycles.
    """

    def __init__(
        self,
        source: Sequence[PipelineSpec] | Path,
        *,
        on_cycle: Callable[[CycleResult], None] | None = None,
        max_workers: int | None = None,
        jobstore_url: str | None = None,
        http_host: str = "127.0.0.1",
        http_port: int | None = None,
        reload_interval_s: float = 10.0,
        stop_grace_s: float = 60.0,
    ) -> None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.folder = source if isinstance(source, Path) else None
        self.specs: dict[str, PipelineSpec] = {}
        if self.folder is None:
            names = [s.name for s in source]  # type: ignore[union-attr]
            if len(set(names)) != len(names):
                raise SchedulerError(f"pipeline names must be unique, got {names}")
            self.specs = {s.name: s for s in source}  # type: ignore[union-attr]
        elif not self.folder.is_dir():
            raise ConfigError(f"{self.folder}: not a directory of pipeline specs")
        self.on_cycle = on_cycle
        self.reload_interval_s = reload_interval_s
        self.stop_grace_s = stop_grace_s
        self.metrics = ServiceMetrics()
        self._failures: dict[str, int] = {}
        self._bad_files: dict[Path, float] = {}
        self._http: StatusServer | None = None
        self._ready_cache: tuple[float, tuple[bool, dict[str, str]]] | None = None
        jobstore: Any = SQLAlchemyJobStore(url=jobstore_url) if jobstore_url else MemoryJobStore()
        workers = max_workers or max(2, min(4, len(self.specs) or 2))
        self._scheduler = BackgroundScheduler(
            # "local" holds the reload job (a bound method, never persisted).
            jobstores={"default": jobstore, "local": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_S,
            },
            timezone=UTC,
        )
        self._scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self._persistent = jobstore_url is not None
        self._stopped = threading.Event()
        if http_port is not None:
            self._http = StatusServer(
                host=http_host,
                port=http_port,
                metrics=self.metrics,
                is_ready=self._is_ready,
                status=self._status,
            )

    # -- jobs --------------------------------------------------------------------------
    def _load_folder(self) -> dict[str, PipelineSpec]:
        assert self.folder is not None
        specs: dict[str, PipelineSpec] = {}
        files = sorted([*self.folder.glob("*.yaml"), *self.folder.glob("*.yml")])
        for file in files:
            try:
                spec = load_spec(file)
            except ConfigError as exc:
                # Keep the pipeline's last good spec: a typo must not unschedule it.
                mtime = file.stat().st_mtime
                if self._bad_files.get(file) != mtime:
                    log.error("ignoring invalid spec (keeping its previous version): %s", exc)
                    self._bad_files[file] = mtime
                previous = [s for s in self.specs.values() if s.source_file == file.resolve()]
                specs.update({s.name: s for s in previous})
                continue
            self._bad_files.pop(file, None)
            if spec.name in specs:
                log.error("%s: pipeline name %r is used twice; ignoring this file", file, spec.name)
                continue
            specs[spec.name] = spec
        return specs

    def _job_ref(self, spec: PipelineSpec) -> str | PipelineSpec:
        if spec.source_file is not None and (self.folder is not None or self._persistent):
            return str(spec.source_file)
        if self._persistent:
            raise SchedulerError(
                f"pipeline {spec.name!r}: a persistent job store needs specs loaded from files"
            )
        return spec

    def sync(self) -> None:
        """Make the scheduled jobs match the pipelines (added, changed, removed)."""
        if self.folder is not None:
            self.specs = self._load_folder()
        wanted: dict[str, tuple[PipelineSpec, str, Any]] = {}
        for spec in self.specs.values():
            for kind in ("cycle", "retune"):
                trigger = _trigger(spec, kind)
                if trigger is not None:
                    wanted[job_id(spec, kind)] = (spec, kind, trigger)
        for job in self._scheduler.get_jobs():
            kind, _, name = job.id.partition(":")
            if kind in ("cycle", "retune", "retry") and job.id not in wanted:
                if kind == "retry" and name in self.specs:
                    continue
                log.info("unscheduling %s (pipeline removed or schedule dropped)", job.id)
                job.remove()
        now = datetime.now(UTC)
        for jid, (spec, kind, trigger) in wanted.items():
            ref = self._job_ref(spec)
            existing = self._scheduler.get_job(jid)
            if existing is not None and str(existing.trigger) == str(trigger):
                if existing.args != (ref, kind):
                    existing.modify(args=[ref, kind])
                continue
            log.info("%s %s: %s", "rescheduling" if existing else "scheduling", jid, trigger)
            self._scheduler.add_job(
                "automl.service._scheduler:run_pipeline_job",
                trigger=trigger,
                args=[ref, kind],
                id=jid,
                name=f"automl {kind} of {spec.name}",
                replace_existing=True,
                misfire_grace_time=_grace_s(spec),
                # Drift checks start now; a forced re-tune waits for its first due time.
                next_run_time=now if kind == "cycle" else trigger.get_next_fire_time(None, now),
            )

    def _schedule_retry(self, result: CycleResult) -> None:
        spec = self.specs.get(result.pipeline)
        if spec is None or STOP.is_set():
            return
        failures = self._failures.get(spec.name, 0) + 1
        self._failures[spec.name] = failures
        cap = spec.schedule.interval_s or 3600.0
        delay = min(RETRY_BASE_S * 2 ** (failures - 1), cap)
        if delay >= cap:
            return  # the regular schedule comes as soon
        from apscheduler.triggers.date import DateTrigger

        when = datetime.now(UTC) + timedelta(seconds=delay)
        log.info(
            "[%s] cycle failed %d time(s) in a row; retrying in %.0fs", spec.name, failures, delay
        )
        self._scheduler.add_job(
            "automl.service._scheduler:run_pipeline_job",
            trigger=DateTrigger(run_date=when, timezone=UTC),
            args=[self._job_ref(spec), "cycle"],
            id=job_id(spec, "retry"),
            name=f"automl retry of {spec.name}",
            replace_existing=True,
            misfire_grace_time=_grace_s(spec),
        )

    def _on_event(self, event: Any) -> None:
        retval = getattr(event, "retval", None)
        if getattr(event, "exception", None) is not None:
            log.error("job %s raised: %s", event.job_id, event.exception)
            return
        if not isinstance(retval, dict):
            return
        if retval.get("skipped"):
            self.metrics.skipped.labels(retval["pipeline"]).inc()
            return
        if "failed_to_load" in retval:
            return
        result = CycleResult.from_dict(retval)
        try:
            started = datetime.fromisoformat(result.started_at)
            finished = datetime.fromisoformat(result.finished_at)
            duration = max(0.0, (finished - started).total_seconds())
        except ValueError:
            duration = 0.0
        self.metrics.observe(result, duration)
        log.info(
            "[%s %s] cycle %s (drift: %s, champion: v%s)%s",
            result.pipeline,
            result.cycle_id,
            result.status,
            result.drift_verdict,
            result.champion_version,
            f" error: {result.error}" if result.error else "",
        )
        if result.status == "failed":
            self._schedule_retry(result)
        elif result.status != "interrupted":
            self._failures.pop(result.pipeline, None)
        if self.on_cycle is not None:
            try:
                self.on_cycle(result)
            except Exception:
                log.exception("[%s %s] on_cycle callback failed", result.pipeline, result.cycle_id)

    # -- observability -----------------------------------------------------------------
    def _is_ready(self) -> tuple[bool, dict[str, str]]:
        from automl.service._status import check_stores

        cached = self._ready_cache
        if cached is not None and time.monotonic() - cached[0] < 5.0:
            return cached[1]
        failing: dict[str, str] = {}
        if not self._scheduler.running:
            failing["scheduler"] = "not running"
        for spec in list(self.specs.values()):
            failing.update(check_stores(spec))
        verdict = (not failing, failing)
        self._ready_cache = (time.monotonic(), verdict)
        return verdict

    def _status(self) -> list[dict[str, Any]]:
        from automl.service._status import pipeline_status

        rows = []
        for spec in list(self.specs.values()):
            try:
                row = pipeline_status(spec)
            except AutomlError as exc:
                row = {"pipeline": spec.name, "error": str(exc)}
            job = self._scheduler.get_job(job_id(spec))
            row["next_check_at"] = (
                job.next_run_time.isoformat() if job and job.next_run_time else None
            )
            row["consecutive_failures"] = self._failures.get(spec.name, 0)
            rows.append(row)
        return rows

    @property
    def http_port(self) -> int | None:
        """The status endpoint's port (None without an endpoint)."""
        return self._http.port if self._http else None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the scheduler is running."""
        return bool(self._scheduler.running)

    def start(self) -> None:
        """Schedule every pipeline (drift checks run now) and start the scheduler thread."""
        STOP.clear()
        self._scheduler.start(paused=True)
        self.sync()
        if self.folder is not None:
            from apscheduler.triggers.interval import IntervalTrigger

            self._scheduler.add_job(
                self.sync,
                trigger=IntervalTrigger(seconds=self.reload_interval_s, timezone=UTC),
                id="automl:reload",
                name="re-read the pipeline folder",
                replace_existing=True,
                jobstore="local",
            )
        self._scheduler.resume()
        if self._http is not None:
            self._http.start()
        log.info("service started with %d pipeline(s): %s", len(self.specs), sorted(self.specs))

    def stop(self, *, wait: bool = True) -> bool:
        """Stop scheduling; running cycles stop after their current trial.

        Returns:
            Whether every running cycle ended within ``stop_grace_s`` (always True without
            ``wait``).
        """
        STOP.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        drained = True
        if wait:
            deadline = time.monotonic() + self.stop_grace_s
            while _running.count > 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            drained = _running.count == 0
        if self._http is not None:
            self._http.stop()
        self._stopped.set()
        log.info("service stopped%s", "" if drained else " (a cycle was still running)")
        return drained

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Ask :meth:`run_forever` to stop (safe to call from a signal handler)."""
        if signum is not None:
            log.info("received signal %s; stopping after the running trial", signum)
        STOP.set()
        self._stopped.set()

    def run_forever(self) -> None:
        """Start, block until SIGTERM/SIGINT (or :meth:`request_stop`), then stop cleanly.

        A cycle that does not stop within ``stop_grace_s`` is abandoned: the process exits 0
        anyway, and the next start marks its MLflow run failed and reprocesses its batches.
        """
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            while not self._stopped.wait(0.5):
                pass
        finally:
            drained = self.stop(wait=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not drained:
            logging.shutdown()
            os._exit(0)
