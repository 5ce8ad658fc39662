"""Per-column drift with evidently's statistical tests, each computed once, and the decision.

evidently's ``DataDriftPreset`` computes each column's test more than once and renders plotly
figures; the decision needs neither. This detector picks the test evidently would pick for a
column (by type and sample size), or the one the spec names for it, computes it once on NumPy
arrays (``automl.drift._stats``, equal to evidently's own functions), then applies what a
re-tune decision needs on top: a multiple-testing correction, an effect-size floor for large
samples, missing-rate and unseen-category checks, schema changes, and the dataset policy.
The HTML report is rendered separately (:func:`render_drift_html`), only when someone reads it.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl.config import ColumnDriftSpec, DriftSpec, argument_errors, build_section
from automl.drift._policy import adjust_pvalues, normalize_weights
from automl.drift._reference import REFERENCE_CACHE, ReferenceCache, ReferenceProfile, infer_kind
from automl.drift._report import ColumnDrift, DriftLevel, DriftReport, DriftSignal, SchemaChange
from automl.drift._stats import (
    AUTOML_METHODS,
    FAST_METHODS,
    Sample,
    StatOutcome,
    check_method,
    default_method,
    effect_size,
    run_method,
    two_proportion_pvalue,
    union_distinct,
)
from automl.errors import DriftCheckError
from automl.vocab import ColumnKind, Correction, Policy, TestChoice

#: Rows above which columns are computed in parallel threads (NumPy releases the GIL).
_PARALLEL_MIN_ROWS = 50_000
_MAX_UNSEEN_LISTED = 20


class ColumnTest(ColumnDriftSpec):
    """A per-column override of the test: a ``drift.per_column`` entry
    (:class:`automl.config.ColumnDriftSpec`) that also takes its fields by position.

    Args:
        method: evidently method name; None keeps the default choice.
        threshold: Threshold (> 0); None keeps the method's default.

    Raises:
        ValueError: ``threshold`` is not > 0.
    """

    def __init__(self, method: str | None = None, threshold: float | None = None) -> None:
        with argument_errors():
            super().__init__(method=method, threshold=threshold)


@dataclass(frozen=True)
class _Measured:
    """What one worker measured on one column."""

    column: str
    kind: str
    outcome: StatOutcome | None
    effect: float | None
    calibrated_threshold: float | None
    missing_ref: float
    missing_cur: float
    missing_pvalue: float
    unseen: tuple[str, ...]
    unseen_share: float
    all_missing: str | None  # None, "both" or "one"


def _kind_label(ref: Sample, cur: Sample, is_bool: bool) -> str:
    if is_bool:
        return "boolean"
    if union_distinct(ref, cur, cap=2) == 2:
        return "binary"
    return ref.kind


class EvidentlyDriftDetector:
    """Decides dataset drift from evidently's per-column tests.

    The settings are those of a pipeline's ``drift`` section (:class:`automl.config.DriftSpec`),
    which checks them: :meth:`from_spec` takes a validated section, and the arguments below are
    validated by building one. The defaults flag any one column (``drift_share`` 0.01) with
    two-sample tests and Holm's correction; ``drift_share=0.5, correction="bh",
    tests="evidently"`` is the rule before issue 11.

    Args:
        method: evidently stat test for every column (``ks``, ``psi``, ``wasserstein``,
            ``chisquare``, ...) or ``chisquare_2samp``; None picks one per column (``tests``).
        threshold: Threshold for every column; None uses the chosen test's default.
        drift_share: The data signal fires when the policy score is at least this, in (0, 1].
        per_column: Per-column overrides of method and threshold.
        policy: ``share`` (share of drifted columns) or ``weighted`` (importance-weighted share;
            pass ``weights`` to :meth:`detect`).
        warning_share: Score from which a check is a ``warning``, in (0, ``drift_share``];
            None means half of ``drift_share``.
        correction: Multiple-testing correction of p-value tests: ``holm``, ``bonferroni``,
            ``bh`` (Benjamini-Hochberg) or ``none``.
        min_effect: A p-value test flags a column only when the shift is at least this large
            (K-S statistic for numeric, total variation distance for categorical columns), in
            [0, 1]. On huge samples every tiny shift is significant; this keeps irrelevant ones
            out. 0 disables it.
        missing_rate_delta: A column also drifts when its missing-value rate changed by at least
            this much (and significantly); None disables it.
        unseen_share: A categorical column also drifts when at least this share of current rows
            holds values never seen in the reference; None disables it.
        calibration_resamples: When > 0, each distance threshold is raised to the
            ``calibration_quantile`` of the same distance between random disjoint parts of the
            reference (sized like the current rows), over this many resamples.
        calibration_quantile: Quantile of the reference-vs-reference distances, in (0.5, 1).
        seed: Seed of the calibration resamples.
        max_workers: Threads for large frames; None uses the CPU count (at most 4).
        tests: How a column without ``method`` gets its test: ``evidently`` (the test evidently's
            preset picks by type and size) or ``two_sample`` (``ks``, ``z`` or
            ``chisquare_2samp`` by cardinality, at every size: p-values the correction can
            bound; see ``automl.drift._stats``).

    Raises:
        ValueError: A parameter breaks the ``drift`` section's rules; the message names it, the
            rule and the value.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ref = pd.DataFrame({"x": rng.normal(size=300), "c": rng.choice(["a", "b"], 300)})
        >>> cur = pd.DataFrame({"x": rng.normal(1.0, size=300), "c": rng.choice(["a", "b"], 300)})
        >>> report = EvidentlyDriftDetector(drift_share=0.5).detect(
        ...     ref, cur, numeric=["x"], categorical=["c"])
        >>> report.is_drifted, report.drifted_columns, [c.method for c in report.columns]
        (True, ['x'], ['ks', 'z'])
        >>> report.column("c").kind, report.level
        ('binary', 'drift')
    """

    def __init__(
        self,
        *,
        method: str | None = None,
        threshold: float | None = None,
        drift_share: float = 0.01,
        per_column: Mapping[str, ColumnDriftSpec] | None = None,
        policy: Policy = "share",
        warning_share: float | None = None,
        correction: Correction = "holm",
        min_effect: float = 0.04,
        missing_rate_delta: float | None = 0.1,
        unseen_share: float | None = 0.05,
        calibration_resamples: int = 0,
        calibration_quantile: float = 0.95,
        seed: int = 0,
        max_workers: int | None = None,
        tests: TestChoice = "two_sample",
    ) -> None:
        spec = build_section(
            DriftSpec,
            method=method,
            threshold=threshold,
            drift_share=drift_share,
            per_column=dict(per_column or {}),
            policy=policy,
            warning_share=warning_share,
            correction=correction,
            min_effect=min_effect,
            missing_rate_delta=missing_rate_delta,
            unseen_share=unseen_share,
            calibration_resamples=calibration_resamples,
            calibration_quantile=calibration_quantile,
            tests=tests,
        )
        self._configure(spec, seed=seed, max_workers=max_workers)

    @classmethod
    def from_spec(
        cls, spec: DriftSpec, *, seed: int = 0, max_workers: int | None = None
    ) -> EvidentlyDriftDetector:
        """The detector a pipeline's validated ``drift`` section describes.

        Args:
            spec: The section (its column choice, signals and hysteresis are the caller's).
            seed: Seed of the calibration resamples.
            max_workers: Threads for large frames; None uses the CPU count (at most 4).
        """
        detector = cls.__new__(cls)
        detector._configure(spec, seed=seed, max_workers=max_workers)
        return detector

    def _configure(self, spec: DriftSpec, *, seed: int, max_workers: int | None) -> None:
        self.spec = spec
        self.per_column: Mapping[str, ColumnDriftSpec] = spec.per_column
        #: Score from which a check is a warning (the section's, or half of ``drift_share``).
        self.warning_share = (
            spec.drift_share / 2 if spec.warning_share is None else spec.warning_share
        )
        self.seed = seed
        self.max_workers = max_workers or min(os.cpu_count() or 1, 4)

    # -- one column ---------------------------------------------------------------------
    def _test_for(self, column: str) -> tuple[str | None, float | None]:
        override = self.per_column.get(column, ColumnDriftSpec())
        method = override.method or self.spec.method
        threshold = override.threshold if override.threshold is not None else self.spec.threshold
        return method, threshold

    def _run(
        self,
        kind: ColumnKind,
        ref: Sample,
        cur: Sample,
        method: str | None,
        threshold: float | None,
    ) -> StatOutcome:
        tests = self.spec.tests
        if method is None:
            method = default_method(ref.n, union_distinct(ref, cur), kind, tests=tests)
        else:
            check_method(method, kind)
        return run_method(method, threshold, ref, cur, exact_ks=tests == "evidently")

    def _calibrate(self, column: str, outcome: StatOutcome, ref: Sample, n_current: int) -> float:
        """The ``calibration_quantile`` of the method's score between disjoint reference parts."""
        n_cur = min(n_current, ref.n // 2)
        if n_cur < 2:
            return outcome.threshold
        rng = np.random.default_rng([self.seed, *column.encode()])
        values = ref.values
        scores = []
        for _ in range(self.spec.calibration_resamples):
            pick = np.zeros(ref.n, dtype=bool)
            pick[rng.choice(ref.n, n_cur, replace=False)] = True
            if isinstance(values, pd.Series):
                a, b = values[~pick], values[pick]
            else:
                a, b = pd.Series(values[~pick]), pd.Series(values[pick])
            null = run_method(
                outcome.method, outcome.threshold, Sample(a, ref.kind), Sample(b, ref.kind)
            )
            scores.append(null.score)
        return max(outcome.threshold, float(np.quantile(scores, self.spec.calibration_quantile)))

    def _measure(
        self,
        column: str,
        kind: ColumnKind,
        ref: Sample,
        current: pd.Series,
        *,
        ref_is_bool: bool,
        override_key: str | None = None,
    ) -> _Measured:
        cur = Sample(current, kind)
        label = _kind_label(ref, cur, ref_is_bool)
        missing_p = two_proportion_pvalue(
            ref.n_total - ref.n, ref.n_total, cur.n_total - cur.n, cur.n_total
        )
        unseen: tuple[str, ...] = ()
        unseen_rows = 0
        if kind == "categorical" and ref.n and cur.n:
            new = [k for k in cur.counts if k not in ref.counts]
            unseen_rows = sum(cur.counts[k] for k in new)
            unseen = tuple(str(k) for k in sorted(new, key=str)[:_MAX_UNSEEN_LISTED])
        unseen_share = unseen_rows / cur.n_total if cur.n_total else 0.0
        outcome: StatOutcome | None = None
        effect: float | None = None
        calibrated: float | None = None
        all_missing: str | None = None
        if not ref.n or not cur.n:
            all_missing = "both" if not ref.n and not cur.n else "one"
        else:
            method, threshold = self._test_for(override_key or column)
            outcome = self._run(kind, ref, cur, method, threshold)
            effect = outcome.effect
            if outcome.is_pvalue and self.spec.min_effect > 0 and effect is None:
                effect = effect_size(ref, cur)
            if not outcome.is_pvalue and self.spec.calibration_resamples:
                calibrated = self._calibrate(column, outcome, ref, cur.n)
        return _Measured(
            column=column,
            kind=label,
            outcome=outcome,
            effect=effect,
            calibrated_threshold=calibrated,
            missing_ref=ref.missing_rate,
            missing_cur=cur.missing_rate,
            missing_pvalue=missing_p,
            unseen=unseen,
            unseen_share=unseen_share,
            all_missing=all_missing,
        )

    # -- the reference, prepared once -------------------------------------------------------
    @property
    def needs_order(self) -> bool:
        """Whether this detector reads a reference column's original order (calibration
        resamples, or a method evidently computes itself), so profiles must keep it."""
        methods = [self.spec.method, *(c.method for c in self.per_column.values())]
        delegated = any(
            m is not None and m not in FAST_METHODS and m not in AUTOML_METHODS for m in methods
        )
        return delegated or self.spec.calibration_resamples > 0

    def profile(
        self,
        reference: pd.DataFrame,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        target: str | None = None,
        target_kind: ColumnKind | None = None,
    ) -> ReferenceProfile:
        """Prepare ``reference`` once for repeated :meth:`detect` calls with these columns.

        Args:
            reference: The reference rows.
            numeric: Numeric columns the checks will name.
            categorical: Categorical columns the checks will name.
            target: Label column of the target-drift signal, if the checks pass one.
            target_kind: The label's kind; None infers it.

        Returns:
            A profile :meth:`detect` takes in place of the frame, with the same results.

        Raises:
            DriftCheckError: A column is absent from ``reference`` or not numeric as named.
        """
        absent = [c for c in [*numeric, *categorical] if c not in reference.columns]
        if absent:
            raise DriftCheckError(
                f"reference data lacks columns {absent}; it has {list(reference.columns)}"
            )
        try:
            return ReferenceProfile(
                reference,
                numeric=numeric,
                categorical=categorical,
                target=target,
                target_kind=target_kind,
                keep_order=self.needs_order,
            )
        except ValueError as exc:
            raise DriftCheckError(f"cannot prepare the reference: {exc}") from exc

    # -- the check ----------------------------------------------------------------------
    def detect(
        self,
        reference: pd.DataFrame | ReferenceProfile,
        current: pd.DataFrame,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        weights: Mapping[str, float] | None = None,
        target: str | None = None,
        target_kind: ColumnKind | None = None,
        predictions: tuple[
            Sequence[Any] | np.ndarray[Any, Any], Sequence[Any] | np.ndarray[Any, Any]
        ]
        | None = None,
        signals: Sequence[DriftSignal] = (),
        reference_key: Hashable | None = None,
        cache: ReferenceCache | None = None,
    ) -> DriftReport:
        """Compare ``current`` with ``reference`` column by column and decide.

        Args:
            reference: The data the serving model was trained on, or its profile
                (:meth:`profile`, prepared once for many checks).
            current: The new rows.
            numeric: Numeric columns to check.
            categorical: Categorical columns to check.
            weights: Column weights for the ``weighted`` policy (e.g. the champion's feature
                importances); columns without a weight count 0. Ignored by ``share``.
            target: Label column: when both frames hold it, target drift is a signal.
            target_kind: ``numeric`` (regression) or ``categorical`` (classification); None
                infers it from the dtype.
            predictions: ``(on reference, on current)``: the champion's predictions (class
                probabilities or values); their drift is a signal.
            signals: Further signals decided elsewhere (e.g. :func:`performance_drift`).
            reference_key: When given, the reference frame is prepared once and kept in
                ``cache`` under this key (with the columns, target and whether the order is
                kept); later checks with the same key reuse it, so the caller must change the
                key whenever the reference's rows change (e.g. champion version and file).
            cache: Where profiles are kept (default: the process-wide ``REFERENCE_CACHE``).

        Returns:
            The decision, its signals and per-column evidence (the same with or without a
            profile or key).

        Raises:
            DriftCheckError: A frame is empty, no column is given, the reference lacks a
                column, an override names an unchecked column, a profile lacks what the check
                needs, or a test fails or is unknown.
        """
        n_reference = (
            reference.n_rows if isinstance(reference, ReferenceProfile) else len(reference)
        )
        if n_reference == 0 or current.empty:
            raise DriftCheckError(
                f"cannot check drift on an empty frame (reference rows: {n_reference}, "
                f"current rows: {len(current)})"
            )
        columns: list[tuple[str, ColumnKind]] = [(c, "numeric") for c in numeric] + [
            (c, "categorical") for c in categorical
        ]
        if not columns:
            raise DriftCheckError("no columns to check for drift")
        reference_columns = list(reference.columns)
        absent = [c for c, _ in columns if c not in reference_columns]
        if absent:
            raise DriftCheckError(
                f"reference data lacks columns {absent}; it has {reference_columns}"
            )
        names = [c for c, _ in columns]
        stray = sorted(set(self.per_column) - set(names) - {target})
        if stray:
            raise DriftCheckError(
                f"per-column drift settings name columns that are not checked: {stray}; "
                f"checked: {names}"
            )
        if reference_key is not None and isinstance(reference, pd.DataFrame):
            frame = reference
            key = (reference_key, tuple(numeric), tuple(categorical), target, target_kind)
            reference = (cache if cache is not None else REFERENCE_CACHE).get_or_build(
                (*key, self.needs_order),
                lambda: self.profile(
                    frame,
                    numeric=numeric,
                    categorical=categorical,
                    target=target,
                    target_kind=target_kind,
                ),
            )
        ref = _Reference(reference, needs_order=self.needs_order)
        changes, measurable = self._schema(reference_columns, current, columns, target=target)
        measured = self._measure_all(ref, current, measurable)
        results = self._decide_columns(measured, changes, columns)
        return self._report(
            ref,
            current,
            results,
            changes,
            weights=weights,
            target=target,
            target_kind=target_kind,
            predictions=predictions,
            signals=signals,
        )

    def _schema(
        self,
        reference_columns: Sequence[str],
        current: pd.DataFrame,
        columns: list[tuple[str, ColumnKind]],
        *,
        target: str | None,
    ) -> tuple[dict[str, SchemaChange], list[tuple[str, ColumnKind]]]:
        changes: dict[str, SchemaChange] = {}
        measurable: list[tuple[str, ColumnKind]] = []
        for name, kind in columns:
            if name not in current.columns:
                changes[name] = SchemaChange(name, "missing_column", "absent from the current rows")
                continue
            col = current[name]
            if kind == "numeric" and not pd.api.types.is_numeric_dtype(col):
                coerced = pd.to_numeric(col, errors="coerce")
                bad = coerced.isna() & col.notna()
                if bad.any():
                    example = col[bad].iloc[0]
                    changes[name] = SchemaChange(
                        name,
                        "type_changed",
                        f"numeric in the reference; now {col.dtype} with non-numeric values "
                        f"such as {example!r}",
                    )
                    continue
            measurable.append((name, kind))
        checked = {c for c, _ in columns} | {target}
        for name in current.columns:
            if name not in reference_columns and name not in checked:
                changes[str(name)] = SchemaChange(
                    str(name), "new_column", "absent from the reference"
                )
        return changes, measurable

    def _measure_all(
        self,
        reference: _Reference,
        current: pd.DataFrame,
        columns: list[tuple[str, ColumnKind]],
    ) -> dict[str, _Measured]:
        def one(item: tuple[str, ColumnKind]) -> _Measured:
            name, kind = item
            cur = current[name]
            if kind == "numeric" and not pd.api.types.is_numeric_dtype(cur):
                cur = pd.to_numeric(cur, errors="coerce")
            try:
                ref, is_bool = reference.sample(name, kind)
                return self._measure(name, kind, ref, cur, ref_is_bool=is_bool)
            except Exception as exc:  # evidently and scipy raise bare ValueErrors
                method = self._test_for(name)[0]
                raise DriftCheckError(
                    f"drift test {method or 'default'!r} failed on column {name!r}: {exc}"
                ) from exc

        rows = max(reference.n_rows, len(current))
        if self.max_workers > 1 and len(columns) > 1 and rows >= _PARALLEL_MIN_ROWS:
            # One column per thread at a time: memory stays at a few columns' worth.
            with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
                measured = list(pool.map(one, columns))
        else:
            measured = [one(item) for item in columns]
        return {m.column: m for m in measured}

    def _decide_columns(
        self,
        measured: dict[str, _Measured],
        changes: dict[str, SchemaChange],
        columns: list[tuple[str, ColumnKind]],
    ) -> list[ColumnDrift]:
        tested = [m for m in measured.values() if m.outcome is not None and m.outcome.is_pvalue]
        adjusted = dict(
            zip(
                [m.column for m in tested],
                adjust_pvalues(
                    [m.outcome.score for m in tested if m.outcome is not None],
                    [m.outcome.threshold for m in tested if m.outcome is not None],
                    self.spec.correction,
                ),
                strict=True,
            )
        )
        missing_alpha = 0.05 / max(len(columns), 1)
        results: list[ColumnDrift] = []
        for name, kind in columns:
            if name in changes:
                results.append(
                    ColumnDrift(name, kind, "schema", 1.0, 0.0, True, reasons=("schema",))
                )
                continue
            m = measured[name]
            reasons: list[str] = []
            delta = abs(m.missing_cur - m.missing_ref)
            if (
                self.spec.missing_rate_delta is not None
                and delta >= self.spec.missing_rate_delta
                and m.missing_pvalue < missing_alpha
            ):
                reasons.append("missing_rate")
            if (
                self.spec.unseen_share is not None
                and m.unseen
                and m.unseen_share >= self.spec.unseen_share
            ):
                reasons.append("unseen_categories")
            out = m.outcome
            if out is None:
                drifted = m.all_missing == "one"
                reasons = ["all_missing"] if drifted else reasons
                results.append(
                    ColumnDrift(
                        column=name,
                        kind=m.kind,
                        method="all-missing",
                        score=1.0 if drifted else 0.0,
                        threshold=0.0 if drifted else 1.0,
                        is_drifted=drifted,
                        missing_rate_reference=m.missing_ref,
                        missing_rate_current=m.missing_cur,
                        reasons=tuple(reasons),
                    )
                )
                continue
            score, threshold = out.score, out.threshold
            if out.is_pvalue:
                score = adjusted[name]
                strict = out.method != "ks"  # evidently: ks drifts at p <= t, the rest at p < t
                hit = score < threshold if strict else score <= threshold
                if hit and m.effect is not None and m.effect < self.spec.min_effect:
                    hit = False
            else:
                if m.calibrated_threshold is not None:
                    threshold = m.calibrated_threshold
                hit = score >= threshold
            if hit:
                reasons.insert(0, "test")
            results.append(
                ColumnDrift(
                    column=name,
                    kind=m.kind,
                    method=out.method,
                    score=score,
                    threshold=threshold,
                    is_drifted=bool(reasons),
                    raw_score=out.score,
                    test_threshold=out.threshold,
                    is_test_drifted=out.is_drifted,
                    is_pvalue=out.is_pvalue,
                    effect=m.effect,
                    missing_rate_reference=m.missing_ref,
                    missing_rate_current=m.missing_cur,
                    unseen_categories=m.unseen,
                    unseen_share=m.unseen_share,
                    reasons=tuple(reasons),
                )
            )
        return results

    def _signal_for(
        self,
        name: str,
        column: str,
        kind: ColumnKind,
        reference: tuple[Sample, bool],
        current: pd.Series,
    ) -> DriftSignal:
        ref, is_bool = reference
        measured = self._measure(name, kind, ref, current, ref_is_bool=is_bool, override_key=column)
        out = measured.outcome
        if out is None:
            return DriftSignal(name, "all-missing", 1.0, 0.0, measured.all_missing == "one")
        hit = out.is_drifted
        if out.is_pvalue and measured.effect is not None and measured.effect < self.spec.min_effect:
            hit = False
        effect = f", effect {measured.effect:.3f}" if measured.effect is not None else ""
        return DriftSignal(
            name=name,
            method=out.method,
            score=out.score,
            threshold=out.threshold,
            is_drifted=bool(hit),
            detail=f"{out.method} {out.score:.4g} vs threshold {out.threshold:g}{effect}",
        )

    def _report(
        self,
        reference: _Reference,
        current: pd.DataFrame,
        results: list[ColumnDrift],
        changes: dict[str, SchemaChange],
        *,
        weights: Mapping[str, float] | None,
        target: str | None,
        target_kind: ColumnKind | None,
        predictions: tuple[Any, Any] | None,
        signals: Sequence[DriftSignal],
    ) -> DriftReport:
        names = [r.column for r in results]
        n_drifted = sum(r.is_drifted for r in results)
        share = n_drifted / len(results)
        score, detail = share, f"{n_drifted} of {len(results)} columns drifted"
        used_weights: tuple[tuple[str, float], ...] = ()
        if self.spec.policy == "weighted":
            normalized, uniform = normalize_weights(weights or {}, names)
            score = sum(normalized[r.column] for r in results if r.is_drifted)
            used_weights = tuple(normalized.items())
            detail += (
                "; no positive weight given, so every column weighs the same"
                if uniform
                else f"; {score:.0%} of the importance sits in drifted columns"
            )
        all_signals = [
            DriftSignal(
                "data",
                self.spec.policy,
                score,
                self.spec.drift_share,
                score >= self.spec.drift_share,
                detail,
            )
        ]
        try:
            if target is not None and target in reference.columns and target in current.columns:
                kind = reference.target_kind(target, target_kind)
                all_signals.append(
                    self._signal_for(
                        "target", target, kind, reference.sample(target, kind), current[target]
                    )
                )
            if predictions is not None:
                ref_pred, cur_pred = (pd.Series(np.asarray(p)) for p in predictions)
                pred_kind = infer_kind(ref_pred)
                all_signals.append(
                    self._signal_for(
                        "prediction",
                        "prediction",
                        pred_kind,
                        (Sample(ref_pred, pred_kind), False),
                        cur_pred,
                    )
                )
        except DriftCheckError:
            raise
        except Exception as exc:
            raise DriftCheckError(
                f"target or prediction drift could not be computed: {exc}"
            ) from exc
        all_signals.extend(signals)
        is_drifted = any(s.is_drifted for s in all_signals)
        level: DriftLevel = (
            "drift"
            if is_drifted
            else "warning"
            if score >= self.warning_share and score > 0
            else "ok"
        )
        return DriftReport(
            is_drifted=is_drifted,
            share_drifted=share,
            drift_share=self.spec.drift_share,
            columns=tuple(results),
            n_reference=reference.n_rows,
            n_current=len(current),
            score=score,
            policy=self.spec.policy,
            level=level,
            warning_share=self.warning_share,
            correction=self.spec.correction,
            signals=tuple(all_signals),
            schema_changes=tuple(changes.values()),
            weights=used_weights,
        )


class _Reference:
    """The reference side of one check: a frame (columns cleaned as they are read) or a
    profile (prepared before)."""

    def __init__(self, source: pd.DataFrame | ReferenceProfile, *, needs_order: bool) -> None:
        self.source = source
        if isinstance(source, ReferenceProfile):
            if needs_order and not source.keep_order:
                raise DriftCheckError(
                    "the reference profile was prepared without the values' order, which this "
                    "detector's calibration or evidently-computed methods need; prepare it with "
                    "this detector's profile()"
                )
            self.n_rows = source.n_rows
            self.columns: Sequence[str] = source.columns
        else:
            self.n_rows = len(source)
            self.columns = [str(c) for c in source.columns]

    def sample(self, column: str, kind: ColumnKind) -> tuple[Sample, bool]:
        """``column``'s sample and whether its dtype was boolean."""
        if isinstance(self.source, ReferenceProfile):
            if not self.source.has(column, kind):
                raise DriftCheckError(
                    f"the reference profile was not prepared for {kind} column {column!r}; "
                    "prepare it with the columns (and target) the check names"
                )
            return self.source.sample(column, kind), self.source.is_bool(column)
        series = self.source[column]
        return Sample(series, kind), bool(pd.api.types.is_bool_dtype(series))

    def target_kind(self, target: str, given: ColumnKind | None) -> ColumnKind:
        """The label's kind: ``given``, else inferred (by the profile when it was built)."""
        if isinstance(self.source, ReferenceProfile):
            if self.source.target != target or (
                given is not None and given != self.source.target_kind
            ):
                raise DriftCheckError(
                    f"the reference profile was not prepared for target {target!r}"
                    + (f" as {given}" if given else "")
                    + "; prepare it with the check's target and target_kind"
                )
            assert self.source.target_kind is not None
            return self.source.target_kind
        return given or infer_kind(self.source[target])


def infer_column_kinds(
    frame: pd.DataFrame, *, exclude: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """Split a frame's columns into numeric and categorical the way the schema does.

    Numbers (not booleans) are numeric; booleans, strings and everything else categorical.

    Returns:
        ``(numeric, categorical)`` column names in frame order.

    Example:
        >>> infer_column_kinds(pd.DataFrame({"a": [1.0], "b": ["x"], "c": [True], "y": [0]}),
        ...                    exclude=["y"])
        (['a'], ['b', 'c'])
    """
    numeric: list[str] = []
    categorical: list[str] = []
    for name in frame.columns:
        if name in exclude:
            continue
        col = frame[name]
        is_number = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        (numeric if is_number else categorical).append(str(name))
    return numeric, categorical


def render_drift_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    path: str | Path,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    method: str | None = None,
    threshold: float | None = None,
    drift_share: float = 0.5,
    per_column: Mapping[str, ColumnDriftSpec] | None = None,
) -> Path:
    """Render evidently's data-drift HTML report (slow: plots every column) to ``path``.

    Columns absent from either frame (schema changes) are left out of the report. Methods
    evidently does not know (``chisquare_2samp``) are left to evidently's own choice.

    The report is rendered in a child process: evidently, plotly and their dependencies take
    about 100 MB that a long-running service would otherwise keep after its first report
    (rendering takes seconds; the new process adds about one).

    Raises:
        DriftCheckError: evidently failed to build or save the report.
    """
    import pickle
    import subprocess
    import sys

    args = (reference, current, str(path))
    options = {
        "numeric": list(numeric),
        "categorical": list(categorical),
        "method": method,
        "threshold": threshold,
        "drift_share": drift_share,
        "per_column": dict(per_column or {}),
    }
    package_root = str(Path(__file__).resolve().parents[2])  # this automl, whatever the path
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    entry = "from automl.drift._evidently import _render_child; _render_child()"
    done = subprocess.run(
        [sys.executable, "-c", entry],
        input=pickle.dumps((args, options)),
        capture_output=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit code {done.returncode}"
        raise DriftCheckError(f"evidently could not render the drift report: {why}")
    return Path(path)


def _render_child() -> None:  # pragma: no cover - runs in the child (tests/drift, tests/cli)
    """The child of :func:`render_drift_html`: arguments pickled on stdin, one error line."""
    import pickle
    import sys

    args, options = pickle.load(sys.stdin.buffer)
    try:
        _render(*args, **options)
    except DriftCheckError as exc:
        prefix = "evidently could not render the drift report: "
        sys.stderr.write(f"{str(exc).removeprefix(prefix)}\n")
        sys.exit(1)


def _render(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    path: str | Path,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    method: str | None = None,
    threshold: float | None = None,
    drift_share: float = 0.5,
    per_column: Mapping[str, ColumnDriftSpec] | None = None,
) -> Path:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    both = set(reference.columns) & set(current.columns)
    num = [c for c in numeric if c in both and pd.api.types.is_numeric_dtype(current[c])]
    cat = [c for c in categorical if c in both]
    cols = [*num, *cat]
    if method in AUTOML_METHODS:  # evidently does not know it: its report shows its own choice
        method, threshold = None, None
    overrides = {
        k: v for k, v in (per_column or {}).items() if k in cols and v.method not in AUTOML_METHODS
    }
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = Report(
            [
                DataDriftPreset(
                    columns=cols,
                    method=method,
                    threshold=threshold,
                    drift_share=drift_share,
                    per_column_method={k: v.method for k, v in overrides.items() if v.method}
                    or None,
                    per_column_threshold={
                        k: v.threshold for k, v in overrides.items() if v.threshold is not None
                    }
                    or None,
                )
            ]
        )
        snapshot = report.run(
            Dataset.from_pandas(current[cols], data_definition=definition),
            Dataset.from_pandas(reference[cols], data_definition=definition),
        )
        snapshot.save_html(str(out))
    except Exception as exc:
        raise DriftCheckError(f"evidently could not render the drift report: {exc}") from exc
    return out
