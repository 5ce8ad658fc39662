"""Webhooks against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from automl.config import PipelineSpec
from automl.service import notify


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]], dict[str, int]]]:
    received: list[dict[str, Any]] = []
    answer = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    "content_type": self.headers["Content-Type"],
                    **json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(answer["code"])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, answer
    server.shutdown()
    server.server_close()


def test_payload_carries_event_pipeline_time_and_details(
    write_spec: Callable[..., PipelineSpec],
    hook: tuple[str, list[dict[str, Any]], dict[str, int]],
) -> None:
    url, received, _ = hook
    spec = write_spec(notify={"webhook_url": url, "events": ["drift"]})
    assert notify(spec, "drift", {"share": 0.5, "columns": ("a", "b"), "when": object()}) is True
    (body,) = received
    assert body["content_type"] == "application/json"
    assert (body["event"], body["pipeline"], body["share"]) == ("drift", "churn", 0.5)
    assert body["columns"] == ["a", "b"] and body["when"].startswith("<object")
    assert body["time"].endswith("+00:00")


def test_unsubscribed_unset_or_failing_hooks_return_false(
    write_spec: Callable[..., PipelineSpec],
    hook: tuple[str, list[dict[str, Any]], dict[str, int]],
) -> None:
    url, received, answer = hook
    assert notify(write_spec("quiet"), "failure", {}) is False  # no webhook configured
    spec = write_spec(notify={"webhook_url": url, "events": ["failure"]})
    assert notify(spec, "promotion", {}) is False and not received  # not subscribed
    answer["code"] = 500
    assert notify(spec, "failure", {"error": "x"}) is False and len(received) == 1
    closed = write_spec("closed", notify={"webhook_url": "http://127.0.0.1:9/", "timeout_s": 1})
    assert notify(closed, "failure", {}) is False  # connection refused: logged, never raised
