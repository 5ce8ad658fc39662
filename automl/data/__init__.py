"""Data: reading batches, schemas and validation, the ingestion ledger, training windows."""

from __future__ import annotations

from automl.data._ingest import (
    IngestResult,
    RejectedFile,
    check_landing_dir,
    ingest_landing,
    landed_files,
    load_batches,
)
from automl.data._io import file_sha256, frame_sha256, parse_table, read_table, write_table
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger, BatchRecord
from automl.data._schema import (
    CheckedBatch,
    Schema,
    ValidationRules,
    as_received,
    check_batch,
    coerce_features,
    infer_schema,
    validate_batch,
)
from automl.data._synthetic import make_churn_frame
from automl.data._window import select_window, split_holdout, window_time_range

__all__ = [
    "BatchLedger",
    "BatchRecord",
    "CheckedBatch",
    "IngestResult",
    "PipelinePaths",
    "RejectedFile",
    "Schema",
    "ValidationRules",
    "as_received",
    "check_batch",
    "check_landing_dir",
    "coerce_features",
    "file_sha256",
    "frame_sha256",
    "infer_schema",
    "ingest_landing",
    "landed_files",
    "load_batches",
    "make_churn_frame",
    "parse_table",
    "read_table",
    "select_window",
    "split_holdout",
    "validate_batch",
    "window_time_range",
    "write_table",
]
