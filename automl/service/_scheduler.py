"""The long-running service: APScheduler 3.x calls each pipeline's cycle on its schedule.

Jobs per pipeline: ``cycle:<name>`` (the drift check on ``schedule.interval_s`` or
``schedule.cron``), ``retune:<name>`` (a forced re-tune on ``schedule.retune_interval_s`` or
``retune_cron``, when set) and ``retry:<name>`` (a one-off retry with exponential backoff after
a failed cycle). Every job has an explicit id, ``replace_existing``, coalescing,
``max_instances=1`` and a misfire grace time. A cycle runs only while holding its pipeline's
lock (see :mod:`automl.service._lock`), so two service instances never run one pipeline at once.

Liveness: a watchdog thread checks every ``watchdog_s`` seconds that the scheduler's thread is
alive (APScheduler 3's thread dies for good when its job store cannot be written) and that
every pipeline ended a cycle within its bound (3 x its interval + its tuning timeout). A dead
scheduler is rebuilt on the same job store and a stale pipeline's job is re-added and run now;
``/readyz`` fails meanwhile, and ``/healthz`` too once the scheduler stayed down for
``unhealthy_after_s`` (the process cannot recover by itself: let the orchestrator restart it).

Served from a folder, the service re-reads it every ``reload_interval_s`` seconds: new specs
get jobs, changed schedules are rescheduled, removed specs lose their jobs. The job store can be
persistent (SQLAlchemy URL): jobs and their next run times then survive a restart. A job store
belongs to exactly one running scheduler; never point two services at the same one.
"""

from __future__ import annotations

import contextlib
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
#: A pipeline is stale when no cycle of it ended for this many intervals (+ its tuning timeout).
STALE_INTERVALS = 3
#: How long a store check's answer is reused by ``/readyz``.
READY_CACHE_S = 5.0

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


def interval_s(spec: PipelineSpec) -> float:
    """Seconds between two drift checks of a pipeline (for a cron, between its next two)."""
    trigger = _trigger(spec, "cycle")
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first) if first else None
    if first is None or second is None:
        return float(spec.schedule.interval_s or 3600.0)
    return max(1.0, float((second - first).total_seconds()))


