"""Shared fixtures: small real data, real specs in tmp_path, quiet MLflow."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from automl.config import PipelineSpec, load_spec
from automl.data import make_churn_frame, write_table
from automl.tuning import SearchConfig

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "age"]
CATEGORICAL = ["contract", "payment_method", "internet_service"]


def churn_search(**overrides: Any) -> SearchConfig:
    """The search of the churn table (its columns, ROC AUC); ``overrides`` replace fields."""
    fields: dict[str, Any] = {
        "target": "churned",
        "task": "classification",
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "metric": "roc_auc",
    }
    return SearchConfig(**{**fields, **overrides})


def small_spec_dict(name: str = "churn", **overrides: Any) -> dict[str, Any]:
    """A fast spec: few trials, two folds, small windows."""
    spec: dict[str, Any] = {
        "name": name,
        "data": {"landing_dir": f"landing/{name}", "target": "churned", "settle_s": 0.05},
        # The tests built on this spec were written for a window from the first drifted batch
        # and no cool-down; the defaults (recent, 3 checks) have tests of their own.
        "training": {
            "min_rows": 200,
            "max_rows": 5000,
            "holdout_fraction": 0.25,
            "window": "since_drift",
        },
        # No evidently HTML (a child process, seconds per drifted check): test_cycle keeps it on.
        "drift": {"hysteresis": {"cooldown_checks": 0}, "html_report": "never"},
        # In the test's own process: a child process costs each re-tune ~2 s of imports; the
        # child (the default) has tests of its own (tests/service/test_retune.py, the demo, the
        # kill-and-restart test of late labels).
        "tuning": {"n_trials": 3, "cv": 2, "timeout_s": 120, "seed": 7, "in_child_process": False},
        "registry": {"promotion_margin": 0.0},
        "schedule": {"interval_s": 0.5},
    }
    return _merged(spec, overrides)


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied, nested sections merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def write_spec_file(folder: Path, name: str = "churn", **overrides: Any) -> Path:
    """Write the small spec of pipeline ``name`` (with ``overrides``) as ``folder/name.yaml``."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(small_spec_dict(name, **overrides)), encoding="utf-8")
    return path


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., PipelineSpec]:
    """Write a small spec YAML into tmp_path and load it."""

    def _write(name: str = "churn", **overrides: Any) -> PipelineSpec:
        return load_spec(write_spec_file(tmp_path, name, **overrides))

    return _write


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


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

        engine = sa.create_engine(
            PG_URL, connect_args={"connect_timeout": 2}, poolclass=sa.pool.NullPool
        )
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {str(exc).splitlines()[0]}"
    return None


def pytest_report_header() -> str | None:
    """How many of PostgreSQL's connections are taken before the tests start: the scale-out
    tests need a few dozen, and a server that something else nearly fills fails them."""
    if postgres_unavailable() is not None:
        return None
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        used = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity")).scalar_one()
        limit = conn.execute(sa.text("SHOW max_connections")).scalar_one()
    return f"postgresql: {used} of {limit} connections in use at the start"


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


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards with its connections."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_at_once(code: str, argument: str, n_processes: int) -> list[tuple[int, str, str]]:
    """Start ``n_processes`` Python processes running ``code`` with ``argument``, release them
    together once every one printed ``ready`` (and then waits for a line on stdin), and return
    each one's (exit code, stdout after ``ready``, stderr)."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, argument],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n_processes)
    ]
    for proc in procs:  # every process imported and waiting ...
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:  # ... then all go at once
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=60) for proc in procs]
    return [(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs, strict=True)]


def run_python(
    command: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float = 300
) -> str:
    """Run a Python command in a subprocess; fail the test with its stderr unless it exits 0.

    Returns:
        Its standard output.
    """
    import subprocess

    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def run_cycle_process(
    spec_file: Path | str, *, env: dict[str, str] | None = None, timeout_s: float = 300
) -> dict[str, Any]:
    """Run one cycle of ``spec_file`` in a new process (``automl run --json``), as a restarted
    service would; fail the test with its stderr unless it exits 0.

    Args:
        spec_file: The pipeline's spec file.
        env: The process's environment (default: this one, with the repository importable).
        timeout_s: How long the cycle may take.

    Returns:
        The cycle's result as ``--json`` prints it.
    """
    import json
    import subprocess
    import sys

    if env is None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "automl", "run", str(spec_file), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result
