"""Warm start: find the previous study of a pipeline and its best configurations.

After drift the previous study's *scores* are stale, but its best *configurations* are still
the best guesses there are. They are re-evaluated as the first trials of the new study (on the
new data, as ordinary trials), so the sampler learns from fresh scores only; the old trials are
never copied into the new study.

Studies live in one Optuna storage (``optuna.db`` in the workspace, or a database URL). Each
study the tuner creates carries the user attribute ``automl.group`` (the pipeline name), so the
next search finds its predecessor without parsing study names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from automl.errors import TuningError
from automl.tuning._storage import open_storage, safe_url

#: Study user attribute naming the group (pipeline) a study belongs to.
GROUP_ATTR = "automl.group"
#: Study user attribute set when a search finished; unfinished studies are still usable.
FINISHED_ATTR = "automl.finished_at"


@dataclass(frozen=True)
class Configuration:
    """A model family and its hyperparameters, as a previous trial ran them.

    Attributes:
        family: Model family.
        params: Tuned hyperparameters (plain names, no family prefix).
        score: The score it had then (for reports only; never fed to the new sampler).
        trial_number: Its trial number in the previous study.
    """

    family: str
    params: dict[str, Any]
    score: float
    trial_number: int


def latest_study(storage: str, *, group: str, exclude: str | None = None) -> str | None:
    """The most recently started study of ``group`` in ``storage`` that completed a trial.

    Args:
        storage: Optuna storage URL.
        group: The group (pipeline name) given to :func:`automl.tuning.tune` as
            ``study_group``.
        exclude: A study name to skip (the one about to run).

    Returns:
        The study name, or None when the group has no usable study yet.

    Raises:
        TuningError: The storage cannot be read.
    """
    import optuna

    try:
        store = open_storage(storage)
        summaries = optuna.get_all_study_summaries(store, include_best_trial=False)
    except TuningError:
        raise
    except Exception as exc:
        raise TuningError(f"cannot read Optuna studies from {safe_url(storage)}: {exc}") from exc
    candidates = [
        s
        for s in summaries
        if s.user_attrs.get(GROUP_ATTR) == group
        and s.study_name != exclude
        and s.n_trials > 0
        and s.datetime_start is not None
    ]
    candidates.sort(key=lambda s: (s.datetime_start, s.study_name))
    for summary in reversed(candidates):
        study = optuna.load_study(study_name=summary.study_name, storage=store)
        if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            return summary.study_name
    return None


def split_param_name(name: str, families: tuple[str, ...]) -> tuple[str | None, str]:
    """``"xgboost.max_depth"`` → ``("xgboost", "max_depth")``; plain names → ``(None, name)``."""
    family, _, plain = name.partition(".")
    if plain and family in families:
        return family, plain
    return None, name


def best_configurations(
    storage: str, study_name: str, *, top_k: int, families: tuple[str, ...]
) -> list[Configuration]:
    """The ``top_k`` best distinct configurations of a finished study, best first.

    Args:
        storage: Optuna storage URL.
        study_name: The previous study.
        top_k: How many to return (>= 1).
        families: Every known family name (to read conditional parameter names).

    Raises:
        TuningError: The study cannot be loaded.
    """
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except Exception as exc:
        raise TuningError(f"cannot load previous study {study_name!r}: {exc}") from exc
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    complete.sort(key=lambda t: (-(t.value or 0.0) if maximize else (t.value or 0.0), t.number))
    chosen: list[Configuration] = []
    seen: set[tuple[str, tuple[tuple[str, Any], ...]]] = set()
    for trial in complete:
        family = str(trial.user_attrs.get("model_family") or trial.params.get("model", ""))
        params = {}
        for name, value in trial.params.items():
            if name == "model":
                continue
            fam, plain = split_param_name(name, families)
            if fam is None or fam == family:
                params[plain] = value
        if not family:
            continue
        key = (family, tuple(sorted(params.items())))
        if key in seen:
            continue
        seen.add(key)
        chosen.append(
            Configuration(
                family=family,
                params=params,
                score=float(trial.value or 0.0),
                trial_number=trial.number,
            )
        )
        if len(chosen) >= top_k:
            break
    return chosen
