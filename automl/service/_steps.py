"""The steps of a cycle, each a plain function with typed inputs and a frozen result.

:mod:`automl.service._cycle` calls them in order (read it first); the CLI's ``drift`` and
``tune`` commands call :func:`detect_drift` and :func:`search_and_log`. What a step writes to
MLflow is in :mod:`automl.service._record`.

This module is the steps' one import path: it holds :func:`ingest` and re-exports the others,
which live in one module per group of steps:

- :mod:`automl.service._steps_types`: what the steps return (:class:`DriftOutcome`,
  :class:`Window`, :class:`Registered`, :class:`Shadowed`) and :class:`CycleInterruptedError`;
- :mod:`automl.service._steps_drift`: the drift check against the champion's reference and
  evidence, and the hysteresis state it leaves;
- :mod:`automl.service._steps_tune`: the training window, the search and the registration;
- :mod:`automl.service._steps_judge`: the stored holdouts and the old-population guardrail,
  the gate and the promotion;
- :mod:`automl.service._steps_shadow`: shadow mode, late labels included.
"""

from __future__ import annotations

from automl.data import IngestResult, ingest_source
from automl.errors import ConfigError
from automl.service._steps_drift import (
    CheckedColumns,
    champion_evidence,
    champion_reference,
    check_drift,
    detect_drift,
    drift_event,
    reference_identity,
    save_drift_state,
)
from automl.service._steps_judge import (
    StoredHoldout,
    champion_holdout,
    guard_old_population,
    judge,
    judge_challenger,
    keep_out,
    predict_holdout,
    promote,
    store_holdout,
    stored_holdout,
)
from automl.service._steps_shadow import (
    SHADOW_LABELLED_SHARE,
    score_shadow,
    shadow_has_news,
    start_shadow,
)
from automl.service._steps_tune import (
    find_registered,
    register,
    search_and_log,
    search_config,
    training_window,
    tune_window,
)
from automl.service._steps_types import (
    CycleInterruptedError,
    DriftOutcome,
    Registered,
    Shadowed,
    Window,
)
from automl.service._workspace import Workspace

__all__ = [
    "SHADOW_LABELLED_SHARE",
    "CheckedColumns",
    "CycleInterruptedError",
    "DriftOutcome",
    "Registered",
    "Shadowed",
    "StoredHoldout",
    "Window",
    "champion_evidence",
    "champion_holdout",
    "champion_reference",
    "check_drift",
    "detect_drift",
    "drift_event",
    "find_registered",
    "guard_old_population",
    "ingest",
    "judge",
    "judge_challenger",
    "keep_out",
    "predict_holdout",
    "promote",
    "reference_identity",
    "register",
    "save_drift_state",
    "score_shadow",
    "search_and_log",
    "search_config",
    "shadow_has_news",
    "start_shadow",
    "store_holdout",
    "stored_holdout",
    "training_window",
    "tune_window",
]


# -- ingest ----------------------------------------------------------------------------------
def ingest(ws: Workspace) -> IngestResult:
    """Validate and store every new delivery of the pipeline's ``data.source`` (the landing
    folder by default; an object-store prefix or a SQL table), bad ones quarantined.

    Raises:
        DataSourceError: The object store or database could not be read (after retries).
        ConfigError: The spec's ``data.target`` or ``data.task`` is not the one the pipeline's
            stored data was accepted with (its schema is fixed by the first batch).
    """
    data = ws.spec.data
    stored = ws.ledger.get_schema(ws.name)
    if stored is not None and (stored.target, stored.task) != (data.target, data.task):
        raise ConfigError(
            f"pipeline {ws.name!r}: the spec says data.target {data.target!r} ({data.task}), "
            f"but the data this workspace accepted has target {stored.target!r} "
            f"({stored.task}); the schema is fixed by the first batch. To learn another label, "
            "give the pipeline a new name (or a new workspace); to go on, restore data.target"
        )
    return ingest_source(ws.spec, paths=ws.paths, ledger=ws.ledger, labels=ws.label_policy)
