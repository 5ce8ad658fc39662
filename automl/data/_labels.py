"""Late labels: rows recorded by id, labels that arrive later, joined to their rows exactly once.

A pipeline with ``data.id_column`` records every accepted row by id in the state database
(``automl_rows``: its batch, when it arrived, its label and when the label arrived). Labels
come in label files (a folder of their own, columns ``<id_column>, <target>``) or in later
batches that repeat known ids with the target filled. The database is the truth about labels;
a stored batch keeps the target as it arrived.

Rules (the README's "Late labels" lists them too):
    - A label for a known row without one labels it; its label lag is the time from the row's
      arrival to the label's (0 when the label came first).
    - The same label again for an id is ignored (counted as a duplicate).
    - A different label for an id that has one is a conflict: the first label received wins,
      the other is recorded with a reason (:meth:`LabelStore.events`, status ``conflict``).
    - A label for an id no batch has brought yet waits (status ``waiting``) and is joined when
      a batch brings the id within ``max_label_wait_s`` of the label's arrival; after that it
      is rejected (status ``expired``, with a reason). Two labels for one waiting id follow
      the two rules above.
    - A label row that cannot be a label (no id, no label, a label of the wrong type, a class
      the pipeline does not accept, a non-finite regression label) is quarantined as a row
      with a reason and the rest of the file is used; a file with no usable row, one that
      cannot be read, or one whose columns are not exactly the id and the target is
      quarantined whole with a ``.reason.txt``.
    - Labels validate against the pipeline's schema, so label files wait in their folder
      until the first batch is accepted; the classes of a classification target are learned
      from the first labels, wherever they come from (the ``new_classes`` rule applies).

Exactly once:
    a label file's ledger record, the labels it sets and the events it writes are one
    transaction, and the file moves to the archive after it commits. Killed before the commit,
    nothing of it is recorded and the next pass processes it again; killed after, the ledger
    knows its bytes and the next pass only finishes the move. A batch's record, its rows and
    the labels it joins are one transaction in the same way. Every such transaction holds the
    database's write lock (SQLite) or the pipeline's label lock (PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from automl.data._ingest import (
    RejectedFile,
    _arrival,
    _holds,
    _is_settled_dangling_link,
    _Look,
    _look,
    _matches,
    _move,
    _quarantine,
    _report_ignored,
    _settle,
    _write_reason,
    check_landing_dir,
)
from automl.data._io import parse_table, write_table
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger, BatchRecord
from automl.data._schema import (
    _ROW_NOTE,
    ClassLabel,
    Schema,
    ValidationRules,
    _examples,
    _rows,
    normalize_ids,
)
from automl.errors import DataValidationError, StateError
from automl.state import (
    batches_table,
    label_events_table,
    label_files_table,
    open_state,
    rows_table,
    utcnow,
)

if TYPE_CHECKING:
    from automl.config import DataSpec

log = logging.getLogger(__name__)

LabelFileStatus = Literal["accepted", "rejected"]
EventStatus = Literal["waiting", "joined", "expired", "conflict"]

#: Ids per ``IN (...)`` list (SQLite allows 32766 parameters; PostgreSQL more).
_CHUNK = 900
#: Label lag percentiles are computed over this many of the newest labelled rows.
_LAG_ROWS = 100_000


@dataclass(frozen=True)
class LabelPolicy:
    """How a pipeline's rows and late labels are joined (the ``data`` keys of the spec).

    Args:
        id_column: Column that identifies a row: required in every batch, unique within it,
            never a feature.
        kept_columns: Columns stored with a batch when present, never features (the served
            prediction, the time).
        labels_in_batches: Whether a later batch may repeat known ids to deliver their labels
            (else such a batch is rejected with ``known_id``).
        max_label_wait_s: How long a label for an unknown id waits for its row, > 0.

    Example:
        >>> LabelPolicy("order_id", max_label_wait_s=3600).max_label_wait_s
        3600
    """

    id_column: str
    kept_columns: tuple[str, ...] = ()
    labels_in_batches: bool = True
    max_label_wait_s: float = 7 * 86400.0

    def __post_init__(self) -> None:
        if not self.id_column:
            raise ValueError("id_column must name a column, got ''")
        if self.id_column in self.kept_columns:
            raise ValueError(
                f"id_column {self.id_column!r} must not be one of kept_columns "
                f"{list(self.kept_columns)}"
            )
        if not self.max_label_wait_s > 0:
            raise ValueError(f"max_label_wait_s must be > 0, got {self.max_label_wait_s!r}")

    @classmethod
    def from_spec(cls, data: DataSpec) -> LabelPolicy | None:
        """The policy a spec's ``data`` section sets; None without ``data.id_column``."""
        if data.id_column is None:
            return None
        return cls(
            id_column=data.id_column,
            kept_columns=data.kept_columns,
            labels_in_batches=data.labels.in_batches if data.labels else True,
            max_label_wait_s=data.max_label_wait_s,
        )


@dataclass(frozen=True)
class LabelCounts:
    """What happened to the labels of one file, batch or pass.

    Attributes:
        joined: Labels that labelled a row.
        duplicates: Labels equal to the one the id already had (or waiting for it): ignored.
        conflicts: Labels different from the one the id already had: refused and recorded.
        waiting: Labels for ids no batch has brought yet, now waiting for their rows.
        expired: Waiting labels rejected because their row did not come in time.
        invalid: Label rows quarantined (no id, no label, wrong type or class).
    """

    joined: int = 0
    duplicates: int = 0
    conflicts: int = 0
    waiting: int = 0
    expired: int = 0
    invalid: int = 0

    def __add__(self, other: LabelCounts) -> LabelCounts:
        return LabelCounts(
            **{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__}
        )


@dataclass(frozen=True)
class LabelFileRecord:
    """One landed label file as the ledger knows it."""

    id: int
    pipeline: str
    sha256: str
    file_name: str
    status: LabelFileStatus
    reason: str | None
    n_rows: int
    received_at: str
    counts: LabelCounts | None


