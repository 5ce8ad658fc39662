from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.data import (
    BatchLedger,
    IngestResult,
    PipelinePaths,
    ValidationRules,
    ingest_landing,
    landed_files,
    load_batches,
    write_table,
)
from automl.data._ingest import _Ingester
from automl.data._io import file_sha256
from automl.errors import ConfigError


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, PipelinePaths, str]:
    landing = tmp_path / "landing"
    landing.mkdir()
    return landing, PipelinePaths(tmp_path / "ws", "p"), f"sqlite:///{tmp_path / 'ws' / 'state.db'}"


def _ingest(landing: Path, paths: PipelinePaths, url: str, **options: Any) -> IngestResult:
    return ingest_landing(
        pipeline="p",
        landing_dir=landing,
        paths=paths,
        ledger=BatchLedger(url),  # a new ledger object per pass: a "restart" every time
        target="y",
        task="classification",
        **{"settle_s": 0.0, **options},
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


# -- bad input: each case quarantined with a reason naming file, column, rows and values --------


def _accepted_batches(paths: PipelinePaths) -> list[str]:
    return sorted(p.name for p in paths.batches.iterdir()) if paths.batches.exists() else []


def _with(column: str, rows: list[int], value: object) -> Any:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object})
        frame.loc[rows, column] = value
        return frame

    return mutate


def _all(column: str, value: object) -> Any:
    return lambda frame: frame.assign(**{column: [value] * len(frame)})


