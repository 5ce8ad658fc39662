"""Label files: a folder of ``<id_column>, <target>`` files, each validated and its labels joined
to their rows exactly once (the rules are those of :mod:`automl.data._labels`).

Files are picked up as batches are (:mod:`automl.data._ingest`): settled, read once,
identified by content hash, recorded once, archived or quarantined with a ``.reason.txt``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

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
from automl.data._io import dangling_link, parse_table, write_table
from automl.data._labels import LabelCounts, LabelFileRecord, LabelPolicy, LabelStore, _encode
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger
from automl.data._schema import (
    _ROW_NOTE,
    ClassLabel,
    Schema,
    ValidationRules,
    _examples,
    _rows,
    normalize_ids,
)
from automl.errors import DataValidationError

log = logging.getLogger(__name__)


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
class _LabelRecorder:
    """Checks label deliveries against the pipeline's schema and records their labels: the
    steps a label file and a source's label delivery share."""

    pipeline: str
    paths: PipelinePaths
    store: LabelStore
    schema: Schema
    policy: LabelPolicy
    rules: ValidationRules
    now: float

    def expire_waiting(self) -> LabelCounts:
        """Expire the labels waiting longer than the policy allows (a pass's first step)."""
        return LabelCounts(
            expired=self.store.expire_waiting(
                self.pipeline, max_label_wait_s=self.policy.max_label_wait_s, now=self.now
            )
        )

    def current_schema(self) -> Schema:
        """The ledger's schema now (labels may have taught it classes), or the pass's."""
        return self.store.ledger.get_schema(self.pipeline) or self.schema

    def learn(self, name: str, parsed: _ParsedLabels, schema: Schema) -> None:
        """Store the classes the labels of ``name`` taught the schema, if any."""
        if parsed.schema != schema:
            log.warning(
                "[%s] %s: learned class(es) from labels; classes now %s",
                self.pipeline,
                name,
                parsed.schema.classes,
            )
            self.store.ledger.replace_schema(self.pipeline, parsed.schema)

    def add(
        self, name: str, sha: str, frame: pd.DataFrame, parsed: _ParsedLabels, reason: str | None
    ) -> tuple[LabelFileRecord, LabelCounts]:
        """Record the delivery and join its labels to their rows."""
        return self.store.add_label_file(
            pipeline=self.pipeline,
            sha256=sha,
            file_name=name,
            labels=parsed.labels,
            n_rows=len(frame),
            n_invalid=len(parsed.invalid),
            reason=reason,
            policy=self.policy,
            now=self.now,
        )


@dataclass(frozen=True)
class _Labeller(_LabelRecorder):
    def reject(self, file: Path, sha: str, exc: DataValidationError) -> RejectedFile:
        reason = str(exc)
        self.store.reject_label_file(
            pipeline=self.pipeline,
            sha256=sha,
            file_name=file.name,
            reason=f"{exc.reason_code}: {reason}",
        )
        dest = _quarantine(file, self.paths.label_quarantine, sha, exc.reason_code, reason)
        log.warning("%s: label file rejected (%s); quarantined at %s", file.name, reason, dest)
        return RejectedFile(file.name, sha, exc.reason_code, reason, dest)

    def dangling(self, link: Path) -> RejectedFile:
        return self.reject(link, *dangling_link(link))

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
        schema = self.current_schema()
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
        self.learn(file.name, parsed, schema)
        reason = None
        if len(parsed.invalid):
            # Written before the labels are recorded: a crash in between rewrites it.
            rows = self.paths.label_quarantine / f"{file.name}.{sha[:8]}.rows.csv"
            write_table(parsed.invalid, rows)
            code, _, text = parsed.invalid_reason.partition(": ")
            _write_reason(rows, file_name=file.name, sha256=sha, code=code, reason=text)
            reason = f"{len(parsed.invalid)} row(s) quarantined to {rows.name}: {text}"
            log.warning("%s: %s", file.name, reason)
        record, counts = self.add(file.name, sha, frame, parsed, reason)
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
    counts = labeller.expire_waiting()
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
