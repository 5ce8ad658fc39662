"""Shadow mode: a challenger scored beside the champion on the batches that arrive after it.

A holdout cut from the training window looks like the rows the challenger was trained on; the
batches that arrive next look like what it will serve. In shadow mode a challenger that passed
the holdout gate is not promoted at once: it waits as ``@challenger`` while both models score
every new labelled batch (the same rows, paired), and is promoted once the evidence over those
batches passes the gate, or dropped after ``registry.shadow_max_batches`` batches without it.
This module keeps that evidence between cycles and across restarts (table ``automl_shadow``).

With late labels (``data.id_column``) a batch arrives without its labels, so the evidence is
not "the next batches" but the rows of the batches that arrived after the shadow started
(ledger ids above :attr:`ShadowState.since_batch_id`) that have a label by now; the state
keeps how many rows of each such batch were labelled when it was last scored
(:attr:`ShadowState.labelled`), so a cycle knows whether new labels came.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from automl.state import (
    load_pipeline_value,
    open_state,
    save_pipeline_row,
    shadow_table,
    utcnow,
)


@dataclass(frozen=True)
class ShadowBatch:
    """The new rows of one cycle, scored in shadow.

    With late labels, one evaluation: the cycle in which new labels came for rows that arrived
    after the shadow started; every labelled row of those batches is scored again together.

    Attributes:
        batch_ids: Ledger ids of the batches those rows came in (late labels: the batches
            that got new labels since the previous evaluation).
        n_rows: Labelled rows scored (late labels: every labelled row in shadow so far).
        challenger_score: The challenger's score on them.
        champion_score: The champion's score on the same rows.
    """

    batch_ids: tuple[int, ...]
    n_rows: int
    challenger_score: float
    champion_score: float


@dataclass(frozen=True)
class ShadowState:
    """A challenger in shadow and the evidence so far.

    Attributes:
        version: The challenger's registered version.
        champion_version: The champion it is compared with (a shadow ends if that changes).
        started_cycle: The cycle that registered it.
        started_at: When.
        batches: What was scored so far, one entry per cycle, oldest first.
        since_batch_id: The newest accepted ledger batch when the shadow started (None in a
            state saved before it was kept). Late labels: the evidence comes from later
            batches.
        labelled: Late labels: ``(batch id, labelled rows)`` of the batches after
            ``since_batch_id`` as of the last evaluation (batches without a label left out).
    """

    version: str
    champion_version: str
    started_cycle: str
    started_at: str = field(default_factory=utcnow)
    batches: tuple[ShadowBatch, ...] = ()
    since_batch_id: int | None = None
    labelled: tuple[tuple[int, int], ...] = ()

    @property
    def batch_ids(self) -> list[int]:
        """Ledger ids of the batches scored so far."""
        return [i for b in self.batches for i in b.batch_ids]

    def with_batch(self, batch: ShadowBatch) -> ShadowState:
        """This state with one more scored batch."""
        return replace(self, batches=(*self.batches, batch))

    def to_json(self) -> str:
        """Serialized form."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShadowState:
        """Inverse of :meth:`to_json`."""
        raw = json.loads(text)
        raw["batches"] = tuple(
            ShadowBatch(**{**b, "batch_ids": tuple(b["batch_ids"])}) for b in raw.get("batches", ())
        )
        raw["labelled"] = tuple((int(b), int(n)) for b, n in raw.get("labelled", ()))
        return cls(**raw)


class ShadowStore:
    """Each pipeline's shadow challenger, if any, in the workspace state database.

    Args:
        url: SQLAlchemy URL of the state database.

    Example:
        >>> store = ShadowStore("sqlite://")
        >>> store.load("churn") is None
        True
        >>> store.save("churn", ShadowState(version="3", champion_version="2", started_cycle="c"))
        >>> store.load("churn").version
        '3'
        >>> store.clear("churn"); store.load("churn") is None
        True
    """

    def __init__(self, url: str) -> None:
        self._engine = open_state(url)

    def load(self, pipeline: str) -> ShadowState | None:
        """The pipeline's shadow challenger, or None."""
        text = load_pipeline_value(self._engine, shadow_table.c.state_json, pipeline)
        return ShadowState.from_json(text) if text else None

    def save(self, pipeline: str, state: ShadowState) -> None:
        """Store the state (replacing the previous one)."""
        values = {"state_json": state.to_json(), "updated_at": utcnow()}
        save_pipeline_row(self._engine, shadow_table, pipeline, values)

    def clear(self, pipeline: str) -> None:
        """End the pipeline's shadow (promoted, dropped or superseded)."""
        with self._engine.begin() as conn:
            conn.execute(shadow_table.delete().where(shadow_table.c.pipeline == pipeline))
