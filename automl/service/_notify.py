"""Webhook notifications: an HTTP POST with a JSON body on drift, promotion, rejection, failure."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from automl.config import PipelineSpec
from automl.state import utcnow

log = logging.getLogger(__name__)


def notify(spec: PipelineSpec, event: str, payload: dict[str, Any]) -> bool:
    """POST ``{"event", "pipeline", "time", **payload}`` to the spec's webhook, if configured.

    A notification never fails the caller: errors are logged and False is returned.

    Args:
        spec: The pipeline (``notify.webhook_url``, ``notify.events``, ``notify.timeout_s``).
        event: ``drift``, ``promotion``, ``rejection``, ``failure`` or ``approval``.
        payload: Event details (JSON-serializable; other values are stringified).

    Returns:
        True when the webhook answered 2xx, False when not configured, filtered or failed.
    """
    url = spec.notify.webhook_url
    if not url or event not in spec.notify.events:
        return False
    body = json.dumps(
        {"event": event, "pipeline": spec.name, "time": utcnow(), **payload}, default=str
    ).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=spec.notify.timeout_s) as response:
            ok = 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("[%s] webhook %s for %r failed: %s", spec.name, url, event, exc)
        return False
    if not ok:
        log.warning("[%s] webhook %s for %r answered %s", spec.name, url, event, response.status)
    return ok