BAD_CASES = {
    # A numeric column arriving as text that pandas reads as missing ("n/a" is a marker).
    "numeric_all_na": (
        _all("x", "n/a"),
        "empty_column",
        ["bad.csv", "column 'x'", "20 row(s)", "data rows 0-19", "'n/a' (20x)"],
    ),
    "feature_entirely_empty": (
        _all("c", ""),
        "empty_column",
        ["bad.csv", "column 'c'", "data rows 0-19", "data.allow_empty_columns"],
    ),
    "inf": (
        _with("x", [3, 7], "inf"),
        "non_finite",
        ["bad.csv", "column 'x'", "2 non-finite", "[inf]", "data row(s) [3, 7]"],
    ),
    "minus_inf": (
        _with("x", [5], "-inf"),
        "non_finite",
        ["bad.csv", "column 'x'", "[-inf]", "data row(s) [5]"],
    ),
    "absurd_magnitude": (
        _with("x", [2, 9, 11], "1e308"),
        "out_of_range",
        ["bad.csv", "column 'x'", "3 value(s) beyond +-1e+15", "[1e+308]", "[2, 9, 11]"],
    ),
    "unseen_label": (
        _with("y", [4, 6], 2),
        "new_class",
        ["bad.csv", "column 'y'", "class(es) [2]", "known: [0, 1]", "[4, 6]", "new_classes"],
    ),
    "text_labels": (
        lambda f: f.assign(y=["yes" if v else "no" for v in f["y"]]),
        "label_type",
        ["bad.csv", "column 'y'", "20 text label(s) ['no', 'yes']", "data row(s) [0, 1, 2"],
    ),
    "text_in_numeric": (
        _with("x", [1, 8], "twelve"),
        "bad_dtype",
        ["bad.csv", "column 'x'", "['twelve', 'twelve']", "[1, 8]"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_quarantined_with_file_column_rows_and_values(setup, case: str) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "good.csv")
    _ingest(landing, paths, url)
    before = _accepted_batches(paths)
    mutate, code, snippets = BAD_CASES[case]
    write_table(mutate(_frame(2)), landing / "bad.csv")
    result = _ingest(landing, paths, url)
    assert result.accepted == ()
    assert [(r.file_name, r.reason_code) for r in result.rejected] == [("bad.csv", code)]
    assert _accepted_batches(paths) == before  # nothing new in batches/
    assert (paths.quarantine / "bad.csv").exists() and not (landing / "bad.csv").exists()
    reason = (paths.quarantine / "bad.csv.reason.txt").read_text(encoding="utf-8")
    assert f"reason_code: {code}" in reason
    for snippet in snippets:
        assert snippet in reason, (snippet, reason)
    record = BatchLedger(url).records("p", status="rejected")[0]
    assert record.file_name == "bad.csv" and record.reason and record.reason.startswith(code)


def test_new_classes_accept_learns_the_class_and_then_keeps_it(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "good.csv")
    _ingest(landing, paths, url)
    assert BatchLedger(url).get_schema("p").classes == (0, 1)  # type: ignore[union-attr]
    write_table(_with("y", [0], 2)(_frame(2)), landing / "three.csv")
    accepted = _ingest(landing, paths, url, rules=ValidationRules(new_classes="accept")).accepted
    assert [r.file_name for r in accepted] == ["three.csv"]
    assert BatchLedger(url).get_schema("p").classes == (0, 1, 2)  # type: ignore[union-attr]
    assert sorted(load_batches(accepted)["y"].unique()) == [0, 1, 2]
    write_table(_with("y", [3], 2)(_frame(3)), landing / "again.csv")  # known now: accepted
    assert len(_ingest(landing, paths, url).accepted) == 1


def test_classes_of_a_workspace_made_before_they_were_recorded_are_read_back(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "good.csv")
    _ingest(landing, paths, url)
    ledger = BatchLedger(url)
    ledger.replace_schema("p", replace(ledger.get_schema("p"), classes=None))  # type: ignore[type-var]
    write_table(_with("y", [4], 2)(_frame(2)), landing / "bad.csv")
    assert [r.reason_code for r in _ingest(landing, paths, url).rejected] == ["new_class"]
    assert BatchLedger(url).get_schema("p").classes == (0, 1)  # type: ignore[union-attr]


def test_a_rejected_first_batch_does_not_set_the_schema(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_all("c", "")(_frame(1)), landing / "first.csv")
    assert [r.reason_code for r in _ingest(landing, paths, url).rejected] == ["empty_column"]
    assert BatchLedger(url).get_schema("p") is None
    write_table(_frame(2), landing / "fixed.csv")
    assert len(_ingest(landing, paths, url).accepted) == 1


def test_quarantine_rows_sets_bad_rows_aside_and_accepts_the_rest(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    rules = ValidationRules(bad_values="quarantine_rows")
    write_table(_frame(1), landing / "good.csv")
    _ingest(landing, paths, url, rules=rules)
    write_table(_with("x", [3, 7], "inf")(_frame(2)), landing / "some.csv")
    (record,) = _ingest(landing, paths, url, rules=rules).accepted
    assert record.n_rows == 18 and record.reason and "2 row(s) quarantined" in record.reason
    stored = load_batches([record])
    assert np.isfinite(stored["x"]).all() and len(stored) == 18
    (rows_file,) = paths.quarantine.glob("some.csv.*.rows.csv")
    aside = pd.read_csv(rows_file)
    assert aside["row"].tolist() == [3, 7] and np.isinf(aside["x"]).all()
    reason = rows_file.with_name(rows_file.name + ".reason.txt").read_text()
    assert "reason_code: non_finite" in reason and "column 'x'" in reason and "[3, 7]" in reason
    # Every row bad: the whole file is rejected, not accepted empty.
    write_table(_all("x", "inf")(_frame(3)), landing / "all.csv")
    assert [r.reason_code for r in _ingest(landing, paths, url, rules=rules).rejected] == [
        "non_finite"
    ]


def test_allowed_empty_column_is_accepted(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "good.csv")
    _ingest(landing, paths, url)
    write_table(_all("c", "")(_frame(2)), landing / "sparse.csv")
    rules = ValidationRules(allow_empty_columns=("c",))
    assert len(_ingest(landing, paths, url, rules=rules).accepted) == 1


# -- never half a file -------------------------------------------------------------------------

WRITER = """
import sys, time
with open(sys.argv[1], "w") as out:
    out.write("x,c,y\\n")
    out.flush()
    for i in range(400):
        out.write(f"{i}.5,{'ab'[i % 2]},{i % 2}\\n")
        out.flush()
        time.sleep(0.005)
"""


def test_a_file_being_appended_by_another_process_is_read_only_once_complete(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "good.csv")
    _ingest(landing, paths, url)
    target = landing / "growing.csv"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)])
    passes = waited = 0
    try:
        while writer.poll() is None:
            result = _ingest(landing, paths, url, settle_s=0.75)
            assert result.accepted == () and result.rejected == (), "read while being written"
            passes += 1
            waited += "growing.csv" in result.waiting
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0 and passes >= 1 and waited >= 1
    (record,) = _ingest(landing, paths, url, settle_s=0.75).accepted
    assert record.file_name == "growing.csv" and record.n_rows == 400
    assert (paths.archive / "growing.csv").read_bytes().count(b"\n") == 401


