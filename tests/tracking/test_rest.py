"""RestRegistry: MLflow's REST API without MLflow.

Against a real ``mlflow server`` it must answer as ``MlflowTracker`` does (same versions, same
"not found", same messages); against a small local HTTP(S) server that records what it receives,
it must send what MLflow's client sends for the same environment (auth, TLS, retries).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from automl.config import load_spec
from automl.errors import TrackingError
from automl.service import make_registry
from automl.tracking import (
    CHALLENGER,
    CHAMPION,
    MlflowTracker,
    RestRegistry,
    RestSettings,
    needs_mlflow_client,
)
from tests.conftest import write_spec_file
from tests.mlflow_server import mlflow_server

MLFLOW_ENV = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_TRACKING_AWS_SIGV4",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
    "MLFLOW_WORKSPACE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)
VERSION = {
    "model_version": {
        "name": "churn",
        "version": "4",
        "source": "s3://models/churn/4",
        "run_id": "abc",
        "status": "READY",
        "tags": [{"key": "automl.decision", "value": "promoted"}],
    }
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MLflow setting of the machine, no proxy, no ``~/.mlflow/credentials`` leaks in."""
    for name in (*MLFLOW_ENV, "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # a wrong retry never waits in these tests
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")


# -- a real tracking server: the same answers as MLflow's client ----------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.mark.slow
def test_answers_as_mlflows_client_does_on_a_real_server(server: str) -> None:
    tracker = MlflowTracker(server, "rest")
    client = tracker.client
    client.create_registered_model("parity")
    for n in (1, 2):
        client.create_model_version("parity", source=f"s3://models/parity/{n}", tags={"n": n})
    rest = RestRegistry.from_env(server)
    assert isinstance(rest, RestRegistry)

    rest.set_alias("parity", CHAMPION, "1")
    rest.set_alias("parity", CHALLENGER, "2")
    assert rest.get_alias("parity", CHAMPION) == tracker.get_alias("parity", CHAMPION)
    assert rest.get_alias("parity", CHALLENGER) == tracker.get_alias("parity", CHALLENGER)
    assert rest.get_version("parity", "2") == tracker.get_version("parity", "2")
    assert rest.get_version("parity", "2").tags == {"n": "2"}
    assert rest.get_version("parity", "2").source == "s3://models/parity/2"

    # "not found" reads as None for a missing alias and a missing model, as in MlflowTracker
    for model, alias in (("parity", "nobody"), ("no-such-model", CHAMPION)):
        assert tracker.get_alias(model, alias) is None
        assert rest.get_alias(model, alias) is None

    rest.delete_alias("parity", CHALLENGER)
    assert tracker.get_alias("parity", CHALLENGER) is None
    rest.delete_alias("parity", CHALLENGER)  # again: nothing to delete, no error
    rest.delete_alias("no-such-model", CHALLENGER)

    rest.set_version_tags("parity", "1", {"automl.approved_by": "ana@cli", "score": 0.5})
    assert tracker.get_version("parity", "1").tags == {
        "n": "1",
        "automl.approved_by": "ana@cli",
        "score": "0.5",
    }
    with pytest.raises(TrackingError) as missing:
        rest.get_version("parity", "9")
    with pytest.raises(Exception) as by_mlflow:
        MlflowTracker(server, "rest").client.get_model_version("parity", "9")
    assert str(missing.value) == str(by_mlflow.value)  # MLflow's client's message, word for word
    with pytest.raises(TrackingError, match="RESOURCE_DOES_NOT_EXIST: Model Version"):
        rest.set_alias("parity", CHAMPION, "9")
    assert tracker.get_alias("parity", CHAMPION).version == "1"  # type: ignore[union-attr]


# -- a small server that records what it receives -------------------------------------------
@dataclass
class Recorder:
    """What the fake server answers (in turn; the last answer repeats) and what it received."""

    url: str
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, status: int, body: Any = None, **headers: str) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        self.answers.append((status, headers, data))


