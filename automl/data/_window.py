"""Training windows: which stored rows a model is tuned on, and the fresh holdout that judges it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import pandas as pd

from automl.data._ingest import load_batches
from automl.data._ledger import BatchRecord
from automl.errors import ConfigError

#: How a re-tune picks its rows (``training.window`` of a spec).
WindowPolicy = Literal["since_drift", "recent"]
WINDOW_POLICIES: tuple[WindowPolicy, ...] = ("since_drift", "recent")


def _check_policy(policy: str) -> None:
    if policy not in WINDOW_POLICIES:
        raise ConfigError(
            f"window policy must be one of {', '.join(WINDOW_POLICIES)}, got {policy!r}; "
            "set training.window in the spec"
        )


if TYPE_CHECKING:
    from automl.data._labels import LabelStore


def select_window(
    accepted: list[BatchRecord],
    *,
    since_id: int | None,
    min_rows: int,
    max_rows: int,
    policy: WindowPolicy = "since_drift",
    labels: LabelStore | None = None,
) -> pd.DataFrame:
    """Rows to train on, oldest first.

    ``since_drift``: the old rows describe a world that is gone, so the window starts at the
    first drifted batch (``since_id``). When that leaves fewer than ``min_rows`` rows, the
    newest older rows fill it up; when it holds more than ``max_rows``, the newest ``max_rows``
    win. ``recent``: the champion serves everybody, so the window is the newest ``max_rows``
    rows, spanning before and after the drift; ``since_id`` is ignored.

    Args:
        accepted: Every accepted batch of the pipeline, in arrival order.
        since_id: First batch id of the window; None takes all batches.
        min_rows: Fewest rows wanted (older rows fill up to it when available).
        max_rows: Most rows kept.
        policy: ``since_drift`` or ``recent`` (the spec's ``training.window``).
        labels: A pipeline with late labels: its label store. The window then holds labelled
            rows only, each with the label the store has for it (``min_rows`` and
            ``max_rows`` count labelled rows).

    Returns:
        The window's rows (may be fewer than ``min_rows`` when the pipeline has less data).

    Raises:
        ConfigError: ``policy`` is not one of :data:`WINDOW_POLICIES`.
    """
    load = load_batches if labels is None else labels.load_labelled
    _check_policy(policy)
    if policy == "recent":
        # Late labels: the newest batches may be mostly unlabelled, so count labelled rows.
        newest = accepted if labels is not None else _newest(accepted, max_rows)
        return load(newest).tail(max_rows).reset_index(drop=True)
    current = [r for r in accepted if since_id is None or r.id >= since_id]
    older = [r for r in accepted if since_id is not None and r.id < since_id]
    frame = load(current)
    if len(frame) < min_rows and older:
        fill = load(older).tail(min_rows - len(frame))
        frame = pd.concat([fill, frame], ignore_index=True)
    return frame.tail(max_rows).reset_index(drop=True)


def _newest(accepted: list[BatchRecord], n_rows: int) -> list[BatchRecord]:
    """The newest batches that together hold at least ``n_rows`` rows (all when fewer)."""
    chosen: list[BatchRecord] = []
    covered = 0
    for record in reversed(accepted):
        if covered >= n_rows:
            break
        chosen.append(record)
        covered += record.n_rows
    return chosen[::-1]


def split_holdout(frame: pd.DataFrame, *, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a time-ordered window into (tuning rows, newest ``fraction`` of rows as holdout).

    Example:
        >>> train, holdout = split_holdout(pd.DataFrame({"x": range(10)}), fraction=0.2)
        >>> len(train), list(holdout["x"])
        (8, [8, 9])
    """
    n_holdout = max(1, math.ceil(len(frame) * fraction))
    cut = len(frame) - n_holdout
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


def window_time_range(
    accepted: list[BatchRecord],
    *,
    since_id: int | None,
    n_rows: int,
    policy: WindowPolicy = "since_drift",
) -> tuple[str, str]:
    """When the batches behind a window were received: (oldest, newest) ISO times.

    Walks back from the newest batch until ``n_rows`` rows are covered, mirroring
    :func:`select_window` with the same ``policy``.
    """
    _check_policy(policy)
    if policy == "recent":
        since_id = None
    if not accepted:
        return "", ""
    newest = accepted[-1].received_at
    covered, oldest = 0, newest
    for record in reversed(accepted):
        if covered >= n_rows and (since_id is None or record.id < since_id):
            break
        covered += record.n_rows
        oldest = record.received_at
    return oldest, newest
