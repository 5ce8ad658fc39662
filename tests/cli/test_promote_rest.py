"""``automl promote`` and ``automl rollback`` against a real ``mlflow server`` (SQLite backend),
as production runs them (``docs/scaling.md``): the aliases move over MLflow's REST API, each
move is logged (intent, then applied or aborted), errors are one line and move nothing, and
neither command imports MLflow (speed is measured in ``benchmarks/cli_latency.py``)."""

from __future__ import annotations

import http.client
import http.server
import json
import subprocess
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from automl.config import PipelineSpec, load_spec
from automl.service import make_tracker
from automl.tracking import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, PromotionLog
from tests.cli.imports import run_automl_importtime
from tests.conftest import write_spec_file
from tests.mlflow_server import free_port, mlflow_server

pytestmark = pytest.mark.slow
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)
#: What neither command may import over REST: MLflow, and nothing of a model or the cycle.
NEVER = {"mlflow", "pandas", "numpy", "scipy", "sklearn", "xgboost", "pyarrow"} | {
    "evidently",
    "optuna",
    "apscheduler",
    "matplotlib",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def _pipeline(tmp_path: Path, tracking_uri: str) -> tuple[PipelineSpec, str]:
    """A pipeline (its own model name: the tests share the server) tracking to the server."""
    name = f"churn{uuid.uuid4().hex[:6]}"
    path = write_spec_file(tmp_path, name, mlflow={"tracking_uri": tracking_uri})
    return load_spec(path), str(path)


@pytest.fixture
def pipeline(server: str, tmp_path: Path) -> tuple[PipelineSpec, str]:
    """A pipeline whose model has versions 1 to 3 on the server, v1 the champion (a logged
    move, as the cycle makes it) and v2 the ``@challenger`` awaiting approval."""
    spec, path = _pipeline(tmp_path, server)
    client = make_tracker(spec).client  # MLflow's own client, in the test's process
    client.create_registered_model(spec.model_name)
    for n in (1, 2, 3):
        client.create_model_version(spec.model_name, source=f"s3://models/{spec.model_name}/{n}")
    done, _ = _automl("promote", path, "--version", "1")
    assert done.returncode == 0, done.stderr
    client.set_registered_model_alias(spec.model_name, CHALLENGER, "2")
    return spec, path


def _automl(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    # The client's retries at once (no backoff) in these tests.
    no_backoff = {
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    }
    return run_automl_importtime(*args, env={**no_backoff, **(env or {})})


def _aliases(spec: PipelineSpec) -> dict[str, str]:
    """The model's aliases, as MLflow's own client reads them."""
    tracker = make_tracker(spec)
    found = {a: tracker.get_alias(spec.model_name, a) for a in ALIASES}
    return {a: v.version for a, v in found.items() if v is not None}


def _log(spec: PipelineSpec) -> list[tuple[str, str, str | None, str | None]]:
    entries = PromotionLog(spec.state_url).entries(spec.name)
    return [(e.action, e.status, e.from_version, e.to_version) for e in entries]


def test_promote_and_rollback_move_the_aliases_over_rest_without_mlflow(
    pipeline: tuple[PipelineSpec, str],
) -> None:
    spec, path = pipeline
    model = spec.model_name
    assert _aliases(spec) == {CHAMPION: "1", CHALLENGER: "2"}

    promoted, imported = _automl("promote", path)
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.strip() == f"{model}: @champion is now v2 (v1 is @previous-champion)"
    assert not imported & NEVER, sorted(imported & NEVER)
    assert _aliases(spec) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}  # @challenger settled
    tags = make_tracker(spec).get_version(model, "2").tags
    assert tags["automl.decision"] == "promoted" and tags["automl.approved_by"].endswith("@cli")

    make_tracker(spec).set_alias(model, CHALLENGER, "3")  # the next candidate
    back, imported = _automl("rollback", path)
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == f"{model}: @champion rolled back from v2 to v1"
    assert not imported & NEVER, sorted(imported & NEVER)
    # the version rolled back from is @previous-champion; @challenger stays where it was
    assert _aliases(spec) == {CHAMPION: "1", PREVIOUS_CHAMPION: "2", CHALLENGER: "3"}

    assert _log(spec) == [
        ("manual_promote", "intent", None, "1"),
        ("manual_promote", "applied", None, "1"),
        ("manual_promote", "intent", "1", "2"),
        ("manual_promote", "applied", "1", "2"),
        ("rollback", "intent", "2", "1"),
        ("rollback", "applied", "2", "1"),
    ]
    status, _ = _automl("status", path, "--json")
    assert json.loads(status.stdout)[0]["champion_version"] == "1"


def test_a_refused_command_is_one_line_and_moves_nothing(
    pipeline: tuple[PipelineSpec, str],
) -> None:
    spec, path = pipeline
    model = spec.model_name
    before = (_aliases(spec), _log(spec))
    refusals = {
        ("promote", "--version", "9"): (
            f"error: model {model!r} has no version 9: RESOURCE_DOES_NOT_EXIST: "
            f"Model Version (name={model}, version=9) not found"
        ),
        ("promote", "--version", "1"): f"error: v1 of {model!r} is already the champion",
        ("rollback",): f"error: model {model!r} has no @previous-champion; pass --version N",
    }
    for (command, *options), message in refusals.items():
        refused, imported = _automl(command, path, *options)
        assert refused.returncode == 1
        assert refused.stderr.strip() == message
        assert not imported & NEVER, sorted(imported & NEVER)
    assert (_aliases(spec), _log(spec)) == before


def test_a_server_that_is_down_fails_the_command_before_anything_moves(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    spec, path = _pipeline(tmp_path, down)
    log = PromotionLog(spec.state_url)
    # a move a crash left open: only the registry can say how it ended, so it must stay open
    log.append(
        pipeline=spec.name,
        model_name=spec.model_name,
        action="promote",
        status="intent",
        actor="service",
        from_version="1",
        to_version="2",
    )
    before = _log(spec)
    for command in (["promote", "--version", "2"], ["rollback"]):
        failed, imported = _automl(command[0], path, *command[1:])
        assert failed.returncode == 1
        assert failed.stderr.startswith(
            f"error: could not read alias 'champion' of {spec.model_name!r}: cannot reach the "
            f"MLflow tracking server at {down} (GET {down}/api/2.0/mlflow/registered-models/alias)"
        ), failed.stderr
        assert "Connection refused (3 attempts)" in failed.stderr
        assert len(failed.stderr.splitlines()) == 1
        assert "mlflow" not in imported
    assert _log(spec) == before and log.open_intents(spec.name)


class _Front:
    """A reverse proxy in front of the server that answers 503 (as a busy server, in MLflow's
    JSON) to the first ``fail`` requests that set @champion, and forwards everything else."""

    def __init__(self, server: str, fail: int) -> None:
        self.fail = fail
        self.champion_sets = 0
        target = urllib.parse.urlsplit(server)
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sets_champion = (
                    self.command == "POST"
                    and self.path.endswith("/registered-models/alias")
                    and json.loads(body).get("alias") == CHAMPION
                )
                if sets_champion:
                    front.champion_sets += 1
                if sets_champion and front.champion_sets <= front.fail:
                    status, data = (
                        503,
                        json.dumps(
                            {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try later"}
                        ).encode(),
                    )
                else:
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                    conn.request(self.command, self.path, body or None, dict(self.headers))
                    reply = conn.getresponse()
                    status, data = reply.status, reply.read()
                    conn.close()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _forward  # noqa: N815 - the names http.server calls

            def log_message(self, *args: Any) -> None:
                """No access log on the test's output."""

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def front(server: str) -> Iterator[Callable[[int], _Front]]:
    made: list[_Front] = []

    def make(fail: int) -> _Front:
        made.append(_Front(server, fail))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def test_a_busy_server_is_retried_and_a_move_it_refuses_is_logged_aborted(
    pipeline: tuple[PipelineSpec, str], front: Callable[[int], _Front], tmp_path: Path
) -> None:
    spec, _ = pipeline
    # the same pipeline, reached through the front (its spec in another folder, same state)
    busy_once = front(1)
    (tmp_path / "via").mkdir()
    via = write_spec_file(
        tmp_path / "via",
        spec.name,
        mlflow={"tracking_uri": busy_once.url},
        state_db=spec.state_url,
    )
    promoted, _ = _automl("promote", str(via), "--version", "2")
    assert promoted.returncode == 0, promoted.stderr
    assert busy_once.champion_sets == 2  # refused once, retried once
    assert _aliases(spec) == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}

    always_busy = front(10)
    via.write_text(via.read_text().replace(busy_once.url, always_busy.url))
    refused, _ = _automl("promote", str(via), "--version", "3")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: pipeline {spec.name!r}: moving @champion to v3 failed (TEMPORARILY_UNAVAILABLE: "
        "try later (after 3 attempts)); @champion is v2"
    )
    assert always_busy.champion_sets == 3
    assert _aliases(spec)[CHAMPION] == "2"
    assert _log(spec)[-2:] == [
        ("manual_promote", "intent", "2", "3"),
        ("manual_promote", "aborted", "2", "3"),
    ]