def _serve(tls: ssl.SSLContext | None) -> Iterator[Recorder]:
    recorder = Recorder(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorder.received.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": json.loads(body) if body else None,
                }
            )
            answers = recorder.answers
            status, headers, data = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _handle  # noqa: N815 - the names http.server calls

        def log_message(self, *args: Any) -> None:
            """No access log on the test's output."""

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    recorder.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def fake() -> Iterator[Recorder]:
    """A plain HTTP server recording requests, answering a model version by default."""
    yield from _serve(None)


def test_sends_bearer_or_basic_auth_as_mlflows_client(
    fake: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake.answer(200, VERSION)

    def authorization() -> str | None:
        registry = RestRegistry.from_env(fake.url)
        assert registry is not None
        found = registry.get_alias("churn", CHAMPION)
        assert found is not None and found.version == "4" and found.run_id == "abc"
        request = fake.received[-1]
        assert request["method"] == "GET"
        assert (
            request["path"] == "/api/2.0/mlflow/registered-models/alias?name=churn&alias=champion"
        )
        assert request["headers"]["User-Agent"].startswith("automl/")
        return request["headers"].get("Authorization")

    assert authorization() is None
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0k3n")
    assert authorization() == "Bearer t0k3n"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ana")
    assert authorization() == "Bearer t0k3n"  # a username alone is not basic auth
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    assert authorization() == "Basic " + base64.b64encode(b"ana:s3cret").decode()  # wins
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    credentials = tmp_path / "home" / ".mlflow" / "credentials"
    credentials.parent.mkdir(parents=True)
    credentials.write_text(
        "[mlflow]\nmlflow_tracking_username = bo\nmlflow_tracking_password = pw\n"
    )
    assert authorization() == "Basic " + base64.b64encode(b"bo:pw").decode()
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    authorization()
    assert fake.received[-1]["headers"]["X-MLFLOW-WORKSPACE"] == "team-a"


def test_posts_and_deletes_send_a_json_body_under_the_uri_path(fake: Recorder) -> None:
    fake.answer(200, {})
    registry = RestRegistry(fake.url + "/mlflow/", RestSettings())
    registry.set_alias("churn", CHAMPION, "4")
    registry.delete_alias("churn", CHALLENGER)
    registry.set_version_tags("churn", "4", {"automl.decision": "promoted"})
    sent = [(r["method"], r["path"], r["body"]) for r in fake.received]
    assert sent == [
        ("POST", "/mlflow/api/2.0/mlflow/registered-models/alias",
         {"name": "churn", "alias": "champion", "version": "4"}),
        ("DELETE", "/mlflow/api/2.0/mlflow/registered-models/alias",
         {"name": "churn", "alias": "challenger"}),
        ("POST", "/mlflow/api/2.0/mlflow/model-versions/set-tag",
         {"name": "churn", "version": "4", "key": "automl.decision", "value": "promoted"}),
    ]  # fmt: skip
    assert all(r["headers"]["Content-Type"] == "application/json" for r in fake.received)
    assert {r["headers"]["Host"] for r in fake.received} == {fake.url.removeprefix("http://")}


def test_retries_5xx_as_configured_then_says_what_the_server_said(
    fake: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "database is locked"}
    fake.answer(503, busy)
    fake.answer(500, b"<html>oops</html>")
    fake.answer(200, VERSION)
    registry = RestRegistry.from_env(fake.url)
    assert registry is not None
    assert registry.get_version("churn", "4").version == "4"  # default: 2 retries
    assert len(fake.received) == 3

    fake.received.clear()
    fake.answers[:] = []
    fake.answer(503, busy)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    registry = RestRegistry.from_env(fake.url)
    assert registry is not None
    with pytest.raises(TrackingError) as refused:
        registry.set_alias("churn", CHAMPION, "4")
    assert str(refused.value) == "TEMPORARILY_UNAVAILABLE: database is locked (after 2 attempts)"
    assert len(fake.received) == 2

    fake.received.clear()
    fake.answers[:] = []
    fake.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such model"})
    with pytest.raises(TrackingError, match=r"^RESOURCE_DOES_NOT_EXIST: no such model$"):
        registry.get_version("churn", "4")
    assert len(fake.received) == 1  # a refusal is not retried


def test_refusals_without_mlflows_json_name_the_status_and_what_to_do(fake: Recorder) -> None:
    registry = RestRegistry(fake.url)
    fake.answer(401, b"Unauthorized", **{"Content-Type": "text/plain"})
    with pytest.raises(TrackingError) as refused:
        registry.get_alias("churn", CHAMPION)
    assert f"GET {fake.url}/api/2.0/mlflow/registered-models/alias answered HTTP 401" in str(
        refused.value
    )
    assert "check MLFLOW_TRACKING_TOKEN" in str(refused.value)

    fake.answers[:] = []
    fake.answer(301, b"", Location="https://mlflow.example.com/api/2.0/mlflow/x")
    with pytest.raises(TrackingError, match=r"redirected .*to https://mlflow\.example\.com"):
        registry.set_alias("churn", CHAMPION, "4")

    fake.answers[:] = []
    fake.answer(200, b"<html>a login page</html>", **{"Content-Type": "text/html"})
    with pytest.raises(TrackingError, match=r"is .* an MLflow tracking server"):
        registry.get_version("churn", "4")


def test_an_unreachable_server_fails_after_the_retries_saying_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.mlflow_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    registry = RestRegistry.from_env(url)
    assert registry is not None
    with pytest.raises(TrackingError) as down:
        registry.get_alias("churn", CHAMPION)
    message = str(down.value)
    assert message.startswith(
        f"could not read alias 'champion' of 'churn': cannot reach the MLflow tracking server "
        f"at {url} (GET {url}/api/2.0/mlflow/registered-models/alias): "
    )
    assert "Connection refused" in message and "(3 attempts)" in message


# -- TLS: certificates made for the test ------------------------------------------------------
@dataclass(frozen=True)
class Certs:
    ca: Path
    server: Path  # certificate + key
    client: Path  # certificate + key, signed by the CA


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    root = tmp_path_factory.mktemp("certs")
    now = dt.datetime.now(dt.UTC)

    def make(
        name: str, issuer: tuple[x509.Name, Any] | None, *, is_ca: bool = False
    ) -> tuple[x509.Certificate, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer[0] if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        if issuer is not None:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key())
            builder = builder.add_extension(san, critical=False).add_extension(aki, critical=False)
        else:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key

    def pem(cert: x509.Certificate, key: Any = None) -> bytes:
        out = cert.public_bytes(serialization.Encoding.PEM)
        if key is not None:
            out += key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        return out

    ca_cert, ca_key = make("automl test CA", None, is_ca=True)
    issuer = (ca_cert.subject, ca_key)
    server_cert, server_key = make("127.0.0.1", issuer)
    client_cert, client_key = make("automl client", issuer)
    found = Certs(root / "ca.pem", root / "server.pem", root / "client.pem")
    found.ca.write_bytes(pem(ca_cert))
    found.server.write_bytes(pem(server_cert, server_key))
    found.client.write_bytes(pem(client_cert, client_key))
    return found


def _tls_server(certs: Certs, *, client_cert: bool) -> Callable[[], Iterator[Recorder]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server)
    if client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certs.ca)
    return lambda: _serve(context)


