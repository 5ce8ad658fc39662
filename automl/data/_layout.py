"""Where a pipeline's files live inside its workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PipelinePaths:
    """Folders of one pipeline inside a workspace.

    ``batches/`` holds accepted batches as Parquet, ``archive/`` the original files once
    ingested, ``quarantine/`` rejected files with a ``.reason.txt`` beside each (label files
    in their ``labels/`` subfolders), ``reports/`` per-cycle drift JSON and HTML,
    ``reference/`` the champion's training rows.
    """

    workspace: Path
    pipeline: str

    def _dir(self, kind: str) -> Path:
        return self.workspace / kind / self.pipeline

    @property
    def batches(self) -> Path:
        """Accepted batches (Parquet, canonical dtypes)."""
        return self._dir("batches")

    @property
    def archive(self) -> Path:
        """Original files after ingestion."""
        return self._dir("archive")

    @property
    def quarantine(self) -> Path:
        """Rejected files and their reasons."""
        return self._dir("quarantine")

    @property
    def label_archive(self) -> Path:
        """Label files after ingestion (late labels)."""
        return self.archive / "labels"

    @property
    def label_quarantine(self) -> Path:
        """Rejected label files and label rows, with their reasons (late labels)."""
        return self.quarantine / "labels"

    @property
    def reports(self) -> Path:
        """Per-cycle reports."""
        return self._dir("reports")

    @property
    def reference(self) -> Path:
        """Reference data files."""
        return self._dir("reference")
