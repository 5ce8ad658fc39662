"""The model registry's aliases over MLflow's REST API, with the standard library only.

``automl promote`` and ``automl rollback`` read two or three aliases, tag a version and move
two or three aliases. Through MLflow's client each starts with ``import mlflow``, about 1.2 s on
a quiet machine: more than such a command may take in all (1 s). Against a tracking server the
same calls are five endpoints of MLflow's ``ModelRegistryService``, spoken here with
``http.client`` and ``json`` over one kept-alive connection:

=======  ==============================================  ========================================
method   path                                            arguments (GET: query; else JSON body)
=======  ==============================================  ========================================
GET      ``/api/2.0/mlflow/registered-models/alias``     name, alias: ``{"model_version": {...}}``
POST     ``/api/2.0/mlflow/registered-models/alias``     name, alias, version
DELETE   ``/api/2.0/mlflow/registered-models/alias``     name, alias
GET      ``/api/2.0/mlflow/model-versions/get``          name, version: ``{"model_version": ...}``
POST     ``/api/2.0/mlflow/model-versions/set-tag``      name, version, key, value
=======  ==============================================  ========================================

A refusal is an HTTP status >= 400 with ``{"error_code": ..., "message": ...}``; the messages
here are MLflow's client's (``RESOURCE_DOES_NOT_EXIST: Model Version (...) not found``).

:meth:`RestSettings.from_env` reads the environment MLflow's client reads (token or basic
auth, TLS, timeout, retries); where that client would do something this one does not (an auth
plugin, AWS SigV4 signing, request-header plugins, a proxy), :meth:`RestRegistry.from_env`
returns None and the caller uses :class:`~automl.tracking.MlflowTracker` instead.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import email.utils
import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl import __version__
from automl.errors import TrackingError
from automl.tracking._mlflow import HTTP_DEFAULTS, ModelVersionInfo

log = logging.getLogger(__name__)

API_PREFIX = "/api/2.0/mlflow"
#: Error codes that mean "no such alias" to :meth:`MlflowTracker.get_alias` (a tracking server
#: answers INVALID_PARAMETER_VALUE for a missing alias, RESOURCE_DOES_NOT_EXIST for a missing
#: model), read the same way here.
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})
#: Answers MLflow's client retries (``mlflow.utils.request_utils``): timeout, rate limit, 5xx.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Answers whose ``Retry-After`` header MLflow's client (urllib3) waits for instead of backing off.
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})
#: MLflow's bounds on its retry settings; a longer wait than this is cut (urllib3's cap).
MAX_RETRIES_LIMIT = 10
MAX_BACKOFF_FACTOR_S = 120.0
MAX_WAIT_S = 120.0
_USER_AGENT = f"automl/{__version__} (MLflow REST)"
_TRUE, _FALSE = ("true", "1"), ("false", "0", "")


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise TrackingError(f"{name}={os.environ[name]!r}: expected true or false (or 1 / 0)")


def _env_number(name: str, default: float, *, whole: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise TrackingError(f"{name}={raw!r}: expected {kind}") from None


def _credentials_file() -> tuple[str | None, str | None]:
    """Username and password from ``~/.mlflow/credentials`` (section ``[mlflow]``), as MLflow."""
    path = Path("~/.mlflow/credentials").expanduser()
    if not path.is_file():
        return None, None
    config = configparser.ConfigParser()
    try:
        config.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise TrackingError(f"cannot read MLflow credentials {path}: {exc}") from exc
    if "mlflow" not in config:
        return None, None
    section = config["mlflow"]
    return section.get("mlflow_tracking_username"), section.get("mlflow_tracking_password")


@dataclass(frozen=True)
class RestSettings:
    """How :class:`RestRegistry` reaches the server; :meth:`from_env` reads them as MLflow.

    Attributes:
        token: Sent as ``Authorization: Bearer`` (``MLFLOW_TRACKING_TOKEN``).
        username: With ``password``, sent as basic auth, which then wins over the token as in
            MLflow (``MLFLOW_TRACKING_USERNAME``, else ``~/.mlflow/credentials``).
        password: ``MLFLOW_TRACKING_PASSWORD``, else ``~/.mlflow/credentials``.
        verify: How an ``https://`` server's certificate is checked: True against the CA
            bundle MLflow's client (requests) uses (``REQUESTS_CA_BUNDLE``, else certifi's,
            else the system's); a path: that CA bundle or folder
            (``MLFLOW_TRACKING_SERVER_CERT_PATH``); False: not at all
            (``MLFLOW_TRACKING_INSECURE_TLS=true``; for tests only).
        client_cert_path: PEM file with this client's certificate and key, for servers that
            ask for one (``MLFLOW_TRACKING_CLIENT_CERT_PATH``).
        timeout_s: Connect and read timeout of one attempt, > 0
            (``MLFLOW_HTTP_REQUEST_TIMEOUT``; automl's default 10).
        max_retries: Retries after a connection error, a timeout or a 408, 429 or 5xx answer,
            0 to 10 (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``; automl's default 2).
        backoff_factor_s: Retry ``n`` waits ``backoff_factor_s * 2 ** (n - 1)`` seconds (the
            first at once), 0 to 120 (``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``; automl's default 1).
        backoff_jitter_s: Up to this many seconds added at random to each wait, >= 0
            (``MLFLOW_HTTP_REQUEST_BACKOFF_JITTER``; default 1).
        respect_retry_after: Wait what a 413, 429 or 503 answer's ``Retry-After`` says
            instead (``MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER``; default true).
        workspace: MLflow workspace, sent as ``X-MLFLOW-WORKSPACE`` (``MLFLOW_WORKSPACE``).
    """

    token: str | None = None
    username: str | None = None
    password: str | None = None
    verify: bool | str = True
    client_cert_path: str | None = None
    timeout_s: float = float(HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    max_retries: int = int(HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    backoff_factor_s: float = float(HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    backoff_jitter_s: float = 1.0
    respect_retry_after: bool = True
    workspace: str | None = None

    def __post_init__(self) -> None:
        for field, (_, is_allowed, allowed) in _LIMITS.items():
            value = getattr(self, field)
            if not is_allowed(value):
                raise TrackingError(f"RestSettings.{field}: allowed {allowed}, got {value!r}")

    @classmethod
    def from_env(cls) -> RestSettings:
        """The settings MLflow's client would use now, from the environment.

        Raises:
            TrackingError: A setting cannot be used (naming the variable and its value), or
                both ``MLFLOW_TRACKING_INSECURE_TLS`` and ``MLFLOW_TRACKING_SERVER_CERT_PATH``
                are set (MLflow refuses that too).
        """
        env = os.environ
        insecure = _flag("MLFLOW_TRACKING_INSECURE_TLS")
        server_cert = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
        if insecure and server_cert:
            raise TrackingError(
                "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set; "
                "set only one (the CA bundle, unless you mean to skip the certificate check)"
            )
        username = env.get("MLFLOW_TRACKING_USERNAME") or None
        password = env.get("MLFLOW_TRACKING_PASSWORD") or None
        if not (username and password):
            file_user, file_password = _credentials_file()
            username, password = username or file_user, password or file_password
        numbers: dict[str, Any] = {}
        for field, (var, is_allowed, allowed) in _LIMITS.items():
            default = getattr(cls, field)
            value = _env_number(var, default, whole=isinstance(default, int))
            if not is_allowed(value):
                raise TrackingError(f"{var}={env[var]!r}: allowed {allowed}")
            numbers[field] = value
        return cls(
            token=env.get("MLFLOW_TRACKING_TOKEN") or None,
            username=username,
            password=password,
            verify=server_cert or not insecure,
            client_cert_path=env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
            respect_retry_after=(
                "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER" not in env
                or _flag("MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER")
            ),
            workspace=(env.get("MLFLOW_WORKSPACE") or "").strip() or None,
            **numbers,
        )


#: The numeric settings: the MLflow variable each is read from, and what it allows.
_LIMITS: dict[str, tuple[str, Callable[[float], bool], str]] = {
    "timeout_s": ("MLFLOW_HTTP_REQUEST_TIMEOUT", lambda v: v > 0, "> 0"),
    "max_retries": (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        lambda v: 0 <= v <= MAX_RETRIES_LIMIT,
        f"0 to {MAX_RETRIES_LIMIT}",
    ),
    "backoff_factor_s": (
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        lambda v: 0 <= v <= MAX_BACKOFF_FACTOR_S,
        f"0 to {MAX_BACKOFF_FACTOR_S:g}",
    ),
    "backoff_jitter_s": ("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", lambda v: v >= 0, ">= 0"),
}


def needs_mlflow_client(tracking_uri: str) -> str | None:
    """Why ``tracking_uri`` needs MLflow's own client now, or None when REST will do.

    MLflow's client is needed for every URI that is not ``http(s)://`` (a SQLite file, a
    folder, Databricks: the store is embedded in the client), and for servers reached through
    what only that client does: an auth plugin (``MLFLOW_TRACKING_AUTH``), AWS SigV4 signing
    (``MLFLOW_TRACKING_AWS_SIGV4``), installed request-header plugins, or a proxy
    (``HTTP(S)_PROXY`` / ``ALL_PROXY`` without a ``NO_PROXY`` match).
    """
    parts = urllib.parse.urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{parts.scheme or 'a local'} tracking URI (its store lives in MLflow's client)"
    if os.environ.get("MLFLOW_TRACKING_AUTH"):
        return "MLFLOW_TRACKING_AUTH names an auth plugin"
    if os.environ.get("MLFLOW_TRACKING_AWS_SIGV4", "").strip().lower() in _TRUE:
        return "MLFLOW_TRACKING_AWS_SIGV4 asks for signed requests"
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        return f"requests go through the proxy {proxy}"
    from importlib.metadata import entry_points

    plugins = entry_points(group="mlflow.request_header_provider")
    if plugins:
        return f"request-header plugins are installed ({', '.join(p.name for p in plugins)})"
    return None


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    def text(self, limit: int = 300) -> str:
        text = self.body.decode("utf-8", "replace").strip()
        return text if len(text) <= limit else text[:limit] + "..."


class _CallError(TrackingError):
    """A call the server refused (``error_code`` as MLflow names it, ``HTTP <status>`` for an
    answer without one) or that got no answer (``error_code`` None)."""

    def __init__(self, message: str, *, error_code: str | None, status: int | None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.status = status


def _version_info(model_name: str, body: Mapping[str, Any], what: str) -> ModelVersionInfo:
    mv = body.get("model_version")
    if not isinstance(mv, Mapping) or "version" not in mv:
        raise TrackingError(f"{what}: the answer has no model version: {str(body)[:300]}")
    return ModelVersionInfo(
        name=model_name,
        version=str(mv["version"]),
        run_id=mv.get("run_id"),
        source=str(mv.get("source", "")),
        tags={str(t["key"]): str(t.get("value", "")) for t in mv.get("tags") or []},
    )


class RestRegistry:
    """:class:`~automl.tracking.AliasRegistry` over a tracking server's REST API, no MLflow.

    The five calls an alias move needs (see the module docstring), one kept-alive connection
    per registry (not shared between threads: calls hold a lock), retries as MLflow's client
    retries them. ``automl promote`` and ``automl rollback`` use it for ``http(s)://`` tracking
    URIs (:meth:`from_env`); everything else in automl goes through ``MlflowTracker``.

    Args:
        tracking_uri: The server, ``http://`` or ``https://``; a path prefix (a server behind
            ``/mlflow``) and credentials in the address (``https://user:pw@host``, which then
            win, as in MLflow's client) are kept.
        settings: Auth, TLS, timeout and retries (default: :class:`RestSettings` defaults,
            which are automl's; :meth:`from_env` reads MLflow's environment).

    Raises:
        TrackingError: ``tracking_uri`` is not an ``http(s)://`` address. Every call raises it
            when the server refuses (with MLflow's error code and message) or cannot be
            reached after the retries (saying why: refused, timed out, TLS).

    Example:
        >>> registry = RestRegistry("https://mlflow.example.com/mlflow")  # nothing sent yet
        >>> registry.address
        'https://mlflow.example.com/mlflow'
    """

    def __init__(self, tracking_uri: str, settings: RestSettings | None = None) -> None:
        parts = urllib.parse.urlsplit(tracking_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TrackingError(
                f"RestRegistry needs an http:// or https:// tracking URI, got {tracking_uri!r}"
            )
        self.settings = settings or RestSettings()
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port or (443 if self._https else 80)
        except ValueError as exc:
            raise TrackingError(f"tracking URI {tracking_uri!r}: {exc}") from None
        netloc = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port:
            netloc += f":{parts.port}"
        self._base_path = parts.path.rstrip("/")
        #: The server's address as messages show it (without credentials).
        self.address = f"{parts.scheme}://{netloc}{self._base_path}"
        self._authorization = self._auth_header(parts)
        self._conn: http.client.HTTPConnection | None = None
        self._conn_uses = 0
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, tracking_uri: str) -> RestRegistry | None:
        """A registry for ``tracking_uri`` set up from the environment as MLflow's client
        would be, or None when that needs MLflow's client (:func:`needs_mlflow_client`).

        Raises:
            TrackingError: An MLflow setting in the environment is invalid.
        """
        reason = needs_mlflow_client(tracking_uri)
        if reason is not None:
            log.debug("registry of %s through MLflow's client: %s", tracking_uri, reason)
            return None
        return cls(tracking_uri, RestSettings.from_env())

    def _auth_header(self, parts: urllib.parse.SplitResult) -> str | None:
        s = self.settings
        username, password = s.username, s.password
        if parts.username is not None:  # credentials in the URI win, as with requests
            username = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
        if username and password:
            pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            return f"Basic {pair}"
        if s.token:
            return f"Bearer {s.token}"
        return None

    # -- the registry ----------------------------------------------------------------------
    def get_alias(self, model_name: str, alias: str) -> ModelVersionInfo | None:
        """The version ``alias`` points at, or None (also when the model is not registered).

        Raises:
            TrackingError: The alias could not be read (any other refusal, no answer).
        """
        what = f"could not read alias {alias!r} of {model_name!r}"
        try:
            found = self._call("GET", "registered-models/alias", name=model_name, alias=alias)
        except _CallError as exc:
            if exc.error_code in NOT_FOUND_CODES:
                return None
            raise TrackingError(f"{what}: {exc}") from exc
        return _version_info(model_name, found, what)

    def get_version(self, model_name: str, version: str) -> ModelVersionInfo:
        """A registered version by number.

        Raises:
            TrackingError: No such version (``RESOURCE_DOES_NOT_EXIST: ...``), or no answer.
        """
        found = self._call("GET", "model-versions/get", name=model_name, version=version)
        return _version_info(model_name, found, f"version {version} of {model_name!r}")

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        self._call("POST", "registered-models/alias", name=model_name, alias=alias, version=version)

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove ``alias`` if it exists (a missing alias or model is no error).

        Unlike ``MlflowTracker.delete_alias``, which swallows every MLflow error, a server that
        cannot be reached raises: a delete that did not happen must not look done.
        """
        try:
            self._call("DELETE", "registered-models/alias", name=model_name, alias=alias)
        except _CallError as exc:
            if exc.error_code not in NOT_FOUND_CODES:
                raise

    def set_version_tags(self, model_name: str, version: str, tags: Mapping[str, Any]) -> None:
        """Set tags on a model version (one call per tag, as MLflow's client)."""
        for key, value in tags.items():
            self._call(
                "POST",
                "model-versions/set-tag",
                name=model_name,
                version=version,
                key=key,
                value=str(value),
            )

    def close(self) -> None:
        """Close the kept-alive connection (the next call opens a new one)."""
        with self._lock:
            self._close()

    # -- HTTP ------------------------------------------------------------------------------
    def _call(self, method: str, endpoint: str, **args: str) -> dict[str, Any]:
        """One REST call: the parsed JSON answer, or :class:`_CallError`."""
        path = f"{self._base_path}{API_PREFIX}/{endpoint}"
        body = None
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        if method == "GET":
            path += "?" + urllib.parse.urlencode(args)
        else:
            body = json.dumps(args).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._authorization:
            headers["Authorization"] = self._authorization
        if self.settings.workspace:
            headers["X-MLFLOW-WORKSPACE"] = self.settings.workspace
        where = f"{method} {self.address}{API_PREFIX}/{endpoint}"
        with self._lock:
            answer, attempts = self._send(method, path, body, headers, where)
        if answer.status == 200:
            try:
                parsed = json.loads(answer.body) if answer.body.strip() else {}
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise _CallError(
                    f"{where} answered with something that is not MLflow's JSON "
                    f"({answer.text(120)!r}); is {self.address} an MLflow tracking server?",
                    error_code="HTTP 200",
                    status=200,
                )
            return parsed
        raise self._refusal(answer, where, attempts)

    def _refusal(self, answer: _Answer, where: str, attempts: int) -> _CallError:
        """The error for a non-200 answer: MLflow's ``CODE: message`` when it sent one."""
        after = f" (after {attempts} attempts)" if attempts > 1 else ""
        hint = ""
        if answer.status in (401, 403):
            hint = (
                "; check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME / "
                "MLFLOW_TRACKING_PASSWORD"
            )
        if 300 <= answer.status < 400:
            location = answer.headers.get("location", "?")
            return _CallError(
                f"{where} was redirected (HTTP {answer.status}) to {location}; set the "
                "pipeline's mlflow.tracking_uri to the server's own address",
                error_code=f"HTTP {answer.status}",
                status=answer.status,
            )
        try:
            error = json.loads(answer.body)
        except ValueError:
            error = None
        if isinstance(error, dict):
            code = str(error.get("error_code") or "INTERNAL_ERROR")
            message = error.get("message", f"Response: {error}")
            return _CallError(
                f"{code}: {message}{after}{hint}", error_code=code, status=answer.status
            )
        return _CallError(
            f"{where} answered HTTP {answer.status} {answer.reason}{after}: "
            f"{answer.text()!r}{hint}",
            error_code=f"HTTP {answer.status}",
            status=answer.status,
        )

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], where: str
    ) -> tuple[_Answer, int]:
        """Send with MLflow's retry policy; return the last answer and the attempts made."""
        s = self.settings
        failures = 0
        reconnected = False
        while True:
            reused = self._conn is not None and self._conn_uses > 0
            try:
                answer = self._send_once(method, path, body, headers)
            except ssl.SSLCertVerificationError as exc:
                self._close()
                raise _CallError(
                    f"{where}: the server's TLS certificate is not trusted ({exc.verify_message});"
                    " set MLFLOW_TRACKING_SERVER_CERT_PATH to the CA bundle that signed it",
                    error_code=None,
                    status=None,
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                stale = isinstance(
                    exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
                )
                if reused and stale and not reconnected:
                    reconnected = True  # the server closed an idle kept-alive connection
                    continue
                failures += 1
                if failures > s.max_retries:
                    raise self._unreachable(exc, where, failures) from exc
                time.sleep(self._backoff(failures))
                continue
            if answer.status in RETRY_STATUSES and failures < s.max_retries:
                failures += 1
                time.sleep(self._wait(failures, answer))
                continue
            return answer, failures + 1

    def _unreachable(self, exc: BaseException, where: str, attempts: int) -> _CallError:
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(exc, TimeoutError):
            why = (
                f"no answer within {self.settings.timeout_s:g} s ({tries}); "
                "raise MLFLOW_HTTP_REQUEST_TIMEOUT if the server is just slow"
            )
        elif isinstance(exc, ssl.SSLError):
            why = (
                f"TLS failed: {exc} ({tries}); if the server asks for a client certificate, "
                "set MLFLOW_TRACKING_CLIENT_CERT_PATH"
            )
        else:
            why = (
                f"{exc or type(exc).__name__} ({tries}); check that the tracking server "
                "is running and reachable from this host"
            )
        return _CallError(
            f"cannot reach the MLflow tracking server at {self.address} ({where}): {why}",
            error_code=None,
            status=None,
        )

    def _backoff(self, failures: int) -> float:
        """urllib3's backoff, as MLflow's client configures it: the first retry at once."""
        if failures <= 1:
            return 0.0
        s = self.settings
        wait = s.backoff_factor_s * 2.0 ** (failures - 1) + random.random() * s.backoff_jitter_s
        return min(MAX_WAIT_S, float(wait))

    def _wait(self, failures: int, answer: _Answer) -> float:
        """The wait before retrying ``answer``: its ``Retry-After`` where MLflow's client
        honours it (seconds or an HTTP date), else the backoff."""
        retry_after = answer.headers.get("retry-after", "").strip()
        honoured = self.settings.respect_retry_after and answer.status in RETRY_AFTER_STATUSES
        if retry_after and honoured:
            seconds: float | None = None
            if retry_after.isdigit():
                seconds = float(retry_after)
            else:
                with contextlib.suppress(TypeError, ValueError):
                    when = email.utils.parsedate_to_datetime(retry_after)
                    seconds = when.timestamp() - time.time()
            if seconds is not None:
                return min(MAX_WAIT_S, max(0.0, seconds))
        return self._backoff(failures)

    def _send_once(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> _Answer:
        conn = self._connection()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        self._conn_uses += 1
        if response.will_close:
            self._close()
        found = {k.lower(): v for k, v in response.getheaders()}
        return _Answer(response.status, response.reason, found, data)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            timeout = self.settings.timeout_s
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=self._tls()
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._conn_uses = 0
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _tls(self) -> ssl.SSLContext:
        """The TLS context MLflow's client (requests) would use with these settings."""
        s = self.settings
        try:
            if s.verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif isinstance(s.verify, str):
                where = Path(s.verify)
                context = ssl.create_default_context(
                    cafile=None if where.is_dir() else str(where),
                    capath=str(where) if where.is_dir() else None,
                )
            else:
                context = ssl.create_default_context(cafile=_default_ca_bundle())
        except (OSError, ssl.SSLError) as exc:
            raise TrackingError(
                f"cannot load the CA bundle {s.verify!r} (MLFLOW_TRACKING_SERVER_CERT_PATH or "
                f"REQUESTS_CA_BUNDLE): {exc}"
            ) from exc
        if s.client_cert_path:
            try:
                context.load_cert_chain(s.client_cert_path)
            except (OSError, ssl.SSLError) as exc:
                raise TrackingError(
                    f"cannot load the client certificate {s.client_cert_path!r} "
                    f"(MLFLOW_TRACKING_CLIENT_CERT_PATH; one PEM file with certificate and "
                    f"key): {exc}"
                ) from exc
        return context


def _default_ca_bundle() -> str | None:
    """The CA bundle requests verifies against: ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``,
    else certifi's; None (the system's) without certifi."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())
