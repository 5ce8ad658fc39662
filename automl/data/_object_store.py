"""An object-store prefix as a data source: each object read and recorded exactly once.

Any fsspec filesystem works: ``s3://`` (AWS, MinIO, any S3-compatible store, through s3fs: the
``s3`` extra), ``gs://`` (gcsfs), ``file://``. One pass lists the prefix, leaves out the objects
already recorded by key and version (the ETag or version id the store reports; size and
modification time where it reports neither), and reads each new one once: its bytes are hashed
and validated as a landed file's are (:mod:`automl.data._delivery`), and the object is recorded
in ``automl_source_objects`` with its key, version, content hash and outcome.

Rewritten objects:
    An object rewritten under the same key has a new version, so it is read again. New bytes
    are a new batch (the earlier version's rows stay accepted); the same bytes are recorded as
    seen and change nothing. Bytes that another key delivered before are a ``duplicate``: not
    ingested, the reason recorded.

The store is never written to unless the spec asks: with ``archive_prefix`` an accepted object
is moved there, with ``quarantine_prefix`` a rejected or duplicate one is moved there beside a
``<key>.reason.txt``; without them objects stay where they are and their reasons are in the
ledger (``automl status``). Credentials come only from the environment or the provider's chain.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa

from automl.config import ObjectStoreSource
from automl.data._delivery import (
    Delivery,
    LabelDeliverer,
    Outcome,
    ingest_batch_delivery,
    make_ingester,
)
from automl.data._ingest import IngestResult, RejectedFile
from automl.data._label_files import LabelIngestResult
from automl.data._labels import LabelFileRecord, LabelPolicy, LabelStore
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger, BatchRecord
from automl.data._retry import call_with_retries
from automl.data._schema import ValidationRules
from automl.errors import ConfigError, DataSourceError
from automl.state import insert_once, open_state, source_objects_table, utcnow
from automl.vocab import Task

log = logging.getLogger(__name__)

Stream = Literal["batches", "labels"]
_S3 = ("s3", "s3a")


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def explain_store_error(exc: BaseException) -> str | None:
    """The message of an object-store failure retrying cannot fix, or None (transient)."""
    names = _names(exc)
    if names & {"NoCredentialsError", "PartialCredentialsError", "NoAuthTokenError"}:
        return (
            f"no credentials found ({exc}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE, or give the host a role) in the service's environment; the spec "
            "never holds credentials"
        )
    if isinstance(exc, PermissionError):
        return (
            f"the store refused the credentials ({exc}); check AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in the service's environment and that they may list and "
            "read this prefix"
        )
    if isinstance(exc, FileNotFoundError):
        return f"not found ({exc}); check the bucket name in the source's url"
    if isinstance(exc, ImportError | ValueError | TypeError):
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass(frozen=True)
class StoredObject:
    """One object under the prefix as listed."""

    path: str  # bucket/prefix/key, without the scheme
    key: str  # relative to the prefix
    version: str
    modified: float
    size: int


def _version(info: dict[str, Any]) -> str:
    for field in ("VersionId", "ETag", "etag", "generation", "md5Hash"):
        value = info.get(field)
        if value:
            return str(value)
    return f"{info.get('size')}:{_modified(info)}"


def _modified(info: dict[str, Any]) -> float:
    for field in ("LastModified", "mtime", "updated", "last_modified", "created"):
        value = info.get(field)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return 0.0


class ObjectStore:
    """An fsspec filesystem at a prefix, every call retried on transient errors.

    Args:
        source: The spec's object-store source.

    Raises:
        ConfigError: The scheme has no filesystem installed (e.g. ``s3://`` without s3fs).
    """

    def __init__(self, source: ObjectStoreSource) -> None:
        import fsspec

        self.source = source
        self.url = source.url
        scheme = urlsplit(source.url).scheme
        options: dict[str, Any] = dict(source.storage_options)
        options["skip_instance_cache"] = True  # a fresh listing and session every pass
        if scheme in _S3:
            if source.endpoint_url:
                options.setdefault("endpoint_url", source.endpoint_url)
            # One retry policy, the source's (``retries`` with backoff): s3fs and botocore
            # make one attempt per call, with short connect timeouts.
            options.setdefault(
                "config_kwargs",
                {"retries": {"total_max_attempts": 1}, "connect_timeout": 5, "read_timeout": 60},
            )
        elif source.endpoint_url:
            options.setdefault("endpoint_url", source.endpoint_url)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(source.url, **options)
        except ImportError as exc:
            extra = " (pip install 'automl[s3]')" if scheme in _S3 else ""
            raise ConfigError(
                f"data.source.url {source.url!r}: no filesystem for {scheme}:// is installed"
                f"{extra}: {exc}"
            ) from exc
        protocols = self.fs.protocol
        self.is_local = "file" in (protocols if isinstance(protocols, tuple) else (protocols,))
        if scheme in _S3 and hasattr(self.fs, "retries"):
            self.fs.retries = 1  # s3fs's own loop (a class attribute, not an argument)
        self.root = self.root.rstrip("/")
        self._skip = [
            self.fs._strip_protocol(p).rstrip("/") + "/"
            for p in (source.archive_prefix, source.quarantine_prefix)
            if p
        ]

    def _call(self, what: str, call: Any) -> Any:
        return call_with_retries(
            call,
            what=f"{what} ({self.url})",
            attempts=self.source.retries,
            explain=explain_store_error,
        )

    def list(self, patterns: tuple[str, ...]) -> list[StoredObject]:
        """Objects under the prefix matching a pattern, oldest first.

        Raises:
            DataSourceError: The listing failed (after retries for transient errors).
        """

        def find() -> dict[str, dict[str, Any]]:
            self.fs.invalidate_cache()
            found: dict[str, dict[str, Any]] = self.fs.find(self.root, detail=True)
            return found

        listing = self._call("listing", find)
        objects: list[StoredObject] = []
        for path, info in listing.items():
            if info.get("type", "file") != "file":
                continue
            if any(path.startswith(skip) for skip in self._skip):
                continue
            key = path[len(self.root) :].lstrip("/") if path.startswith(self.root) else path
            base = key.rsplit("/", 1)[-1]
            if base.startswith(".") or not any(fnmatch.fnmatchcase(key, p) for p in patterns):
                continue
            size = int(info.get("size") or info.get("Size") or 0)
            objects.append(StoredObject(path, key, _version(info), _modified(info), size))
        return sorted(objects, key=lambda o: (o.modified, o.key))

    def read(self, obj: StoredObject) -> bytes:
        """The object's bytes (retried on transient errors)."""
        data: bytes = self._call(f"reading {obj.key}", lambda: self.fs.cat_file(obj.path))
        return data

    def move(self, obj: StoredObject, prefix: str, reason: str | None = None) -> str:
        """Copy an object under ``prefix`` (with a reason beside it), then delete it."""
        dest_root = self.fs._strip_protocol(prefix).rstrip("/")
        dest = f"{dest_root}/{obj.key}"
        self._call(f"copying {obj.key}", lambda: self.fs.copy(obj.path, dest))
        if reason is not None:
            text = reason.encode()
            self._call(
                f"writing {obj.key}.reason.txt",
                lambda: self.fs.pipe_file(f"{dest}.reason.txt", text),
            )
        self._call(f"deleting {obj.key}", lambda: self.fs.rm_file(obj.path))
        scheme = urlsplit(prefix).scheme
        return f"{scheme}://{dest}"


class SeenObjects:
    """The objects of a pipeline's source already read, by key and version."""

    def __init__(self, url: str, pipeline: str, stream: Stream) -> None:
        self._engine = open_state(url)
        self.pipeline = pipeline
        self.stream = stream

    def keys(self) -> set[tuple[str, str]]:
        """(path, version) of every object recorded."""
        t = source_objects_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.object_key, t.c.object_version).where(
                    t.c.pipeline == self.pipeline, t.c.stream == self.stream
                )
            )
            return {(str(k), str(v)) for k, v in rows}

    def record(self, obj: StoredObject, outcome: Outcome) -> None:
        """Note an object read (once: recording it again keeps the first)."""
        insert_once(
            self._engine,
            source_objects_table,
            {
                "pipeline": self.pipeline,
                "stream": self.stream,
                "object_key": obj.path,
                "object_version": obj.version,
                "sha256": outcome.sha256,
                "status": outcome.status,
                "reason": outcome.reason,
                "record_id": outcome.record_id,
                "seen_at": utcnow(),
            },
        )

    def reasons(self) -> list[tuple[str, str, str]]:
        """(path, status, reason) of every object not accepted, oldest first."""
        t = source_objects_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.object_key, t.c.status, t.c.reason)
                .where(
                    t.c.pipeline == self.pipeline,
                    t.c.stream == self.stream,
                    t.c.status != "accepted",
                )
                .order_by(t.c.id)
            )
            return [(str(k), str(s), str(r or "")) for k, s, r in rows]


