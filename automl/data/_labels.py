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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from automl.data._io import write_table
from automl.data._ledger import BatchLedger, BatchRecord
from automl.data._schema import _ROW_NOTE, ClassLabel, Schema, _examples, _rows
from automl.errors import DataValidationError, StateError
from automl.state import (
    batches_table,
    insert_once,
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

#: Ids per ``IN (...)`` list (below the 999 parameters of older SQLite builds).
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

    def add_label_file(
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
        """Record a label file and apply its ``(row id, label JSON)`` pairs in one transaction.

        Called by :func:`~automl.data.ingest_labels` once the file is validated.

        Returns:
            The file's record and what its labels did (the first record and its counts when
            the same bytes were recorded before).
        """
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

    def reject_label_file(
        self, *, pipeline: str, sha256: str, file_name: str, reason: str
    ) -> LabelFileRecord:
        """Record a rejected label file (the first record of the same bytes wins)."""
        insert_once(
            self._engine,
            label_files_table,
            {
                "pipeline": pipeline,
                "sha256": sha256,
                "file_name": file_name,
                "status": "rejected",
                "reason": reason,
                "n_rows": 0,
                "received_at": utcnow(),
            },
        )
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

    def labelled_per_batch(self, pipeline: str) -> dict[int, int]:
        """``{batch id: rows of it with a label}`` (batches without a labelled row left out)."""
        return self._labelled_per_batch(pipeline)

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
        for regression). Rows still without a label are left out. A batch accepted before
        the pipeline had an id column (no row of it recorded by id) had to carry every label:
        all its rows are returned as stored.

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
            recorded = _batches_with_rows(conn, pipeline, [r.id for r in stored])
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
            assert record.stored_path is not None
            if record.id not in recorded:  # from before the id column: labelled on arrival
                frames.append(pd.read_parquet(record.stored_path))
                continue
            labelled = by_batch.get(record.id)
            if not labelled:
                continue
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
            with self._engine.connect() as conn:
                recorded = _batches_with_rows(conn, pipeline, [r.id for r in records])
            covered, start = 0, len(records)
            while start > 0 and covered < max_rows:
                start -= 1
                record = records[start]
                unrecorded = record.n_rows if record.id not in recorded else 0
                covered += per_batch.get(record.id, unrecorded)
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


def _batches_with_rows(conn: sa.Connection, pipeline: str, batch_ids: Sequence[int]) -> set[int]:
    """The batches among ``batch_ids`` whose rows are recorded by id."""
    t = rows_table
    found: set[int] = set()
    for start in range(0, len(batch_ids), _CHUNK):
        chunk = list(batch_ids[start : start + _CHUNK])
        query = (
            sa.select(t.c.batch_id)
            .where(t.c.pipeline == pipeline, t.c.batch_id.in_(chunk))
            .distinct()
        )
        found.update(int(b) for b in conn.execute(query).scalars())
    return found


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
