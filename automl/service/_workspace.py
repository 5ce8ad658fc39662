"""The workspace objects of a pipeline, built once per cycle or command in one place."""

from __future__ import annotations

from dataclasses import dataclass

from automl.config import PipelineSpec
from automl.data import BatchLedger, LabelPolicy, LabelStore, PipelinePaths
from automl.drift import DriftStateStore
from automl.service._history import CycleHistory
from automl.tracking import MlflowTracker, PromotionLog, ShadowStore


def make_tracker(spec: PipelineSpec) -> MlflowTracker:
    """The MLflow adapter for a pipeline (local artifact root when tracking to a local file)."""
    local = spec.mlflow.tracking_uri is None
    return MlflowTracker(
        spec.tracking_uri,
        spec.experiment_name,
        artifact_location=spec.artifact_location if local else None,
    )


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
        return LabelPolicy.from_spec(self.spec.data)


def open_workspace(spec: PipelineSpec) -> Workspace:
    """Open a pipeline's stores (no network call: MLflow is reached on first use)."""
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
