"""Which version serves, and its model, as the quick commands need them.

``automl status`` and ``automl predict`` answer from the workspace's state database: every move
of ``@champion`` automl makes is written to the promotion log (intent, then outcome), so the
newest applied move names the champion without an MLflow client (importing MLflow alone takes
about a second). The registry is asked only when the log cannot know: an alias move a crash
left open, or a cycle that saw another champion since the last logged move (an alias moved
outside automl). ``predict`` keeps a copy of each version it scored under the workspace's
``.automl/models`` folder and unpickles it from there; registered versions never change, so
only the first ``predict`` of a version downloads it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from automl.config import PipelineSpec
from automl.service._history import CycleHistory
from automl.tracking import PromotionLog


@dataclass(frozen=True)
class ServingChampion:
    """The champion of a pipeline.

    Attributes:
        version: The registered version ``@champion`` names.
        answered_by: ``promotion_log`` (the state database) or ``registry`` (MLflow).
        cv_score: Its CV score in the cycle that trained it, if this workspace trained it.
    """

    version: str
    answered_by: Literal["promotion_log", "registry"]
    cv_score: float | None = None


def serving_champion(spec: PipelineSpec) -> ServingChampion | None:
    """The pipeline's champion, from the promotion log unless only the registry can tell.

    Returns:
        The champion, or None when there is none.

    Raises:
        TrackingError: The registry had to be asked and could not answer.
    """
    cycles = CycleHistory(spec.state_url).list(spec.name)  # newest first
    log = PromotionLog(spec.state_url)
    version: str | None = None
    answered_by: Literal["promotion_log", "registry"] = "promotion_log"
    if not log.open_intents(spec.name):
        move = log.champion_move(spec.name)
        seen = cycles[0].champion_version if cycles else None
        if move is not None and move.to_version is not None:
            # A cycle that finished after the move and saw another champion read the registry.
            moved_since = bool(cycles) and cycles[0].finished_at >= move.created_at
            if not (moved_since and seen is not None and seen != move.to_version):
                version = move.to_version
        elif seen is None:
            return None  # nothing logged, and no cycle ever saw a champion
    if version is None:
        version, answered_by = _registry_champion(spec), "registry"
        if version is None:
            return None
    trained = [c.best_cv_score for c in cycles if c.model_version == version]
    return ServingChampion(version, answered_by, trained[-1] if trained else None)


def _registry_champion(spec: PipelineSpec) -> str | None:
    from automl.service._workspace import make_registry
    from automl.tracking import CHAMPION

    found = make_registry(spec).get_alias(spec.model_name, CHAMPION)
    return found.version if found else None


def model_copy_dir(spec: PipelineSpec, version: str) -> Path:
    """Where ``predict`` keeps its copy of a version: per tracking URI, model and version."""
    uri = hashlib.sha256(spec.tracking_uri.encode()).hexdigest()[:12]
    return spec.workspace_dir / ".automl" / "models" / f"{spec.model_name}-{uri}" / f"v{version}"


def champion_model(spec: PipelineSpec, version: str) -> Any:
    """The fitted scikit-learn model of ``version``: the local copy, else downloaded once.

    Raises:
        TrackingError: The version could not be downloaded.
        ValueError: The copy is not a model automl logged.
    """
    from automl.tracking._model_format import load_model_dir

    folder = model_copy_dir(spec, version)
    if (folder / "MLmodel").is_file():
        return load_model_dir(folder)
    from automl.service._workspace import make_tracker

    tracker = make_tracker(spec)
    try:
        tracker.download_model(spec.model_name, version, folder)
    except OSError:  # a workspace this user cannot write: score from a temporary copy
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return load_model_dir(
                tracker.download_model(spec.model_name, version, Path(tmp) / "model")
            )
    return load_model_dir(folder)
