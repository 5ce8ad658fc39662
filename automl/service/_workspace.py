"""The workspace objects of a pipeline, built once per cycle or command in one place.

The stores are imported where they are opened: ``automl promote`` needs only the registry and
the promotion log, not pandas (which the label store imports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from automl.config import PipelineSpec
from automl.tracking import MlflowTracker

if TYPE_CHECKING:
    from automl.data import BatchLedger, LabelPolicy, LabelStore, PipelinePaths
    from automl.drift import DriftStateStore
    from automl.service._history import CycleHistory
    from automl.tracking import AliasRegistry, PromotionLog, ShadowStore


def make_tracker(spec: PipelineSpec) -> MlflowTracker:
    """The MLflow adapter for a pipeline (local artifact root when tracking to a local file)."""
    local = spec.mlflow.tracking_uri is None
    return MlflowTracker(
        spec.tracking_uri,
        spec.experiment_name,
        artifact_location=spec.artifact_location if local else None,
    )


def make_registry(spec: PipelineSpec) -> AliasRegistry:
    """The registry aliases of a pipeline, for the commands a person waits for (``promote``,
    ``rollback``, and ``status`` when only the registry knows the champion).

    A tracking server (``http(s)://``) is spoken to over MLflow's REST API without importing
    MLflow (:class:`~automl.tracking.RestRegistry`, configured from the same environment as
    MLflow's client); a local store (SQLite, the default) or a setting only MLflow's client
    supports (:func:`~automl.tracking.needs_mlflow_client`) gets :func:`make_tracker`.

    Raises:
        TrackingError: An MLflow setting in the environment is invalid.
    """
    from automl.tracking import RestRegistry

    return RestRegistry.from_env(spec.tracking_uri) or make_tracker(spec)


@dataclass(frozen=True)
class Workspace:
    """Everything a pipeline reads and writes, opened once.

    Attributes:
        spec: The pipeline.
        paths: Its folders in the workspace.
        ledger: Landed files and the pipeline's schema (state database).
        history: The cycle history (state database).
        drift_states: The hysteresis state (state database).
        promotions: The promotion log (state database).
        shadows: The challenger in shadow, if any (state database).
        tracker: MLflow runs and the model registry.
        labels: Late labels (``data.id_column`` set): the rows by id and their labels; None
            when every batch carries its labels.
    """

    spec: PipelineSpec
    paths: PipelinePaths
    ledger: BatchLedger
    history: CycleHistory
    drift_states: DriftStateStore
    promotions: PromotionLog
    shadows: ShadowStore
    tracker: MlflowTracker
    labels: LabelStore | None = None

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.spec.name

    @property
    def label_policy(self) -> LabelPolicy | None:
        """How rows and late labels are joined; None without ``data.id_column``."""
        from automl.data import LabelPolicy

        return LabelPolicy.from_spec(self.spec.data)


def open_workspace(spec: PipelineSpec) -> Workspace:
    """Open a pipeline's stores (no network call: MLflow is reached on first use)."""
    from automl.data import BatchLedger, LabelStore, PipelinePaths
    from automl.drift import DriftStateStore
    from automl.service._history import CycleHistory
    from automl.tracking import PromotionLog, ShadowStore

    url = spec.state_url
    return Workspace(
        spec=spec,
        paths=PipelinePaths(spec.workspace_dir, spec.name),
        ledger=BatchLedger(url),
        history=CycleHistory(url),
        drift_states=DriftStateStore(url),
        promotions=PromotionLog(url),
        shadows=ShadowStore(url),
        tracker=make_tracker(spec),
        labels=LabelStore(url) if spec.data.id_column is not None else None,
    )