def test_https_trusts_what_mlflows_settings_say(
    certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    for fake in _tls_server(certs, client_cert=False)():
        fake.answer(200, VERSION)
        registry = RestRegistry.from_env(fake.url)
        assert registry is not None
        with pytest.raises(TrackingError, match="TLS certificate is not trusted") as untrusted:
            registry.get_alias("churn", CHAMPION)
        assert "MLFLOW_TRACKING_SERVER_CERT_PATH" in str(untrusted.value)
        assert fake.received == []  # refused during the handshake, and not retried

        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certs.client))  # not its CA
        with pytest.raises(TrackingError, match="TLS certificate is not trusted"):
            RestRegistry.from_env(fake.url).get_alias("churn", CHAMPION)  # type: ignore[union-attr]
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certs.ca))
        registry = RestRegistry.from_env(fake.url)
        assert registry is not None and registry.get_alias("churn", CHAMPION) is not None

        monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
        with pytest.raises(TrackingError, match="both set; set only one"):
            RestRegistry.from_env(fake.url)
        monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
        registry = RestRegistry.from_env(fake.url)
        assert registry is not None and registry.get_alias("churn", CHAMPION) is not None
        assert len(fake.received) == 2


def test_https_sends_the_client_certificate_when_asked(
    certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certs.ca))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    for fake in _tls_server(certs, client_cert=True)():
        fake.answer(200, VERSION)
        registry = RestRegistry.from_env(fake.url)
        assert registry is not None
        with pytest.raises(TrackingError, match="cannot reach the MLflow tracking server") as no:
            registry.get_alias("churn", CHAMPION)  # the server wants a certificate
        assert "TLS failed" in str(no.value) and "MLFLOW_TRACKING_CLIENT_CERT_PATH" in str(no.value)
        monkeypatch.setenv("MLFLOW_TRACKING_CLIENT_CERT_PATH", str(certs.client))
        registry = RestRegistry.from_env(fake.url)
        assert registry is not None and registry.get_alias("churn", CHAMPION) is not None
        monkeypatch.setenv("MLFLOW_TRACKING_CLIENT_CERT_PATH", str(certs.ca))  # no key in it
        with pytest.raises(TrackingError, match="cannot load the client certificate"):
            RestRegistry.from_env(fake.url).get_alias("churn", CHAMPION)  # type: ignore[union-attr]


