"""The registry operations an alias move needs, as a contract two adapters fulfil.

:class:`~automl.tracking.MlflowTracker` fulfils it through MLflow's client (every tracking URI);
:class:`~automl.tracking.RestRegistry` through MLflow's REST API with the standard library only
(``http(s)://`` tracking servers), for the commands a person waits for: importing MLflow alone
takes longer than ``automl promote`` may.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from automl.tracking._mlflow import ModelVersionInfo


class AliasRegistry(Protocol):
    """Read and move the aliases of registered model versions, and tag a version.

    What :mod:`automl.tracking._aliases` (promotion, rollback, reconcile) calls, no more.
    Errors other than "not found" surface as exceptions (``TrackingError`` from
    :class:`~automl.tracking.RestRegistry`, MLflow's from :class:`~automl.tracking.MlflowTracker`).
    """

    def get_alias(self, model_name: str, alias: str) -> ModelVersionInfo | None:
        """The version ``alias`` points at; None when the alias or the model does not exist."""
        ...

    def get_version(self, model_name: str, version: str) -> ModelVersionInfo:
        """A registered version by number; raises when there is no such version."""
        ...

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (moving it if it names another version)."""
        ...

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove ``alias``; nothing happens when it does not exist."""
        ...

    def set_version_tags(self, model_name: str, version: str, tags: Mapping[str, Any]) -> None:
        """Set tags on a version (values are stringified)."""
        ...
