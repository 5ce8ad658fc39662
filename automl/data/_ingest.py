"""Ingestion: validate new files in a landing directory, store or quarantine each exactly once."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from automl.data._io import file_sha256, read_table, write_table
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger, BatchRecord
from automl.data._schema import infer_schema, validate_batch
from automl.errors import DataValidationError
from automl.vocab import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RejectedFile:
    """A landed file that failed validation and was moved to quarantine."""

    file_name: str
    sha256: str
    reason_code: str
    reason: str
    quarantine_path: Path


@dataclass(frozen=True)
class IngestResult:
    """What one pass over the landing directory did."""

    accepted: tuple[BatchRecord, ...]
    rejected: tuple[RejectedFile, ...]
    duplicates: tuple[str, ...]


def _landed_files(landing: Path, patterns: tuple[str, ...]) -> list[Path]:
    files = {p for pattern in patterns for p in landing.glob(pattern) if p.is_file()}
    # Hidden files are writes in progress (write to ".name.tmp", then rename).
    visible = [p for p in files if not p.name.startswith(".")]
    return sorted(visible, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _move(src: Path, folder: Path, sha256: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / src.name
    if dest.exists():
        dest = folder / f"{sha256[:12]}_{src.name}"
    shutil.move(str(src), dest)
    return dest


def _quarantine(src: Path, folder: Path, sha256: str, error: DataValidationError) -> Path:
    dest = _move(src, folder, sha256)
    dest.with_name(dest.name + ".reason.txt").write_text(
        f"file: {src.name}\nsha256: {sha256}\nreason_code: {error.reason_code}\nreason: {error}\n",
        encoding="utf-8",
    )
    return dest


def ingest_landing(
    *,
    pipeline: str,
    landing_dir: Path,
    paths: PipelinePaths,
    ledger: BatchLedger,
    target: str,
    task: Task,
    patterns: tuple[str, ...] = ("*.csv", "*.parquet"),
) -> IngestResult:
    """Validate every new file in ``landing_dir``; store accepted ones, quarantine the rest.

    Each file is identified by the SHA-256 of its content. A file already in the ledger is
    only moved to the archive (it is a duplicate, or a crash came between recording and
    moving it). A new file is read and validated against the pipeline's schema (the first
    accepted batch defines it); an accepted batch is written to ``batches/`` as Parquet and
    recorded, a rejected one is moved to ``quarantine/`` with a ``.reason.txt`` and recorded.
    Every step is idempotent, so a crash at any point loses and duplicates nothing.

    Args:
        pipeline: Pipeline name.
        landing_dir: Directory to scan (created when missing).
        paths: The pipeline's workspace folders.
        ledger: The workspace ledger.
        target: Label column.
        task: ``classification`` or ``regression``.
        patterns: Glob patterns of files to pick up.

    Returns:
        The accepted records, the rejected files and the names of duplicates, in arrival order.
    """
    landing_dir.mkdir(parents=True, exist_ok=True)
    accepted: list[BatchRecord] = []
    rejected: list[RejectedFile] = []
    duplicates: list[str] = []
    for file in _landed_files(landing_dir, patterns):
        try:
            outcome = _ingest_file(file, pipeline, paths, ledger, target, task)
        except FileNotFoundError:
            # Another ingester (a second process on the same folder) took it first.
            log.info("%s: taken by another ingester", file.name)
            continue
        if isinstance(outcome, RejectedFile):
            rejected.append(outcome)
        elif outcome is None:
            duplicates.append(file.name)
        else:
            accepted.append(outcome)
    return IngestResult(tuple(accepted), tuple(rejected), tuple(duplicates))


def _ingest_file(
    file: Path,
    pipeline: str,
    paths: PipelinePaths,
    ledger: BatchLedger,
    target: str,
    task: Task,
) -> BatchRecord | RejectedFile | None:
    """Ingest one file: its record, its rejection, or None for a file seen before."""
    sha = file_sha256(file)
    known = ledger.get(pipeline, sha)
    if known is not None:
        log.info("%s: already recorded as %s; archiving", file.name, known.status)
        if known.status == "rejected":
            _move(file, paths.quarantine, sha)
        else:
            _move(file, paths.archive, sha)
        return None
    try:
        frame = read_table(file)
        schema = ledger.get_schema(pipeline)
        if schema is None:
            if frame.empty:
                raise DataValidationError(f"{file.name}: batch has no rows", reason_code="empty")
            schema = ledger.save_schema(pipeline, infer_schema(frame, target=target, task=task))
        clean = validate_batch(frame, schema, source=file.name)
    except DataValidationError as exc:
        dest = _quarantine(file, paths.quarantine, sha, exc)
        ledger.add(
            pipeline=pipeline,
            sha256=sha,
            file_name=file.name,
            status="rejected",
            reason=f"{exc.reason_code}: {exc}",
        )
        log.warning("%s: rejected (%s); quarantined at %s", file.name, exc, dest)
        return RejectedFile(
            file_name=file.name,
            sha256=sha,
            reason_code=exc.reason_code,
            reason=str(exc),
            quarantine_path=dest,
        )
    stored = write_table(clean, paths.batches / f"{sha[:16]}.parquet")
    record = ledger.add(
        pipeline=pipeline,
        sha256=sha,
        file_name=file.name,
        status="accepted",
        stored_path=stored,
        n_rows=len(clean),
    )
    _move(file, paths.archive, sha)
    log.info("%s: accepted %d rows as batch %d", file.name, len(clean), record.id)
    return record


def load_batches(records: list[BatchRecord] | tuple[BatchRecord, ...]) -> pd.DataFrame:
    """Concatenate accepted batches in arrival order."""
    frames = [pd.read_parquet(r.stored_path) for r in records if r.stored_path is not None]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
