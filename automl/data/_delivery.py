"""One delivery (an object's bytes, or rows read from a table) validated and recorded once.

The object-store and SQL sources hand their deliveries here; the rules are those of the landing
folder (:mod:`automl.data._ingest`, :mod:`automl.data._label_files`): identified by the SHA-256
of its bytes, parsed and validated from those bytes, stored or rejected, recorded once in the
ledger. What differs is only where a rejected delivery goes: it is never moved out of the
source here (the source decides, see ``quarantine_prefix``), so its reason lives in the ledger.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import pandas as pd

from automl.data._ingest import RejectedFile, _Ingester
from automl.data._io import parse_table, write_table
from automl.data._label_files import _LabelRecorder, _parse_labels
from automl.data._labels import LabelCounts, LabelFileRecord, LabelPolicy, LabelStore
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger, BatchRecord
from automl.data._schema import ValidationRules
from automl.errors import DataValidationError
from automl.vocab import Task

log = logging.getLogger(__name__)

#: Moves a rejected delivery aside: (reason code, reason) -> where it went, or None (kept).
Quarantine = Callable[[str, str], Path | str | None]


def _kept(_code: str, _reason: str) -> None:
    return None


@dataclass(frozen=True)
class Delivery:
    """What a source read: a name for people, the bytes it is identified by, maybe rows.

    Attributes:
        name: The object's path or the rows' range (recorded as the ledger's ``file_name``).
        data: The bytes hashed (an object's content; rows as Parquet).
        frame: The rows already parsed (SQL), or None to parse ``data`` by ``name``'s suffix.
    """

    name: str
    data: bytes
    frame: pd.DataFrame | None = None

    @cached_property  # asked for by the source, the quarantine and the ledger: hashed once
    def sha256(self) -> str:
        """Hex SHA-256 of ``data``."""
        return hashlib.sha256(self.data).hexdigest()

    def table(self) -> pd.DataFrame:
        """The rows: ``frame``, or ``data`` parsed by ``name``'s suffix.

        Raises:
            DataValidationError: ``data`` is not a readable table.
        """
        return self.frame if self.frame is not None else parse_table(self.data, name=self.name)


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery.

    Attributes:
        status: ``accepted``, ``rejected`` or ``duplicate`` (the same bytes as an earlier
            delivery of another name: not ingested again).
        sha256: The delivery's content hash.
        record_id: The ledger record (batch or label file) it is, or duplicates.
        reason: Why it was rejected or is a duplicate.
        is_new: False when the ledger already held this very delivery (a restart after a
            crash between recording it and noting it read): nothing new was stored.
        accepted: The batch record (a new accepted batch).
        rejected: The rejection (a new rejected delivery).
        label_file: The label-file record (a new accepted label file).
        counts: What its labels did (label deliveries).
    """

    status: Literal["accepted", "rejected", "duplicate"]
    sha256: str
    record_id: int | None
    reason: str | None = None
    is_new: bool = True
    accepted: BatchRecord | None = None
    rejected: RejectedFile | None = None
    label_file: LabelFileRecord | None = None
    counts: LabelCounts = field(default_factory=LabelCounts)


def make_ingester(
    *,
    pipeline: str,
    paths: PipelinePaths,
    ledger: BatchLedger,
    target: str,
    task: Task,
    rules: ValidationRules,
    labels: LabelPolicy | None,
    now: float,
) -> _Ingester:
    """The landing folder's validator and store, for deliveries from another source."""
    store = LabelStore(ledger.url) if labels is not None else None
    return _Ingester(pipeline, paths, ledger, target, task, rules, labels, store, now)


def _known(
    name: str, sha: str, known_name: str, record_id: int, status: str, received: str, what: str
) -> Outcome:
    if known_name == name:
        return Outcome(
            "accepted" if status == "accepted" else "rejected", sha, record_id, is_new=False
        )
    reason = (
        f"duplicate: {name}: the same bytes (sha256 {sha[:12]}...) as {known_name}, received "
        f"{received} and {what}; not ingested again"
    )
    return Outcome("duplicate", sha, record_id, reason)


def _rejected(
    name: str,
    sha: str,
    record_id: int,
    reason: str,
    exc: DataValidationError,
    where: Path | str | None,
) -> Outcome:
    rejection = RejectedFile(name, sha, exc.reason_code, str(exc), where)
    return Outcome("rejected", sha, record_id, reason, rejected=rejection)


def ingest_batch_delivery(
    ingester: _Ingester, delivery: Delivery, *, quarantine: Quarantine = _kept
) -> Outcome:
    """Validate and record one batch delivery exactly once (see :class:`Outcome`).

    Raises:
        Whatever storing raises other than a validation error (nothing is recorded then).
    """
    sha = delivery.sha256
    name = delivery.name
    known, stored = ingester.ledger.lookup(ingester.pipeline, sha)
    if known is not None:
        what = f"accepted as batch {known.id}" if known.status == "accepted" else "rejected"
        return _known(name, sha, known.file_name, known.id, known.status, known.received_at, what)
    try:
        checked = ingester.check(delivery.table(), delivery.data, name, stored=stored)
        record = ingester.store(name, sha, checked)
    except DataValidationError as exc:
        reason = f"{exc.reason_code}: {exc}"
        rejected = ingester.ledger.add(
            pipeline=ingester.pipeline,
            sha256=sha,
            file_name=name,
            status="rejected",
            reason=reason,
        )
        where = quarantine(exc.reason_code, str(exc))
        log.warning("%s: rejected (%s)%s", name, exc, f"; quarantined at {where}" if where else "")
        return _rejected(name, sha, rejected.id, reason, exc, where)
    log.info("%s: accepted %d rows as batch %d", name, record.n_rows, record.id)
    return Outcome("accepted", sha, record.id, accepted=record)


@dataclass(frozen=True)
class LabelDeliverer(_LabelRecorder):
    """Validates label deliveries against the pipeline's schema and joins their labels."""

    def ingest(self, delivery: Delivery, *, quarantine: Quarantine = _kept) -> Outcome:
        """Validate and record one label delivery exactly once (see :class:`Outcome`)."""
        sha = delivery.sha256
        name = delivery.name
        known = self.store.label_file(self.pipeline, sha)
        if known is not None:
            what = (
                f"accepted as label file {known.id}" if known.status == "accepted" else "rejected"
            )
            return _known(
                name, sha, known.file_name, known.id, known.status, known.received_at, what
            )
        schema = self.current_schema()
        try:
            frame = delivery.table()
            parsed = _parse_labels(frame, schema, self.policy, self.rules, name)
        except DataValidationError as exc:
            reason = f"{exc.reason_code}: {exc}"
            record = self.store.reject_label_file(
                pipeline=self.pipeline, sha256=sha, file_name=name, reason=reason
            )
            where = quarantine(exc.reason_code, str(exc))
            log.warning("%s: label delivery rejected (%s)", name, exc)
            return _rejected(name, sha, record.id, reason, exc, where)
        self.learn(name, parsed, schema)
        note: str | None = None
        if len(parsed.invalid):
            rows = self.paths.label_quarantine / f"{sha[:12]}.rows.csv"
            write_table(parsed.invalid, rows)
            note = (
                f"{len(parsed.invalid)} row(s) quarantined to {rows.name}: "
                + (parsed.invalid_reason.partition(": ")[2])
            )
            log.warning("%s: %s", name, note)
        record, counts = self.add(name, sha, frame, parsed, note)
        log.info("%s: label file %d: %s", name, record.id, counts)
        return Outcome("accepted", sha, record.id, label_file=record, counts=counts)
