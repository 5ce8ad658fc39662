"""Data: sources (a landing folder, an object-store prefix, a SQL table), reading batches,
schemas and validation, the ingestion ledger, late labels joined by id, training windows."""

from __future__ import annotations

from automl.data._ingest import (
    IngestResult,
    RejectedFile,
    check_landing_dir,
    ingest_landing,
    landed_files,
    load_batches,
)
from automl.data._io import (
    file_sha256,
    frame_sha256,
    parse_table,
    read_table,
    table_columns,
    write_table,
)
from automl.data._label_files import LabelIngestResult, ingest_labels
from automl.data._labels import (
    LabelCounts,
    LabelEvent,
    LabelFileRecord,
    LabelPolicy,
    LabelStats,
    LabelStore,
)
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger, BatchRecord
from automl.data._object_store import SeenObjects, ingest_object_labels, ingest_object_store
from automl.data._schema import (
    CheckedBatch,
    Schema,
    ValidationRules,
    as_received,
    check_batch,
    coerce_features,
    infer_schema,
    normalize_ids,
    validate_batch,
)
from automl.data._sources import ingest_source, ingest_source_labels
from automl.data._sql_source import ingest_sql, ingest_sql_labels
from automl.data._synthetic import make_churn_frame
from automl.data._window import select_window, split_holdout, window_time_range

__all__ = [
    "BatchLedger",
    "BatchRecord",
    "CheckedBatch",
    "IngestResult",
    "LabelCounts",
    "LabelEvent",
    "LabelFileRecord",
    "LabelIngestResult",
    "LabelPolicy",
    "LabelStats",
    "LabelStore",
    "PipelinePaths",
    "RejectedFile",
    "Schema",
    "SeenObjects",
    "ValidationRules",
    "as_received",
    "check_batch",
    "check_landing_dir",
    "coerce_features",
    "file_sha256",
    "frame_sha256",
    "infer_schema",
    "ingest_labels",
    "ingest_landing",
    "ingest_object_labels",
    "ingest_object_store",
    "ingest_source",
    "ingest_source_labels",
    "ingest_sql",
    "ingest_sql_labels",
    "landed_files",
    "load_batches",
    "make_churn_frame",
    "normalize_ids",
    "parse_table",
    "read_table",
    "select_window",
    "split_holdout",
    "table_columns",
    "validate_batch",
    "window_time_range",
    "write_table",
]
