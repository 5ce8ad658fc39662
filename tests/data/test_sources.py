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
from tests.conftest import (
    fresh_postgres_database,
    postgres_unavailable,
    run_cycle_process,
    small_spec_dict,
)
from tests.data.sources_harness import (
    AWS_ENV,
    DirectoryHarness,
    Harness,
    ObjectStoreHarness,
    SqlHarness,
    flaky_forwarder,
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


def write_spec(
    tmp_path: Path, harness: Harness, *, top: dict[str, Any] | None = None, **data: Any
) -> PipelineSpec:
    """A small spec reading ``harness``'s source; ``data`` and ``top`` override fields."""
    spec = small_spec_dict("churn", data={"source": harness.source(), "settle_s": 0.0, **data})
    spec["data"]["landing_dir"] = "landing/churn"
    spec.update(top or {})
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
        # 180 rows in all: under training.min_rows, so the runs ingest and wait, not train.
        harness.deliver(f"b{i}.parquet", batch(churn, 60, i))
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
    run_cycle_process(str(spec.source_file), env=env)
    _, ledger = stores(spec)
    records = ledger.records("churn")
    assert [r.status for r in records] == ["accepted"] * (1 if is_sql else 3)
    assert sum(r.n_rows for r in records) == 180
    rows = load_batches(records)
    expected = pd.concat([batch(churn, 60, i) for i in range(3)], ignore_index=True)
    assert sorted(rows["monthly_charges"].round(6)) == sorted(expected["monthly_charges"].round(6))


# -- object store ------------------------------------------------------------------------------
@pytest.fixture
def bucket(s3_endpoint: str) -> ObjectStoreHarness:
    return ObjectStoreHarness(s3_endpoint)


def test_objects_are_read_without_writing_to_the_bucket(
    bucket: ObjectStoreHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    spec = write_spec(tmp_path, bucket)
    paths, ledger = stores(spec)
    bucket.deliver("2026/01/a.parquet", batch(churn, 50, 1))
    bucket.deliver("b.csv", batch(churn, 50, 2))
    bucket.fs.pipe_file(f"{bucket.bucket}/churn/notes.txt", b"not a batch")
    bucket.fs.pipe_file(f"{bucket.bucket}/churn/.b.csv.tmp", b"half")
    before = {k: bucket.fs.info(k)["ETag"] for k in bucket.objects()}
    result = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.file_name.rsplit("/", 1)[-1] for r in result.accepted] == ["a.parquet", "b.csv"]
    assert {k: bucket.fs.info(k)["ETag"] for k in bucket.objects()} == before


def test_an_object_rewritten_under_its_key_is_a_new_batch_and_a_copy_is_a_duplicate(
    bucket: ObjectStoreHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    """New bytes under the same key (a new ETag): a new batch. The same bytes rewritten: the
    same ETag, not read again. The same bytes under another key: a duplicate, its reason
    recorded."""
    spec = write_spec(tmp_path, bucket)
    paths, ledger = stores(spec)
    bucket.deliver("a.csv", batch(churn, 50, 1))
    assert len(ingest_source(spec, paths=paths, ledger=ledger).accepted) == 1
    bucket.deliver("a.csv", batch(churn, 70, 2))  # rewritten with new rows
    rewritten = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in rewritten.accepted] == [70]
    bucket.deliver("a.csv", batch(churn, 70, 2))  # rewritten with the same bytes
    assert ingest_source(spec, paths=paths, ledger=ledger).accepted == ()
    bucket.deliver("copy.csv", batch(churn, 50, 1))
    copied = ingest_source(spec, paths=paths, ledger=ledger)
    assert copied.accepted == () and copied.duplicates == (f"{bucket.bucket}/churn/copy.csv",)
    assert len(ledger.records("churn")) == 2
    with open_state(ledger.url).connect() as conn:
        seen = conn.execute(
            sa.select(source_objects_table.c.object_key, source_objects_table.c.status).order_by(
                source_objects_table.c.id
            )
        ).all()
    key = f"{bucket.bucket}/churn/"
    assert [(k.removeprefix(key), s) for k, s in seen] == [
        ("a.csv", "accepted"),
        ("a.csv", "accepted"),
        ("copy.csv", "duplicate"),
    ]


def test_an_unreadable_object_is_quarantined_in_the_ledger_and_with_a_prefix_moved(
    bucket: ObjectStoreHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    source = {
        **bucket.source(),
        "archive_prefix": f"s3://{bucket.bucket}/done/",
        "quarantine_prefix": f"s3://{bucket.bucket}/bad/",
    }
    spec = write_spec(tmp_path, bucket, source=source)
    paths, ledger = stores(spec)
    bucket.deliver("good.csv", batch(churn, 50, 1))
    bucket.fs.pipe_file(f"{bucket.bucket}/churn/broken.parquet", b"PAR1 this is not parquet")
    result = ingest_source(spec, paths=paths, ledger=ledger)
    assert len(result.accepted) == 1
    (rejected,) = result.rejected
    assert rejected.reason_code == "unreadable"
    assert rejected.quarantine_path == f"s3://{bucket.bucket}/bad/broken.parquet"
    (record,) = ledger.records("churn", status="rejected")
    assert record.reason is not None and record.reason.startswith("unreadable: ")
    b = bucket.bucket
    assert bucket.objects() == [
        f"{b}/bad/broken.parquet",
        f"{b}/bad/broken.parquet.reason.txt",
        f"{b}/done/good.csv",
    ]
    reason = bucket.fs.cat_file(f"{b}/bad/broken.parquet.reason.txt").decode()
    assert "cannot be parsed as parquet" in reason
    assert ingest_source(spec, paths=paths, ledger=ledger).accepted == ()


def _between_listing_and_reading(
    monkeypatch: pytest.MonkeyPatch, act: Callable[[], None], *, after: str = "list"
) -> None:
    """Run ``act`` (a producer deleting or rewriting objects on the real server) right after
    the pass's first listing (``after="list"``) or its first read (``after="read"``)."""
    from automl.data._object_store import ObjectStore

    real = getattr(ObjectStore, after)
    done: list[bool] = []

    def step(self: ObjectStore, *args: Any) -> Any:
        found = real(self, *args)
        if not done:
            done.append(True)
            act()
        return found

    monkeypatch.setattr(ObjectStore, after, step)


def _seen_objects(ledger: BatchLedger, bucket: ObjectStoreHarness) -> list[tuple[str, str]]:
    t = source_objects_table
    with open_state(ledger.url).connect() as conn:
        rows = conn.execute(sa.select(t.c.object_key, t.c.status).order_by(t.c.id)).all()
    return [(k.removeprefix(f"{bucket.bucket}/churn/"), s) for k, s in rows]


def test_an_object_deleted_between_listing_and_reading_is_skipped_and_the_pass_goes_on(
    bucket: ObjectStoreHarness,
    tmp_path: Path,
    churn: Callable[..., pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = write_spec(tmp_path, bucket)
    paths, ledger = stores(spec)
    for name, n in (("a.csv", 40), ("b.csv", 50), ("c.csv", 60)):
        bucket.deliver(name, batch(churn, n, n))
    with monkeypatch.context() as m:
        _between_listing_and_reading(m, lambda: bucket.fs.rm_file(f"{bucket.bucket}/churn/b.csv"))
        with caplog.at_level("INFO", logger="automl.data._object_store"):
            result = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in result.accepted] == [40, 60]
    (line,) = [r.getMessage() for r in caplog.records if "b.csv" in r.getMessage()]
    assert line.startswith(f"{bucket.bucket}/churn/b.csv: deleted since it was listed; skipped")
    assert _seen_objects(ledger, bucket) == [("a.csv", "accepted"), ("c.csv", "accepted")]
    bucket.deliver("b.csv", batch(churn, 50, 50))  # it comes back: read like a new object
    assert [r.n_rows for r in ingest_source(spec, paths=paths, ledger=ledger).accepted] == [50]


def test_an_object_rewritten_between_listing_and_reading_is_read_in_its_new_version_next_pass(
    bucket: ObjectStoreHarness,
    tmp_path: Path,
    churn: Callable[..., pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bytes recorded under a version are that version's: the read is pinned to the
    listed ETag, so the rewritten object is skipped, not taken for its listed version."""
    spec = write_spec(tmp_path, bucket)
    paths, ledger = stores(spec)
    bucket.deliver("a.csv", batch(churn, 40, 1))
    bucket.deliver("b.csv", batch(churn, 50, 2))
    with monkeypatch.context() as m:
        _between_listing_and_reading(m, lambda: bucket.deliver("b.csv", batch(churn, 70, 3)))
        with caplog.at_level("INFO", logger="automl.data._object_store"):
            result = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in result.accepted] == [40]
    (line,) = [r.getMessage() for r in caplog.records if "b.csv" in r.getMessage()]
    assert line.startswith(f"{bucket.bucket}/churn/b.csv: rewritten since it was listed")
    assert _seen_objects(ledger, bucket) == [("a.csv", "accepted")]
    again = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in again.accepted] == [70]
    assert _seen_objects(ledger, bucket) == [("a.csv", "accepted"), ("b.csv", "accepted")]


def test_a_label_object_deleted_between_listing_and_reading_is_skipped_too(
    bucket: ObjectStoreHarness,
    tmp_path: Path,
    churn: Callable[..., pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path, bucket, id_column="id", labels=bucket.labels_source())
    paths, ledger = stores(spec)
    policy = LabelPolicy.from_spec(spec.data)
    assert policy is not None
    rows = batch(churn, 100, 1)
    rows.insert(0, "id", range(100))
    bucket.deliver("rows.csv", rows.assign(churned=None))
    assert len(ingest_source(spec, paths=paths, ledger=ledger, labels=policy).accepted) == 1
    bucket.deliver_labels("l1.csv", rows[["id", "churned"]].iloc[:30])
    bucket.deliver_labels("l2.csv", rows[["id", "churned"]].iloc[30:70])
    with monkeypatch.context() as m:
        remove = lambda: bucket.fs.rm_file(f"{bucket.bucket}/labels/l1.csv")  # noqa: E731
        _between_listing_and_reading(m, remove)
        result = ingest_source_labels(spec, paths=paths, ledger=ledger, policy=policy)
    assert result is not None and result.counts.joined == 40
    labelled = LabelStore(ledger.url).labelled_rows("churn")
    assert sorted(labelled["id"].astype(int)) == list(range(30, 70))


def test_a_file_rewritten_between_listing_and_reading_waits_for_the_next_pass(
    tmp_path: Path, churn: Callable[..., pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ETags (``file://``) the version (size and modification time) is checked again
    after the read."""
    folder = tmp_path / "drop"
    folder.mkdir()
    harness = DirectoryHarness(tmp_path)
    spec = write_spec(tmp_path, harness, source={"kind": "object_store", "url": folder.as_uri()})
    paths, ledger = stores(spec)
    batch(churn, 40, 1).to_csv(folder / "a.csv", index=False)
    batch(churn, 50, 2).to_csv(folder / "b.csv", index=False)

    def rewrite() -> None:
        batch(churn, 70, 3).to_csv(folder / "b.csv", index=False)
        os.utime(folder / "b.csv", (time.time() - 30, time.time() - 30))

    with monkeypatch.context() as m:
        _between_listing_and_reading(m, rewrite)
        first = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in first.accepted] == [40]
    assert [r.n_rows for r in ingest_source(spec, paths=paths, ledger=ledger).accepted] == [70]


def test_an_object_deleted_after_it_was_read_is_recorded_and_left_unmoved(
    bucket: ObjectStoreHarness,
    tmp_path: Path,
    churn: Callable[..., pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = {**bucket.source(), "archive_prefix": f"s3://{bucket.bucket}/done/"}
    spec = write_spec(tmp_path, bucket, source=source)
    paths, ledger = stores(spec)
    bucket.deliver("a.csv", batch(churn, 40, 1))
    bucket.deliver("b.csv", batch(churn, 50, 2))
    with monkeypatch.context() as m:
        remove = lambda: bucket.fs.rm_file(f"{bucket.bucket}/churn/a.csv")  # noqa: E731
        _between_listing_and_reading(m, remove, after="read")
        result = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in result.accepted] == [40, 50]
    assert _seen_objects(ledger, bucket) == [("a.csv", "accepted"), ("b.csv", "accepted")]
    assert bucket.objects() == [f"{bucket.bucket}/done/b.csv"]


@pytest.mark.slow
def test_an_object_the_store_refuses_to_read_is_noted_skipped_and_read_once_allowed(
    tmp_path: Path,
    churn: Callable[..., pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The credentials may list the prefix but not read one object (an IAM deny on its key,
    enforced by moto's server): the other objects are read, the refused one is noted with the
    store's reason (``automl status`` shows it), tried again every pass, and read once the
    policy allows it."""
    from automl.service import pipeline_status
    from tests.data.sources_harness import iam_user, set_user_policy

    allow = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    with moto_server(auth=True, free_actions=3) as endpoint:
        deny = {
            "Effect": "Deny",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::*/churn/secret.csv",
        }
        policy = {"Version": "2012-10-17", "Statement": [allow, deny]}
        env = iam_user(endpoint, "reader", policy)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        producer = ObjectStoreHarness(endpoint, env)
        spec = write_spec(tmp_path, producer)
        paths, ledger = stores(spec)
        for name, n in (("a.csv", 40), ("secret.csv", 50), ("c.csv", 60)):
            producer.deliver(name, batch(churn, n, n))
        with caplog.at_level("INFO", logger="automl.data._object_store"):
            first = ingest_source(spec, paths=paths, ledger=ledger)
        assert [r.n_rows for r in first.accepted] == [40, 60]
        (line,) = [r for r in caplog.records if "secret.csv" in r.getMessage()]
        assert line.levelname == "WARNING"
        assert line.getMessage().startswith(f"{producer.bucket}/churn/secret.csv: access denied (")
        assert "the credentials are valid" in line.getMessage()
        assert sorted(_seen_objects(ledger, producer)) == [
            ("a.csv", "accepted"),
            ("c.csv", "accepted"),
            ("secret.csv", "denied"),
        ]
        status = pipeline_status(spec)
        assert any(
            r.startswith(f"{producer.bucket}/churn/secret.csv: denied: access denied")
            for r in status["quarantine_reasons"]
        ), status["quarantine_reasons"]

        caplog.clear()
        with caplog.at_level("INFO", logger="automl.data._object_store"):
            second = ingest_source(spec, paths=paths, ledger=ledger)  # tried again: still refused
        assert second.accepted == ()
        assert [r.levelname for r in caplog.records if "secret.csv" in r.getMessage()] == ["INFO"]
        assert len(_seen_objects(ledger, producer)) == 3  # noted once

        set_user_policy(endpoint, "reader", {"Version": "2012-10-17", "Statement": [allow]})
        third = ingest_source(spec, paths=paths, ledger=ledger)
        assert [r.n_rows for r in third.accepted] == [50]
        assert sorted(_seen_objects(ledger, producer)) == [
            ("a.csv", "accepted"),
            ("c.csv", "accepted"),
            ("secret.csv", "accepted"),  # the note replaced by the outcome
        ]


@pytest.mark.slow
def test_missing_credentials_are_one_clear_error_line(
    bucket: ObjectStoreHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path, bucket)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("HOME",)}
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    done = subprocess.run(
        [sys.executable, "-m", "automl", "run", str(spec.source_file)],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert "no credentials found" in line and "AWS_ACCESS_KEY_ID" in line


@pytest.mark.slow
def test_refused_credentials_are_one_clear_error_line(
    tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    with moto_server(auth=True) as endpoint:
        source = {
            "kind": "object_store",
            "url": "s3://scores/churn/",
            "endpoint_url": endpoint,
        }
        path = tmp_path / "churn.yaml"
        spec = small_spec_dict("churn", data={"source": source})
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "automl", "run", str(path)],
            env={**os.environ, **AWS_ENV, "AWS_ACCESS_KEY_ID": "wrong"},
            capture_output=True,
            check=False,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert "refused the credentials" in line


def test_an_unreachable_store_fails_the_pass_after_bounded_retries_with_nothing_read(
    tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    from tests.data.sources_harness import free_port

    down = f"http://127.0.0.1:{free_port()}"
    harness = DirectoryHarness(tmp_path)  # only for its spec helper's landing folder
    spec = write_spec(
        tmp_path,
        harness,
        source={
            "kind": "object_store",
            "url": "s3://scores/churn/",
            "endpoint_url": down,
            "retries": 3,
        },
    )
    paths, ledger = stores(spec)
    started = time.monotonic()
    with pytest.raises(DataSourceError, match=r"failed 3 time\(s\)") as error:
        ingest_source(spec, paths=paths, ledger=ledger)
    assert "\n" not in str(error.value)
    assert time.monotonic() - started < 60  # bounded: 0.5 s + 1 s of backoff, short timeouts
    assert ledger.records("churn") == []


def test_a_store_that_comes_back_within_the_retries_is_read_once(
    bucket: ObjectStoreHarness,
    tmp_path: Path,
    churn: Callable[..., pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The store drops its first four connections (restarting), then answers: the pass retries
    with backoff (0.5 s, 1 s, ...) and reads every object once. A call may spend up to two
    dropped connections (aiohttp tries a fresh one once), so at least two attempts fail."""
    from urllib.parse import urlsplit

    bucket.deliver("a.csv", batch(churn, 50, 1))
    target = urlsplit(bucket.endpoint).port
    assert target is not None
    with flaky_forwarder(target, drop_first=4) as port:
        source = {**bucket.source(), "endpoint_url": f"http://127.0.0.1:{port}", "retries": 6}
        spec = write_spec(tmp_path, bucket, source=source)
        paths, ledger = stores(spec)
        with caplog.at_level("WARNING", logger="automl.data._retry"):
            result = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in result.accepted] == [50]
    retried = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retried) >= 2, retried
    assert "attempt 1 of 6" in retried[0] and "attempt 2 of 6" in retried[1]


def test_automl_status_shows_the_reasons_of_objects_left_in_the_bucket(
    bucket: ObjectStoreHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    from typer.testing import CliRunner

    from automl.cli import app

    spec = write_spec(tmp_path, bucket)
    paths, ledger = stores(spec)
    bucket.deliver("a.csv", batch(churn, 50, 1))
    bucket.deliver("copy.csv", batch(churn, 50, 1))
    bucket.fs.pipe_file(f"{bucket.bucket}/churn/broken.csv", b"")
    ingest_source(spec, paths=paths, ledger=ledger)
    result = CliRunner().invoke(app, ["status", str(spec.source_file), "--json"])
    assert result.exit_code == 0, result.output
    (status,) = __import__("json").loads(result.output)
    assert status["source"] == "object_store" and status["quarantined_files"] == 2
    broken, copy = status["quarantine_reasons"]
    assert broken.startswith(f"{bucket.bucket}/churn/broken.csv: empty: ")
    assert copy.startswith(f"duplicate: {bucket.bucket}/churn/copy.csv: the same bytes")


def test_a_file_url_prefix_is_an_object_store_too_and_waits_for_files_being_written(
    tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    harness = DirectoryHarness(tmp_path)
    source = {"kind": "object_store", "url": folder.as_uri() + "/"}
    spec = write_spec(tmp_path, harness, source=source, settle_s=30.0)
    paths, ledger = stores(spec)
    batch(churn, 40, 1).to_csv(folder / "old.csv", index=False)
    os.utime(folder / "old.csv", (time.time() - 60, time.time() - 60))
    batch(churn, 30, 2).to_csv(folder / "fresh.csv", index=False)  # still being written
    result = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in result.accepted] == [40]
    assert sorted(p.name for p in folder.iterdir()) == ["fresh.csv", "old.csv"]  # read only
    os.utime(folder / "fresh.csv", (time.time() - 60, time.time() - 60))
    assert [r.n_rows for r in ingest_source(spec, paths=paths, ledger=ledger).accepted] == [30]


# -- sql ---------------------------------------------------------------------------------------
@pytest.fixture
def table(source_db: str) -> Iterator[SqlHarness]:
    sql = SqlHarness(source_db)
    yield sql
    sql.close()


def test_a_row_committed_late_inside_the_lookback_is_read_once(
    table: SqlHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    spec = write_spec(tmp_path, table)
    paths, ledger = stores(spec)
    table.deliver("", batch(churn, 100, 1))  # times 00:00:00 .. 00:01:39
    assert [r.n_rows for r in ingest_source(spec, paths=paths, ledger=ledger).accepted] == [100]
    # A writer whose transaction began earlier commits rows stamped inside the range read.
    late = batch(churn, 5, 2)
    table.insert(late, at=table.at - pd.Timedelta(seconds=300).to_pytimedelta())
    result = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in result.accepted] == [5]
    assert ingest_source(spec, paths=paths, ledger=ledger).accepted == ()
    rows = load_batches(ledger.records("churn", status="accepted"))
    assert len(rows) == 105 and "seq" not in rows and "scored_at" not in rows


def test_an_id_watermark_reads_rows_after_the_last_id_in_pages(
    table: SqlHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    source = {**table.source(), "watermark_time": None, "max_rows": 40}
    spec = write_spec(tmp_path, table, source=source)
    paths, ledger = stores(spec)
    table.deliver("", batch(churn, 100, 1))
    sizes = [
        sum(r.n_rows for r in ingest_source(spec, paths=paths, ledger=ledger).accepted)
        for _ in range(4)
    ]
    assert sizes == [40, 40, 20, 0]


def test_an_unreachable_database_fails_the_pass_with_nothing_marked_read(
    table: SqlHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    from tests.data.sources_harness import free_port

    table.deliver("", batch(churn, 50, 1))
    down = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere"
    spec = write_spec(tmp_path, table, source={**table.source(), "url": down})
    paths, ledger = stores(spec)
    with pytest.raises(DataSourceError, match="failed 2 time"):
        ingest_source(spec, paths=paths, ledger=ledger)
    assert ledger.records("churn") == []
    good = write_spec(tmp_path, table)
    assert [r.n_rows for r in ingest_source(good, paths=paths, ledger=ledger).accepted] == [50]


def test_a_read_killed_before_its_batch_was_recorded_is_read_again(
    table: SqlHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    """A process killed after noting a read as pending but before recording its batch (the
    state a kill leaves): the next pass forgets that read and reads its rows again, once."""
    from automl.data._sql_source import Watermarks, _State

    spec = write_spec(tmp_path, table)
    paths, ledger = stores(spec)
    table.deliver("", batch(churn, 50, 1))
    marks = Watermarks(ledger.url, "churn", "batches")
    reach = _State(pd.Timestamp("2026-01-01 00:00:49", tz="UTC").to_pydatetime(), 50)
    reads = [(str(i), 1767225600.0 + i - 1) for i in range(1, 51)]
    marks.begin(marks.load(), "f" * 64, reach, reads)
    assert marks.load().pending is not None
    result = ingest_source(spec, paths=paths, ledger=ledger)
    assert [r.n_rows for r in result.accepted] == [50]
    assert marks.load().pending is None
    assert ingest_source(spec, paths=paths, ledger=ledger).accepted == ()


def pending_read(url: str) -> Any:
    from automl.data._sql_source import Watermarks

    return Watermarks(url, "churn", "batches").load().pending


def test_a_batch_that_fails_to_store_leaves_nothing_marked_read(
    table: SqlHarness,
    tmp_path: Path,
    churn: Callable[..., pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from automl.data import _sql_source

    spec = write_spec(tmp_path, table)
    paths, ledger = stores(spec)
    table.deliver("", batch(churn, 50, 1))

    def disk_full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(_sql_source, "ingest_batch_delivery", disk_full)
        with pytest.raises(OSError, match="No space left"):
            ingest_source(spec, paths=paths, ledger=ledger)
    assert pending_read(ledger.url) is None
    assert ledger.records("churn") == []
    assert [r.n_rows for r in ingest_source(spec, paths=paths, ledger=ledger).accepted] == [50]


def test_a_sqlite_table_with_text_timestamps_is_read_by_watermark_too(
    tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    """Any SQLAlchemy URL: SQLite keeps timestamps as ISO text, compared as text."""
    url = f"sqlite:///{tmp_path / 'scores.db'}"
    engine = sa.create_engine(url)

    def insert(frame: pd.DataFrame, first: int, at: str) -> None:
        stamps = pd.date_range(at, periods=len(frame), freq="s").strftime("%Y-%m-%d %H:%M:%S")
        frame.assign(seq=range(first, first + len(frame)), scored_at=stamps).to_sql(
            "scored", engine, if_exists="append", index=False
        )

    insert(batch(churn, 60, 1), 1, "2026-01-01 00:00:00")
    source = {
        "kind": "sql",
        "url": url,
        "table": "scored",
        "watermark_id": "seq",
        "watermark_time": "scored_at",
        "lookback_s": 120,
    }
    spec = write_spec(tmp_path, DirectoryHarness(tmp_path), source=source)
    paths, ledger = stores(spec)
    assert [r.n_rows for r in ingest_source(spec, paths=paths, ledger=ledger).accepted] == [60]
    insert(batch(churn, 5, 2), 61, "2026-01-01 00:00:30")  # committed late, inside the window
    assert [r.n_rows for r in ingest_source(spec, paths=paths, ledger=ledger).accepted] == [5]
    assert ingest_source(spec, paths=paths, ledger=ledger).accepted == ()
    engine.dispose()


def test_sources_keep_their_records_in_a_postgresql_state_database(
    table: SqlHarness,
    bucket: ObjectStoreHarness,
    tmp_path: Path,
    churn: Callable[..., pd.DataFrame],
) -> None:
    """The scale-out state database: watermarks, rows read and objects seen on PostgreSQL."""
    from automl.state import get_engine

    with fresh_postgres_database("automl_srcstate") as state_url:
        for harness in (table, bucket):
            folder = tmp_path / harness.kind
            folder.mkdir()
            name = f"churn_{harness.kind}"
            spec = write_spec(folder, harness, top={"state_db": state_url, "name": name})
            paths, ledger = stores(spec)
            sizes = []
            for i, n in enumerate((40, 30, 0)):
                if n:
                    harness.deliver(f"b{i}.csv", batch(churn, n, i))
                result = ingest_source(spec, paths=paths, ledger=ledger)
                sizes.append(sum(r.n_rows for r in result.accepted))
            assert sizes == [40, 30, 0]
            assert [r.n_rows for r in ledger.records(name)] == [40, 30]
        get_engine(state_url).dispose()


def test_the_cycle_steps_ingest_rows_and_labels_from_object_store_prefixes(
    bucket: ObjectStoreHarness, tmp_path: Path, churn: Callable[..., pd.DataFrame]
) -> None:
    """The cycle's ingest step and its label step read ``data.source`` and
    ``data.labels.source``: rows without labels, then their labels from another prefix."""
    from automl.service._late import ingest_label_files
    from automl.service._steps import ingest
    from automl.service._workspace import open_workspace

    spec = write_spec(tmp_path, bucket, id_column="id", labels=bucket.labels_source())
    ws = open_workspace(spec)
    rows = batch(churn, 80, 1)
    rows.insert(0, "id", range(80))
    bucket.deliver("rows.csv", rows.assign(churned=None))
    assert [r.n_rows for r in ingest(ws).accepted] == [80]
    bucket.deliver_labels("labels.parquet", rows[["id", "churned"]].iloc[20:])
    result = ingest_label_files(ws)
    assert result is not None and result.counts.joined == 60
    assert len(LabelStore(ws.ledger.url).labelled_rows("churn")) == 60
