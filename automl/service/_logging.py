"""Logs that say which pipeline and which cycle every line is about.

``cycle_context`` sets the pipeline and cycle id for the code running inside it (context
variables, so concurrent cycles in the scheduler's threads keep theirs apart); a filter copies
them onto every record, and the JSON formatter writes one object per line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

_pipeline: contextvars.ContextVar[str] = contextvars.ContextVar("automl_pipeline", default="-")
_cycle: contextvars.ContextVar[str] = contextvars.ContextVar("automl_cycle", default="-")


@contextlib.contextmanager
def cycle_context(pipeline: str, cycle_id: str) -> Iterator[None]:
    """Tag every log record emitted inside the block with ``pipeline`` and ``cycle_id``."""
    p, c = _pipeline.set(pipeline), _cycle.set(cycle_id)
    try:
        yield
    finally:
        _pipeline.reset(p)
        _cycle.reset(c)


class ContextFilter(logging.Filter):
    """Adds ``pipeline`` and ``cycle_id`` attributes to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the current context; never drops a record."""
        record.pipeline = _pipeline.get()
        record.cycle_id = _cycle.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pipeline, cycle_id, message, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialize a record."""
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pipeline": getattr(record, "pipeline", "-"),
            "cycle_id": getattr(record, "cycle_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(pipeline)s %(cycle_id)s] %(message)s"


def configure_logging(level: str = "INFO", *, as_json: bool = False) -> None:
    """Send logs to stderr as text or JSON lines, each with the pipeline and cycle id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
