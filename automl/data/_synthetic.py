"""A realistic synthetic churn table, with a dial for drift, for demos, tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd

_CONTRACTS = np.array(["month-to-month", "one-year", "two-year"])
_PAYMENTS = np.array(["electronic-check", "credit-card", "bank-transfer", "mailed-check"])
_INTERNET = np.array(["fiber", "dsl", "none"])


def make_churn_frame(n_rows: int, *, seed: int, drift: float = 0.0) -> pd.DataFrame:
    """Generate a telecom-churn-like table with numeric and categorical columns.

    With ``drift`` > 0 the world changes the way it does after a price rise and a competitor's
    fibre launch: monthly charges go up, more customers sit on month-to-month contracts, support
    calls rise (covariate shift), and fibre customers and high bills churn more than before
    (concept shift), so a model trained on ``drift=0`` data loses accuracy on drifted data.

    Args:
        n_rows: Number of customers (>= 1).
        seed: Random seed; the same seed and arguments give the same frame.
        drift: Strength of the change, 0 (none) to 1 (full).

    Returns:
        Columns ``tenure_months``, ``monthly_charges``, ``total_charges`` (about 1% missing),
        ``support_calls``, ``age``, ``contract``, ``payment_method``, ``internet_service`` and
        the 0/1 target ``churned``.

    Example:
        >>> df = make_churn_frame(1000, seed=0)
        >>> df.shape, round(float(df["churned"].mean()), 2)
        ((1000, 9), 0.22)
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be within [0, 1], got {drift}")
    rng = np.random.default_rng(seed)
    contract = rng.choice(
        _CONTRACTS, n_rows, p=[0.45 + 0.3 * drift, 0.30 - 0.15 * drift, 0.25 - 0.15 * drift]
    )
    internet = rng.choice(
        _INTERNET, n_rows, p=[0.40 + 0.2 * drift, 0.40 - 0.1 * drift, 0.20 - 0.1 * drift]
    )
    payment = rng.choice(_PAYMENTS, n_rows, p=[0.35, 0.25, 0.25, 0.15])
    tenure = np.clip(rng.gamma(2.0, 14.0 * (1 - 0.3 * drift), n_rows), 0, 72).round()
    base_charge = np.select([internet == "fiber", internet == "dsl"], [80.0, 55.0], 25.0)
    monthly = np.clip(base_charge + rng.normal(0, 12, n_rows) + 22.0 * drift, 18, 140).round(2)
    total = (monthly * tenure + rng.normal(0, 40, n_rows)).clip(0).round(2)
    total[rng.random(n_rows) < 0.01] = np.nan
    support = rng.poisson(1.2 + 1.5 * drift, n_rows)
    age = np.clip(rng.normal(45, 14, n_rows), 18, 90).round()

    logit = (
        -1.6
        - 1.8 * drift
        + 1.3 * (contract == "month-to-month")
        - 0.8 * (contract == "two-year")
        - 0.035 * tenure
        + 0.022 * (monthly - 65) * (1 + 1.5 * drift)
        + 0.35 * support
        + 0.5 * (payment == "electronic-check")
        + (0.2 + 1.6 * drift) * (internet == "fiber")
        - 0.8 * drift * (internet == "dsl")
        - 0.006 * (age - 45)
    )
    churned = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    return pd.DataFrame(
        {
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": support,
            "age": age,
            "contract": contract,
            "payment_method": payment,
            "internet_service": internet,
            "churned": churned,
        }
    )
