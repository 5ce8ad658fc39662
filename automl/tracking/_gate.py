"""The promotion gate: margin, statistical credibility and guardrails on one shared holdout.

The gate never sees models, only what they predicted on the same holdout rows, so the rule is
a pure function that tests can drive with plain arrays. Metric computation is injected (the
service passes the tuning package's metric functions) to keep this package free of sideways
imports. Its settings are those of a pipeline's ``registry`` section
(:class:`automl.config.RegistrySpec`), which checks them once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from automl.config import GuardrailSpec, RegistrySpec, argument_errors, build_section
from automl.vocab import RESOURCE_METRICS, SignificanceTest


@dataclass(frozen=True)
class Predictions:
    """What one model predicted on the holdout, and what it cost.

    Attributes:
        version: Registered version of the model.
        values: Predicted labels (classification) or values (regression), one per row.
        proba: Class probabilities (rows x classes) for classification, else None.
        classes: Class labels in the column order of ``proba``.
        latency_ms: Milliseconds to score 1,000 holdout rows (median of repeats).
        model_size_mb: Size of the model's artifacts.
    """

    version: str
    values: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any] | None = None
    classes: np.ndarray[Any, Any] | None = None
    latency_ms: float = float("nan")
    model_size_mb: float = float("nan")

    def take(self, rows: np.ndarray[Any, Any]) -> Predictions:
        """The same predictions restricted to ``rows`` (for resampling)."""
        return Predictions(
            version=self.version,
            values=self.values[rows],
            proba=None if self.proba is None else self.proba[rows],
            classes=self.classes,
            latency_ms=self.latency_ms,
            model_size_mb=self.model_size_mb,
        )


MetricFn = Callable[[str, np.ndarray[Any, Any], Predictions], float]


class Guardrail(GuardrailSpec):
    """A metric that must not get worse beyond a tolerance: a ``registry.guardrails`` entry
    (:class:`automl.config.GuardrailSpec`) that also takes its metric by position.

    Args:
        metric: A quality metric (``accuracy``, ``rmse``, ...) or ``latency_ms`` /
            ``model_size_mb``.
        max_regression: For quality metrics: how much worse (in the metric's units) the
            challenger may be than the champion.
        max_ratio: For ``latency_ms`` / ``model_size_mb``: the largest allowed
            challenger / champion ratio.

    Raises:
        ValueError: An unknown metric, or a limit of the other kind of metric.
    """

    def __init__(
        self, metric: str, max_regression: float | None = None, max_ratio: float | None = None
    ) -> None:
        with argument_errors():
            super().__init__(metric=metric, max_regression=max_regression, max_ratio=max_ratio)


#: Prefix of the old-population guardrail's check (``old_population_<metric>``).
OLD_POPULATION = "old_population"


@dataclass(frozen=True)
class GuardrailCheck:
    """The outcome of one guardrail.

    Attributes:
        metric: What was checked (``old_population_<metric>`` for the old-population
            guardrail).
        champion_value: The champion's value (NaN when the check was skipped).
        challenger_value: The challenger's value (NaN when skipped).
        limit: The rule, e.g. ``regression <= 0.02``.
        passed: The rule held, or the check was skipped.
        note: Which rows it ran on, or why it was skipped.
        skipped: The check could not run (``note`` says why); it does not block.
    """

    metric: str
    champion_value: float
    challenger_value: float
    limit: str
    passed: bool
    note: str = ""
    skipped: bool = False


@dataclass(frozen=True)
class GateResult:
    """Everything the gate measured and concluded.

    Attributes:
        improvement: Challenger minus champion on the primary metric, positive = better.
        passes_margin: ``improvement > 0`` and ``improvement >= margin``.
        test: Significance test used.
        ci_low: Lower bound of the bootstrap confidence interval of the improvement.
        ci_high: Upper bound of that interval.
        p_value: McNemar's exact p-value (challenger and champion disagree equally often).
        is_credible: The significance verdict (always True with test ``none``).
        guardrails: One check per configured guardrail.
        passed: All of the above.
        reasons: Why the gate failed (empty when it passed).
    """

    improvement: float
    passes_margin: bool
    test: SignificanceTest
    is_credible: bool
    passed: bool
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    guardrails: tuple[GuardrailCheck, ...] = ()
    reasons: tuple[str, ...] = field(default=())

    def with_check(self, check: GuardrailCheck) -> GateResult:
        """This result with one more guardrail check (e.g. the old-population one, run on
        other rows than the holdout): a failing check fails the gate and says why."""
        reasons = self.reasons
        if not check.passed:
            where = f" on {check.note}" if check.note else ""
            reasons = (
                *reasons,
                f"guardrail {check.metric}: {check.challenger_value:.4f} vs champion "
                f"{check.champion_value:.4f}{where} breaks {check.limit}",
            )
        return replace(
            self,
            guardrails=(*self.guardrails, check),
            reasons=reasons,
            passed=self.passed and check.passed,
        )


def _oriented(diff: float, greater_is_better: bool) -> float:
    return diff if greater_is_better else -diff


def _bootstrap(
    y_true: np.ndarray[Any, Any],
    challenger: Predictions,
    champion: Predictions,
    *,
    metric: str,
    metric_fn: MetricFn,
    greater_is_better: bool,
    alpha: float,
    n_resamples: int,
    seed: int,
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n = len(y_true)
    diffs = []
    for _ in range(n_resamples):
        rows = rng.integers(0, n, n)
        try:
            a = metric_fn(metric, y_true[rows], challenger.take(rows))
            b = metric_fn(metric, y_true[rows], champion.take(rows))
        except ValueError:  # e.g. a resample with one class has no ROC AUC
            continue
        diffs.append(_oriented(a - b, greater_is_better))
    if len(diffs) < n_resamples // 2:
        return float("-inf"), float("inf")
    low, high = np.quantile(np.asarray(diffs), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _mcnemar(
    y_true: np.ndarray[Any, Any], challenger: Predictions, champion: Predictions
) -> tuple[float, int, int]:
    from scipy.stats import binomtest

    chal_right = challenger.values == y_true
    champ_right = champion.values == y_true
    wins = int(np.sum(chal_right & ~champ_right))
    losses = int(np.sum(champ_right & ~chal_right))
    if wins + losses == 0:
        return 1.0, wins, losses
    return float(binomtest(wins, wins + losses, 0.5).pvalue), wins, losses


def _check_guardrail(
    rail: GuardrailSpec,
    y_true: np.ndarray[Any, Any],
    challenger: Predictions,
    champion: Predictions,
    metric_fn: MetricFn,
    greater_is_better: Callable[[str], bool],
) -> GuardrailCheck:
    if rail.metric in RESOURCE_METRICS:
        chal = float(getattr(challenger, rail.metric))
        champ = float(getattr(champion, rail.metric))
        ratio_limit = rail.max_ratio if rail.max_ratio is not None else 1.0
        ratio = chal / champ if champ > 0 else (1.0 if chal <= 0 else float("inf"))
        passed = bool(np.isnan(ratio) or ratio <= ratio_limit)
        return GuardrailCheck(rail.metric, champ, chal, f"ratio <= {ratio_limit}", passed)
    chal = metric_fn(rail.metric, y_true, challenger)
    champ = metric_fn(rail.metric, y_true, champion)
    tolerance = rail.max_regression if rail.max_regression is not None else 0.0
    regression = -_oriented(chal - champ, greater_is_better(rail.metric))
    return GuardrailCheck(
        rail.metric, champ, chal, f"regression <= {tolerance}", regression <= tolerance + 1e-12
    )


class PromotionGate:
    """Judges a challenger against the champion on the same holdout.

    The challenger passes when (1) it improves the primary metric by more than zero and at
    least ``margin``, (2) the improvement is credible: the lower bound of a paired bootstrap
    confidence interval (``1 - alpha``) is above zero, or McNemar's exact test on the rows
    where the two disagree rejects "equally good" at ``alpha`` in the challenger's favour, and
    (3) no guardrail regresses beyond its tolerance.

    The settings are those of a pipeline's ``registry`` section
    (:class:`automl.config.RegistrySpec`: ``promotion_margin``, ``significance``,
    ``guardrails``), which checks them: :meth:`from_spec` takes a validated section, and the
    arguments below are validated by building one.

    Args:
        margin: Smallest improvement that counts (>= 0).
        test: ``bootstrap``, ``mcnemar`` (classification labels) or ``none``.
        alpha: Significance level in (0, 0.5).
        n_resamples: Bootstrap resamples (100 to 100,000).
        guardrails: Metrics that must not regress.

    Raises:
        ValueError: A setting breaks the section's rules; the message names it, the rule and
            the value.
    """

    def __init__(
        self,
        *,
        margin: float = 0.0,
        test: SignificanceTest = "bootstrap",
        alpha: float = 0.05,
        n_resamples: int = 1000,
        guardrails: Sequence[GuardrailSpec] = (),
    ) -> None:
        self.spec = build_section(
            RegistrySpec,
            promotion_margin=margin,
            significance={"test": test, "alpha": alpha, "n_resamples": n_resamples},
            guardrails=tuple(guardrails),
        )

    @classmethod
    def from_spec(cls, spec: RegistrySpec) -> PromotionGate:
        """The gate a pipeline's validated ``registry`` section describes."""
        gate = cls.__new__(cls)
        gate.spec = spec
        return gate

    def evaluate(
        self,
        y_true: np.ndarray[Any, Any],
        challenger: Predictions,
        champion: Predictions,
        *,
        metric: str,
        metric_fn: MetricFn,
        greater_is_better: Callable[[str], bool],
        seed: int = 0,
    ) -> GateResult:
        """Judge ``challenger`` against ``champion``.

        Args:
            y_true: Holdout labels or values.
            challenger: The challenger's predictions.
            champion: The champion's predictions on the same rows.
            metric: Primary metric name, understood by ``metric_fn``.
            metric_fn: ``metric_fn(name, y_true, predictions) -> value``.
            greater_is_better: Direction of a metric by name.
            seed: Seeds the bootstrap.

        Returns:
            The measurements and the verdict, with every failing reason.

        Raises:
            ValueError: Predictions of different lengths.
        """
        if not len(y_true) == len(challenger.values) == len(champion.values):
            raise ValueError("challenger, champion and y_true must cover the same holdout rows")
        margin, significance = self.spec.promotion_margin, self.spec.significance
        test, alpha = significance.test, significance.alpha
        n_resamples, guardrails = significance.n_resamples, self.spec.guardrails
        direction = greater_is_better(metric)
        chal_score = metric_fn(metric, y_true, challenger)
        champ_score = metric_fn(metric, y_true, champion)
        improvement = _oriented(chal_score - champ_score, direction)
        passes_margin = improvement > 0 and improvement >= margin
        reasons: list[str] = []
        if not passes_margin:
            reasons.append(f"improvement {improvement:+.4f} below margin {margin}")
        ci_low = ci_high = p_value = None
        is_credible = True
        if test == "bootstrap":
            ci_low, ci_high = _bootstrap(
                y_true,
                challenger,
                champion,
                metric=metric,
                metric_fn=metric_fn,
                greater_is_better=direction,
                alpha=alpha,
                n_resamples=n_resamples,
                seed=seed,
            )
            is_credible = ci_low > 0
            if not is_credible:
                reasons.append(
                    f"not credible: {1 - alpha:.0%} bootstrap interval of the improvement "
                    f"[{ci_low:+.4f}, {ci_high:+.4f}] includes 0"
                )
        elif test == "mcnemar":
            p_value, wins, losses = _mcnemar(y_true, challenger, champion)
            is_credible = p_value < alpha and wins > losses
            if not is_credible:
                reasons.append(
                    f"not credible: McNemar p={p_value:.3g} (challenger right where champion wrong "
                    f"{wins}x, the reverse {losses}x; need p < {alpha})"
                )
        checks = tuple(
            _check_guardrail(rail, y_true, challenger, champion, metric_fn, greater_is_better)
            for rail in guardrails
        )
        for check in checks:
            if not check.passed:
                reasons.append(
                    f"guardrail {check.metric}: {check.challenger_value:.4g} vs champion "
                    f"{check.champion_value:.4g} breaks {check.limit}"
                )
        return GateResult(
            improvement=improvement,
            passes_margin=passes_margin,
            test=test,
            is_credible=is_credible,
            passed=not reasons,
            ci_low=ci_low,
            ci_high=ci_high,
            p_value=p_value,
            guardrails=checks,
            reasons=tuple(reasons),
        )

    def check_old_population(
        self,
        y_true: np.ndarray[Any, Any],
        challenger: Predictions,
        champion: Predictions,
        *,
        metric: str,
        metric_fn: MetricFn,
        greater_is_better: Callable[[str], bool],
        rows_note: str = "",
    ) -> GuardrailCheck:
        """The old-population guardrail (``registry.old_population``): the challenger must not
        be worse than the champion by more than ``max_regression`` on rows of the population
        the champion serves (its stored holdout, minus the rows the challenger trained on).

        Args:
            y_true: Labels or values of those rows.
            challenger: The challenger's predictions on them.
            champion: The champion's predictions on the same rows.
            metric: Primary metric name.
            metric_fn: ``metric_fn(name, y_true, predictions) -> value``.
            greater_is_better: Direction of a metric by name.
            rows_note: Which rows these are, for the record.

        Returns:
            The check, named ``old_population_<metric>``; it passes when the guardrail is off.

        Raises:
            ValueError: Predictions of different lengths, or rows the metric cannot score
                (e.g. one class only for ROC AUC).

        Example:
            >>> y = np.array([0, 1] * 100)
            >>> champ = Predictions("1", y.copy())
            >>> chal = Predictions("2", np.where(np.arange(200) % 10 == 0, 1 - y, y))
            >>> acc = lambda name, t, p: float(np.mean(p.values == t))
            >>> spec = RegistrySpec(old_population={"max_regression": 0.05})
            >>> gate = PromotionGate.from_spec(spec)
            >>> c = gate.check_old_population(y, chal, champ, metric="accuracy", metric_fn=acc,
            ...     greater_is_better=lambda m: True)
            >>> c.metric, c.passed, round(c.champion_value - c.challenger_value, 2)
            ('old_population_accuracy', False, 0.1)
        """
        if not len(y_true) == len(challenger.values) == len(champion.values):
            raise ValueError("challenger, champion and y_true must cover the same rows")
        tolerance = self.spec.old_population.max_regression
        rail = GuardrailSpec(metric=metric, max_regression=0.0 if tolerance is None else tolerance)
        check = _check_guardrail(rail, y_true, challenger, champion, metric_fn, greater_is_better)
        return replace(
            check,
            metric=f"{OLD_POPULATION}_{metric}",
            passed=check.passed or tolerance is None,
            note=rows_note,
        )

    @staticmethod
    def skip_old_population(metric: str, why: str) -> GuardrailCheck:
        """The old-population guardrail's record when it cannot run (``why``): it does not
        block the promotion, and the reason stays with the decision."""
        return GuardrailCheck(
            metric=f"{OLD_POPULATION}_{metric}",
            champion_value=float("nan"),
            challenger_value=float("nan"),
            limit="skipped",
            passed=True,
            note=why,
            skipped=True,
        )


def evaluate_gate(
    y_true: np.ndarray[Any, Any],
    challenger: Predictions,
    champion: Predictions,
    *,
    metric: str,
    metric_fn: MetricFn,
    greater_is_better: Callable[[str], bool],
    margin: float,
    test: SignificanceTest = "bootstrap",
    alpha: float = 0.05,
    n_resamples: int = 1000,
    guardrails: Sequence[GuardrailSpec] = (),
    seed: int = 0,
) -> GateResult:
    """Judge a challenger against the champion with plain settings (see :class:`PromotionGate`).

    Raises:
        ValueError: A setting breaks the ``registry`` section's rules (``margin``, ``alpha``,
            ``n_resamples``, ``test``, a guardrail), or predictions of different lengths.

    Example:
        >>> y = np.array([0, 1] * 100)
        >>> good = Predictions("2", y.copy())
        >>> bad = Predictions("1", np.where(np.arange(200) % 4 == 0, 1 - y, y))
        >>> acc = lambda name, t, p: float(np.mean(p.values == t))
        >>> r = evaluate_gate(y, good, bad, metric="accuracy", metric_fn=acc,
        ...     greater_is_better=lambda m: True, margin=0.01, test="mcnemar")
        >>> r.passed, round(r.improvement, 2), r.p_value < 0.001
        (True, 0.25, True)
    """
    gate = PromotionGate(
        margin=margin, test=test, alpha=alpha, n_resamples=n_resamples, guardrails=guardrails
    )
    return gate.evaluate(
        y_true,
        challenger,
        champion,
        metric=metric,
        metric_fn=metric_fn,
        greater_is_better=greater_is_better,
        seed=seed,
    )