def stale_after_s(spec: PipelineSpec) -> float:
    """How long a pipeline may go without ending a cycle: 3 intervals + its tuning timeout."""
    return STALE_INTERVALS * interval_s(spec) + float(spec.tuning.timeout_s or 0.0)


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
        watchdog_s: How often the scheduler thread and the pipelines' last cycles are checked.
        ready_timeout_s: How long ``/readyz`` waits for the store checks before it answers 503.
        unhealthy_after_s: ``/healthz`` fails once the scheduler stayed down this long.
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
        watchdog_s: float = 5.0,
        ready_timeout_s: float = 1.0,
        unhealthy_after_s: float = 300.0,
    ) -> None:
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
        self.watchdog_s = watchdog_s
        self.ready_timeout_s = ready_timeout_s
        self.unhealthy_after_s = unhealthy_after_s
        self._jobstore_url = jobstore_url
        self._workers = max_workers or max(2, min(4, len(self.specs) or 2))
        self._persistent = jobstore_url is not None
        self._stopped = threading.Event()
        # Liveness: when each pipeline last ended a cycle (monotonic), what broke the scheduler.
        self._last_cycle: dict[str, float] = {}
        self._kicked: dict[str, float] = {}
        self._scheduler_error: str | None = None
        self._jobstore_error: str | None = None
        self._down_since: float | None = None
        self._restarts = 0
        self._watchdog: threading.Thread | None = None
        self._previous_excepthook: Any = None
        self._ready_lock = threading.Lock()
        self._ready_thread: threading.Thread | None = None
        self._ready_cache: tuple[float, dict[str, str]] | None = None
        self._scheduler = self._make_scheduler()
        if http_port is not None:
            self._http = StatusServer(
                host=http_host,
                port=http_port,
                metrics=self.metrics,
                is_ready=self._is_ready,
                status=self._status,
                is_alive=self._is_alive,
            )

    def _make_scheduler(self) -> Any:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        url = self._jobstore_url
        jobstore: Any = SQLAlchemyJobStore(url=url) if url else MemoryJobStore()
        scheduler = BackgroundScheduler(
            # "local" holds the reload job (a bound method, never persisted).
            jobstores={"default": jobstore, "local": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=self._workers)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_S,
            },
            timezone=UTC,
        )
        scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        return scheduler

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

    def sync(self, *, run_now: bool = False) -> None:
        """Make the scheduled jobs match the pipelines (added, changed, removed).

        Args:
            run_now: Also run every pipeline's drift check now, even where the job store kept
                a later next run time (a start or a restart runs a cycle at once).
        """
        if self.folder is not None:
            self.specs = self._load_folder()
        for name in self.specs:
            self._last_cycle.setdefault(name, time.monotonic())
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
                if run_now and kind == "cycle":
                    existing.modify(next_run_time=now)
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
        kind, _, name = str(getattr(event, "job_id", "")).partition(":")
        if kind in ("cycle", "retune", "retry"):
            self._last_cycle[name] = time.monotonic()  # the job ran and returned
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
        """Ready: the scheduler runs, no pipeline is stale, every store answers in time."""
        failing = self._liveness_failures()
        failing.update(self._store_failures())
        return not failing, failing

    def _is_alive(self) -> tuple[bool, dict[str, str]]:
        """Alive unless the scheduler is down for longer than ``unhealthy_after_s``."""
        down = self._down_since
        if down is None or time.monotonic() - down < self.unhealthy_after_s:
            return True, {}
        return False, {
            "scheduler": f"down for {time.monotonic() - down:.0f} s, {self._restarts} restart(s) "
            f"failed: {self._scheduler_error or 'unknown error'}"
        }

    def _scheduler_alive(self) -> bool:
        # Once the watchdog found the scheduler down, it is back only when a restart completed:
        # the scheduler being restarted runs its thread (paused) while the restart writes its
        # jobs, which fails for as long as the job store cannot be written.
        if self._down_since is not None:
            return False
        # APScheduler 3 has no public way to ask whether its thread still runs; the thread
        # dies for good on an error it does not catch (a job store that cannot be written).
        thread = getattr(self._scheduler, "_thread", None)
        return bool(self._scheduler.running) and thread is not None and thread.is_alive()

    def _liveness_failures(self) -> dict[str, str]:
        failing: dict[str, str] = {}
        if self._stopped.is_set() or STOP.is_set():
            return {"scheduler": "stopping"}
        if not self._scheduler_alive():
            failing["scheduler"] = f"not running: {self._scheduler_error or 'stopped'}" + (
                f" (restart attempts: {self._restarts})" if self._restarts else ""
            )
        if self._jobstore_error is not None:
            failing["jobstore"] = self._jobstore_error
        now = time.monotonic()
        for spec in list(self.specs.values()):
            last = self._last_cycle.get(spec.name)
            bound = stale_after_s(spec)
            if last is not None and now - last > bound:
                failing[f"{spec.name}:cycles"] = (
                    f"no cycle ended for {now - last:.0f} s (bound {bound:.0f} s = "
                    f"{STALE_INTERVALS} x interval {interval_s(spec):g} s + tuning timeout "
                    f"{spec.tuning.timeout_s or 0:g} s)"
                )
        return failing

    def _store_failures(self) -> dict[str, str]:
        """The stores' check, answered within ``ready_timeout_s`` (cached for a few seconds)."""
        asked = time.monotonic()
        with self._ready_lock:
            cached = self._ready_cache
            if cached is not None and asked - cached[0] < READY_CACHE_S:
                return dict(cached[1])
            thread = self._ready_thread
            if thread is None or not thread.is_alive():
                thread = self._ready_thread = threading.Thread(
                    target=self._check_stores, name="automl-readyz", daemon=True
                )
                thread.start()
        thread.join(self.ready_timeout_s)
        with self._ready_lock:
            cached = self._ready_cache
            if cached is not None and cached[0] >= asked:
                return dict(cached[1])
            last = dict(cached[1]) if cached is not None else {}
        last["stores"] = (
            f"no answer within {self.ready_timeout_s:g} s (a state database or MLflow is slow "
            "or unreachable)"
        )
        return last

    def _check_stores(self) -> None:
        from automl.service._status import check_stores

        failing: dict[str, str] = {}
        for spec in list(self.specs.values()):
            failing.update(check_stores(spec))
        with self._ready_lock:
            self._ready_cache = (time.monotonic(), failing)

    # -- self-repair -------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stopped.wait(self.watchdog_s):
            if STOP.is_set():
                return
            try:
                self._repair()
            except Exception:
                log.exception("the service's watchdog failed; trying again")

    def _repair(self) -> None:
        """Restart a dead scheduler; re-add and run the job of a pipeline gone stale."""
        if not self._scheduler_alive():
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.error(
                    "the scheduler stopped (%s); restarting it",
                    self._scheduler_error or "its thread ended",
                )
            self._restart_scheduler()
            return
        now = time.monotonic()
        for spec in list(self.specs.values()):
            bound = stale_after_s(spec)
            last = self._last_cycle.get(spec.name, now)
            if now - last <= bound or now - self._kicked.get(spec.name, -bound) < bound:
                continue
            self._kicked[spec.name] = now
            job = self._scheduler.get_job(job_id(spec))
            log.error(
                "[%s] no cycle ended for %.0f s (bound %.0f s); %s its job to run now",
                spec.name,
                now - last,
                bound,
                "re-adding" if job is None else "rescheduling",
            )
            if job is None:
                self.sync(run_now=True)
            else:
                job.modify(next_run_time=datetime.now(UTC))

    def _restart_scheduler(self) -> None:
        self._restarts += 1
        with contextlib.suppress(Exception):
            self._scheduler.shutdown(wait=False)  # running cycles go on in their threads
        scheduler = self._make_scheduler()
        try:
            scheduler.start(paused=True)
            self._scheduler = scheduler
            self.sync(run_now=True)
            self._add_reload_job()
            scheduler.resume()
        except Exception as exc:
            self._scheduler_error = f"restart {self._restarts} failed: {exc}"[:500]
            log.error("the scheduler could not be restarted: %s", exc)
            with contextlib.suppress(Exception):
                scheduler.shutdown(wait=False)
            return
        log.warning("scheduler restarted (attempt %d)", self._restarts)
        self._scheduler_error = None
        self._down_since = None

    def _sync_job(self) -> None:
        """The reload job: :meth:`sync`, remembering whether the job store took the writes."""
        try:
            self.sync()
        except Exception as exc:
            self._jobstore_error = f"the job store refused a write: {exc}"[:500]
            raise
        self._jobstore_error = None

    def _add_reload_job(self) -> None:
        if self.folder is None:
            return
        from apscheduler.triggers.interval import IntervalTrigger

        self._scheduler.add_job(
            self._sync_job,
            trigger=IntervalTrigger(seconds=self.reload_interval_s, timezone=UTC),
            id="automl:reload",
            name="re-read the pipeline folder",
            replace_existing=True,
            jobstore="local",
        )

    def _excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread is getattr(self._scheduler, "_thread", None):
            self._scheduler_error = f"{args.exc_type.__name__}: {args.exc_value}"[:500]
        hook = self._previous_excepthook or threading.__excepthook__
        hook(args)

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
        """Schedule every pipeline (drift checks run now, also where a persistent job store
        kept a later time) and start the scheduler and its watchdog."""
        STOP.clear()
        self._stopped.clear()
        self._previous_excepthook = threading.excepthook
        threading.excepthook = self._excepthook
        self._scheduler.start(paused=True)
        self.sync(run_now=True)
        self._add_reload_job()
        self._scheduler.resume()
        self._watchdog = threading.Thread(target=self._watch, name="automl-watchdog", daemon=True)
        self._watchdog.start()
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
        self._stopped.set()
        if self._scheduler.running:
            with contextlib.suppress(Exception):  # a dead job store may refuse its shutdown
                self._scheduler.shutdown(wait=False)
        if self._previous_excepthook is not None:
            threading.excepthook = self._previous_excepthook
            self._previous_excepthook = None
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