def _new_objects(
    store: ObjectStore, seen: SeenObjects, patterns: tuple[str, ...], settle_s: float = 0.0
) -> Iterator[StoredObject]:
    """Objects not recorded yet. On a local filesystem (``file://``) a file may still be
    being written, so one modified within ``settle_s`` waits for a later pass; an object
    store's PUT is atomic (an object is visible only once complete), so none waits there."""
    recorded = seen.keys()
    now = time.time()
    for obj in store.list(patterns):
        if (obj.path, obj.version) in recorded:
            continue
        if store.is_local and now - obj.modified < settle_s:
            log.info("%s: modified within %gs; left for the next pass", obj.path, settle_s)
            continue
        yield obj


def _aside(store: ObjectStore, obj: StoredObject, outcome: Outcome) -> str | None:
    """Archive or quarantine an object in the store, only where the spec asks for it.

    Returns:
        Where a rejected or duplicate object went, or None (left where it is).
    """
    source = store.source
    if outcome.status == "accepted" and source.archive_prefix:
        store.move(obj, source.archive_prefix)
    elif outcome.status != "accepted" and source.quarantine_prefix:
        text = f"object: {obj.path}\nsha256: {outcome.sha256}\nreason: {outcome.reason}\n"
        return store.move(obj, source.quarantine_prefix, text)
    return None