@dataclass(frozen=True)
class LabelEvent:
    """A label that did not simply label its row: waiting, joined later, expired, conflicting.

    Attributes:
        row_id: The id it is for.
        label: The label (int, str or float).
        status: ``waiting`` for its row, ``joined`` once it came, ``expired`` when it did not
            come within ``max_label_wait_s``, ``conflict`` when the id had another label.
        reason: Why it was refused (``expired``, ``conflict``); None otherwise.
        source: Where it came from (label file or batch, by ledger id and name).
        received_s: When it arrived (seconds since the epoch).
        resolved_s: When it was joined or expired.
    """

    id: int
    row_id: str
    label: ClassLabel | float
    status: EventStatus
    reason: str | None
    source: str
    received_s: float
    resolved_s: float | None


@dataclass(frozen=True)
class LabelStats:
    """How far a pipeline's labels have come.

    Attributes:
        n_rows: Rows recorded.
        n_labelled: Rows with a label.
        labelled_share: ``n_labelled / n_rows`` (0 without rows).
        n_waiting_rows: Rows still waiting for their label.
        n_waiting_labels: Labels waiting for their row (an id no batch brought yet).
        n_conflicts: Labels refused because their id had another label.
        n_expired: Labels rejected because their row did not come in time.
        lag_p50_s: Median label lag in seconds (label arrival - row arrival, at least 0) over
            the newest 100,000 labelled rows; None without labels.
        lag_p95_s: Its 95th percentile.
        last_label_s: When the newest label arrived (seconds since the epoch), whatever became
            of it; None before the first.
    """

    n_rows: int
    n_labelled: int
    labelled_share: float
    n_waiting_rows: int
    n_waiting_labels: int
    n_conflicts: int
    n_expired: int
    lag_p50_s: float | None
    lag_p95_s: float | None
    last_label_s: float | None


@dataclass(frozen=True)
class LabelIngestResult:
    """What one pass over the label folder did.

    Attributes:
        accepted: Records of the accepted label files, in arrival order.
        rejected: Label files quarantined whole, with their reasons.
        duplicates: Names of files whose bytes were recorded before.
        waiting: Names of files left for a later pass (still being written, or no batch has
            been accepted yet, so there is no schema to check labels against).
        ignored: Names of entries in the folder that match no pattern.
        counts: What happened to the labels (expired: waiting labels this pass rejected).
    """

    accepted: tuple[LabelFileRecord, ...]
    rejected: tuple[RejectedFile, ...]
    duplicates: tuple[str, ...]
    waiting: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    counts: LabelCounts = field(default_factory=LabelCounts)


# -- labels as stored -------------------------------------------------------------------------
def _encode(value: object) -> str:
    """A label as JSON text (the form equal labels share)."""
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value)


