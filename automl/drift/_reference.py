"""The reference side of drift checks, prepared once and reused (evidently#506).

A pipeline compares every new batch with the same reference (the champion's training rows)
until the champion changes. Cleaning, sorting and counting the reference's columns is half of a
check's work, and it is the same every time: :class:`ReferenceProfile` does it once, and
:class:`ReferenceCache` keeps a few profiles by a key the caller chooses (e.g. pipeline,
champion version and the reference file's identity), least recently used first out. A check on
a cached profile costs one pass over the new rows per column (for large numeric columns not
even a sort: see :class:`automl.drift._stats.KsGrid`), and gives the same report as a check on
the frame itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import pandas as pd

from automl.drift._stats import Sample
from automl.vocab import ColumnKind


def infer_kind(series: pd.Series) -> ColumnKind:
    """Numeric for non-boolean numbers with more than two values, else categorical."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    return "numeric" if series.nunique() > 2 else "categorical"


class ReferenceProfile:
    """A reference frame's checked columns, cleaned, sorted and counted once.

    Holds no frame: per column the prepared :class:`automl.drift._stats.Sample` (numeric:
    sorted values, standard deviation, K-S grid; categorical: value counts), plus the frame's
    row count and column names (for the schema checks).

    Args:
        frame: The reference rows.
        numeric: Numeric columns to prepare.
        categorical: Categorical columns to prepare.
        target: Label column to prepare for the target-drift signal (skipped when absent).
        target_kind: The label's kind; None infers it as the detector does.
        keep_order: Keep each column's values in their original order too (needed by the
            reference resampling of ``calibration_resamples`` and by methods evidently
            computes itself; otherwise numeric columns keep only their sorted copy).

    Raises:
        KeyError: ``frame`` lacks one of the columns.
        ValueError: A numeric column's values are not numbers.

    Example:
        >>> import numpy as np
        >>> ref = pd.DataFrame({"x": np.arange(5.0), "c": list("aabbc")})
        >>> profile = ReferenceProfile(ref, numeric=["x"], categorical=["c"])
        >>> profile.n_rows, profile.sample("c", "categorical").counts
        (5, {'a': 2, 'b': 2, 'c': 1})
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        target: str | None = None,
        target_kind: ColumnKind | None = None,
        keep_order: bool = False,
    ) -> None:
        self.n_rows = len(frame)
        self.columns: tuple[str, ...] = tuple(str(c) for c in frame.columns)
        self.keep_order = keep_order
        self._samples: dict[tuple[str, ColumnKind], Sample] = {}
        self._is_bool: dict[str, bool] = {}
        wanted: list[tuple[str, ColumnKind]] = [(c, "numeric") for c in numeric]
        wanted += [(c, "categorical") for c in categorical]
        self.target: str | None = None
        self.target_kind: ColumnKind | None = None
        if target is not None and target in frame.columns:
            self.target = target
            self.target_kind = target_kind or infer_kind(frame[target])
            wanted.append((target, self.target_kind))
        for name, kind in wanted:
            if (name, kind) in self._samples:
                continue
            series = frame[name]
            try:
                self._samples[name, kind] = Sample(series, kind).prepare(keep_order=keep_order)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"reference column {name!r} ({series.dtype}) cannot be read as {kind}: {exc}"
                ) from exc
            self._is_bool[name] = bool(pd.api.types.is_bool_dtype(series))
        self._nbytes = sum(s.nbytes for s in self._samples.values())

    def has(self, column: str, kind: ColumnKind) -> bool:
        """Whether ``column`` was prepared as ``kind``."""
        return (column, kind) in self._samples

    def sample(self, column: str, kind: ColumnKind) -> Sample:
        """The prepared sample of ``column``.

        Raises:
            KeyError: The column was not prepared as ``kind``.
        """
        try:
            return self._samples[column, kind]
        except KeyError:
            prepared = sorted(f"{c} ({k})" for c, k in self._samples)
            raise KeyError(
                f"reference profile has no {kind} column {column!r}; prepared: {prepared}"
            ) from None

    def is_bool(self, column: str) -> bool:
        """Whether the reference column had a boolean dtype."""
        return self._is_bool[column]

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the prepared columns (measured once, when built)."""
        return self._nbytes


class ReferenceCache:
    """A bounded, thread-safe LRU of :class:`ReferenceProfile` objects by key.

    Args:
        max_entries: Profiles kept (>= 1).
        max_bytes: Memory the kept profiles may hold together; the least recently used go
            first (the newest one is kept even when it alone is larger).

    Raises:
        ValueError: ``max_entries`` < 1 or ``max_bytes`` < 0.

    Example:
        >>> cache = ReferenceCache(max_entries=1)
        >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
        >>> build = lambda: ReferenceProfile(frame, numeric=["x"], categorical=[])
        >>> first = cache.get_or_build(("pipe", 1), build)
        >>> cache.get_or_build(("pipe", 1), build) is first, cache.hits, cache.misses
        (True, 1, 1)
    """

    def __init__(self, *, max_entries: int = 4, max_bytes: int = 256 << 20) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1; got {max_entries!r}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0; got {max_bytes!r}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, ReferenceProfile] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> ReferenceProfile | None:
        """The profile kept under ``key`` (now the most recently used), or None."""
        with self._lock:
            profile = self._entries.get(key)
            if profile is not None:
                self._entries.move_to_end(key)
            return profile

    def get_or_build(
        self, key: Hashable, build: Callable[[], ReferenceProfile]
    ) -> ReferenceProfile:
        """The profile kept under ``key``, built by ``build()`` and kept when absent."""
        profile = self.get(key)
        if profile is not None:
            with self._lock:
                self.hits += 1
            return profile
        profile = build()  # outside the lock: other keys stay available meanwhile
        with self._lock:
            self.misses += 1
            self._entries[key] = profile
            self._entries.move_to_end(key)
            self._evict()
        return profile

    def clear(self) -> None:
        """Drop every profile."""
        with self._lock:
            self._entries.clear()

    @property
    def nbytes(self) -> int:
        """Memory held by the kept profiles."""
        with self._lock:
            return sum(p.nbytes for p in self._entries.values())

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        total = sum(p.nbytes for p in self._entries.values())
        while len(self._entries) > 1 and total > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            total -= dropped.nbytes


#: The process-wide cache the detector uses when a check passes a ``reference_key``.
REFERENCE_CACHE = ReferenceCache()
