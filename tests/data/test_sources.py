"""The ingest contract, one suite for every kind of ``data.source``: a landing folder, an
object-store prefix on moto's S3 server (a real process on localhost, through s3fs as in
production) and a PostgreSQL table read by watermark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from automl.config import PipelineSpec, load_spec
from automl.data import (
    BatchLedger,
    LabelPolicy,
    LabelStore,
    PipelinePaths,
    ingest_source,
    ingest_source_labels,
    load_batches,
)
from automl.errors import DataSourceError
from automl.state import open_state, source_objects_table
from tests.conftest import fresh_postgres_database, postgres_unavailable, small_spec_dict
from tests.data.sources_harness import (
    AWS_ENV,
    DirectoryHarness,
    Harness,
    ObjectStoreHarness,
    SqlHarness,
    moto_server,
)

KINDS = ["directory", "object_store", "sql"]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def source_db() -> Iterator[str]:
    reason = postgres_unavailable()
    if reason is not None:
        if os.environ.get("AUTOML_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {reason}")
        pytest.skip(reason)
    with fresh_postgres_database("automl_src") as url:
        yield url


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    kind = request.param
    if kind == "directory":
        yield DirectoryHarness(tmp_path)
    elif kind == "object_store":
        yield ObjectStoreHarness(request.getfixturevalue("s3_endpoint"))
    else:
        sql = SqlHarness(request.getfixturevalue("source_db"))
        yield sql
        sql.close()


def write_spec(tmp_path: Path, harness: Harness, **data: Any) -> PipelineSpec:
    spec = small_spec_dict(
        "churn", data={"source": harness.source(), "settle_s": 0.0, **data}
    )
    spec["data"]["landing_dir"] = "landing/churn"
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_spec(path)


def stores(spec: PipelineSpec) -> tuple[PipelinePaths, BatchLedger]:
    return PipelinePaths(spec.workspace_dir, spec.name), BatchLedger(spec.state_url)


def batch(churn: Callable[..., pd.DataFrame], n: int, seed: int) -> pd.DataFrame:
    return churn(n, seed=seed)


# -- the contract, for every kind --------------------------------------------------------------
def test_each_delivery_becomes_one_batch_once(
    harness: Harness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    spec = write_spec(tmp_path, harness)
    paths, ledger = stores(spec)
    harness.deliver("b1.parquet", batch(churn, 120, 1))
    first = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in first.accepted] == [120]
    harness.deliver("b2.csv", batch(churn, 80, 2))
    second = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in second.accepted] == [80]
    again = ingest_source(spec, paths=paths, ledger=ledger)
    assert (again.accepted, again.rejected, again.duplicates) == ((), (), ())
    records = ledger.records("churn", status="accepted")
    assert len(records) == 2
    rows = load_batches(records)
    expected = pd.concat([batch(churn, 120, 1), batch(churn, 80, 2)], ignore_index=True)
    assert len(rows) == 200
    assert rows["monthly_charges"].round(6).tolist() == (
        expected["monthly_charges"].round(6).tolist()
    )


def test_a_bad_delivery_is_rejected_with_its_reason_in_the_ledger(
    harness: Harness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    spec = write_spec(tmp_path, harness)
    paths, ledger = stores(spec)
    harness.deliver("good.csv", batch(churn, 100, 1))
    ingest_source(spec, paths=paths, ledger=ledger)
    bad = batch(churn, 50, 3).assign(churned=None)
    harness.deliver("bad.csv", bad)
    result = ingest_source(spec, paths=paths, ledger=ledger)
    assert result.accepted == ()
    assert len(result.rejected) == 1
    (record,) = ledger.records("churn", status="rejected")
    assert record.reason is not None and "churned" in record.reason
    assert ingest_source(spec, paths=paths, ledger=ledger).rejected == ()  # recorded once
    assert [r.n_rows for r in ledger.pending("churn")] == [100]


def test_late_labels_arrive_from_the_same_kind_of_source(
    harness: Harness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    spec = write_spec(tmp_path, harness, id_column="id", labels=harness.labels_source())
    paths, ledger = stores(spec)
    policy = LabelPolicy.from_spec(spec.data)
    assert policy is not None
    rows = batch(churn, 100, 1)
    rows.insert(0, "id", range(100))
    labels = rows[["id", "churned"]].iloc[:60]
    harness.deliver("rows.csv", rows.assign(churned=None))
    accepted = ingest_source(spec, paths=paths, ledger=ledger, labels=policy)
    assert len(accepted.accepted) == 1
    harness.deliver_labels("labels.csv", labels)
    result = ingest_source_labels(spec, paths=paths, ledger=ledger, policy=policy)
    assert result is not None and result.counts.joined == 60
    again = ingest_source_labels(spec, paths=paths, ledger=ledger, policy=policy)
    assert again is not None and again.counts.joined == 0
    labelled = LabelStore(ledger.url).labelled_rows("churn")
    assert sorted(labelled["id"].astype(int)) == list(range(60))
    assert labelled.set_index(labelled["id"].astype(int))["churned"].tolist() == (
        labels.set_index("id").loc[sorted(labelled["id"].astype(int)), "churned"].tolist()
    )


_HALT_AFTER_RECORD = """
import sys, time, pathlib
from automl.data import _ledger
marker, stop_at = pathlib.Path(sys.argv[1]), int(sys.argv[3])
real = _ledger.BatchLedger.add
calls = []
def add(self, **kwargs):
    record = real(self, **kwargs)
    calls.append(record.id)
    if len(calls) == stop_at:  # recorded in the ledger; the source has not noted it read
        marker.write_text("stopped")
        time.sleep(600)
    return record
_ledger.BatchLedger.add = add
from automl.cli import main
sys.argv = ["automl", "run", sys.argv[2]]
main()
"""


@pytest.mark.slow
def test_every_delivery_is_ingested_exactly_once_across_a_kill_and_a_restart(
    harness: Harness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    """`automl run` is killed (-9) right after the ledger records a delivery, before the source
    notes it read (the second of three files or objects; the one read of three inserts, for
    sql); a second `automl run` finishes: every row once."""
    spec = write_spec(tmp_path, harness)
    is_sql = harness.kind == "sql"
    for i in range(3):
        harness.deliver(f"b{i}.parquet", batch(churn, 100, i))
    marker = tmp_path / "stopped"
    env = {**os.environ, **AWS_ENV}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _HALT_AFTER_RECORD,
            str(marker),
            str(spec.source_file),
            "1" if is_sql else "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the first run ended before the stop point: {out}\n{err}")
        assert time.monotonic() < deadline, "the first run never reached the stop point"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = subprocess.run(
        [sys.executable, "-m", "automl", "run", str(spec.source_file), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    _, ledger = stores(spec)
    records = ledger.records("churn")
    assert [r.status for r in records] == ["accepted"] * (1 if is_sql else 3)
    assert sum(r.n_rows for r in records) == 300
    rows = load_batches(records)
    expected = pd.concat([batch(churn, 100, i) for i in range(3)], ignore_index=True)
    assert sorted(rows["monthly_charges"].round(6)) == sorted(
        expected["monthly_charges"].round(6)
    )