def test_settle_waits_at_most_settle_s_and_then_reads_a_quiet_file(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "fresh.csv")
    started = time.monotonic()
    result = _ingest(landing, paths, url, settle_s=0.4)
    took = time.monotonic() - started
    assert [r.file_name for r in result.accepted] == ["fresh.csv"]
    assert 0.2 <= took < 3.0
    _stamp(write_table(_frame(2), landing / "old.csv"), int(time.time()) - 60)
    started = time.monotonic()
    assert len(_ingest(landing, paths, url, settle_s=30).accepted) == 1  # old: no wait
    assert time.monotonic() - started < 5


def test_a_file_changed_after_it_settled_is_not_recorded_or_moved(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    file = write_table(_frame(1), landing / "b.csv")
    stale = (file.stat().st_size - 10, file.stat().st_mtime_ns)  # what a look saw before a write
    ingester = _Ingester("p", paths, BatchLedger(url), "y", "classification", ValidationRules())
    assert ingester.ingest(file, stale) == "waiting"
    assert file.exists() and BatchLedger(url).records("p") == [] and _accepted_batches(paths) == []
    assert len(_ingest(landing, paths, url).accepted) == 1  # the next pass takes it whole


def test_every_file_not_accepted_has_a_reason_duplicates_and_empty_files_included(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "b1.csv")
    (landing / "empty1.csv").write_bytes(b"")
    _ingest(landing, paths, url)
    (landing / "empty2.csv").write_bytes(b"")  # same (no) bytes again
    write_table(_frame(1), landing / "b1-again.csv")  # a byte-identical re-delivery
    result = _ingest(landing, paths, url)
    assert sorted(result.duplicates) == ["b1-again.csv", "empty2.csv"] and result.accepted == ()
    files = [p for p in paths.quarantine.iterdir() if not p.name.endswith(".reason.txt")]
    assert sorted(p.name for p in files) == ["b1-again.csv", "empty1.csv", "empty2.csv"]
    for file in files:
        assert file.with_name(file.name + ".reason.txt").exists(), file.name
    again = (paths.quarantine / "b1-again.csv.reason.txt").read_text()
    assert "reason_code: duplicate" in again and "same bytes" in again and "b1.csv" in again
    assert "accepted as batch 1" in again
    empty2 = (paths.quarantine / "empty2.csv.reason.txt").read_text()
    assert "empty1.csv" in empty2 and "file is empty" in empty2
    assert len(BatchLedger(url).records("p")) == 2 and list(landing.iterdir()) == []


def test_a_dangling_symlink_is_quarantined_with_a_reason(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    link = landing / "gone.csv"
    link.symlink_to(landing / "nowhere.csv")
    old = time.time() - 60
    os.utime(link, (old, old), follow_symlinks=False)
    (rejected,) = _ingest(landing, paths, url).rejected
    assert rejected.reason_code == "dangling_link" and not link.is_symlink()
    assert (paths.quarantine / "gone.csv").is_symlink()
    reason = (paths.quarantine / "gone.csv.reason.txt").read_text()
    assert "gone.csv" in reason and "nowhere.csv" in reason and "does not exist" in reason
    assert BatchLedger(url).records("p", status="rejected")[0].file_name == "gone.csv"


def test_valid_variants_are_accepted(setup) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    write_table(_frame(1), landing / "good.csv")
    _ingest(landing, paths, url)
    bom_crlf = '\ufeffx,c,y\r\n1.5,"a, quoted",0\r\n2.5,b,1\r\n'
    (landing / "bom.csv").write_bytes(bom_crlf.encode("utf-8"))
    write_table(_frame(3)[["y", "c", "x"]], landing / "reordered.csv")
    write_table(_frame(4), landing / "typed.parquet")
    result = _ingest(landing, paths, url)
    assert sorted(r.file_name for r in result.accepted) == [
        "bom.csv",
        "reordered.csv",
        "typed.parquet",
    ]
    bom = load_batches([r for r in result.accepted if r.file_name == "bom.csv"])
    assert list(bom.columns) == ["x", "c", "y"] and bom["c"].tolist() == ["a, quoted", "b"]
    assert bom["y"].tolist() == [0, 1] and bom["x"].tolist() == [1.5, 2.5]


# -- the landing folder ------------------------------------------------------------------------


def test_a_misspelled_landing_dir_is_an_error_not_a_new_folder(tmp_path: Path) -> None:
    paths = PipelinePaths(tmp_path / "ws", "p")
    wrong = tmp_path / "ws" / "landng" / "p"
    with pytest.raises(ConfigError, match=r"data\.landing_dir") as info:
        _ingest(wrong, paths, f"sqlite:///{tmp_path / 'state.db'}")
    assert str(wrong) in str(info.value) and "does not exist" in str(info.value)
    assert not wrong.exists() and not wrong.parent.exists()
    other = tmp_path / "inbox"  # exists's sibling with another name: not created either
    with pytest.raises(ConfigError):
        _ingest(other, paths, f"sqlite:///{tmp_path / 'state.db'}")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        _ingest(tmp_path / "afile", paths, f"sqlite:///{tmp_path / 'state.db'}")


def test_the_default_landing_folder_is_created(tmp_path: Path) -> None:
    paths = PipelinePaths(tmp_path / "ws", "p")
    url = f"sqlite:///{tmp_path / 'state.db'}"
    default = tmp_path / "ws" / "landing" / "p"
    assert _ingest(default, paths, url).accepted == () and default.is_dir()
    mounted = tmp_path / "volume"  # an existing folder, e.g. a mounted volume
    mounted.mkdir()
    _ingest(mounted / "p", paths, url)
    assert (mounted / "p").is_dir()


def test_files_matching_no_pattern_are_logged_once_each(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    landing, paths, url = setup
    (landing / "notes.txt").write_text("hello")
    (landing / "data.xlsx").write_bytes(b"PK\x03\x04")
    (landing / ".hidden.tmp").write_text("in progress")
    with caplog.at_level(logging.WARNING, logger="automl.data"):
        first = _ingest(landing, paths, url)
        second = _ingest(landing, paths, url)
    assert first.ignored == second.ignored == ("data.xlsx", "notes.txt")
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(lines) == 2  # once per file, not once per pass
    for name in ("notes.txt", "data.xlsx"):
        (line,) = [m for m in lines if name in m]
        assert "'*.csv', '*.parquet'" in line and "data.file_patterns" in line
    assert (landing / "notes.txt").exists()  # left alone


def test_landed_files_lists_what_waits(setup) -> None:  # type: ignore[no-untyped-def]
    landing, _, _ = setup
    write_table(_frame(1), landing / "b.csv")
    (landing / "notes.txt").write_text("x")
    (landing / ".c.csv.tmp").write_text("x")
    assert [p.name for p in landed_files(landing)] == ["b.csv"]
    assert landed_files(landing.parent / "missing") == []


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
