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

Objects that change during a pass:
    An object deleted, or rewritten, between the listing and its read is skipped: one log line
    names it, nothing is recorded, and the rest of the pass goes on; if it comes back (or in
    its new version) the next pass reads it. On S3 the read is pinned to the listed bytes
    (``If-Match`` on the listed ETag), so what is recorded under a version is always that
    version's bytes; on other stores the version is checked again after the read.

Objects the store refuses to read:
    When the listing works but one object's read is refused (access denied: a bucket policy or
    a KMS key that does not cover it), that object is skipped and the rest of the pass goes on.
    It is noted in the ledger with status ``denied`` and the store's message (``automl
    status`` shows it with the quarantine reasons), and tried again every pass: once the
    permission is fixed it is read like any new object, and its note is replaced by the
    outcome. Nothing is moved (an object that cannot be read cannot be copied either). A
    refused *listing* still fails the pass (the credentials themselves are wrong).

The store is never written to unless the spec asks: with ``archive_prefix`` an accepted object
is moved there, with ``quarantine_prefix`` a rejected or duplicate one is moved there beside a
``<key>.reason.txt``; without them objects stay where they are and their reasons are in the
ledger (``automl status``). An object deleted or rewritten after it was read is not moved (the
copy is pinned to the read bytes on S3): it stays recorded as read. Credentials come only from
the environment or the provider's chain.
"""

from __future__ import annotations

import contextlib
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


#: Status of a ledger note on an object the store refused to read (tried again every pass).
DENIED = "denied"


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _is_precondition_failed(exc: BaseException) -> bool:
    """Whether the store answered 412: the object no longer has the ETag it was listed with."""
    for err in (exc, exc.__cause__):
        response = getattr(err, "response", None)
        if not isinstance(response, dict):
            continue
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "412") or status == 412:
            return True
    return False


class _UnreadableError(Exception):
    """One listed object cannot be read this pass; the message says why."""

    def __init__(self, message: str, *, is_denied: bool = False) -> None:
        super().__init__(message)
        self.is_denied = is_denied


def explain_store_error(exc: BaseException) -> str | None:
    """The message of an object-store failure retrying cannot fix, or None (transient)."""
    if _is_precondition_failed(exc):
        return f"changed since it was listed ({exc})"
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
    etag: str | None = None  # S3: reads and copies are pinned to these bytes


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
        self.is_s3 = scheme in _S3
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
            etag = info.get("ETag") if self.is_s3 else None
            objects.append(
                StoredObject(path, key, _version(info), _modified(info), size, etag or None)
            )
        return sorted(objects, key=lambda o: (o.modified, o.key))

    @contextlib.contextmanager
    def _pinned(self, obj: StoredObject, **conditions: str) -> Iterator[None]:
        """S3 calls made inside carry ``conditions`` (``IfMatch``: the listed ETag), so they
        act on the listed bytes of ``obj`` or fail with 412. s3fs passes its
        ``s3_additional_kwargs`` to every call whose operation takes them; this store's
        filesystem is its own (``skip_instance_cache``) and used by one pass at a time."""
        if obj.etag is None or not hasattr(self.fs, "s3_additional_kwargs"):
            yield
            return
        saved = self.fs.s3_additional_kwargs
        self.fs.s3_additional_kwargs = {**saved, **conditions}
        try:
            yield
        finally:
            self.fs.s3_additional_kwargs = saved

    def read(self, obj: StoredObject) -> bytes:
        """The listed version's bytes (retried on transient errors).

        Raises:
            DataSourceError: The store cannot be reached (after retries), or refuses the
                credentials.
            _UnreadableError: This object was deleted or rewritten since it was listed, or the
                store refuses to read it (``is_denied``) while it listed it.
        """
        try:
            with self._pinned(obj, IfMatch=obj.etag or ""):
                data: bytes = self._call(f"reading {obj.key}", lambda: self.fs.cat_file(obj.path))
        except DataSourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, FileNotFoundError):
                raise _UnreadableError("deleted since it was listed") from exc
            if cause is not None and _is_precondition_failed(cause):
                raise _UnreadableError("rewritten since it was listed (its ETag changed)") from exc
            if isinstance(cause, PermissionError):
                raise _UnreadableError(
                    f"access denied ({cause}); the listing works, so the credentials are valid: "
                    "check that they may read this object (s3:GetObject on its key, and the KMS "
                    "key if it is encrypted with one)",
                    is_denied=True,
                ) from exc
            raise
        if obj.etag is None:  # no pinned read: check that the bytes are the listed version's
            try:
                info = self._call(f"checking {obj.key}", lambda: self.fs.info(obj.path))
            except DataSourceError as exc:
                if isinstance(exc.__cause__, FileNotFoundError):
                    raise _UnreadableError("deleted while it was read") from exc
                raise
            if _version(info) != obj.version:
                raise _UnreadableError(
                    f"rewritten since it was listed (version {obj.version} is now {_version(info)})"
                )
        return data

    def move(self, obj: StoredObject, prefix: str, reason: str | None = None) -> str | None:
        """Copy an object under ``prefix`` (with a reason beside it), then delete it.

        Returns:
            Where it went, or None: it was deleted or rewritten since it was read (it is left
            alone; a rewritten object is read again next pass).
        """
        dest_root = self.fs._strip_protocol(prefix).rstrip("/")
        dest = f"{dest_root}/{obj.key}"
        try:
            with self._pinned(obj, CopySourceIfMatch=obj.etag or ""):
                self._call(f"copying {obj.key}", lambda: self.fs.copy(obj.path, dest))
        except DataSourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, FileNotFoundError) or (
                cause is not None and _is_precondition_failed(cause)
            ):
                log.info(
                    "%s: deleted or rewritten since it was read; not moved to %s", obj.path, prefix
                )
                return None
            raise
        if reason is not None:
            text = reason.encode()
            self._call(
                f"writing {obj.key}.reason.txt",
                lambda: self.fs.pipe_file(f"{dest}.reason.txt", text),
            )
        try:
            self._call(f"deleting {obj.key}", lambda: self.fs.rm_file(obj.path))
        except DataSourceError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):
                raise  # else someone else deleted it since the copy: as good
        scheme = urlsplit(prefix).scheme
        return f"{scheme}://{dest}"


class SeenObjects:
    """The objects of a pipeline's source already read, by key and version."""

    def __init__(self, url: str, pipeline: str, stream: Stream) -> None:
        self._engine = open_state(url)
        self.pipeline = pipeline
        self.stream = stream

    def _where(self) -> Any:
        t = source_objects_table
        return sa.and_(t.c.pipeline == self.pipeline, t.c.stream == self.stream)

    def keys(self) -> set[tuple[str, str]]:
        """(path, version) of every object recorded as read (not the ones noted denied)."""
        t = source_objects_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.object_key, t.c.object_version).where(
                    self._where(), t.c.status != DENIED
                )
            )
            return {(str(k), str(v)) for k, v in rows}

    def denied(self) -> set[tuple[str, str]]:
        """(path, version) of every object noted as refused by the store."""
        t = source_objects_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.object_key, t.c.object_version).where(
                    self._where(), t.c.status == DENIED
                )
            )
            return {(str(k), str(v)) for k, v in rows}

    def note_denied(self, obj: StoredObject, reason: str) -> bool:
        """Note that the store refused to read an object (it is tried again every pass).

        Returns:
            Whether this is new (the first refusal of this version).
        """
        row = {
            "pipeline": self.pipeline,
            "stream": self.stream,
            "object_key": obj.path,
            "object_version": obj.version,
            "sha256": "",
            "status": DENIED,
            "reason": reason,
            "record_id": None,
            "seen_at": utcnow(),
        }
        return insert_once(self._engine, source_objects_table, row) is not None

    def forget_denied(self, listed: set[tuple[str, str]]) -> None:
        """Drop the notes of refused objects no longer listed (deleted, or a new version)."""
        t = source_objects_table
        gone = self.denied() - listed
        if not gone:
            return
        with self._engine.begin() as conn:
            for key, version in gone:
                conn.execute(
                    t.delete().where(
                        self._where(),
                        t.c.status == DENIED,
                        t.c.object_key == key,
                        t.c.object_version == version,
                    )
                )

    def record(self, obj: StoredObject, outcome: Outcome) -> None:
        """Note an object read (once: recording it again keeps the first; a note that the
        store refused it before is replaced)."""
        t = source_objects_table
        with self._engine.begin() as conn:
            conn.execute(
                t.delete().where(
                    self._where(),
                    t.c.status == DENIED,
                    t.c.object_key == obj.path,
                    t.c.object_version == obj.version,
                )
            )
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
    listed = store.list(patterns)
    seen.forget_denied({(obj.path, obj.version) for obj in listed})
    for obj in listed:
        if (obj.path, obj.version) in recorded:
            continue
        if store.is_local and now - obj.modified < settle_s:
            log.info("%s: modified within %gs; left for the next pass", obj.path, settle_s)
            continue
        yield obj


def _read_or_skip(store: ObjectStore, seen: SeenObjects, obj: StoredObject) -> bytes | None:
    """The object's bytes, or None when it cannot be read this pass (one log line says why).

    Raises:
        DataSourceError: The store failed as a whole (unreachable, credentials refused).
    """
    try:
        return store.read(obj)
    except _UnreadableError as exc:
        if not exc.is_denied:
            log.info("%s: %s; skipped, nothing recorded (read if it comes back)", obj.path, exc)
        elif seen.note_denied(obj, str(exc)):
            log.warning("%s: %s; skipped, tried again every pass", obj.path, exc)
        else:
            log.info("%s: still %s; skipped", obj.path, exc)
        return None


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
            before the failure stay recorded; the failed one and those after it are not. An
            object deleted or rewritten since the listing, or one the store refuses to read
            while it lists it, does not fail the pass: it is skipped (see the module).
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
        data = _read_or_skip(store, seen, obj)
        if data is None:
            continue
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
        data = _read_or_skip(store, seen, obj)
        if data is None:
            continue
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