# -- when MLflow's client is needed, and bad settings ----------------------------------------
def test_uses_mlflows_client_where_it_does_more(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = "http://mlflow.internal:5000"
    assert needs_mlflow_client(server) is None
    assert needs_mlflow_client("https://mlflow.internal/prefix") is None
    assert "sqlite" in str(needs_mlflow_client("sqlite:///tmp/mlflow.db"))
    assert needs_mlflow_client("file:///tmp/mlruns") is not None
    assert needs_mlflow_client("databricks") is not None

    local = load_spec(write_spec_file(tmp_path, "local"))
    remote = load_spec(write_spec_file(tmp_path, "remote", mlflow={"tracking_uri": server}))
    assert isinstance(make_registry(local), MlflowTracker)
    assert isinstance(make_registry(remote), RestRegistry)

    for name, value in (
        ("MLFLOW_TRACKING_AUTH", "my_auth_plugin"),
        ("MLFLOW_TRACKING_AWS_SIGV4", "true"),
        ("HTTP_PROXY", "http://proxy.internal:3128"),
    ):
        monkeypatch.setenv(name, value)
        assert name.split("_")[-1].lower() in str(needs_mlflow_client(server)).lower()
        assert isinstance(make_registry(remote), MlflowTracker)
        monkeypatch.delenv(name)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "mlflow.internal")
    assert isinstance(make_registry(remote), RestRegistry)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "soon", "='soon': expected a number"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "0", "='0': allowed > 0"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2.5", "='2.5': expected a whole number"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "50", "='50': allowed 0 to 10"),
        ("MLFLOW_TRACKING_INSECURE_TLS", "maybe", "='maybe': expected true or false"),
    ],
)
def test_a_bad_setting_is_named_with_its_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(TrackingError, match=re.escape(name + message)):
        RestRegistry.from_env("http://127.0.0.1:5000")
    with pytest.raises(TrackingError, match=r"RestSettings.max_retries: allowed 0 to 10, got -1"):
        RestSettings(max_retries=-1)
