"""Where a pipeline's data comes from: one call per cycle, whatever ``data.source`` says.

``data.source.kind`` picks the reader: ``directory`` (the landing folder,
:func:`~automl.data.ingest_landing`, unchanged), ``object_store``
(:func:`~automl.data._object_store.ingest_object_store`) or ``sql``
(:func:`~automl.data._sql_source.ingest_sql`). Each reads every new delivery once, validates
it against the pipeline's schema, stores it as a batch or records why not, and returns an
:class:`~automl.data.IngestResult`; late labels likewise from ``data.labels``.
"""

from __future__ import annotations

from automl.config import PipelineSpec
from automl.data._ingest import IngestResult, ingest_landing
from automl.data._label_files import LabelIngestResult, ingest_labels
from automl.data._labels import LabelPolicy
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger
from automl.data._object_store import ingest_object_labels, ingest_object_store
from automl.data._schema import ValidationRules
from automl.data._sql_source import ingest_sql, ingest_sql_labels


def ingest_source(
    spec: PipelineSpec,
    *,
    paths: PipelinePaths,
    ledger: BatchLedger,
    labels: LabelPolicy | None = None,
    now: float | None = None,
) -> IngestResult:
    """Ingest every new delivery of the pipeline's ``data.source`` (the cycle's ingest).

    Args:
        spec: The pipeline's spec.
        paths: The pipeline's workspace folders.
        ledger: The workspace ledger.
        labels: The late-label policy (None: every batch carries its labels).
        now: Arrival time recorded for the rows (late labels), seconds since the epoch.

    Returns:
        What the pass did (see :class:`~automl.data.IngestResult`).

    Raises:
        ConfigError: A landing folder that is missing (directory), a scheme with no
            filesystem installed (object store).
        DataSourceError: The object store or database could not be read (after retries):
            nothing of the failed read is recorded.
    """
    data = spec.data
    source = data.source
    rules = ValidationRules.from_spec(data)
    if source.kind == "object_store":
        return ingest_object_store(
            pipeline=spec.name,
            source=source,
            paths=paths,
            ledger=ledger,
            target=data.target,
            task=data.task,
            rules=rules,
            labels=labels,
            settle_s=data.settle_s,
            now=now,
        )
    if source.kind == "sql":
        keep = [c for c in (data.id_column, data.time_column, data.prediction_column) if c]
        return ingest_sql(
            pipeline=spec.name,
            source=source,
            paths=paths,
            ledger=ledger,
            target=data.target,
            task=data.task,
            rules=rules,
            labels=labels,
            keep=keep,
            now=now,
        )
    return ingest_landing(
        pipeline=spec.name,
        landing_dir=spec.landing_path,
        paths=paths,
        ledger=ledger,
        target=data.target,
        task=data.task,
        patterns=data.file_patterns,
        rules=rules,
        settle_s=data.settle_s,
        labels=labels,
        now=now,
    )


def ingest_source_labels(
    spec: PipelineSpec,
    *,
    paths: PipelinePaths,
    ledger: BatchLedger,
    policy: LabelPolicy,
    now: float | None = None,
) -> LabelIngestResult | None:
    """Ingest every new label delivery of ``data.labels`` (a folder or a source).

    Returns:
        What the pass did, or None when labels come only in later batches.

    Raises:
        ConfigError, DataSourceError: As :func:`ingest_source`.
    """
    data = spec.data
    if data.labels is None:
        return None
    rules = ValidationRules.from_spec(data)
    source = data.labels.source
    if source is not None and source.kind == "object_store":
        return ingest_object_labels(
            pipeline=spec.name,
            source=source,
            paths=paths,
            ledger=ledger,
            policy=policy,
            rules=rules,
            settle_s=data.settle_s,
            now=now,
        )
    if source is not None and source.kind == "sql":
        return ingest_sql_labels(
            pipeline=spec.name,
            source=source,
            paths=paths,
            ledger=ledger,
            policy=policy,
            target=data.target,
            rules=rules,
            now=now,
        )
    folder = spec.labels_landing_path
    if folder is None:
        return None
    return ingest_labels(
        pipeline=spec.name,
        landing_dir=folder,
        paths=paths,
        ledger=ledger,
        policy=policy,
        rules=rules,
        patterns=data.file_patterns,
        settle_s=data.settle_s,
        now=now,
    )
