"""Tuning: search spaces, model pipelines, strategies, the Optuna search, warm start, reports.

Public surface:

- :class:`SearchConfig` describes what is searched (columns, task, metric, folds, strategy,
  families and their spaces); it round-trips through JSON, so other processes can share it;
- :func:`tune` runs a search of a :class:`SearchConfig` with a budget and returns a
  :class:`TuningResult` (one :class:`TrialResult` per trial through ``on_trial``);
- :data:`MODEL_FAMILIES` and :func:`family_space` describe the curated search spaces,
  :data:`STRATEGIES` the search strategies (both, and the metric tables, re-exported from
  :mod:`automl.vocab`, where they are defined);
- :func:`tune_distributed` owns a study on a database server that :func:`work_on_study`
  workers on other hosts join (:func:`find_active_study`);
- :func:`open_storage` opens an Optuna storage once per database server and process
  (:func:`close_storages` closes them);
- :func:`fail_stale_trials` fails the trials a killed process left RUNNING;
- :func:`latest_study` finds a pipeline's previous study for a warm start;
- :func:`write_tuning_report` renders the HTML report and PNG plots of a search;
- :func:`metric_from_predictions` scores stored predictions (the promotion gate uses it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl._lazy import lazy_loader
from automl.vocab import GREATER_IS_BETTER, MODEL_FAMILIES, PREDICTION_METRICS, STRATEGIES
from automl.vocab import METRICS_BY_TASK as TRIAL_METRICS
from automl.vocab import PRIMARY_METRICS as TASK_METRICS

if TYPE_CHECKING:
    from automl.tuning._distributed import (
        ActiveStudy,
        find_active_study,
        tune_distributed,
        work_on_study,
    )
    from automl.tuning._estimators import (
        LabelEncodedClassifier,
        build_model,
        decode_labels,
        make_preprocessor,
    )
    from automl.tuning._holdout import metric_from_predictions
    from automl.tuning._metrics import score_model
    from automl.tuning._report import write_tuning_report
    from automl.tuning._result import TrialResult, TuningResult
    from automl.tuning._search_config import SearchConfig
    from automl.tuning._space import (
        XGBOOST_DEFAULTS,
        FamilySpace,
        family_space,
        grid_configs,
        xgboost_space,
    )
    from automl.tuning._storage import (
        close_storages,
        fail_stale_trials,
        is_server_storage,
        open_storage,
    )
    from automl.tuning._strategies import check_strategy, make_sampler
    from automl.tuning._tuner import trials_table, tune
    from automl.tuning._warmstart import latest_study

#: Where each name is defined: imported on first use, so importing the package stays light.
_LAZY = {
    "ActiveStudy": "automl.tuning._distributed",
    "FamilySpace": "automl.tuning._space",
    "LabelEncodedClassifier": "automl.tuning._estimators",
    "SearchConfig": "automl.tuning._search_config",
    "TrialResult": "automl.tuning._result",
    "TuningResult": "automl.tuning._result",
    "XGBOOST_DEFAULTS": "automl.tuning._space",
    "build_model": "automl.tuning._estimators",
    "check_strategy": "automl.tuning._strategies",
    "close_storages": "automl.tuning._storage",
    "decode_labels": "automl.tuning._estimators",
    "fail_stale_trials": "automl.tuning._storage",
    "family_space": "automl.tuning._space",
    "find_active_study": "automl.tuning._distributed",
    "grid_configs": "automl.tuning._space",
    "is_server_storage": "automl.tuning._storage",
    "latest_study": "automl.tuning._warmstart",
    "make_preprocessor": "automl.tuning._estimators",
    "make_sampler": "automl.tuning._strategies",
    "metric_from_predictions": "automl.tuning._holdout",
    "open_storage": "automl.tuning._storage",
    "score_model": "automl.tuning._metrics",
    "trials_table": "automl.tuning._tuner",
    "tune": "automl.tuning._tuner",
    "tune_distributed": "automl.tuning._distributed",
    "work_on_study": "automl.tuning._distributed",
    "write_tuning_report": "automl.tuning._report",
    "xgboost_space": "automl.tuning._space",
}


__getattr__ = lazy_loader(__name__, _LAZY)


__all__ = [
    "GREATER_IS_BETTER",
    "MODEL_FAMILIES",
    "PREDICTION_METRICS",
    "STRATEGIES",
    "TASK_METRICS",
    "TRIAL_METRICS",
    "XGBOOST_DEFAULTS",
    "ActiveStudy",
    "FamilySpace",
    "LabelEncodedClassifier",
    "SearchConfig",
    "TrialResult",
    "TuningResult",
    "build_model",
    "check_strategy",
    "close_storages",
    "decode_labels",
    "fail_stale_trials",
    "family_space",
    "find_active_study",
    "grid_configs",
    "is_server_storage",
    "latest_study",
    "make_preprocessor",
    "make_sampler",
    "metric_from_predictions",
    "open_storage",
    "score_model",
    "trials_table",
    "tune",
    "tune_distributed",
    "work_on_study",
    "write_tuning_report",
    "xgboost_space",
]
