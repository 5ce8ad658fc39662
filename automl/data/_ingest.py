"""Ingestion: validate new files in a landing directory, store or quarantine each exactly once.

A landed file is read only once it has settled (its size and modification time did not change
for ``settle_s``), read once into memory, hashed and parsed from those same bytes, and moved
only if it did not change since it was read; so a file still being written is never half-read.
Every file that is not accepted (a rejected file, a re-delivered duplicate, a dangling symbolic
link) ends in ``quarantine/`` with a ``<file>.reason.txt`` naming what was wrong and where.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from automl.data._io import dangling_link, file_sha256, parse_table, read_csv_text, write_table
from automl.data._labels import LabelPolicy, LabelStore
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger, BatchRecord
from automl.data._schema import (
    CheckedBatch,
    Schema,
    ValidationRules,
    check_batch,
    infer_schema,
)
from automl.errors import ConfigError, DataValidationError
from automl.vocab import Task

log = logging.getLogger(__name__)

#: Ignored files already logged by this process, by (path, size, mtime): one line per file.
_reported_ignored: set[tuple[str, int, int]] = set()

#: A file's (size in bytes, modification time in ns): two equal looks mean it did not change.
_Look = tuple[int, int]
_Skip = Literal["duplicate", "waiting"]


@dataclass(frozen=True)
class RejectedFile:
    """A landed file (or another source's delivery) that failed validation.

    ``quarantine_path`` is where it was moved: a path in the workspace's quarantine folder, an
    object URL (an object-store source with a ``quarantine_prefix``), or None when it was left
    where it is (its reason is in the ledger).
    """

    file_name: str
    sha256: str
    reason_code: str
    reason: str
    quarantine_path: Path | str | None


@dataclass(frozen=True)
class IngestResult:
    """What one pass over the landing directory did.

    Attributes:
        accepted: Records of the accepted files, in arrival order.
        rejected: The files quarantined by a validation rule (dangling links included).
        duplicates: Names of files whose bytes were recorded before (re-deliveries are
            quarantined with a reason; a file a crash left behind is archived).
        waiting: Names of files left for a later pass: still being written, or changed
            while being read.
        ignored: Names of entries in the landing folder that match no pattern.
    """

    accepted: tuple[BatchRecord, ...]
    rejected: tuple[RejectedFile, ...]
    duplicates: tuple[str, ...]
    waiting: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


def check_landing_dir(landing_dir: Path, *, workspace: Path, pipeline: str) -> None:
    """Make sure the landing folder exists, creating it only where a typo cannot have put it.

    A missing folder is created when it is the workspace's default ``<workspace>/landing/
    <pipeline>`` (what ``automl init`` makes) or an existing folder's subfolder named after
    the pipeline (``/data/landing/churn``, as the deploy manifests mount it). Any other
    missing path is most likely a misspelled ``data.landing_dir``: watching a folder nobody
    writes to would report ``no_data`` forever, so it is an error.

    Raises:
        ConfigError: The folder is missing (and not one of the above) or is not a folder.
    """
    if landing_dir.is_dir():
        return
    if landing_dir.exists():
        raise ConfigError(
            f"data.landing_dir: {landing_dir} is a file, not a folder; point "
            "data.landing_dir at the folder batches are dropped into"
        )
    default = (workspace / "landing" / pipeline).resolve()
    conventional = landing_dir.name == pipeline and landing_dir.parent.is_dir()
    if landing_dir.resolve() == default or conventional:
        landing_dir.mkdir(parents=True, exist_ok=True)
        log.info("[%s] created the landing folder %s", pipeline, landing_dir)
        return
    raise ConfigError(
        f"data.landing_dir: the landing folder {landing_dir} does not exist (is the path "
        f"misspelled?). Create it (mkdir -p {landing_dir}) or correct data.landing_dir in the "
        f"pipeline spec; automl creates only {default} or a folder named {pipeline!r} inside "
        "an existing one by itself"
    )


def _matches(landing: Path, patterns: tuple[str, ...]) -> set[Path]:
    return {p for pattern in patterns for p in landing.glob(pattern)}


def landed_files(
    landing_dir: Path, patterns: tuple[str, ...] = ("*.csv", "*.parquet")
) -> list[Path]:
    """Files waiting in a landing folder to be ingested, oldest first (none if it is missing).

    Hidden files (``.name.tmp``, writes in progress) are not listed.
    """
    if not landing_dir.is_dir():
        return []
    files = [
        p for p in _matches(landing_dir, patterns) if p.is_file() and not p.name.startswith(".")
    ]
    return sorted(files, key=_arrival)


def _arrival(path: Path) -> tuple[int, str]:
    try:
        return (path.stat().st_mtime_ns, path.name)
    except FileNotFoundError:
        return (0, path.name)


def _is_settled_dangling_link(path: Path, settle_s: float) -> bool:
    """A symbolic link whose target is missing and that has not changed for ``settle_s``."""
    try:
        if not path.is_symlink() or path.exists():
            return False
        return time.time_ns() - path.lstat().st_mtime_ns >= settle_s * 1e9
    except OSError:
        return False


def _look(path: Path) -> _Look:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns)


def _report_ignored(landing: Path, matched: set[Path], patterns: tuple[str, ...]) -> list[str]:
    """Log each entry that matches no pattern once per process (and again when it changes)."""
    ignored: list[str] = []
    for entry in sorted(landing.iterdir()):
        if entry.name.startswith(".") or entry in matched:
            continue
        if entry.is_dir() and any(m.is_relative_to(entry) for m in matched):
            continue
        ignored.append(entry.name)
        try:
            st = entry.lstat()
        except FileNotFoundError:
            continue
        key = (str(entry), st.st_size, st.st_mtime_ns)
        if key in _reported_ignored:
            continue
        if len(_reported_ignored) > 10_000:
            _reported_ignored.clear()
        _reported_ignored.add(key)
        what = "a folder" if entry.is_dir() else "a file"
        log.warning(
            "%s: ignored: %s that matches none of the landing patterns %s (data.file_patterns); "
            "convert it, rename it or add a pattern",
            entry,
            what,
            list(patterns),
        )
    return ignored


def _settle(files: list[Path], settle_s: float) -> tuple[list[tuple[Path, _Look]], list[Path]]:
    """Two looks at every file, ``settle_s`` apart for any file modified more recently.

    Returns:
        The files unchanged between the looks (with their look), and the ones still changing.
    """
    first: dict[Path, _Look] = {}
    for file in files:
        try:
            first[file] = _look(file)
        except FileNotFoundError:
            continue  # another ingester took it
    if first and settle_s > 0:
        now_ns = time.time_ns()
        youngest_s = min((now_ns - mtime) / 1e9 for _, mtime in first.values())
        # Capped at settle_s: a modification time in the future (clock skew) waits once.
        wait = min(settle_s, settle_s - youngest_s)
        if wait > 0:
            time.sleep(wait)
    stable: list[tuple[Path, _Look]] = []
    moving: list[Path] = []
    for file, look in first.items():
        try:
            again = _look(file)
        except FileNotFoundError:
            continue
        if again == look:
            stable.append((file, look))
        else:
            moving.append(file)
    return stable, moving


def _move(src: Path, folder: Path, sha256: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / src.name
    if dest.exists() or dest.is_symlink():
        dest = folder / f"{sha256[:12]}_{src.name}"
    shutil.move(str(src), dest)
    return dest


def _write_reason(dest: Path, *, file_name: str, sha256: str, code: str, reason: str) -> None:
    dest.with_name(dest.name + ".reason.txt").write_text(
        f"file: {file_name}\nsha256: {sha256}\nreason_code: {code}\nreason: {reason}\n",
        encoding="utf-8",
    )


def _quarantine(src: Path, folder: Path, sha256: str, code: str, reason: str) -> Path:
    dest = _move(src, folder, sha256)
    _write_reason(dest, file_name=src.name, sha256=sha256, code=code, reason=reason)
    return dest


def _holds(folder: Path, name: str, sha256: str) -> bool:
    """Whether ``folder`` holds the file ``name`` with these bytes (as :func:`_move` names it)."""
    if (folder / f"{sha256[:12]}_{name}").exists():
        return True
    candidate = folder / name
    try:
        return candidate.is_file() and file_sha256(candidate) == sha256
    except OSError:
        return False


def _known_classes(ledger: BatchLedger, pipeline: str, target: str) -> tuple[int | str, ...] | None:
    """The classes of the batches a workspace accepted before schemas recorded them."""
    labels: set[int | str] = set()
    for record in ledger.records(pipeline, status="accepted"):
        if record.stored_path is not None and record.stored_path.exists():
            column = pd.read_parquet(record.stored_path, columns=[target])[target].dropna()
            labels.update(v.item() if hasattr(v, "item") else v for v in column.unique())
    if not labels:
        return None
    return tuple(sorted(labels, key=lambda v: (isinstance(v, str), v)))


@dataclass(frozen=True)
class _Ingester:
    pipeline: str
    paths: PipelinePaths
    ledger: BatchLedger
    target: str
    task: Task
    rules: ValidationRules
    labels: LabelPolicy | None = None
    store_labels: LabelStore | None = None
    now: float = 0.0

    def reject(self, file: Path, sha: str, exc: DataValidationError) -> RejectedFile:
        # Recorded first, moved second: a crash in between leaves the file landed and
        # recorded, and the next pass finishes the move (see ``known``).
        reason = str(exc)
        self.ledger.add(
            pipeline=self.pipeline,
            sha256=sha,
            file_name=file.name,
            status="rejected",
            reason=f"{exc.reason_code}: {reason}",
        )
        dest = _quarantine(file, self.paths.quarantine, sha, exc.reason_code, reason)
        log.warning("%s: rejected (%s); quarantined at %s", file.name, reason, dest)
        return RejectedFile(
            file_name=file.name,
            sha256=sha,
            reason_code=exc.reason_code,
            reason=reason,
            quarantine_path=dest,
        )

    def dangling(self, link: Path) -> RejectedFile:
        return self.reject(link, *dangling_link(link))

    def known(self, file: Path, sha: str, known: BatchRecord) -> None:
        """A file whose bytes are recorded: a re-delivery, or one a crash left behind."""
        folder = self.paths.archive if known.status == "accepted" else self.paths.quarantine
        if _holds(folder, known.file_name, sha):
            what = (
                f"accepted as batch {known.id}"
                if known.status == "accepted"
                else (f"rejected ({known.reason})")
            )
            reason = (
                f"{file.name}: the same bytes (sha256 {sha[:12]}...) as {known.file_name}, "
                f"received {known.received_at} and {what}; not ingested again. Delete the "
                "copy, or deliver new rows as a file with new content"
            )
            dest = _quarantine(file, self.paths.quarantine, sha, "duplicate", reason)
            log.warning("%s: duplicate of %s; quarantined at %s", file.name, known.file_name, dest)
        elif known.status == "accepted":
            log.info("%s: recorded as batch %d before a restart; archiving", file.name, known.id)
            _move(file, self.paths.archive, sha)
        else:
            code, _, reason = (known.reason or "invalid: rejected").partition(": ")
            log.info("%s: recorded as rejected before a restart; quarantining", file.name)
            _quarantine(file, self.paths.quarantine, sha, code, reason)

    def check(
        self, frame: pd.DataFrame, data: bytes, name: str, *, stored: Schema | None
    ) -> CheckedBatch:
        """Validate a parsed file against the ``stored`` schema (as read with the file's ledger
        lookup); store its schema (first batch, learned classes)."""
        schema = stored
        id_column = self.labels.id_column if self.labels else None
        kept = self.labels.kept_columns if self.labels else ()
        if schema is None:
            if frame.empty:
                raise DataValidationError(f"{name}: batch has no rows", reason_code="empty")
            schema = infer_schema(
                frame,
                target=self.target,
                task=self.task,
                exclude=(*kept, *([id_column] if id_column else [])),
                require_target=id_column is None,
            )
        elif schema.task == "classification" and schema.classes is None:
            classes = _known_classes(self.ledger, self.pipeline, schema.target)
            if classes is not None:
                schema = self.ledger.replace_schema(
                    self.pipeline, Schema(schema.features, schema.target, schema.task, classes)
                )
                stored = schema

        def raw() -> pd.DataFrame:
            return read_csv_text(data) if name.lower().endswith(".csv") else frame.astype(str)

        def check(schema: Schema) -> CheckedBatch:
            return check_batch(
                frame,
                schema,
                source=name,
                rules=self.rules,
                raw=raw,
                id_column=id_column,
                kept_columns=kept,
            )

        checked = check(schema)
        if checked.schema == stored:
            return checked
        if stored is None:
            saved = self.ledger.save_schema(self.pipeline, checked.schema)
            if saved == checked.schema:
                return checked
            # Another ingester stored a first schema meanwhile: validate against that one.
            checked = check(saved)
            if checked.schema == saved:
                return checked
        log.warning(
            "[%s] %s: learned class(es); classes now %s",
            self.pipeline,
            name,
            checked.schema.classes,
        )
        self.ledger.replace_schema(self.pipeline, checked.schema)
        return checked

    def store(self, name: str, sha: str, checked: CheckedBatch) -> BatchRecord:
        """Store and record a checked batch (rows set aside go to quarantine first).

        Raises:
            DataValidationError: Late labels: the batch repeats known ids and labels in
                batches are off.
        """
        reason = None
        if len(checked.bad_rows):
            rows = self.paths.quarantine / f"{name}.{sha[:8]}.rows.csv"
            write_table(checked.bad_rows, rows)
            code, _, text = checked.bad_rows_reason.partition(": ")
            _write_reason(rows, file_name=name, sha256=sha, code=code, reason=text)
            reason = f"{len(checked.bad_rows)} row(s) quarantined to {rows.name}: {text}"
            log.warning("%s: %s", name, reason)
        if self.labels is not None and self.store_labels is not None:
            # Late labels: the rows, their ids and any labels they bring are recorded with
            # the batch in one transaction (a batch that repeats known ids delivers labels).
            return self.store_labels.add_batch(
                pipeline=self.pipeline,
                sha256=sha,
                file_name=name,
                frame=checked.frame,
                target=checked.schema.target,
                batches_dir=self.paths.batches,
                reason=reason,
                policy=self.labels,
                now=self.now,
            )
        stored = write_table(checked.frame, self.paths.batches / f"{sha[:16]}.parquet")
        return self.ledger.add(
            pipeline=self.pipeline,
            sha256=sha,
            file_name=name,
            status="accepted",
            reason=reason,
            stored_path=stored,
            n_rows=len(checked.frame),
        )

    def ingest(self, file: Path, look: _Look) -> BatchRecord | RejectedFile | _Skip:
        """Ingest one settled file: its record, its rejection, ``duplicate`` for a file seen
        before, or ``waiting`` when it changed since it settled (left for the next pass)."""
        data = file.read_bytes()
        if len(data) != look[0] or _look(file) != look:
            log.info("%s: changed while being read; left for the next pass", file.name)
            return "waiting"
        sha = hashlib.sha256(data).hexdigest()
        known, stored = self.ledger.lookup(self.pipeline, sha)
        if known is not None:
            self.known(file, sha, known)
            return "duplicate"
        try:
            frame = parse_table(data, name=file.name)
            checked = self.check(frame, data, file.name, stored=stored)
            if _look(file) != look:
                log.info("%s: changed while being checked; left for the next pass", file.name)
                return "waiting"
            record = self.store(file.name, sha, checked)
        except DataValidationError as exc:
            if _look(file) != look:
                log.info("%s: changed while being checked; left for the next pass", file.name)
                return "waiting"
            return self.reject(file, sha, exc)
        dest = _move(file, self.paths.archive, sha)
        try:
            after = _look(dest)
        except FileNotFoundError:
            after = look
        if after != look:
            log.warning(
                "%s: written to after it was read (%d -> %d bytes): batch %d holds what was "
                "read; the rest is only in %s. Write files as .name.tmp and rename them when "
                "complete, or raise data.settle_s",
                file.name,
                look[0],
                after[0],
                record.id,
                dest,
            )
        log.info("%s: accepted %d rows as batch %d", file.name, record.n_rows, record.id)
        return record


def ingest_landing(
    *,
    pipeline: str,
    landing_dir: Path,
    paths: PipelinePaths,
    ledger: BatchLedger,
    target: str,
    task: Task,
    patterns: tuple[str, ...] = ("*.csv", "*.parquet"),
    rules: ValidationRules | None = None,
    settle_s: float = 2.0,
    labels: LabelPolicy | None = None,
    now: float | None = None,
) -> IngestResult:
    """Validate every new file in ``landing_dir``; store accepted ones, quarantine the rest.

    Each file is identified by the SHA-256 of its content. A file is read once it has settled
    (size and modification time unchanged for ``settle_s``; this call waits at most
    ``settle_s`` for files modified more recently, and leaves one still changing for the next
    pass). It is read once into memory, hashed, parsed and validated from those bytes against
    the pipeline's schema (the first accepted batch defines it) and ``rules``; an accepted
    batch is written to ``batches/`` as Parquet and recorded, a rejected one is recorded and
    moved to ``quarantine/`` with a ``.reason.txt``. Nothing moves if the file changed since
    it was read. A file already in the ledger is a re-delivery (quarantined with a
    ``duplicate`` reason) or one a crash left behind (its move is finished). Every step is
    idempotent, so a crash at any point loses and duplicates nothing.

    With ``labels`` (late labels) a batch may come without labels; its rows are recorded by
    id with the batch, labels waiting for them are joined, and a row that repeats a known id
    delivers that row's label instead of adding a row (see :mod:`automl.data._labels`).

    Args:
        pipeline: Pipeline name.
        landing_dir: Directory to scan (see :func:`check_landing_dir` for when it may be
            missing).
        paths: The pipeline's workspace folders.
        ledger: The workspace ledger.
        target: Label column.
        task: ``classification`` or ``regression``.
        patterns: Glob patterns of files to pick up; other entries are logged once each.
        rules: Options of the validation rules (default: :class:`ValidationRules`).
        settle_s: How long a file's size and modification time must stay unchanged, >= 0.
        labels: The pipeline's late-label policy (:meth:`LabelPolicy.from_spec
            <automl.data.LabelPolicy.from_spec>`); None: every batch carries its labels.
        now: Arrival time recorded for the rows, in seconds since the epoch (default: the
            clock); with ``labels`` only.

    Returns:
        The accepted records, the rejected files, the names of duplicates, of files left for
        a later pass and of ignored entries, in arrival order. With ``labels`` an accepted
        record's ``n_rows`` counts new rows only (a batch of known ids only has none and no
        stored file).

    Raises:
        ConfigError: The landing folder is missing and not one automl creates itself.
    """
    if settle_s < 0:
        raise ValueError(f"settle_s must be >= 0, got {settle_s!r}")
    check_landing_dir(landing_dir, workspace=paths.workspace, pipeline=pipeline)
    store = LabelStore(ledger.url) if labels is not None else None
    ingester = _Ingester(
        pipeline,
        paths,
        ledger,
        target,
        task,
        rules or ValidationRules(),
        labels,
        store,
        time.time() if now is None else now,
    )
    matched = _matches(landing_dir, patterns)
    ignored = _report_ignored(landing_dir, matched, patterns)
    visible = [p for p in matched if not p.name.startswith(".")]
    dangling = [p for p in visible if _is_settled_dangling_link(p, settle_s)]
    files = sorted((p for p in visible if p.is_file()), key=_arrival)
    accepted: list[BatchRecord] = []
    rejected: list[RejectedFile] = [ingester.dangling(link) for link in sorted(dangling)]
    duplicates: list[str] = []
    stable, moving = _settle(files, settle_s)
    waiting = [file.name for file in moving]
    for file in moving:
        log.info(
            "%s: still being written (size or modification time changed within %gs); left "
            "for the next pass",
            file.name,
            settle_s,
        )
    for file, look in stable:
        try:
            outcome = ingester.ingest(file, look)
        except FileNotFoundError:
            # Another ingester (a second process on the same folder) took it first.
            log.info("%s: taken by another ingester", file.name)
            continue
        if outcome == "waiting":
            waiting.append(file.name)
        elif isinstance(outcome, RejectedFile):
            rejected.append(outcome)
        elif outcome == "duplicate":
            duplicates.append(file.name)
        else:
            accepted.append(outcome)
    return IngestResult(
        tuple(accepted), tuple(rejected), tuple(duplicates), tuple(waiting), tuple(ignored)
    )


def load_batches(records: list[BatchRecord] | tuple[BatchRecord, ...]) -> pd.DataFrame:
    """Concatenate accepted batches in arrival order."""
    frames = [pd.read_parquet(r.stored_path) for r in records if r.stored_path is not None]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