def _rejection(outcome: Outcome, where: str | None) -> RejectedFile | None:
    if outcome.rejected is None or not outcome.is_new:
        return None
    return replace(outcome.rejected, quarantine_path=where)


def ingest_object_store(
    *,
    pipeline: str,
    source: ObjectStoreSource,
    paths: PipelinePaths,
    ledger: BatchLedger,
    target: str,
    task: Task,
    rules: ValidationRules | None = None,
    labels: LabelPolicy | None = None,
    settle_s: float = 2.0,
    now: float | None = None,
) -> IngestResult:
    """Read every new object under the source's prefix once; store or reject each.

    Args:
        pipeline: Pipeline name.
        source: The spec's ``data.source`` (kind ``object_store``).
        paths: The pipeline's workspace folders (accepted batches are stored there).
        ledger: The workspace ledger.
        target: Label column.
        task: ``classification`` or ``regression``.
        rules: Validation options (default: :class:`ValidationRules`).
        labels: The late-label policy, as for :func:`~automl.data.ingest_landing`.
        settle_s: On a local filesystem (``file://``), how long a file must be unmodified
            before it is read (``data.settle_s``); object stores need none.
        now: Arrival time recorded for the rows (late labels), seconds since the epoch.

    Returns:
        Accepted batches, rejected objects (``quarantine_path`` None unless the spec has a
        ``quarantine_prefix``) and the keys of duplicates, oldest first.

    Raises:
        DataSourceError: The store could not be listed or an object read (after retries for
            transient errors; at once without credentials or with refused ones). Objects read
            before the failure stay recorded; the failed one and those after it are not.
    """
    store = ObjectStore(source)
    seen = SeenObjects(ledger.url, pipeline, "batches")
    ingester = make_ingester(
        pipeline=pipeline,
        paths=paths,
        ledger=ledger,
        target=target,
        task=task,
        rules=rules or ValidationRules(),
        labels=labels,
        now=time.time() if now is None else now,
    )
    accepted: list[BatchRecord] = []
    rejected: list[RejectedFile] = []
    duplicates: list[str] = []
    for obj in _new_objects(store, seen, source.patterns, settle_s):
        try:
            data = store.read(obj)
        except DataSourceError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                log.info("%s: gone before it was read (taken or deleted)", obj.path)
                continue
            raise
        outcome = ingest_batch_delivery(ingester, Delivery(obj.path, data))
        where = _aside(store, obj, outcome)
        seen.record(obj, outcome)
        rejection = _rejection(outcome, where)
        if outcome.status == "duplicate":
            log.warning("%s", outcome.reason)
            duplicates.append(obj.path)
        elif not outcome.is_new:
            log.info("%s: recorded before a restart (same bytes)", obj.path)
        elif outcome.accepted is not None:
            accepted.append(outcome.accepted)
        elif rejection is not None:
            rejected.append(rejection)
    return IngestResult(tuple(accepted), tuple(rejected), tuple(duplicates))


def ingest_object_labels(
    *,
    pipeline: str,
    source: ObjectStoreSource,
    paths: PipelinePaths,
    ledger: BatchLedger,
    policy: LabelPolicy,
    rules: ValidationRules | None = None,
    settle_s: float = 2.0,
    now: float | None = None,
) -> LabelIngestResult:
    """Read every new label object under the prefix once and join its labels to their rows.

    The label contract of :func:`~automl.data.ingest_labels` (columns ``<id_column>,
    <target>``), with objects recorded as :func:`ingest_object_store` records batches.
    Until the first batch is accepted, label objects wait (they are not read).

    Raises:
        DataSourceError: As :func:`ingest_object_store`.
    """
    now = time.time() if now is None else now
    store = ObjectStore(source)
    seen = SeenObjects(ledger.url, pipeline, "labels")
    new = list(_new_objects(store, seen, source.patterns, settle_s))
    schema = ledger.get_schema(pipeline)
    if schema is None:
        return LabelIngestResult((), (), (), tuple(o.path for o in new))
    label_store = LabelStore(ledger.url)
    deliverer = LabelDeliverer(
        pipeline, paths, label_store, schema, policy, rules or ValidationRules(), now
    )
    counts = deliverer.expire_waiting()
    accepted: list[LabelFileRecord] = []
    rejected: list[RejectedFile] = []
    duplicates: list[str] = []
    for obj in new:
        data = store.read(obj)
        outcome = deliverer.ingest(Delivery(obj.path, data))
        where = _aside(store, obj, outcome)
        seen.record(obj, outcome)
        rejection = _rejection(outcome, where)
        counts = counts + outcome.counts
        if outcome.status == "duplicate":
            duplicates.append(obj.path)
        elif outcome.label_file is not None:
            accepted.append(outcome.label_file)
        elif rejection is not None:
            rejected.append(rejection)
    return LabelIngestResult(tuple(accepted), tuple(rejected), tuple(duplicates), (), (), counts)
