from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from automl.data import BatchLedger, PipelinePaths, ingest_landing, load_batches, write_table
from automl.data._io import file_sha256


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, PipelinePaths, str]:
    landing = tmp_path / "landing"
    landing.mkdir()
    return landing, PipelinePaths(tmp_path / "ws", "p"), f"sqlite:///{tmp_path / 'ws' / 'state.db'}"


def _ingest(landing: Path, paths: PipelinePaths, url: str):  # type: ignore[no-untyped-def]
    return ingest_landing(
        pipeline="p",
        landing_dir=landing,
        paths=paths,
        ledger=BatchLedger(url),  # a new ledger object per pass: a "restart" every time
        target="y",
        task="classification",
    )


def _frame(seed: int, n: int = 20) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [float(seed + i) for i in range(n)],
            "c": ["a", "b"] * (n // 2),
            "y": [0, 1] * (n // 2),
        }
    )


def _stamp(path: Path, t: int) -> None:
    os.utime(path, ns=(t * 10**9, t * 10**9))


def test_accepted_batches_are_stored_archived_and_recorded_in_arrival_order(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    _stamp(write_table(_frame(1), landing / "b.csv"), 2)
    _stamp(write_table(_frame(2), landing / "a.parquet"), 1)
    result = _ingest(landing, paths, url)
    assert [r.file_name for r in result.accepted] == ["a.parquet", "b.csv"]
    assert sorted(p.name for p in paths.archive.iterdir()) == ["a.parquet", "b.csv"]
    assert list(landing.iterdir()) == []
    stored = load_batches(list(result.accepted))
    assert len(stored) == 40 and stored["x"].iloc[0] == 2.0
    assert [r.file_name for r in BatchLedger(url).pending("p")] == ["a.parquet", "b.csv"]


def test_rejected_file_goes_to_quarantine_with_reason(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "good.csv")
    _ingest(landing, paths, url)
    bad = _frame(2).rename(columns={"x": "z"})
    write_table(bad, landing / "bad.csv")
    (landing / "empty.csv").write_text("")
    (landing / "corrupt.parquet").write_bytes(b"PAR1 not really parquet")
    result = _ingest(landing, paths, url)
    assert result.accepted == ()
    codes = {r.file_name: r.reason_code for r in result.rejected}
    assert codes == {
        "bad.csv": "missing_columns",
        "empty.csv": "empty",
        "corrupt.parquet": "unreadable",
    }
    for name in codes:
        assert (paths.quarantine / name).exists()
        reason = (paths.quarantine / f"{name}.reason.txt").read_text()
        assert f"file: {name}" in reason and "reason_code:" in reason
    assert "missing columns ['x']" in (paths.quarantine / "bad.csv.reason.txt").read_text()
    assert len(BatchLedger(url).records("p", status="rejected")) == 3


def test_same_content_twice_is_processed_once(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "b1.csv")
    assert len(_ingest(landing, paths, url).accepted) == 1
    write_table(_frame(1), landing / "b1-again.csv")  # same bytes, new name
    second = _ingest(landing, paths, url)
    assert second.accepted == () and second.duplicates == ("b1-again.csv",)
    assert len(BatchLedger(url).records("p")) == 1


def test_crash_after_recording_before_archiving_is_not_processed_twice(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    file = write_table(_frame(1), landing / "b.csv")
    # What a crash right after the ledger insert leaves behind: the record, the file still landed.
    ledger = BatchLedger(url)
    ledger.save_schema(
        "p",
        __import__("automl.data", fromlist=["infer_schema"]).infer_schema(
            _frame(1), target="y", task="classification"
        ),
    )
    ledger.add(
        pipeline="p", sha256=file_sha256(file), file_name="b.csv", status="accepted", n_rows=20
    )
    result = _ingest(landing, paths, url)  # the restarted service
    assert result.accepted == () and result.duplicates == ("b.csv",)
    assert not file.exists() and (paths.archive / "b.csv").exists()
    assert len(BatchLedger(url).records("p")) == 1


def test_crash_before_recording_is_processed_exactly_once_after_restart(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    file = write_table(_frame(1), landing / "b.csv")
    # A crash after the batch copy was written but before the ledger insert.
    write_table(_frame(1), paths.batches / f"{file_sha256(file)[:16]}.parquet")
    result = _ingest(landing, paths, url)
    assert [r.file_name for r in result.accepted] == ["b.csv"]
    assert len(list(paths.batches.iterdir())) == 1
    assert _ingest(landing, paths, url).accepted == ()
    assert len(BatchLedger(url).records("p")) == 1


def test_hidden_files_in_progress_are_left_alone(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / ".b.csv.tmp")
    (landing / ".partial.csv").write_text("x,c,y\n1,a,")
    assert _ingest(landing, paths, url).accepted == ()
    assert (landing / ".partial.csv").exists()


def test_pending_until_marked_checked(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "b.csv")
    record = _ingest(landing, paths, url).accepted[0]
    ledger = BatchLedger(url)
    ledger.mark_checked("p", [record.id], "cycle-1")
    assert ledger.pending("p") == []
    assert ledger.records("p")[0].cycle_id == "cycle-1"


def test_quarantine_takes_an_accepted_batch_out_of_the_pipeline(tmp_path: Path) -> None:
    from automl.errors import DataValidationError

    ledger = BatchLedger(f"sqlite:///{tmp_path / 'automl.db'}")
    record = ledger.add(
        pipeline="p", sha256="a" * 64, file_name="b.csv", status="accepted", n_rows=3
    )
    assert [r.id for r in ledger.pending("p")] == [record.id]
    moved = tmp_path / "quarantine" / "b.csv.parquet"
    done = ledger.quarantine("p", record.id, "poison: fails every cycle", stored_path=moved)
    assert (done.status, done.reason, done.stored_path) == (
        "rejected",
        "poison: fails every cycle",
        moved,
    )
    assert ledger.pending("p") == []
    assert ledger.get("p", "a" * 64) == done  # the same content is still recognised
    with pytest.raises(DataValidationError, match="no accepted batch with id"):
        ledger.quarantine("p", record.id, "again")
