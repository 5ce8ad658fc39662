"""The status endpoint over real HTTP, and the metrics it serves."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from automl.service import CycleResult
from automl.service._observe import ServiceMetrics, StatusServer


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


@pytest.fixture
def server() -> Iterator[tuple[StatusServer, dict[str, Any]]]:
    state: dict[str, Any] = {"ready": True, "failing": {}, "status": [{"pipeline": "churn"}]}

    def status() -> list[dict[str, Any]]:
        if state.get("boom"):
            raise RuntimeError("status store down")
        return list(state["status"])

    http = StatusServer(
        host="127.0.0.1",
        port=0,
        metrics=ServiceMetrics(),
        is_ready=lambda: (state["ready"], dict(state["failing"])),
        status=status,
    )
    http.start()
    yield http, state
    http.stop()


def test_endpoints_answer_with_status_codes_and_json(
    server: tuple[StatusServer, dict[str, Any]],
) -> None:
    http, state = server
    base = f"http://127.0.0.1:{http.port}"
    assert _get(f"{base}/healthz")[0] == 200
    code, ctype, body = _get(f"{base}/readyz")
    assert (code, ctype, json.loads(body)) == (
        200,
        "application/json",
        {"ready": True, "failing": {}},
    )
    state.update(ready=False, failing={"churn:mlflow": "connection refused"})
    code, _, body = _get(f"{base}/readyz")
    assert code == 503 and json.loads(body)["failing"] == {"churn:mlflow": "connection refused"}
    code, _, body = _get(f"{base}/status?verbose=1")
    assert code == 200 and json.loads(body) == {"pipelines": [{"pipeline": "churn"}]}
    assert _get(f"{base}/nope")[0] == 404
    state["boom"] = True  # a failing handler answers 500 and the server keeps serving
    code, _, body = _get(f"{base}/status")
    assert code == 500 and "status store down" in json.loads(body)["error"]
    assert _get(f"{base}/healthz")[0] == 200


def test_metrics_count_cycles_by_outcome(server: tuple[StatusServer, dict[str, Any]]) -> None:
    http, _ = server
    now = "2026-01-01T00:00:00+00:00"
    http.metrics.observe(
        CycleResult(
            "churn", "c1", "retuned", now, now, drift_verdict="drift", n_trials=7, is_promoted=True
        ),
        2.5,
    )
    http.metrics.observe(CycleResult("churn", "c2", "failed", now, now), 0.2)
    code, ctype, body = _get(f"http://127.0.0.1:{http.port}/metrics")
    text = body.decode()
    assert code == 200 and ctype.startswith("text/plain")
    assert 'automl_cycles_total{pipeline="churn",status="retuned"} 1.0' in text
    assert 'automl_cycles_total{pipeline="churn",status="failed"} 1.0' in text
    assert 'automl_trials_total{pipeline="churn"} 7.0' in text
    assert 'automl_drift_checks_total{pipeline="churn",verdict="drift"} 1.0' in text
    assert 'automl_promotion_decisions_total{outcome="promoted",pipeline="churn"} 1.0' in text
    assert 'automl_cycle_failures_total{pipeline="churn"} 1.0' in text
    assert 'automl_cycle_duration_seconds_count{pipeline="churn"} 2.0' in text
