"""The long-running service: APScheduler 3.x calls each pipeline's cycle on its schedule."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from automl.config import PipelineSpec
from automl.errors import SchedulerError
from automl.service._cycle import run_cycle
from automl.service._history import CycleResult

log = logging.getLogger(__name__)

#: Seconds a missed run may be late and still run (coalesced into one).
MISFIRE_GRACE_S = 300


def job_id(spec: PipelineSpec) -> str:
    """The scheduler job id of a pipeline's cycle."""
    return f"cycle:{spec.name}"


def _trigger(spec: PipelineSpec) -> Any:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if spec.schedule.cron:
        try:
            return CronTrigger.from_crontab(spec.schedule.cron, timezone=UTC)
        except ValueError as exc:
            raise SchedulerError(
                f"pipeline {spec.name!r}: schedule.cron {spec.schedule.cron!r} is not a valid "
                f"crontab expression: {exc}"
            ) from exc
    if spec.schedule.interval_s is None:
        raise SchedulerError(f"pipeline {spec.name!r}: set schedule.interval_s or schedule.cron")
    return IntervalTrigger(seconds=spec.schedule.interval_s, timezone=UTC)


class AutomlService:
    """Runs every pipeline's cycle on its schedule until stopped.

    Each pipeline is one job with an explicit id (``cycle:<name>``), coalescing missed runs,
    at most one instance at a time, and a misfire grace time. The first cycle of each pipeline
    runs at start. A failing cycle is logged and recorded; the service keeps running.

    Args:
        specs: The pipelines to run.
        on_cycle: Called after every cycle (success or failure) with its result.
        max_workers: Cycles that may run at once (default: one per pipeline, at most 4).
    """

    def __init__(
        self,
        specs: Sequence[PipelineSpec],
        *,
        on_cycle: Callable[[CycleResult], None] | None = None,
        max_workers: int | None = None,
    ) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise SchedulerError(f"pipeline names must be unique, got {names}")
        self.specs = list(specs)
        self.on_cycle = on_cycle
        workers = max_workers or max(1, min(4, len(self.specs)))
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_S,
            },
            timezone=UTC,
        )
        self._stopped = threading.Event()

    def _run(self, spec: PipelineSpec) -> None:
        result = run_cycle(spec, raise_on_failure=False)
        log.info(
            "[%s %s] cycle %s (drift: %s, champion: v%s)%s",
            spec.name,
            result.cycle_id,
            result.status,
            result.drift_verdict,
            result.champion_version,
            f" error: {result.error}" if result.error else "",
        )
        if self.on_cycle is not None:
            try:
                self.on_cycle(result)
            except Exception:
                log.exception("[%s %s] on_cycle callback failed", spec.name, result.cycle_id)

    @property
    def running(self) -> bool:
        """Whether the scheduler is running."""
        return bool(self._scheduler.running)

    def start(self) -> None:
        """Schedule every pipeline (first run now) and start the scheduler thread."""
        now = datetime.now(UTC)
        for spec in self.specs:
            self._scheduler.add_job(
                self._run,
                trigger=_trigger(spec),
                args=[spec],
                id=job_id(spec),
                name=f"automl cycle of {spec.name}",
                replace_existing=True,
                next_run_time=now,
            )
        self._scheduler.start()
        log.info(
            "service started with %d pipeline(s): %s", len(self.specs), [s.name for s in self.specs]
        )

    def stop(self, *, wait: bool = True) -> None:
        """Stop scheduling; with ``wait``, let running cycles finish first."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        self._stopped.set()
        log.info("service stopped")

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Ask :meth:`run_forever` to stop (safe to call from a signal handler)."""
        if signum is not None:
            log.info("received signal %s; stopping after running cycles finish", signum)
        self._stopped.set()

    def run_forever(self) -> None:
        """Start, block until SIGTERM/SIGINT (or :meth:`request_stop`), then stop cleanly."""
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            while not self._stopped.wait(0.5):
                pass
        finally:
            self.stop(wait=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
