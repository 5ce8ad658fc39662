"""What the service tells operators: Prometheus metrics and a small HTTP endpoint.

``GET /healthz``  the process is alive (200), unless it cannot recover by itself (503 with
                  why: its scheduler stayed down although restarted).
``GET /readyz``   the scheduler runs, every pipeline ended a cycle within its bound, and every
                  pipeline's state database and MLflow answer within about a second (200, else
                  503 with the failing checks).
``GET /metrics``  Prometheus text format.
``GET /status``   JSON: per pipeline its champion, last cycle and state.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from automl.errors import SchedulerError
from automl.service._history import CycleResult

log = logging.getLogger(__name__)


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own (one per service)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, ["pipeline", *labels], registry=self.registry)

        self.cycles = counter("automl_cycles", "Cycles run, by outcome.", "status")
        self.drift_checks = counter("automl_drift_checks", "Drift checks, by verdict.", "verdict")
        self.trials = counter("automl_trials", "Tuning trials run.")
        self.promotions = counter(
            "automl_promotion_decisions", "Promotion decisions, by outcome.", "outcome"
        )
        self.failures = counter("automl_cycle_failures", "Failed cycles.")
        self.skipped = counter(
            "automl_cycles_skipped",
            "Cycles skipped because another instance holds the pipeline's lock.",
        )
        self.duration = Histogram(
            "automl_cycle_duration_seconds",
            "Wall time of a cycle.",
            ["pipeline"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.last_success = Gauge(
            "automl_last_success_timestamp_seconds",
            "Unix time of the last successful cycle.",
            ["pipeline"],
            registry=self.registry,
        )

        def gauge(name: str, documentation: str) -> Gauge:
            return Gauge(name, documentation, ["pipeline"], registry=self.registry)

        # Late labels (pipelines with data.id_column), as of the pipeline's last cycle.
        self.labelled_share = gauge("automl_labelled_share", "Share of rows with a label.")
        self.rows_waiting_label = gauge(
            "automl_rows_waiting_for_label", "Rows still waiting for their label."
        )
        self.label_lag_p50 = gauge(
            "automl_label_lag_p50_seconds", "Median label lag (label arrival - row arrival)."
        )
        self.label_lag_p95 = gauge(
            "automl_label_lag_p95_seconds", "95th percentile of the label lag."
        )
        self.waiting_for_labels = gauge(
            "automl_waiting_for_labels",
            "1 when the pipeline's last cycle ended waiting for labels before a re-tune.",
        )

    def observe(self, result: CycleResult, duration_s: float) -> None:
        """Account one finished cycle."""
        p = result.pipeline
        self.cycles.labels(p, result.status).inc()
        self.duration.labels(p).observe(duration_s)
        if result.status == "failed":
            self.failures.labels(p).inc()
        else:
            self.last_success.labels(p).set(time.time())
        if result.drift_verdict is not None:
            self.drift_checks.labels(p, result.drift_verdict).inc()
        if result.n_trials:
            self.trials.labels(p).inc(result.n_trials)
        if result.is_promoted is not None:
            self.promotions.labels(p, "promoted" if result.is_promoted else "not_promoted").inc()
        if result.labelled_share is not None:  # late labels
            self.labelled_share.labels(p).set(result.labelled_share)
            self.rows_waiting_label.labels(p).set(result.rows_waiting_label or 0)
            if result.label_lag_p50_s is not None and result.label_lag_p95_s is not None:
                self.label_lag_p50.labels(p).set(result.label_lag_p50_s)
                self.label_lag_p95.labels(p).set(result.label_lag_p95_s)
        if result.status not in ("failed", "skipped", "interrupted"):
            self.waiting_for_labels.labels(p).set(result.status == "waiting_for_labels")

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


class StatusServer:
    """A tiny threaded HTTP server for health, readiness, metrics and status.

    Args:
        host: Interface to bind (127.0.0.1 by default; 0.0.0.0 in a container).
        port: TCP port (0 picks a free one; see :attr:`port`).
        metrics: The service's metrics.
        is_ready: Returns (ready, failing checks).
        status: Returns the JSON-ready status of every pipeline.
        is_alive: Returns (alive, why not); None: always alive.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: ServiceMetrics,
        is_ready: Callable[[], tuple[bool, dict[str, str]]],
        status: Callable[[], list[dict[str, Any]]],
        is_alive: Callable[[], tuple[bool, dict[str, str]]] | None = None,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer._handle(self)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("http: " + fmt, *args)

        self.metrics, self.is_ready, self.status = metrics, is_ready, status
        self.is_alive = is_alive
        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OverflowError as exc:
            raise SchedulerError(
                f"port {port} is not a TCP port; choose one from 1 to 65535 (0: any free one)"
            ) from exc
        except OSError as exc:
            why = (
                "already in use by another process; stop it or choose another --port"
                if exc.errno == errno.EADDRINUSE
                else f"cannot be opened: {exc.strerror or exc}"
            )
            raise SchedulerError(f"status endpoint {host}:{port}: the port is {why}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="automl-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def _send(self, handler: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                alive, failing = self.is_alive() if self.is_alive else (True, {})
                if alive:
                    self._send(handler, 200, b'{"status": "alive"}', "application/json")
                else:
                    body = json.dumps({"status": "failing", "failing": failing}).encode()
                    self._send(handler, 503, body, "application/json")
            elif path == "/readyz":
                ready, failing = self.is_ready()
                body = json.dumps({"ready": ready, "failing": failing}).encode()
                self._send(handler, 200 if ready else 503, body, "application/json")
            elif path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST

                self._send(handler, 200, self.metrics.render(), CONTENT_TYPE_LATEST)
            elif path == "/status":
                body = json.dumps({"pipelines": self.status()}, default=str).encode()
                self._send(handler, 200, body, "application/json")
            else:
                self._send(handler, 404, b'{"error": "not found"}', "application/json")
        except Exception as exc:  # an endpoint must answer, not kill its thread
            log.exception("http %s failed", path)
            self._send(handler, 500, json.dumps({"error": str(exc)}).encode(), "application/json")

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()
        log.info("status endpoint on http://%s:%d", *self._server.server_address[:2])

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
