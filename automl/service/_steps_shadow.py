"""Shadow mode: a challenger that passed the holdout gate waits as ``@challenger`` and is
scored beside the champion on the next batches (with late labels, on the rows whose labels
came) until the gate over them promotes or drops it. Re-exported by
:mod:`automl.service._steps`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pandas as pd

from automl.data import BatchRecord, Schema, load_batches
from automl.service import _record as record
from automl.service._steps_judge import judge, promote
from automl.service._steps_types import Shadowed
from automl.service._workspace import Workspace
from automl.tracking import (
    CHALLENGER,
    ModelVersionInfo,
    PromotionDecision,
    ShadowBatch,
    ShadowState,
)

# The steps log under the name they had before the split into modules, so that log filters
# and the ``name`` field of the service's log lines stay as they were.
log = logging.getLogger("automl.service._steps")


# -- shadow mode -----------------------------------------------------------------------------
#: Late labels: a batch that arrived in shadow counts toward ``registry.shadow_batches`` once
#: at least this share of its rows is labelled (its labelled rows are evidence before that).
SHADOW_LABELLED_SHARE = 0.5


def start_shadow(ws: Workspace, decision: PromotionDecision, cycle_id: str) -> PromotionDecision:
    """Hold back a challenger that passed the holdout gate: it waits as ``@challenger`` for
    the evidence of the next batches (a challenger already in shadow is superseded)."""
    spec = ws.spec
    previous = ws.shadows.load(ws.name)
    if previous is not None and previous.version != decision.challenger_version:
        _drop_shadow(ws, previous, f"superseded by v{decision.challenger_version}", cycle_id)
    assert decision.champion_version is not None
    accepted = ws.ledger.records(ws.name, status="accepted")
    ws.shadows.save(
        ws.name,
        ShadowState(
            version=decision.challenger_version,
            champion_version=decision.champion_version,
            started_cycle=cycle_id,
            since_batch_id=max((r.id for r in accepted), default=0),
        ),
    )
    need = spec.registry.shadow_batches
    return replace(
        decision,
        is_promoted=False,
        in_shadow=True,
        reason=f"in shadow: {decision.reason.split(': ', 1)[-1]}; promoted once the gate "
        f"passes on the next {need} batch(es) together",
    )


def score_shadow(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    champion: ModelVersionInfo,
    current: pd.DataFrame,
) -> Shadowed | None:
    """Score the challenger in shadow and the champion on the new rows, then decide on all
    rows scored in shadow so far: promote, keep waiting, or drop.

    With late labels (``data.id_column``) ``current`` is not used: the evidence is every row
    of the batches that arrived after the shadow started that has a label now, scored again
    whenever new labels came for them (:func:`_score_shadow_late`). None when nothing was
    scored (no shadow, no new labelled row, or the shadow ended because the champion moved).
    """
    spec, tracker, registry = ws.spec, ws.tracker, ws.spec.registry
    state = ws.shadows.load(ws.name)
    if state is None:
        return None
    if state.champion_version != champion.version:
        _drop_shadow(
            ws, state, f"@champion moved to v{champion.version} while it was in shadow", cycle_id
        )
        return None
    if ws.labels is not None:
        return _score_shadow_late(ws, run_id, cycle_id, schema, champion, state)
    rows = current[current[schema.target].notna()]
    if rows.empty:
        return None
    version = tracker.get_version(spec.model_name, state.version)
    now = judge(ws, schema, version, champion, rows)
    pending_ids = tuple(r.id for r in ws.ledger.pending(ws.name))
    state = state.with_batch(
        ShadowBatch(
            batch_ids=pending_ids,
            n_rows=len(rows),
            challenger_score=now.challenger_score,
            champion_score=now.champion_score if now.champion_score is not None else math.nan,
        )
    )
    record.record_shadow(tracker, run_id, state, now)
    accepted = ws.ledger.records(ws.name, status="accepted")
    scored = set(state.batch_ids)
    evidence = load_batches([r for r in accepted if r.id in scored])
    evidence = evidence[evidence[schema.target].notna()].reset_index(drop=True)
    decision = judge(ws, schema, version, champion, evidence)
    n = len(state.batches)
    shown = f"over {n} batch(es) in shadow ({len(evidence)} rows)"
    decision = _settle_shadow(
        ws, state, decision, cycle_id, n=n, is_over=n >= registry.shadow_max_batches, shown=shown
    )
    return Shadowed(state.version, decision, n)


@dataclass(frozen=True)
class _LateShadow:
    """Where a late-label shadow stands: the batches that arrived since it started and their
    labels now."""

    state: ShadowState
    arrived: list[BatchRecord]
    labelled: dict[int, int]
    n_labelled_batches: int
    is_overdue: bool

    @property
    def has_news(self) -> bool:
        """New labels came since the last evaluation, or the wait for them is over."""
        return self.labelled != dict(self.state.labelled) or self.is_overdue


def _late_shadow(ws: Workspace, state: ShadowState) -> _LateShadow:
    """The late-label evidence of ``state``.

    The wait is over (``is_overdue``) once ``registry.shadow_max_batches`` batches arrived
    since the start and ``data.max_label_wait_s`` passed since the last of them came: labels
    that could decide the shadow are not coming any more.
    """
    assert ws.labels is not None
    accepted = ws.ledger.records(ws.name, status="accepted")
    if state.since_batch_id is None:  # saved before the start was kept: from what was checked
        pending = {r.id for r in ws.ledger.pending(ws.name)}
        since = max((r.id for r in accepted if r.id not in pending), default=0)
        state = replace(state, since_batch_id=since)
    arrived = [r for r in accepted if r.id > (state.since_batch_id or 0)]
    per_batch = ws.labels.labelled_per_batch(ws.name)
    labelled = {r.id: per_batch[r.id] for r in arrived if per_batch.get(r.id)}
    n_labelled_batches = sum(
        1 for r in arrived if r.n_rows and labelled.get(r.id, 0) >= SHADOW_LABELLED_SHARE * r.n_rows
    )
    most = ws.spec.registry.shadow_max_batches
    is_overdue = False
    if len(arrived) >= most:
        came = datetime.fromisoformat(arrived[most - 1].received_at)
        waited_s = (datetime.now(UTC) - came).total_seconds()
        is_overdue = waited_s >= ws.spec.data.max_label_wait_s
    return _LateShadow(state, arrived, labelled, n_labelled_batches, is_overdue)


def shadow_has_news(ws: Workspace) -> bool:
    """Late labels: whether the challenger in shadow has something new to be judged on in a
    cycle without new batches (labels came for its rows, or its wait for them is over).

    False without shadow mode, without late labels, or without a challenger in shadow.
    """
    if ws.labels is None or not ws.spec.registry.shadow_batches:
        return False
    state = ws.shadows.load(ws.name)
    return state is not None and _late_shadow(ws, state).has_news


def _score_shadow_late(
    ws: Workspace,
    run_id: str,
    cycle_id: str,
    schema: Schema,
    champion: ModelVersionInfo,
    state: ShadowState,
) -> Shadowed | None:
    """:func:`score_shadow` with late labels.

    Each cycle in which new labels came for rows of batches that arrived after the shadow
    started, every labelled row of those batches is scored by both models (paired) and the
    gate runs over all of them. A batch counts toward ``registry.shadow_batches`` once
    :data:`SHADOW_LABELLED_SHARE` of its rows is labelled. The challenger is promoted when the
    gate passes with enough such batches; it is dropped when ``shadow_max_batches`` batches
    are labelled without a pass, or when ``shadow_max_batches`` batches arrived and
    ``data.max_label_wait_s`` passed since the last of them without a pass.
    """
    spec, tracker, registry = ws.spec, ws.tracker, ws.spec.registry
    late = _late_shadow(ws, state)
    if not late.has_news:
        if late.state != state:  # keep the start found for a state saved without one
            ws.shadows.save(ws.name, late.state)
        return None
    state = late.state
    version = tracker.get_version(spec.model_name, state.version)
    records = [r for r in late.arrived if r.id in late.labelled]
    evidence = ws.labels.load_labelled(records) if ws.labels is not None else pd.DataFrame()
    n = late.n_labelled_batches
    shown = (
        f"over {n} labelled batch(es) of {len(late.arrived)} in shadow "
        f"({len(evidence)} labelled rows)"
    )
    if evidence.empty:  # overdue without a single label: nothing to judge on
        _drop_shadow(ws, state, f"no labels came for its rows {shown}", cycle_id)
        tracker.delete_alias(spec.model_name, CHALLENGER)
        tracker.set_version_tags(
            spec.model_name,
            state.version,
            {record.DECISION: "rejected", record.REASON: f"no labels came in shadow {shown}"},
        )
        return None
    decision = judge(ws, schema, version, champion, evidence)
    previous = dict(state.labelled)
    if late.labelled != previous:
        state = replace(
            state.with_batch(
                ShadowBatch(
                    batch_ids=tuple(b for b, k in late.labelled.items() if previous.get(b) != k),
                    n_rows=len(evidence),
                    challenger_score=decision.challenger_score,
                    champion_score=(
                        decision.champion_score if decision.champion_score is not None else math.nan
                    ),
                )
            ),
            labelled=tuple(sorted(late.labelled.items())),
        )
        record.record_shadow(tracker, run_id, state, decision)
    is_over = n >= registry.shadow_max_batches or late.is_overdue
    decision = _settle_shadow(ws, state, decision, cycle_id, n=n, is_over=is_over, shown=shown)
    return Shadowed(state.version, decision, n)


def _settle_shadow(
    ws: Workspace,
    state: ShadowState,
    decision: PromotionDecision,
    cycle_id: str,
    *,
    n: int,
    is_over: bool,
    shown: str,
) -> PromotionDecision:
    """Act on the gate over the shadow's evidence: promote (or hand to a person) once ``n``
    batches reach ``registry.shadow_batches``, drop when ``is_over``, else keep waiting."""
    spec, tracker, registry = ws.spec, ws.tracker, ws.spec.registry
    if decision.is_promoted and n >= registry.shadow_batches:
        ws.shadows.clear(ws.name)
        decision = replace(decision, reason=f"{decision.reason} {shown}")
        promote(ws, decision, cycle_id)
    elif decision.awaiting_approval and n >= registry.shadow_batches:
        ws.shadows.clear(ws.name)
        promote(ws, decision, cycle_id)
    elif is_over:
        decision = replace(
            decision,
            is_promoted=False,
            awaiting_approval=False,
            reason=f"{decision.reason} {shown}",
        )
        _drop_shadow(ws, state, f"no credible gain {shown}", cycle_id)
        promote(ws, decision, cycle_id)
        tracker.delete_alias(spec.model_name, CHALLENGER)
    else:
        ws.shadows.save(ws.name, state)
        decision = replace(
            decision, is_promoted=False, in_shadow=True, reason=f"in shadow: {decision.reason}"
        )
    return decision


def _drop_shadow(ws: Workspace, state: ShadowState, why: str, cycle_id: str) -> None:
    ws.shadows.clear(ws.name)
    ws.promotions.append(
        pipeline=ws.name,
        model_name=ws.spec.model_name,
        action="shadow_drop",
        status="recorded",
        actor="service",
        from_version=state.champion_version,
        to_version=state.version,
        reason=f"v{state.version} left shadow: {why}",
        cycle_id=cycle_id,
    )
    log.info("[%s %s] v%s left shadow: %s", ws.name, cycle_id, state.version, why)
