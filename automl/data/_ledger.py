"""The ledger: every landed file recorded once by content hash, and each pipeline's schema.

The ledger makes ingestion exactly-once across restarts: a file is identified by the SHA-256 of
its bytes, so a file seen before (accepted or rejected) is never processed again, and a file
not yet recorded is always processed, whatever happened to the process in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from automl.errors import DataValidationError
from automl.state import batches_table, insert_once, open_state, schemas_table, utcnow

if TYPE_CHECKING:  # the schema module needs pandas; commands that only count batches do not
    from automl.data._schema import Schema

BatchStatus = Literal["accepted", "rejected"]


@dataclass(frozen=True)
class BatchRecord:
    """One landed file as the ledger knows it."""

    id: int
    pipeline: str
    sha256: str
    file_name: str
    status: BatchStatus
    reason: str | None
    stored_path: Path | None
    n_rows: int
    received_at: str
    cycle_id: str | None


def _record(row: sa.Row[tuple[object, ...]]) -> BatchRecord:
    m = row._mapping
    return BatchRecord(
        id=int(m["id"]),
        pipeline=str(m["pipeline"]),
        sha256=str(m["sha256"]),
        file_name=str(m["file_name"]),
        status=m["status"],
        reason=m["reason"],
        stored_path=Path(m["stored_path"]) if m["stored_path"] else None,
        n_rows=int(m["n_rows"]),
        received_at=str(m["received_at"]),
        cycle_id=m["cycle_id"],
    )


class BatchLedger:
    """Records of landed files and schemas for every pipeline in a workspace.

    Args:
        url: SQLAlchemy URL of the state database.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = open_state(url)
        # The last schema read, by its stored text: ingest reads the schema once per file, and
        # parsing it again when the text did not change is wasted (a Schema is immutable).
        self._last_schema: tuple[str, Schema] | None = None

    # -- files -------------------------------------------------------------------------
    def get(self, pipeline: str, sha256: str) -> BatchRecord | None:
        """The record of a file by content hash, or None when never seen."""
        t = batches_table
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(t).where(t.c.pipeline == pipeline, t.c.sha256 == sha256)
            ).first()
        return _record(row) if row else None

    def lookup(self, pipeline: str, sha256: str) -> tuple[BatchRecord | None, Schema | None]:
        """:meth:`get` and :meth:`get_schema` in one query (ingest asks both for every file)."""
        t, s = batches_table, schemas_table
        joined = s.outerjoin(t, sa.and_(t.c.pipeline == s.c.pipeline, t.c.sha256 == sha256))
        query = sa.select(s.c.schema_json, *t.c).select_from(joined).where(s.c.pipeline == pipeline)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:  # no schema yet (before the first accepted batch)
            return self.get(pipeline, sha256), None
        record = _record(row) if row._mapping["id"] is not None else None
        return record, self._parse_schema(row._mapping["schema_json"])

    def add(
        self,
        *,
        pipeline: str,
        sha256: str,
        file_name: str,
        status: BatchStatus,
        reason: str | None = None,
        stored_path: Path | None = None,
        n_rows: int = 0,
    ) -> BatchRecord:
        """Record a file once. Recording the same content twice returns the first record."""
        stored = str(stored_path) if stored_path else None
        received_at = utcnow()
        values: dict[str, object] = {
            "pipeline": pipeline,
            "sha256": sha256,
            "file_name": file_name,
            "status": status,
            "reason": reason,
            "stored_path": stored,
            "n_rows": n_rows,
            "received_at": received_at,
        }
        key = insert_once(self._engine, batches_table, values)
        if key is not None:  # inserted now: the record is what was written (no read back)
            return BatchRecord(
                id=int(key),
                pipeline=pipeline,
                sha256=sha256,
                file_name=file_name,
                status=status,
                reason=reason,
                stored_path=Path(stored) if stored else None,
                n_rows=int(n_rows),
                received_at=received_at,
                cycle_id=None,
            )
        record = self.get(pipeline, sha256)
        assert record is not None
        return record

    def records(self, pipeline: str, *, status: BatchStatus | None = None) -> list[BatchRecord]:
        """Records of a pipeline in arrival order, optionally of one status."""
        t = batches_table
        query = sa.select(t).where(t.c.pipeline == pipeline).order_by(t.c.id)
        if status:
            query = query.where(t.c.status == status)
        with self._engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def pending(self, pipeline: str) -> list[BatchRecord]:
        """Accepted batches no cycle has checked yet, oldest first."""
        return [r for r in self.records(pipeline, status="accepted") if r.cycle_id is None]

    def mark_checked(self, pipeline: str, ids: list[int], cycle_id: str) -> None:
        """Mark batches as consumed by a cycle (done last, so a crash leaves them pending)."""
        if not ids:
            return
        t = batches_table
        with self._engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.pipeline == pipeline, t.c.id.in_(ids))
                .values(cycle_id=cycle_id)
            )

    def quarantine(
        self, pipeline: str, batch_id: int, reason: str, *, stored_path: Path | None = None
    ) -> BatchRecord:
        """Take an accepted batch out of the pipeline: status ``rejected`` with ``reason``.

        For a batch that was accepted but then broke every cycle (see
        :mod:`automl.service`): it is no longer pending, never trained on, and its content
        hash stays recorded, so the same file delivered again is recognised, not re-ingested.

        Args:
            pipeline: Pipeline name.
            batch_id: The batch's ledger id.
            reason: Why, for people: shown by ``automl status`` and kept in the ledger.
            stored_path: Where its rows were moved (None: unchanged).

        Raises:
            DataValidationError: No accepted batch of ``pipeline`` has that id.
        """
        t = batches_table
        values: dict[str, object] = {"status": "rejected", "reason": reason}
        if stored_path is not None:
            values["stored_path"] = str(stored_path)
        with self._engine.begin() as conn:
            updated = conn.execute(
                t.update()
                .where(t.c.pipeline == pipeline, t.c.id == batch_id, t.c.status == "accepted")
                .values(**values)
            ).rowcount
        if not updated:
            raise DataValidationError(
                f"pipeline {pipeline!r} has no accepted batch with id {batch_id}; see "
                "`automl status` for its batches"
            )
        found = [r for r in self.records(pipeline) if r.id == batch_id]
        return found[0]

    # -- schema ------------------------------------------------------------------------
    def get_schema(self, pipeline: str) -> Schema | None:
        """The pipeline's schema, or None before its first accepted batch."""
        t = schemas_table
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(t.c.schema_json).where(t.c.pipeline == pipeline)).first()
        return None if row is None else self._parse_schema(row[0])

    def _parse_schema(self, text: str) -> Schema:
        from automl.data._schema import Schema

        last = self._last_schema
        if last is not None and last[0] == text:
            return last[1]
        schema = Schema.from_json(text)
        self._last_schema = (text, schema)
        return schema

    def save_schema(self, pipeline: str, schema: Schema) -> Schema:
        """Store the schema if none is stored yet; return the stored one."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    schemas_table.insert().values(
                        pipeline=pipeline, schema_json=schema.to_json(), created_at=utcnow()
                    )
                )
        except sa.exc.IntegrityError:
            pass
        stored = self.get_schema(pipeline)
        assert stored is not None
        return stored

    def replace_schema(self, pipeline: str, schema: Schema) -> Schema:
        """Overwrite the stored schema (its classes grew); store it if none is stored yet."""
        t = schemas_table
        with self._engine.begin() as conn:
            updated = conn.execute(
                t.update().where(t.c.pipeline == pipeline).values(schema_json=schema.to_json())
            ).rowcount
        return schema if updated else self.save_schema(pipeline, schema)
