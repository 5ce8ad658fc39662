"""Tracking: MLflow runs and artifacts; the registry: versions, aliases, the promotion gate,
alias moves with their intent log, reconcile, rollback and the promotion history.

Alias moves need only :class:`AliasRegistry`: :class:`MlflowTracker` (MLflow's client, every
tracking URI) or :class:`RestRegistry` (a tracking server's REST API, without importing MLflow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl._lazy import lazy_loader
from automl.vocab import Approval, SignificanceTest

if TYPE_CHECKING:
    from automl.tracking._aliases import (
        AliasMove,
        move_logged,
        promote_version,
        reconcile,
        rollback,
        serving_version,
    )
    from automl.tracking._gate import (
        GateResult,
        Guardrail,
        GuardrailCheck,
        Predictions,
        PromotionGate,
        evaluate_gate,
    )
    from automl.tracking._mlflow import MlflowTracker, ModelVersionInfo, RunSummary
    from automl.tracking._promotion import (
        CHALLENGER,
        CHAMPION,
        PREVIOUS_CHAMPION,
        PromotionDecision,
        decide_promotion,
        move_champion,
    )
    from automl.tracking._promotion_log import Action, LogEntry, PromotionLog, current_actor
    from automl.tracking._pyfunc import predict_frame
    from automl.tracking._registry import AliasRegistry
    from automl.tracking._rest import RestRegistry, RestSettings, needs_mlflow_client
    from automl.tracking._shadow import ShadowBatch, ShadowState, ShadowStore

#: Where each name is defined: imported on first use, so importing the package stays light.
_LAZY = {
    "Action": "automl.tracking._promotion_log",
    "AliasRegistry": "automl.tracking._registry",
    "AliasMove": "automl.tracking._aliases",
    "CHALLENGER": "automl.tracking._promotion",
    "CHAMPION": "automl.tracking._promotion",
    "GateResult": "automl.tracking._gate",
    "Guardrail": "automl.tracking._gate",
    "GuardrailCheck": "automl.tracking._gate",
    "LogEntry": "automl.tracking._promotion_log",
    "MlflowTracker": "automl.tracking._mlflow",
    "ModelVersionInfo": "automl.tracking._mlflow",
    "PREVIOUS_CHAMPION": "automl.tracking._promotion",
    "Predictions": "automl.tracking._gate",
    "PromotionDecision": "automl.tracking._promotion",
    "PromotionGate": "automl.tracking._gate",
    "PromotionLog": "automl.tracking._promotion_log",
    "RestRegistry": "automl.tracking._rest",
    "RestSettings": "automl.tracking._rest",
    "RunSummary": "automl.tracking._mlflow",
    "ShadowBatch": "automl.tracking._shadow",
    "ShadowState": "automl.tracking._shadow",
    "ShadowStore": "automl.tracking._shadow",
    "current_actor": "automl.tracking._promotion_log",
    "decide_promotion": "automl.tracking._promotion",
    "evaluate_gate": "automl.tracking._gate",
    "move_champion": "automl.tracking._promotion",
    "move_logged": "automl.tracking._aliases",
    "needs_mlflow_client": "automl.tracking._rest",
    "predict_frame": "automl.tracking._pyfunc",
    "promote_version": "automl.tracking._aliases",
    "reconcile": "automl.tracking._aliases",
    "rollback": "automl.tracking._aliases",
    "serving_version": "automl.tracking._aliases",
}


__getattr__ = lazy_loader(__name__, _LAZY)


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS_CHAMPION",
    "Action",
    "AliasMove",
    "AliasRegistry",
    "Approval",
    "GateResult",
    "Guardrail",
    "GuardrailCheck",
    "LogEntry",
    "MlflowTracker",
    "ModelVersionInfo",
    "Predictions",
    "PromotionDecision",
    "PromotionGate",
    "PromotionLog",
    "RestRegistry",
    "RestSettings",
    "RunSummary",
    "ShadowBatch",
    "ShadowState",
    "ShadowStore",
    "SignificanceTest",
    "current_actor",
    "decide_promotion",
    "evaluate_gate",
    "move_champion",
    "move_logged",
    "needs_mlflow_client",
    "predict_frame",
    "promote_version",
    "reconcile",
    "rollback",
    "serving_version",
]