def _decode(text: str) -> ClassLabel | float:
    value = json.loads(text)
    if not isinstance(value, int | str | float):
        raise StateError(f"a stored label is {text!r}, not a number or text; the state is damaged")
    return value


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _lock_key(pipeline: str) -> int:
    digest = hashlib.sha256(f"automl.labels:{pipeline}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _inserted_id(conn: sa.Connection, statement: sa.Insert) -> int:
    key = conn.execute(statement).inserted_primary_key
    assert key is not None
    return int(key[0])


# -- the steps inside one transaction ---------------------------------------------------------
_Delivery = tuple[str, str, str, float]  # row id, label JSON, source, received at (s)


def _expire(conn: sa.Connection, pipeline: str, max_wait_s: float, now: float) -> int:
    """Reject the labels that waited longer than ``max_wait_s`` for their row."""
    t = label_events_table
    reason = (
        f"no batch brought this id within data.max_label_wait_s={max_wait_s:g}s of the "
        "label's arrival; rejected. Deliver the row (then the label again), or raise "
        "data.max_label_wait_s if rows come this late"
    )
    result = conn.execute(
        t.update()
        .where(t.c.pipeline == pipeline, t.c.status == "waiting", t.c.received_s < now - max_wait_s)
        .values(status="expired", reason=reason, resolved_s=now)
    )
    return int(result.rowcount or 0)


def _row_labels(
    conn: sa.Connection, pipeline: str, ids: Sequence[str]
) -> dict[str, tuple[str | None, str | None, float | None]]:
    """``{row id: (label JSON, source, labelled_s)}`` of the known ids among ``ids``."""
    t = rows_table
    found: dict[str, tuple[str | None, str | None, float | None]] = {}
    for chunk in _chunks(ids):
        query = sa.select(t.c.row_id, t.c.label_json, t.c.label_source, t.c.labelled_s).where(
            t.c.pipeline == pipeline, t.c.row_id.in_(chunk)
        )
        for row_id, label, source, labelled_s in conn.execute(query):
            found[row_id] = (label, source, labelled_s)
    return found


def _waiting(
    conn: sa.Connection, pipeline: str, ids: Sequence[str]
) -> dict[str, tuple[int, str, str, float]]:
    """``{row id: (event id, label JSON, source, received_s)}`` of labels waiting for ``ids``."""
    t = label_events_table
    found: dict[str, tuple[int, str, str, float]] = {}
    for chunk in _chunks(ids):
        query = (
            sa.select(t.c.id, t.c.row_id, t.c.label_json, t.c.source, t.c.received_s)
            .where(t.c.pipeline == pipeline, t.c.status == "waiting", t.c.row_id.in_(chunk))
            .order_by(t.c.id)
        )
        for event_id, row_id, label, source, received_s in conn.execute(query):
            found.setdefault(row_id, (int(event_id), label, source, float(received_s)))
    return found


def _conflict_reason(row_id: str, label: str, source: str, first: str, first_source: str) -> str:
    return (
        f"id {row_id!r}: label {label} from {source} differs from the label {first} received "
        f"first (from {first_source}); the first label is kept. Correct the source of the "
        "wrong one"
    )


def _apply(conn: sa.Connection, pipeline: str, deliveries: Sequence[_Delivery]) -> LabelCounts:
    """Label rows, park labels for unknown ids, record conflicts: the rules of this module."""
    ids = list(dict.fromkeys(d[0] for d in deliveries))
    rows = _row_labels(conn, pipeline, ids)
    waiting = {k: (v[1], v[2]) for k, v in _waiting(conn, pipeline, ids).items()}
    updates: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    joined = duplicates = conflicts = parked = 0
    for row_id, label, source, received_s in deliveries:
        if row_id in rows:
            first, first_source, _ = rows[row_id]
            if first is None:
                rows[row_id] = (label, source, received_s)
                updates.append({"r": row_id, "label": label, "at": received_s, "source": source})
                joined += 1
                continue
        elif row_id in waiting:
            first, first_source = waiting[row_id]
        else:
            waiting[row_id] = (label, source)
            events.append(
                {
                    "pipeline": pipeline,
                    "row_id": row_id,
                    "label_json": label,
                    "status": "waiting",
                    "reason": None,
                    "source": source,
                    "received_s": received_s,
                }
            )
            parked += 1
            continue
        if first == label:
            duplicates += 1
            continue
        conflicts += 1
        events.append(
            {
                "pipeline": pipeline,
                "row_id": row_id,
                "label_json": label,
                "status": "conflict",
                "reason": _conflict_reason(row_id, label, source, str(first), str(first_source)),
                "source": source,
                "received_s": received_s,
            }
        )
    t = rows_table
    if updates:
        conn.execute(
            t.update()
            .where(
                t.c.pipeline == pipeline,
                t.c.row_id == sa.bindparam("r"),
                t.c.label_json.is_(None),
            )
            .values(
                label_json=sa.bindparam("label"),
                labelled_s=sa.bindparam("at"),
                label_source=sa.bindparam("source"),
            ),
            updates,
        )
    if events:
        conn.execute(label_events_table.insert(), events)
    return LabelCounts(joined=joined, duplicates=duplicates, conflicts=conflicts, waiting=parked)


def _join_waiting(conn: sa.Connection, pipeline: str, ids: Sequence[str], now: float) -> int:
    """Label the new rows ``ids`` with the labels that waited for them."""
    waiting = _waiting(conn, pipeline, ids)
    if not waiting:
        return 0
    t = rows_table
    conn.execute(
        t.update()
        .where(t.c.pipeline == pipeline, t.c.row_id == sa.bindparam("r"), t.c.label_json.is_(None))
        .values(
            label_json=sa.bindparam("label"),
            labelled_s=sa.bindparam("at"),
            label_source=sa.bindparam("source"),
        ),
        [
            {"r": row_id, "label": label, "at": received_s, "source": source}
            for row_id, (_, label, source, received_s) in waiting.items()
        ],
    )
    e = label_events_table
    conn.execute(
        e.update().where(e.c.id == sa.bindparam("event")).values(status="joined", resolved_s=now),
        [{"event": event_id} for event_id, *_ in waiting.values()],
    )
    return len(waiting)


# -- the store --------------------------------------------------------------------------------
class LabelStore:
    """Rows by id, their labels, label files and label events of every pipeline in a workspace.

    Args:
        url: SQLAlchemy URL of the state database (the ledger's).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = open_state(url)
        self.ledger = BatchLedger(url)

    @contextmanager
    def _transaction(self, pipeline: str) -> Iterator[sa.Connection]:
        """One transaction that holds the write lock from its first statement."""
        with self._engine.connect() as conn:
            if self._engine.dialect.name == "sqlite":
                # Reads and writes of a join must see one state: take the write lock first.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif self._engine.dialect.name == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(pipeline)}
                )
            yield conn
            conn.commit()

    # -- writing ------------------------------------------------------------------------
    def add_batch(
        self,
        *,
        pipeline: str,
        sha256: str,
        file_name: str,
        frame: pd.DataFrame,
        target: str,
        batches_dir: Path,
        reason: str | None,
        policy: LabelPolicy,
        now: float,
    ) -> BatchRecord:
        """Record a checked batch, its new rows and the labels it brings, in one transaction.

        Called by :func:`~automl.data.ingest_landing` for a pipeline with late labels. Rows
        whose id is known deliver their label (when they have one) and are not stored again;
        the new rows are stored as ``<batches_dir>/<sha256[:16]>.parquet`` and recorded with
        arrival time ``now``; labels waiting for them join first, then the batch's own labels.

        Returns:
            The batch's record (``n_rows``: new rows; ``stored_path`` None when there are none).
            Recording the same content twice returns the first record.

        Raises:
            DataValidationError: The batch repeats known ids and ``policy.labels_in_batches``
                is off (``reason_code`` ``known_id``).
        """
        id_column = policy.id_column
        ids = frame[id_column]
        source_name = file_name
        try:
            with self._transaction(pipeline) as conn:
                expired = _expire(conn, pipeline, policy.max_label_wait_s, now)
                known = set(_row_labels(conn, pipeline, ids.tolist()))
                repeated = ids.isin(known).to_numpy()
                if repeated.any() and not policy.labels_in_batches:
                    raise DataValidationError(
                        f"{file_name}: {int(repeated.sum())} row(s) repeat ids of earlier "
                        f"batches, e.g. {_examples(ids, repeated)} at {_rows(repeated)}"
                        f"{_ROW_NOTE}; data.labels.in_batches is false, so a batch brings new "
                        "rows only. Deliver labels as label files, or set "
                        "data.labels.in_batches: true",
                        reason_code="known_id",
                    )
                new = frame.loc[~repeated].reset_index(drop=True)
                stored = None
                if len(new):
                    stored = write_table(new, batches_dir / f"{sha256[:16]}.parquet")
                if repeated.any():
                    note = (
                        f"{int(repeated.sum())} row(s) repeat known ids: their labels were "
                        "applied, the rows not stored again"
                    )
                    reason = f"{reason}; {note}" if reason else note
                batch_id = _inserted_id(
                    conn,
                    batches_table.insert().values(
                        pipeline=pipeline,
                        sha256=sha256,
                        file_name=file_name,
                        status="accepted",
                        reason=reason,
                        stored_path=str(stored) if stored else None,
                        n_rows=len(new),
                        received_at=utcnow(),
                    ),
                )
                new_ids = new[id_column].tolist()
                if new_ids:
                    conn.execute(
                        rows_table.insert(),
                        [
                            {
                                "pipeline": pipeline,
                                "row_id": row_id,
                                "batch_id": batch_id,
                                "position": position,
                                "arrived_s": now,
                            }
                            for position, row_id in enumerate(new_ids)
                        ],
                    )
                joined = _join_waiting(conn, pipeline, new_ids, now)
                source = f"batch {batch_id} ({source_name})"
                labels = frame[target]
                deliveries = [
                    (row_id, _encode(value), source, now)
                    for row_id, value in zip(ids.tolist(), labels.tolist(), strict=True)
                    if not pd.isna(value)
                ]
                counts = _apply(conn, pipeline, deliveries)
                counts = replace(counts, joined=counts.joined + joined, expired=expired)
        except sa.exc.IntegrityError:
            # A concurrent ingest recorded these bytes first; its record wins.
            existing = self.ledger.get(pipeline, sha256)
            if existing is None:
                raise
            return existing
        record = self.ledger.get(pipeline, sha256)
        assert record is not None
        log.info(
            "[%s] %s: batch %d: %d new row(s), %d known id(s); labels: %s",
            pipeline,
            file_name,
            record.id,
            len(new),
            int(repeated.sum()),
            counts,
        )
        return record

    def _add_label_file(
        self,
        *,
        pipeline: str,
        sha256: str,
        file_name: str,
        labels: Sequence[tuple[str, str]],
        n_rows: int,
        n_invalid: int,
        reason: str | None,
        policy: LabelPolicy,
        now: float,
    ) -> tuple[LabelFileRecord, LabelCounts]:
        """Record a label file and apply its ``(row id, label JSON)`` pairs in one transaction."""
        t = label_files_table
        try:
            with self._transaction(pipeline) as conn:
                expired = _expire(conn, pipeline, policy.max_label_wait_s, now)
                file_id = _inserted_id(
                    conn,
                    t.insert().values(
                        pipeline=pipeline,
                        sha256=sha256,
                        file_name=file_name,
                        status="accepted",
                        reason=reason,
                        n_rows=n_rows,
                        received_at=utcnow(),
                    ),
                )
                source = f"label file {file_id} ({file_name})"
                counts = _apply(conn, pipeline, [(i, lab, source, now) for i, lab in labels])
                counts = replace(counts, expired=expired, invalid=n_invalid)
                conn.execute(
                    t.update()
                    .where(t.c.id == file_id)
                    .values(summary_json=json.dumps(asdict(counts)))
                )
        except sa.exc.IntegrityError:
            existing = self.label_file(pipeline, sha256)
            if existing is None:
                raise
            return existing, existing.counts or LabelCounts()
        record = self.label_file(pipeline, sha256)
        assert record is not None
        return record, counts

    def _reject_label_file(
        self, *, pipeline: str, sha256: str, file_name: str, reason: str
    ) -> LabelFileRecord:
        t = label_files_table
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    t.insert().values(
                        pipeline=pipeline,
                        sha256=sha256,
                        file_name=file_name,
                        status="rejected",
                        reason=reason,
                        n_rows=0,
                        received_at=utcnow(),
                    )
                )
        except sa.exc.IntegrityError:
            pass  # recorded before: the first record wins
        record = self.label_file(pipeline, sha256)
        assert record is not None
        return record

    def expire_waiting(self, pipeline: str, *, max_label_wait_s: float, now: float) -> int:
        """Reject labels that waited longer than ``max_label_wait_s`` for their row.

        Every batch and label file ingest does this first; call it to expire labels when
        nothing lands. Returns how many labels expired.
        """
        with self._transaction(pipeline) as conn:
            return _expire(conn, pipeline, max_label_wait_s, now)

    # -- reading ------------------------------------------------------------------------
    def label_file(self, pipeline: str, sha256: str) -> LabelFileRecord | None:
        """The record of a label file by content hash, or None when never seen."""
        t = label_files_table
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(t).where(t.c.pipeline == pipeline, t.c.sha256 == sha256)
            ).first()
        return _file_record(row) if row else None

    def label_files(
        self, pipeline: str, *, status: LabelFileStatus | None = None
    ) -> list[LabelFileRecord]:
        """Records of a pipeline's label files in arrival order, optionally of one status."""
        t = label_files_table
        query = sa.select(t).where(t.c.pipeline == pipeline).order_by(t.c.id)
        if status:
            query = query.where(t.c.status == status)
        with self._engine.connect() as conn:
            return [_file_record(r) for r in conn.execute(query)]

    def events(self, pipeline: str, *, status: EventStatus | None = None) -> list[LabelEvent]:
        """Labels that did not simply label their row, oldest first, optionally of one status."""
        t = label_events_table
        query = sa.select(t).where(t.c.pipeline == pipeline).order_by(t.c.id)
        if status:
            query = query.where(t.c.status == status)
        with self._engine.connect() as conn:
            return [
                LabelEvent(
                    id=int(m["id"]),
                    row_id=str(m["row_id"]),
                    label=_decode(m["label_json"]),
                    status=m["status"],
                    reason=m["reason"],
                    source=str(m["source"]),
                    received_s=float(m["received_s"]),
                    resolved_s=None if m["resolved_s"] is None else float(m["resolved_s"]),
                )
                for m in (r._mapping for r in conn.execute(query))
            ]

    def rows(self, pipeline: str) -> pd.DataFrame:
        """Every recorded row: ``row_id``, ``batch_id``, ``arrived_s``, ``label`` (None while
        unlabelled), ``labelled_s`` and ``label_source``, in arrival order."""
        t = rows_table
        query = (
            sa.select(
                t.c.row_id,
                t.c.batch_id,
                t.c.arrived_s,
                t.c.label_json,
                t.c.labelled_s,
                t.c.label_source,
            )
            .where(t.c.pipeline == pipeline)
            .order_by(t.c.batch_id, t.c.position)
        )
        with self._engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(query).all(),
                columns=["row_id", "batch_id", "arrived_s", "label", "labelled_s", "label_source"],
            )
        frame["label"] = [None if v is None else _decode(v) for v in frame["label"]]
        return frame

    def n_labelled(self, pipeline: str, *, since_batch_id: int | None = None) -> int:
        """How many rows have a label, counting rows of batch ``since_batch_id`` and later."""
        t = rows_table
        query = (
            sa.select(sa.func.count())
            .select_from(t)
            .where(t.c.pipeline == pipeline, t.c.label_json.is_not(None))
        )
        if since_batch_id is not None:
            query = query.where(t.c.batch_id >= since_batch_id)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def _labelled_per_batch(self, pipeline: str) -> dict[int, int]:
        t = rows_table
        query = (
            sa.select(t.c.batch_id, sa.func.count())
            .where(t.c.pipeline == pipeline, t.c.label_json.is_not(None))
            .group_by(t.c.batch_id)
        )
        with self._engine.connect() as conn:
            return {int(b): int(n) for b, n in conn.execute(query)}

    def load_labelled(self, records: Sequence[BatchRecord]) -> pd.DataFrame:
        """The labelled rows of ``records`` (one pipeline's), their labels joined, in order.

        Each row keeps its columns as stored (features, id, kept columns); the target holds
        the label the state database has for it (int64 or text for classification, float64
        for regression). Rows still without a label are left out.

        Raises:
            StateError: A stored batch no longer matches the rows recorded for it.
        """
        stored = [r for r in records if r.stored_path is not None and r.n_rows]
        if not stored:
            return pd.DataFrame()
        pipeline = stored[0].pipeline
        schema = self.ledger.get_schema(pipeline)
        if schema is None:
            return pd.DataFrame()
        t = rows_table
        by_batch: dict[int, list[tuple[int, str, str]]] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks([str(r.id) for r in stored]):
                query = (
                    sa.select(t.c.batch_id, t.c.position, t.c.row_id, t.c.label_json)
                    .where(
                        t.c.pipeline == pipeline,
                        t.c.label_json.is_not(None),
                        t.c.batch_id.in_([int(b) for b in chunk]),
                    )
                    .order_by(t.c.batch_id, t.c.position)
                )
                for batch_id, position, row_id, label in conn.execute(query):
                    by_batch.setdefault(int(batch_id), []).append((int(position), row_id, label))
        frames: list[pd.DataFrame] = []
        for record in stored:
            labelled = by_batch.get(record.id)
            if not labelled:
                continue
            assert record.stored_path is not None
            frame = pd.read_parquet(record.stored_path)
            positions = [p for p, _, _ in labelled]
            picked = frame.iloc[positions].copy()
            # check_batch stores the id column right after the target.
            columns = list(frame.columns)
            at = columns.index(schema.target) + 1 if schema.target in columns else len(columns)
            ids = [r for _, r, _ in labelled]
            if at >= len(columns) or picked[columns[at]].tolist() != ids:
                raise StateError(
                    f"batch {record.id} ({record.stored_path}) does not hold the rows the "
                    "state database recorded for it (ids differ); the stored file was changed "
                    "or replaced. Restore it from the archive, or remove the workspace's rows "
                    "of this batch"
                )
            picked[schema.target] = [_decode(label) for _, _, label in labelled]
            frames.append(picked)
        if not frames:
            return pd.DataFrame()
        out = pd.concat(frames, ignore_index=True)
        return _target_dtype(out, schema)

    def labelled_rows(
        self, pipeline: str, *, since_batch_id: int | None = None, max_rows: int | None = None
    ) -> pd.DataFrame:
        """Labelled rows, features and target (and the id and kept columns), oldest first.

        Args:
            pipeline: Pipeline name.
            since_batch_id: Only rows of this batch and later ones; None: every batch.
            max_rows: Keep the newest this many (only the batches needed are read).

        Returns:
            The rows (an empty frame when none is labelled).
        """
        records = self.ledger.records(pipeline, status="accepted")
        if since_batch_id is not None:
            records = [r for r in records if r.id >= since_batch_id]
        if max_rows is not None:
            per_batch = self._labelled_per_batch(pipeline)
            covered, start = 0, len(records)
            while start > 0 and covered < max_rows:
                start -= 1
                covered += per_batch.get(records[start].id, 0)
            records = records[start:]
        frame = self.load_labelled(records)
        if max_rows is not None:
            frame = frame.tail(max_rows).reset_index(drop=True)
        return frame

    def label_stats(self, pipeline: str) -> LabelStats:
        """Labelled share, rows and labels waiting, conflicts, label lag, the newest label."""
        r, e = rows_table, label_events_table
        with self._engine.connect() as conn:
            n_rows, n_labelled, last_row_label = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(r.c.label_json),
                    sa.func.max(r.c.labelled_s),
                ).where(r.c.pipeline == pipeline)
            ).one()
            by_status: dict[str, int] = dict(
                conn.execute(
                    sa.select(e.c.status, sa.func.count())
                    .where(e.c.pipeline == pipeline)
                    .group_by(e.c.status)
                ).all()
            )
            last_event = conn.execute(
                sa.select(sa.func.max(e.c.received_s)).where(e.c.pipeline == pipeline)
            ).scalar()
            lags = np.array(
                conn.execute(
                    sa.select(r.c.labelled_s - r.c.arrived_s)
                    .where(r.c.pipeline == pipeline, r.c.label_json.is_not(None))
                    .order_by(r.c.labelled_s.desc())
                    .limit(_LAG_ROWS)
                )
                .scalars()
                .all(),
                dtype=float,
            )
        lags = np.clip(lags, 0.0, None)
        lasts = [float(v) for v in (last_row_label, last_event) if v is not None]
        return LabelStats(
            n_rows=int(n_rows),
            n_labelled=int(n_labelled),
            labelled_share=float(n_labelled) / n_rows if n_rows else 0.0,
            n_waiting_rows=int(n_rows) - int(n_labelled),
            n_waiting_labels=int(by_status.get("waiting", 0)),
            n_conflicts=int(by_status.get("conflict", 0)),
            n_expired=int(by_status.get("expired", 0)),
            lag_p50_s=float(np.percentile(lags, 50)) if len(lags) else None,
            lag_p95_s=float(np.percentile(lags, 95)) if len(lags) else None,
            last_label_s=max(lasts) if lasts else None,
        )


