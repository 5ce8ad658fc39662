"""Data: reading batches, schemas and validation, the ingestion ledger, late labels joined by
id, training windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl._lazy import lazy_loader

if TYPE_CHECKING:
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

#: Where each name is defined: imported on first use, so importing the package stays light.
_LAZY = {
    "BatchLedger": "automl.data._ledger",
    "BatchRecord": "automl.data._ledger",
    "CheckedBatch": "automl.data._schema",
    "IngestResult": "automl.data._ingest",
    "LabelCounts": "automl.data._labels",
    "LabelEvent": "automl.data._labels",
    "LabelFileRecord": "automl.data._labels",
    "LabelIngestResult": "automl.data._label_files",
    "LabelPolicy": "automl.data._labels",
    "LabelStats": "automl.data._labels",
    "LabelStore": "automl.data._labels",
    "PipelinePaths": "automl.data._layout",
    "RejectedFile": "automl.data._ingest",
    "Schema": "automl.data._schema",
    "SeenObjects": "automl.data._object_store",
    "ValidationRules": "automl.data._schema",
    "as_received": "automl.data._schema",
    "check_batch": "automl.data._schema",
    "check_landing_dir": "automl.data._ingest",
    "coerce_features": "automl.data._schema",
    "file_sha256": "automl.data._io",
    "frame_sha256": "automl.data._io",
    "infer_schema": "automl.data._schema",
    "ingest_labels": "automl.data._label_files",
    "ingest_landing": "automl.data._ingest",
    "ingest_object_labels": "automl.data._object_store",
    "ingest_object_store": "automl.data._object_store",
    "ingest_source": "automl.data._sources",
    "ingest_source_labels": "automl.data._sources",
    "ingest_sql": "automl.data._sql_source",
    "ingest_sql_labels": "automl.data._sql_source",
    "landed_files": "automl.data._ingest",
    "load_batches": "automl.data._ingest",
    "make_churn_frame": "automl.data._synthetic",
    "normalize_ids": "automl.data._schema",
    "parse_table": "automl.data._io",
    "read_table": "automl.data._io",
    "select_window": "automl.data._window",
    "split_holdout": "automl.data._window",
    "table_columns": "automl.data._io",
    "validate_batch": "automl.data._schema",
    "window_time_range": "automl.data._window",
    "write_table": "automl.data._io",
}


__getattr__ = lazy_loader(__name__, _LAZY)


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
