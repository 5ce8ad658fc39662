"""Data: reading batches, schemas and validation, the ingestion ledger, training windows."""

from __future__ import annotations

from automl.data._db import get_engine
from automl.data._ingest import IngestResult, RejectedFile, ingest_landing, load_batches
from automl.data._io import file_sha256, frame_sha256, read_table, write_table
from automl.data._layout import PipelinePaths
from automl.data._ledger import BatchLedger, BatchRecord, utcnow
from automl.data._schema import (
    Schema,
    as_received,
    coerce_features,
    infer_schema,
    validate_batch,
)
from automl.data._synthetic import make_churn_frame
from automl.data._window import select_window, split_holdout, window_time_range

__all__ = [
    "BatchLedger",
    "BatchRecord",
    "IngestResult",
    "PipelinePaths",
    "RejectedFile",
    "Schema",
    "as_received",
    "coerce_features",
    "file_sha256",
    "frame_sha256",
    "get_engine",
    "infer_schema",
    "ingest_landing",
    "load_batches",
    "make_churn_frame",
    "read_table",
    "select_window",
    "split_holdout",
    "utcnow",
    "validate_batch",
    "window_time_range",
    "write_table",
]
