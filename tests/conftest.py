"""Shared fixtures: small real data, real specs in tmp_path, quiet MLflow."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from automl.config import PipelineSpec, load_spec
from automl.data import make_churn_frame, write_table

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "age"]
CATEGORICAL = ["contract", "payment_method", "internet_service"]


def small_spec_dict(name: str = "churn", **overrides: Any) -> dict[str, Any]:
    """A fast spec: few trials, two folds, small windows."""
    spec: dict[str, Any] = {
        "name": name,
        "data": {"landing_dir": f"landing/{name}", "target": "churned"},
        "training": {"min_rows": 200, "max_rows": 5000, "holdout_fraction": 0.25},
        "tuning": {"n_trials": 3, "cv": 2, "timeout_s": 120, "seed": 7},
        "registry": {"promotion_margin": 0.0},
        "schedule": {"interval_s": 0.5},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., PipelineSpec]:
    """Write a small spec YAML into tmp_path and load it."""

    def _write(name: str = "churn", **overrides: Any) -> PipelineSpec:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(small_spec_dict(name, **overrides)), encoding="utf-8")
        return load_spec(path)

    return _write


def land(spec: PipelineSpec, file_name: str, frame: pd.DataFrame) -> Path:
    """Drop a batch into the pipeline's landing folder."""
    return write_table(frame, spec.landing_path / file_name)


@pytest.fixture
def churn() -> Callable[..., pd.DataFrame]:
    """``churn(n, seed, drift)``: the synthetic churn table."""

    def _make(n_rows: int = 400, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
        return make_churn_frame(n_rows, seed=seed, drift=drift)

    return _make


PG_URL = os.environ.get("AUTOML_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used by the tests here, or None when it can."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "the psycopg2 driver is not installed"
    try:
        import sqlalchemy as sa

        with sa.create_engine(PG_URL, connect_args={"connect_timeout": 2}).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture
def postgres_url() -> str:
    """The test PostgreSQL URL; skips with the reason when absent, or fails when CI says
    PostgreSQL is present (AUTOML_REQUIRE_POSTGRES=1) so a broken setup cannot hide."""
    reason = postgres_unavailable()
    if reason is not None:
        if os.environ.get("AUTOML_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but unusable: {reason}")
        pytest.skip(reason)
    return PG_URL