def _target_dtype(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    values = frame[schema.target]
    if schema.task == "regression":
        frame[schema.target] = values.astype("float64")
    elif all(isinstance(v, int) for v in values):
        frame[schema.target] = values.astype("int64")
    else:
        frame[schema.target] = values.astype(str).astype(object)
    return frame


def _file_record(row: sa.Row[tuple[object, ...]]) -> LabelFileRecord:
    m = row._mapping
    counts = LabelCounts(**json.loads(m["summary_json"])) if m["summary_json"] else None
    return LabelFileRecord(
        id=int(m["id"]),
        pipeline=str(m["pipeline"]),
        sha256=str(m["sha256"]),
        file_name=str(m["file_name"]),
        status=m["status"],
        reason=m["reason"],
        n_rows=int(m["n_rows"]),
        received_at=str(m["received_at"]),
        counts=counts,
    )


# -- label files ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ParsedLabels:
    labels: list[tuple[str, str]]  # (row id, label JSON), in file order
    schema: Schema  # with classes learned from these labels
    invalid: pd.DataFrame  # rows as read, with ``row`` and ``reason`` columns
    invalid_reason: str  # "code: message" over every invalid row, "" when none


def _class_labels(
    values: pd.Series, present: np.ndarray, schema: Schema
) -> tuple[list[ClassLabel | None], np.ndarray]:
    """Per row, the class label (int or text) and whether it has the wrong type."""
    known = schema.classes
    numeric = pd.to_numeric(values, errors="coerce")
    text = (numeric.isna() & values.notna()).to_numpy() & present
    known_text = known is not None and any(isinstance(c, str) for c in known)
    if known_text or (known is None and present.any() and text[present].all()):
        return [str(v) if p else None for v, p in zip(values, present, strict=True)], np.zeros(
            len(values), dtype=bool
        )
    data = numeric.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(data) & (np.abs(data) < 2**53) & np.isclose(data, np.round(data))
    wrong = present & ~whole
    labels: list[ClassLabel | None] = [
        round(v) if ok else None for v, ok in zip(data, present & whole, strict=True)
    ]
    return labels, wrong


def _class_order(value: ClassLabel | None) -> tuple[bool, ClassLabel]:
    """Sort key of class labels (whole numbers or text, never both in one pipeline)."""
    return (isinstance(value, str), "" if value is None else value)


def _parse_labels(
    frame: pd.DataFrame,
    schema: Schema,
    policy: LabelPolicy,
    rules: ValidationRules,
    source: str,
) -> _ParsedLabels:
    """Validate a label file: the file as a whole (raises), then each row (set aside)."""
    id_column, target = policy.id_column, schema.target
    if frame.empty:
        raise DataValidationError(f"{source}: label file has no rows", reason_code="empty")
    expected = [id_column, target]
    columns = [str(c) for c in frame.columns]
    if id_column not in columns or target not in columns or len(columns) != 2:
        missing = [c for c in expected if c not in columns]
        unexpected = [c for c in columns if c not in expected]
        found = [f"missing columns {missing}"] if missing else []
        found += [f"unexpected columns {unexpected}"] if unexpected else []
        code = "no_id" if id_column in missing else "no_target" if missing else "unexpected_columns"
        raise DataValidationError(
            f"{source}: a label file holds exactly the columns {expected} (data.id_column, "
            f"data.target); {'; '.join(found)}. Is it a batch? Batches go to data.landing_dir",
            reason_code=code,
        )
    frame = frame.reset_index(drop=True)
    ids = normalize_ids(frame[id_column])
    values = frame[target]
    has_id = ids.notna().to_numpy()
    present = values.notna().to_numpy()
    reasons: dict[str, np.ndarray] = {
        "missing_id": ~has_id,
        "missing_label": has_id & ~present,
    }
    usable = has_id & present
    labels: list[ClassLabel | float | None]
    unseen: list[ClassLabel | None] = []
    if schema.task == "regression":
        numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        wrong = usable & np.isnan(numeric)
        with np.errstate(invalid="ignore"):
            limit = rules.max_abs_value
            huge = np.isinf(numeric) | (
                np.zeros(len(numeric), dtype=bool) if limit is None else np.abs(numeric) > limit
            )
        reasons["label_type"] = wrong
        reasons["out_of_range"] = usable & ~wrong & huge
        labels = [float(v) for v in numeric]
    else:
        class_labels, wrong = _class_labels(values, usable, schema)
        reasons["label_type"] = wrong
        labels = list(class_labels)
        ok = usable & ~wrong
        known = list(schema.classes or ())
        unseen = sorted(
            {v for v, good in zip(class_labels, ok, strict=True) if good and v not in known},
            key=_class_order,
        )
        if unseen and len(known) >= 2 and rules.new_classes == "reject":
            reasons["new_class"] = ok & np.array([v in unseen for v in class_labels], dtype=bool)
        elif unseen:
            learned = [c for c in [*known, *unseen] if c is not None]
            schema = replace(schema, classes=tuple(sorted(learned, key=_class_order)))
    bad = np.zeros(len(frame), dtype=bool)
    parts: list[str] = []
    first_code = ""
    for code, flagged in reasons.items():
        mask = flagged & ~bad  # each row is counted under its first reason
        if not mask.any():
            continue
        first_code = first_code or code
        n = int(mask.sum())
        if code == "missing_id":
            what = f"{n} row(s) without an id"
        elif code == "missing_label":
            what = f"{n} row(s) without a label, ids {_examples(ids, mask)}"
        elif code == "label_type":
            what = f"{n} label(s) of the wrong type for {schema.task}, {_examples(values, mask)}"
        elif code == "out_of_range":
            what = (
                f"{n} label(s) infinite or beyond +-{rules.max_abs_value:g} "
                f"(data.max_abs_value), {_examples(values, mask)}"
            )
        else:
            what = (
                f"{n} label(s) of a class the pipeline has never seen {unseen} (known: "
                f"{list(schema.classes or ())}; data.new_classes: reject)"
            )
        parts.append(f"{code}: {what} at {_rows(mask)}")
        bad |= mask
    message = f"{source}: {'; '.join(parts)}{_ROW_NOTE}" if parts else ""
    if bad.all():
        raise DataValidationError(
            f"{message}. No row is a usable label; fix the export",
            reason_code=first_code,
        )
    invalid = frame.loc[bad].assign(row=np.flatnonzero(bad))
    if bad.any():
        invalid = invalid.assign(
            reason=[next(c for c, m in reasons.items() if m[i]) for i in np.flatnonzero(bad)]
        )
    good = np.flatnonzero(~bad)
    pairs = [(str(ids.iloc[i]), _encode(labels[i])) for i in good]
    return _ParsedLabels(
        labels=pairs,
        schema=schema,
        invalid=invalid,
        invalid_reason=f"{first_code}: {message}" if parts else "",
    )


_Outcome = LabelFileRecord | RejectedFile | Literal["duplicate", "waiting"]


@dataclass(frozen=True)
class _Labeller:
    pipeline: str
    paths: PipelinePaths
    store: LabelStore
    schema: Schema
    policy: LabelPolicy
    rules: ValidationRules
    now: float

    def reject(self, file: Path, sha: str, exc: DataValidationError) -> RejectedFile:
        reason = str(exc)
        self.store._reject_label_file(
            pipeline=self.pipeline,
            sha256=sha,
            file_name=file.name,
            reason=f"{exc.reason_code}: {reason}",
        )
        dest = _quarantine(file, self.paths.label_quarantine, sha, exc.reason_code, reason)
        log.warning("%s: label file rejected (%s); quarantined at %s", file.name, reason, dest)
        return RejectedFile(file.name, sha, exc.reason_code, reason, dest)

    def dangling(self, link: Path) -> RejectedFile:
        target = link.readlink()
        sha = hashlib.sha256(f"dangling symlink -> {target}".encode()).hexdigest()
        error = DataValidationError(
            f"{link.name}: a symbolic link to {target}, which does not exist; there is nothing "
            "to read. Deliver the file itself (or fix the link and drop it again)",
            reason_code="dangling_link",
        )
        return self.reject(link, sha, error)

    def known(self, file: Path, sha: str, known: LabelFileRecord) -> None:
        """A file whose bytes are recorded: a re-delivery, or one a crash left behind."""
        accepted = known.status == "accepted"
        folder = self.paths.label_archive if accepted else self.paths.label_quarantine
        if _holds(folder, known.file_name, sha):
            what = (
                f"accepted as label file {known.id}" if accepted else f"rejected ({known.reason})"
            )
            reason = (
                f"{file.name}: the same bytes (sha256 {sha[:12]}...) as {known.file_name}, "
                f"received {known.received_at} and {what}; not ingested again. Delete the "
                "copy, or deliver new labels as a file with new content"
            )
            dest = _quarantine(file, self.paths.label_quarantine, sha, "duplicate", reason)
            log.warning("%s: duplicate of %s; quarantined at %s", file.name, known.file_name, dest)
        elif accepted:
            log.info(
                "%s: recorded as label file %d before a restart; archiving", file.name, known.id
            )
            _move(file, self.paths.label_archive, sha)
        else:
            code, _, reason = (known.reason or "invalid: rejected").partition(": ")
            log.info("%s: recorded as rejected before a restart; quarantining", file.name)
            _quarantine(file, self.paths.label_quarantine, sha, code, reason)

    def ingest(self, file: Path, look: _Look) -> tuple[_Outcome, LabelCounts]:
        data = file.read_bytes()
        if len(data) != look[0] or _look(file) != look:
            log.info("%s: changed while being read; left for the next pass", file.name)
            return "waiting", LabelCounts()
        sha = hashlib.sha256(data).hexdigest()
        known = self.store.label_file(self.pipeline, sha)
        if known is not None:
            self.known(file, sha, known)
            return "duplicate", LabelCounts()
        schema = self.store.ledger.get_schema(self.pipeline) or self.schema
        try:
            frame = parse_table(data, name=file.name)
            parsed = _parse_labels(frame, schema, self.policy, self.rules, file.name)
        except DataValidationError as exc:
            if _look(file) != look:
                return "waiting", LabelCounts()
            return self.reject(file, sha, exc), LabelCounts()
        if _look(file) != look:
            log.info("%s: changed while being checked; left for the next pass", file.name)
            return "waiting", LabelCounts()
        if parsed.schema != schema:
            log.warning(
                "[%s] %s: learned class(es) from labels; classes now %s",
                self.pipeline,
                file.name,
                parsed.schema.classes,
            )
            self.store.ledger.replace_schema(self.pipeline, parsed.schema)
        reason = None
        if len(parsed.invalid):
            # Written before the labels are recorded: a crash in between rewrites it.
            rows = self.paths.label_quarantine / f"{file.name}.{sha[:8]}.rows.csv"
            write_table(parsed.invalid, rows)
            code, _, text = parsed.invalid_reason.partition(": ")
            _write_reason(rows, file_name=file.name, sha256=sha, code=code, reason=text)
            reason = f"{len(parsed.invalid)} row(s) quarantined to {rows.name}: {text}"
            log.warning("%s: %s", file.name, reason)
        record, counts = self.store._add_label_file(
            pipeline=self.pipeline,
            sha256=sha,
            file_name=file.name,
            labels=parsed.labels,
            n_rows=len(frame),
            n_invalid=len(parsed.invalid),
            reason=reason,
            policy=self.policy,
            now=self.now,
        )
        _move(file, self.paths.label_archive, sha)
        log.info("%s: label file %d: %s", file.name, record.id, counts)
        return record, counts


def ingest_labels(
    *,
    pipeline: str,
    landing_dir: Path,
    paths: PipelinePaths,
    ledger: BatchLedger,
    policy: LabelPolicy,
    rules: ValidationRules | None = None,
    patterns: tuple[str, ...] = ("*.csv", "*.parquet"),
    settle_s: float = 2.0,
    now: float | None = None,
) -> LabelIngestResult:
    """Validate every new label file in ``landing_dir`` and join its labels to their rows.

    Files are picked up as batches are (settled, read once, identified by content hash,
    recorded once in the ledger's label-file table, archived in ``archive/<pipeline>/labels``
    or quarantined in ``quarantine/<pipeline>/labels`` with a ``.reason.txt``). Each file's
    labels follow the rules of :mod:`automl.data._labels`; waiting labels older than
    ``policy.max_label_wait_s`` are expired first.

    Args:
        pipeline: Pipeline name.
        landing_dir: Folder of label files (``data.labels.landing_dir``).
        paths: The pipeline's workspace folders.
        ledger: The workspace ledger (its schema says the target and its classes).
        policy: The pipeline's late-label policy (:meth:`LabelPolicy.from_spec`).
        rules: Validation options (``new_classes``, ``max_abs_value`` apply to labels).
        patterns: Glob patterns of label files.
        settle_s: How long a file must stay unchanged before it is read, >= 0.
        now: Arrival time of these labels, seconds since the epoch (default: the clock).

    Returns:
        Accepted, rejected, duplicate, waiting and ignored files, and what their labels did.

    Raises:
        ConfigError: The folder is missing and not one automl creates itself.

    Example:
        >>> import tempfile
        >>> from automl.data import BatchLedger, PipelinePaths, ingest_landing, write_table
        >>> root = Path(tempfile.mkdtemp())
        >>> ledger, paths = BatchLedger(f"sqlite:///{root / 's.db'}"), PipelinePaths(root, "p")
        >>> policy = LabelPolicy("id")
        >>> rows = pd.DataFrame({"id": [1, 2, 3], "x": [0.1, 0.5, 0.9]})
        >>> _ = write_table(rows, root / "landing" / "p" / "rows.csv")
        >>> _ = ingest_landing(pipeline="p", landing_dir=root / "landing" / "p", paths=paths,
        ...     ledger=ledger, target="y", task="classification", settle_s=0, labels=policy)
        >>> _ = write_table(pd.DataFrame({"id": [3, 1], "y": [1, 0]}), root / "lab" / "p" / "l.csv")
        >>> result = ingest_labels(pipeline="p", landing_dir=root / "lab" / "p", paths=paths,
        ...     ledger=ledger, policy=policy, settle_s=0)
        >>> result.counts.joined
        2
        >>> LabelStore(ledger.url).labelled_rows("p")[["id", "y"]].values.tolist()
        [['1', 0], ['3', 1]]
    """
    if settle_s < 0:
        raise ValueError(f"settle_s must be >= 0, got {settle_s!r}")
    check_landing_dir(landing_dir, workspace=paths.workspace, pipeline=pipeline)
    now = time.time() if now is None else now
    store = LabelStore(ledger.url)
    matched = _matches(landing_dir, patterns)
    ignored = tuple(_report_ignored(landing_dir, matched, patterns))
    visible = [p for p in matched if not p.name.startswith(".")]
    files = sorted((p for p in visible if p.is_file()), key=_arrival)
    schema = ledger.get_schema(pipeline)
    if schema is None:
        if files:
            log.info(
                "[%s] %d label file(s) wait until the first batch is accepted (labels are "
                "checked against the schema it sets)",
                pipeline,
                len(files),
            )
        return LabelIngestResult((), (), (), tuple(f.name for f in files), ignored)
    labeller = _Labeller(pipeline, paths, store, schema, policy, rules or ValidationRules(), now)
    counts = LabelCounts(
        expired=store.expire_waiting(pipeline, max_label_wait_s=policy.max_label_wait_s, now=now)
    )
    dangling = [p for p in visible if _is_settled_dangling_link(p, settle_s)]
    rejected: list[RejectedFile] = [labeller.dangling(link) for link in sorted(dangling)]
    accepted: list[LabelFileRecord] = []
    duplicates: list[str] = []
    stable, moving = _settle(files, settle_s)
    waiting = [file.name for file in moving]
    for file, look in stable:
        try:
            outcome, file_counts = labeller.ingest(file, look)
        except FileNotFoundError:
            log.info("%s: taken by another ingester", file.name)
            continue
        counts = counts + file_counts
        if outcome == "waiting":
            waiting.append(file.name)
        elif outcome == "duplicate":
            duplicates.append(file.name)
        elif isinstance(outcome, RejectedFile):
            rejected.append(outcome)
        else:
            accepted.append(outcome)
    return LabelIngestResult(
        tuple(accepted), tuple(rejected), tuple(duplicates), tuple(waiting), ignored, counts
    )
