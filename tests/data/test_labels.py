"""Late labels on real files and a real SQLite state database: feature-only batches, label
files joined by id exactly once (across a kill -9), orphans, duplicates, conflicts, labels in
later batches, labelled-only windows."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.config import PipelineSpec
from automl.data import (
    BatchLedger,
    IngestResult,
    LabelCounts,
    LabelIngestResult,
    LabelPolicy,
    LabelStore,
    PipelinePaths,
    ValidationRules,
    ingest_labels,
    ingest_landing,
    select_window,
    write_table,
)
from automl.errors import ConfigError

T0 = 1_700_000_000.0  # the clock of these tests (seconds since the epoch)


@dataclass(frozen=True)
class Setup:
    landing: Path
    label_dir: Path
    paths: PipelinePaths
    url: str

    @property
    def store(self) -> LabelStore:
        return LabelStore(self.url)  # a new store per use: a "restart" every time

    def batches(
        self, *, now: float, policy: LabelPolicy | None = None, **options: Any
    ) -> IngestResult:
        return ingest_landing(
            pipeline="p",
            landing_dir=self.landing,
            paths=self.paths,
            ledger=BatchLedger(self.url),
            target="y",
            task=options.pop("task", "classification"),
            settle_s=0.0,
            labels=policy or LabelPolicy("id", kept_columns=("served", "ts")),
            now=now,
            **options,
        )

    def labels(
        self, *, now: float, policy: LabelPolicy | None = None, **options: Any
    ) -> LabelIngestResult:
        return ingest_labels(
            pipeline="p",
            landing_dir=self.label_dir,
            paths=self.paths,
            ledger=BatchLedger(self.url),
            policy=policy or LabelPolicy("id", kept_columns=("served", "ts")),
            settle_s=0.0,
            now=now,
            **options,
        )


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    landing, label_dir = tmp_path / "landing" / "p", tmp_path / "labels" / "p"
    landing.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    ws = tmp_path / "ws"
    return Setup(landing, label_dir, PipelinePaths(ws, "p"), f"sqlite:///{ws / 'state.db'}")


def _rows(ids: range | list[int], *, seed: int = 0, labels: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    frame = pd.DataFrame(
        {
            "id": list(ids),
            "x": rng.normal(size=n).round(3),
            "c": rng.choice(["a", "b"], size=n),
            "served": rng.uniform(size=n).round(3),
            "ts": [f"2024-01-01T00:{i % 60:02d}:00" for i in range(n)],
        }
    )
    if labels:
        frame["y"] = [int(i) % 2 for i in ids]
    return frame


def _label_file(path: Path, ids: list[int] | range, labels: list[Any] | None = None) -> Path:
    values = labels if labels is not None else [int(i) % 2 for i in ids]
    return write_table(pd.DataFrame({"id": list(ids), "y": values}), path)


def _reason(folder: Path, name: str) -> str:
    return (folder / f"{name}.reason.txt").read_text(encoding="utf-8")


# -- feature-only batches ---------------------------------------------------------------------
def test_a_batch_without_labels_is_accepted_and_its_rows_wait_for_them(setup: Setup) -> None:
    write_table(_rows(range(10)), setup.landing / "a.csv")  # no target column at all
    empty_target = _rows(range(10, 16)).assign(y=[None] * 6)
    write_table(empty_target, setup.landing / "b.parquet")
    os.utime(setup.landing / "b.parquet", (T0 + 5, T0 + 5))
    os.utime(setup.landing / "a.csv", (T0, T0))

    result = setup.batches(now=T0)

    assert [r.file_name for r in result.accepted] == ["a.csv", "b.parquet"]
    assert [r.n_rows for r in result.accepted] == [10, 6]
    schema = BatchLedger(setup.url).get_schema("p")
    assert schema is not None
    # The id and the kept columns (served prediction, time) are never features.
    assert schema.features == (("x", "numeric"), ("c", "categorical"))
    assert (schema.target, schema.task, schema.classes) == ("y", "classification", None)
    rows = setup.store.rows("p")
    assert rows["row_id"].tolist() == [str(i) for i in range(16)]
    assert rows["label"].isna().all() and (rows["arrived_s"] == T0).all()
    stats = setup.store.label_stats("p")
    assert (stats.n_rows, stats.n_labelled, stats.n_waiting_rows) == (16, 0, 16)
    assert (stats.labelled_share, stats.lag_p50_s, stats.last_label_s) == (0.0, None, None)
    assert setup.store.labelled_rows("p").empty
    stored = pd.read_parquet(result.accepted[0].stored_path)  # type: ignore[arg-type]
    assert list(stored.columns) == ["x", "c", "y", "id", "served", "ts"]


def test_without_an_id_column_a_batch_must_still_carry_its_labels(setup: Setup) -> None:
    write_table(_rows(range(10), labels=True), setup.landing / "first.csv")
    write_table(_rows(range(10, 20)), setup.landing / "unlabelled.csv")
    os.utime(setup.landing / "first.csv", (T0, T0))
    result = ingest_landing(
        pipeline="p",
        landing_dir=setup.landing,
        paths=setup.paths,
        ledger=BatchLedger(setup.url),
        target="y",
        task="classification",
        settle_s=0.0,
    )
    assert [r.file_name for r in result.accepted] == ["first.csv"]
    assert [(r.file_name, r.reason_code) for r in result.rejected] == [
        ("unlabelled.csv", "no_target")  # today's rule: every batch carries its labels
    ]


@pytest.mark.parametrize(
    ("case", "code", "says"),
    [
        ("no_id", "no_id", "id column 'id' (data.id_column) is missing"),
        ("missing_id", "missing_id", "is empty in 2 row(s), at data row(s) [1, 3]"),
        (
            "duplicate_id",
            "duplicate_id",
            "repeats 1 id(s) ['4'] in 2 row(s), at data row(s) [4, 7]",
        ),
    ],
)
def test_a_batch_with_bad_ids_is_quarantined_with_a_reason(
    setup: Setup, case: str, code: str, says: str
) -> None:
    write_table(_rows(range(100, 110)), setup.landing / "first.csv")
    setup.batches(now=T0)
    bad = _rows(range(10)).astype({"id": object})
    if case == "no_id":
        bad = bad.drop(columns="id")
    elif case == "missing_id":
        bad.loc[[1, 3], "id"] = None
    else:
        bad.loc[7, "id"] = 4
    write_table(bad, setup.landing / "bad.csv")

    result = setup.batches(now=T0 + 1)

    assert [(r.file_name, r.reason_code) for r in result.rejected] == [("bad.csv", code)]
    reason = _reason(setup.paths.quarantine, "bad.csv")
    assert f"reason_code: {code}" in reason and says in reason
    assert len(setup.store.rows("p")) == 10  # only the first batch's rows


# -- label files ------------------------------------------------------------------------------
def test_a_label_file_labels_its_rows_once_and_the_state_knows_the_lag(setup: Setup) -> None:
    write_table(_rows(range(10)), setup.landing / "rows.csv")
    setup.batches(now=T0)
    _label_file(setup.label_dir / "labels.csv", [7, 2, 5, 0, 9, 4])

    result = setup.labels(now=T0 + 600)

    assert [r.file_name for r in result.accepted] == ["labels.csv"]
    assert result.counts == LabelCounts(joined=6)
    assert result.accepted[0].counts == LabelCounts(joined=6)
    assert (setup.paths.label_archive / "labels.csv").exists()
    assert list(setup.label_dir.iterdir()) == []
    schema = BatchLedger(setup.url).get_schema("p")
    assert schema is not None and schema.classes == (0, 1)  # learned from the first labels
    rows = setup.store.labelled_rows("p")
    assert rows["id"].tolist() == ["0", "2", "4", "5", "7", "9"]  # oldest first: batch order
    assert rows["y"].tolist() == [0, 0, 0, 1, 1, 1] and rows["y"].dtype == "int64"
    assert list(rows.columns) == ["x", "c", "y", "id", "served", "ts"]
    stats = setup.store.label_stats("p")
    assert (stats.n_rows, stats.n_labelled, stats.n_waiting_rows) == (10, 6, 4)
    assert stats.labelled_share == pytest.approx(0.6)
    assert (stats.lag_p50_s, stats.lag_p95_s, stats.last_label_s) == (600.0, 600.0, T0 + 600)
    table = setup.store.rows("p").set_index("row_id")
    assert table.loc["7", "labelled_s"] == T0 + 600
    assert table.loc["7", "label_source"] == "label file 1 (labels.csv)"
    assert pd.isna(table.loc["1", "label"])

    # The same bytes again: recorded before, so a duplicate with a reason, nothing applied.
    _label_file(setup.label_dir / "again.csv", [7, 2, 5, 0, 9, 4])
    again = setup.labels(now=T0 + 700)
    assert again.duplicates == ("again.csv",) and again.counts == LabelCounts()
    assert "same bytes" in _reason(setup.paths.label_quarantine, "again.csv")


def test_label_files_wait_in_their_folder_until_the_first_batch(setup: Setup) -> None:
    _label_file(setup.label_dir / "early.csv", [1, 2])
    result = setup.labels(now=T0)
    assert result.waiting == ("early.csv",) and not result.accepted
    assert (setup.label_dir / "early.csv").exists()

    write_table(_rows(range(5)), setup.landing / "rows.csv")
    setup.batches(now=T0 + 1)
    assert setup.labels(now=T0 + 2).counts.joined == 2


def test_orphan_labels_wait_then_join_their_row_or_expire(setup: Setup) -> None:
    policy = LabelPolicy("id", kept_columns=("served", "ts"), max_label_wait_s=100.0)
    write_table(_rows(range(3)), setup.landing / "rows.csv")
    setup.batches(now=T0, policy=policy)
    _label_file(setup.label_dir / "early.csv", [100, 101, 1])

    first = setup.labels(now=T0 + 10, policy=policy)

    assert first.counts == LabelCounts(joined=1, waiting=2)
    assert [(e.row_id, e.status) for e in setup.store.events("p")] == [
        ("100", "waiting"),
        ("101", "waiting"),
    ]
    assert setup.store.label_stats("p").n_waiting_labels == 2

    # Row 100 arrives within max_label_wait_s of its label: joined on arrival, lag 0.
    write_table(_rows([100, 102]), setup.landing / "late.csv")
    batch = setup.batches(now=T0 + 50, policy=policy)
    assert [r.n_rows for r in batch.accepted] == [2]
    table = setup.store.rows("p").set_index("row_id")
    assert table.loc["100", "label"] == 0 and table.loc["100", "labelled_s"] == T0 + 10
    assert pd.isna(table.loc["102", "label"])

    # Label 101 waited longer than 100 s: expired with a reason; its row comes too late.
    expired = setup.store.expire_waiting("p", max_label_wait_s=100.0, now=T0 + 111)
    assert expired == 1
    events = {e.row_id: e for e in setup.store.events("p")}
    assert (events["100"].status, events["100"].resolved_s) == ("joined", T0 + 50)
    assert events["101"].status == "expired" and events["101"].resolved_s == T0 + 111
    assert "data.max_label_wait_s=100s" in (events["101"].reason or "")
    write_table(_rows([101]), setup.landing / "too_late.csv")
    setup.batches(now=T0 + 200, policy=policy)
    table = setup.store.rows("p").set_index("row_id")
    assert pd.isna(table.loc["101", "label"])
    stats = setup.store.label_stats("p")
    assert (stats.n_waiting_labels, stats.n_expired, stats.n_labelled) == (0, 1, 2)
    assert stats.lag_p50_s == 5.0  # lags 10 s and 0 s: a label before its row has no lag


def test_duplicate_conflicting_and_invalid_labels_follow_the_rules(setup: Setup) -> None:
    write_table(_rows(range(10)), setup.landing / "rows.csv")
    setup.batches(now=T0)
    _label_file(setup.label_dir / "a.csv", [1, 2], [1, 0])
    setup.labels(now=T0 + 1)
    # id 1 again, same label (duplicate); id 2 with another label (conflict: the first wins);
    # id 3 twice in one file, differently (conflict within the file); then rows that are no
    # labels: no id, no label, text where the classes are numbers, a class never seen.
    _label_file(
        setup.label_dir / "b.csv",
        [1, 2, 3, 3, None, 5, 6, 7, 8],  # type: ignore[list-item]
        [1, 1, 0, 1, 0, None, "abc", 7, 1],
    )

    result = setup.labels(now=T0 + 2)

    assert result.counts == LabelCounts(joined=2, duplicates=1, conflicts=2, invalid=4)
    record = result.accepted[0]
    assert record.n_rows == 9 and "4 row(s) quarantined to b.csv." in (record.reason or "")
    table = setup.store.rows("p").set_index("row_id")
    assert table.loc[["1", "2", "3", "8"], "label"].tolist() == [1, 0, 0, 1]
    conflicts = setup.store.events("p", status="conflict")
    assert [(e.row_id, e.label) for e in conflicts] == [("2", 1), ("3", 1)]
    assert "label 1 from label file 2 (b.csv) differs from the label 0 received first (from " in (
        conflicts[0].reason or ""
    )
    assert "(from label file 1 (a.csv)); the first label is kept" in (conflicts[0].reason or "")
    quarantined = pd.read_csv(
        setup.paths.label_quarantine
        / next(p.name for p in setup.paths.label_quarantine.glob("b.csv.*.rows.csv"))
    )
    assert quarantined["row"].tolist() == [4, 5, 6, 7]
    assert quarantined["reason"].tolist() == [
        "missing_id",
        "missing_label",
        "label_type",
        "new_class",
    ]
    reason = next(setup.paths.label_quarantine.glob("b.csv.*.rows.csv.reason.txt")).read_text()
    assert "new_class: 1 label(s) of a class the pipeline has never seen [7]" in reason
    assert setup.store.label_stats("p").n_conflicts == 2


def test_new_classes_accept_learns_a_class_from_a_label_file(setup: Setup) -> None:
    write_table(_rows(range(4), labels=True), setup.landing / "rows.csv")  # classes 0, 1
    setup.batches(now=T0)
    write_table(_rows(range(4, 8)), setup.landing / "more.csv")
    setup.batches(now=T0 + 1)
    _label_file(setup.label_dir / "l.csv", [4, 5], [2, 1])
    setup.labels(now=T0 + 2, rules=ValidationRules(new_classes="accept"))
    schema = BatchLedger(setup.url).get_schema("p")
    assert schema is not None and schema.classes == (0, 1, 2)
    assert setup.store.labelled_rows("p")["y"].tolist() == [0, 1, 0, 1, 2, 1]


def test_text_classes_and_regression_labels(setup: Setup, tmp_path: Path) -> None:
    write_table(_rows(range(4)), setup.landing / "rows.csv")
    setup.batches(now=T0)
    _label_file(setup.label_dir / "l.csv", [0, 1, 2], ["yes", "no", "yes"])
    setup.labels(now=T0 + 1)
    rows = setup.store.labelled_rows("p")
    assert rows["y"].tolist() == ["yes", "no", "yes"] and rows["y"].dtype == object

    reg = Setup(
        tmp_path / "rl",
        tmp_path / "rlab" / "p",
        PipelinePaths(tmp_path / "rws", "p"),
        f"sqlite:///{tmp_path / 'rws' / 'state.db'}",
    )
    reg.landing.mkdir(parents=True)
    reg.label_dir.mkdir(parents=True)
    write_table(_rows(range(4)), reg.landing / "rows.csv")
    reg.batches(now=T0, task="regression")
    _label_file(reg.label_dir / "l.csv", [0, 1, 2], [1.5, float("inf"), "n/a"])
    result = reg.labels(now=T0 + 1)
    assert result.counts == LabelCounts(joined=1, invalid=2)
    rows = reg.store.labelled_rows("p")
    assert rows["y"].tolist() == [1.5] and rows["y"].dtype == "float64"


@pytest.mark.parametrize(
    ("name", "content", "code", "says"),
    [
        ("bad.csv", b"id,y\n", "empty", "label file has no rows"),
        ("bad.parquet", b"\x00\x01 not a table", "unreadable", "cannot be parsed as parquet"),
        ("bad.csv", b"id,x,c,y\n1,0.5,a,1\n", "unexpected_columns", "Is it a batch?"),
        ("bad.csv", b"key,y\n1,1\n", "no_id", "missing columns ['id']"),
        ("bad.csv", b"id,y\n,1\n3,\n", "missing_id", "No row is a usable label"),
    ],
)
def test_a_malformed_label_file_is_quarantined_whole_with_a_reason(
    setup: Setup, name: str, content: bytes, code: str, says: str
) -> None:
    write_table(_rows(range(5)), setup.landing / "rows.csv")
    setup.batches(now=T0)
    (setup.label_dir / name).write_bytes(content)

    result = setup.labels(now=T0 + 1)

    assert [(r.file_name, r.reason_code) for r in result.rejected] == [(name, code)]
    reason = _reason(setup.paths.label_quarantine, name)
    assert f"reason_code: {code}" in reason and says in reason
    [record] = setup.store.label_files("p")
    assert (record.status, record.reason.split(":")[0]) == ("rejected", code)  # type: ignore[union-attr]
    assert setup.store.label_stats("p").n_labelled == 0
    (setup.label_dir / name).write_bytes(content)  # the same bad file again
    assert setup.labels(now=T0 + 2).duplicates == (name,)


# -- labels in later batches ------------------------------------------------------------------
def test_a_later_batch_that_repeats_known_ids_delivers_their_labels(setup: Setup) -> None:
    write_table(_rows(range(4)), setup.landing / "b1.csv")
    setup.batches(now=T0)
    later = pd.concat([_rows([1, 2], labels=True), _rows([4, 5], seed=1)], ignore_index=True)
    later.loc[2, "y"] = 1  # new row 4 comes with its label, 5 without
    later.loc[0, "x"] = 99.0  # a repeated row's features are not stored again
    write_table(later, setup.landing / "b2.csv")

    result = setup.batches(now=T0 + 30)

    [record] = result.accepted
    assert record.n_rows == 2  # only rows 4 and 5 are new
    assert "2 row(s) repeat known ids" in (record.reason or "")
    rows = setup.store.labelled_rows("p")
    assert rows["id"].tolist() == ["1", "2", "4"] and rows["y"].tolist() == [1, 0, 1]
    assert 99.0 not in rows["x"].tolist()
    stats = setup.store.label_stats("p")
    assert (stats.n_rows, stats.n_labelled) == (6, 3)
    assert sorted(setup.store.rows("p").set_index("row_id")["labelled_s"].dropna()) == [T0 + 30] * 3

    # With labels in batches off, a batch that repeats a known id is rejected.
    off = LabelPolicy("id", kept_columns=("served", "ts"), labels_in_batches=False)
    write_table(_rows([3, 9], labels=True, seed=2), setup.landing / "b3.csv")
    rejected = setup.batches(now=T0 + 60, policy=off)
    assert [(r.file_name, r.reason_code) for r in rejected.rejected] == [("b3.csv", "known_id")]
    assert "data.labels.in_batches is false" in _reason(setup.paths.quarantine, "b3.csv")
    assert "9" not in setup.store.rows("p")["row_id"].tolist()


# -- windows of labelled rows -----------------------------------------------------------------
def test_windows_hold_labelled_rows_only(setup: Setup) -> None:
    for n, (start, stamp) in enumerate([(0, T0), (10, T0 + 1), (20, T0 + 2)]):
        write_table(_rows(range(start, start + 10), seed=n), setup.landing / f"b{n}.csv")
        os.utime(setup.landing / f"b{n}.csv", (stamp, stamp))
    setup.batches(now=T0)
    _label_file(setup.label_dir / "l.csv", [*range(0, 10, 2), *range(20, 30, 3)])
    setup.labels(now=T0 + 5)
    store = setup.store
    accepted = BatchLedger(setup.url).records("p", status="accepted")

    window = select_window(
        accepted, since_id=accepted[2].id, min_rows=6, max_rows=100, labels=store
    )
    # Batch 3 has 4 labelled rows; the newest 2 labelled rows of older batches fill it up.
    assert window["id"].tolist() == ["6", "8", "20", "23", "26", "29"]
    assert store.labelled_rows("p", max_rows=3)["id"].tolist() == ["23", "26", "29"]
    assert store.labelled_rows("p", since_batch_id=accepted[1].id)["id"].tolist() == [
        "20",
        "23",
        "26",
        "29",
    ]
    assert store.n_labelled("p") == 9 and store.n_labelled("p", since_batch_id=accepted[2].id) == 4
    # Without a label store a window is every row, as before late labels.
    assert len(select_window(accepted, since_id=None, min_rows=6, max_rows=100)) == 30


def test_batches_from_before_the_id_column_stay_in_labelled_windows(setup: Setup) -> None:
    """A pipeline that turns late labels on keeps the labelled batches it had."""
    plain = ["id", "served", "ts"]
    write_table(_rows(range(6), labels=True).drop(columns=plain), setup.landing / "old.csv")
    ingest_landing(
        pipeline="p",
        landing_dir=setup.landing,
        paths=setup.paths,
        ledger=BatchLedger(setup.url),
        target="y",
        task="classification",
        settle_s=0.0,
    )
    policy = LabelPolicy("id")
    write_table(_rows(range(100, 104)).drop(columns=["served", "ts"]), setup.landing / "new.csv")
    setup.batches(now=T0, policy=policy)
    _label_file(setup.label_dir / "l.csv", [101, 103])
    setup.labels(now=T0 + 1, policy=policy)

    rows = setup.store.labelled_rows("p")
    assert rows["y"].tolist() == [0, 1, 0, 1, 0, 1, 1, 1]
    assert rows["id"].tolist()[-2:] == ["101", "103"] and rows["id"].iloc[:6].isna().all()
    assert setup.store.labelled_rows("p", max_rows=3)["y"].tolist() == [1, 1, 1]


# -- the spec ---------------------------------------------------------------------------------
def test_the_spec_keys_and_their_rules(tmp_path: Path) -> None:
    spec = PipelineSpec.model_validate(
        {
            "name": "churn",
            "data": {
                "landing_dir": "landing",
                "target": "churned",
                "id_column": "customer_id",
                "prediction_column": "score",
                "time_column": "scored_at",
                "labels": {"landing_dir": "labels"},
                "max_label_wait_s": 3600,
            },
            "training": {"min_labelled_rows": 300},
        }
    ).with_base_dir(tmp_path)
    policy = LabelPolicy.from_spec(spec.data)
    assert policy == LabelPolicy(
        "customer_id", ("score", "scored_at"), labels_in_batches=True, max_label_wait_s=3600
    )
    assert spec.labels_landing_path == (tmp_path / "labels").resolve()
    assert spec.training.min_labelled_rows == 300
    plain = PipelineSpec.model_validate({"name": "p", "data": {"landing_dir": "l", "target": "y"}})
    assert LabelPolicy.from_spec(plain.data) is None and plain.labels_landing_path is None

    bad = [
        ({"labels": {"landing_dir": "labels"}}, "labels needs id_column"),
        ({"id_column": "y"}, "id_column and target name the same column 'y'"),
        ({"id_column": "i", "labels": {"landing_dir": "l"}}, "label files need a folder of"),
        ({"id_column": "i", "max_label_wait_s": 0}, "max_label_wait_s"),
    ]
    for extra, says in bad:
        with pytest.raises(ValueError, match=says):
            PipelineSpec.model_validate(
                {"name": "p", "data": {"landing_dir": "l", "target": "y", **extra}}
            )


def test_a_misspelled_label_folder_is_an_error(setup: Setup, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ingest_labels(
            pipeline="p",
            landing_dir=tmp_path / "nowhere" / "labls",
            paths=setup.paths,
            ledger=BatchLedger(setup.url),
            policy=LabelPolicy("id"),
        )


# -- exactly once across kill -9 --------------------------------------------------------------
_CHILD = """
import pathlib, sys, time
import sqlalchemy as sa
import automl.data._label_files as labels_module
from automl.data import BatchLedger, LabelPolicy, PipelinePaths, ingest_labels, ingest_landing
from automl.state import get_engine

workspace, landing, label_dir, url, stop, marker = sys.argv[1:]

def halt() -> None:
    pathlib.Path(marker).write_text("stopped")
    time.sleep(600)  # until the test kills this process

written: list[str] = []
commits = 0
engine = get_engine(url)

@sa.event.listens_for(engine, "before_cursor_execute")
def seen(conn, cursor, statement, *args):
    written.append(" ".join(statement.split()[:2]))

@sa.event.listens_for(engine, "commit")
def commit(conn):
    # Before the database commits a transaction that labelled rows (or joined waiting labels).
    global commits
    table = "UPDATE automl_label_events" if stop == "batch_commit" else "UPDATE automl_rows"
    if table in written:
        commits += 1
        if stop in ("label_commit", "batch_commit") or (stop == "second_commit" and commits == 2):
            halt()
    written.clear()

if stop == "label_move":  # after the labels committed, before the file is archived
    labels_module._move = lambda *args, **kwargs: halt()

policy = LabelPolicy("id")
paths, ledger = PipelinePaths(pathlib.Path(workspace), "p"), BatchLedger(url)
if stop == "batch_commit":
    ingest_landing(pipeline="p", landing_dir=pathlib.Path(landing), paths=paths, ledger=ledger,
                   target="y", task="classification", settle_s=0, labels=policy)
else:
    ingest_labels(pipeline="p", landing_dir=pathlib.Path(label_dir), paths=paths,
                  ledger=ledger, policy=policy, settle_s=0)
print("finished without stopping", flush=True)
"""


def _run_until_killed(setup: Setup, stop: str, tmp_path: Path) -> None:
    marker = tmp_path / f"{stop}.marker"
    args = [str(setup.paths.workspace), str(setup.landing), str(setup.label_dir), setup.url]
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args, stop, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the child ended before the stop point {stop}: {out}\n{err}")
        assert time.monotonic() < deadline, f"the child never reached {stop}"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("stop", ["label_commit", "second_commit", "label_move", "batch_commit"])
def test_every_label_is_joined_exactly_once_across_a_kill_and_a_restart(
    setup: Setup, stop: str, tmp_path: Path
) -> None:
    """A process ingesting labels is killed (-9) at a step; a re-run finishes the job: every
    label joined to its row once, every file recorded once, nothing counted twice."""
    policy = LabelPolicy("id")
    write_table(
        _rows(range(200), labels=False).drop(columns=["served", "ts"]), setup.landing / "b1.csv"
    )
    setup.batches(now=T0, policy=policy)
    _label_file(setup.label_dir / "a.csv", range(100))
    os.utime(setup.label_dir / "a.csv", (T0, T0))
    _label_file(setup.label_dir / "b.csv", range(100, 250))  # 200-249: no row yet
    os.utime(setup.label_dir / "b.csv", (T0 + 1, T0 + 1))
    if stop == "batch_commit":  # the labels are in; the batch that brings 200-249 is killed
        setup.labels(now=T0 + 10, policy=policy)
        write_table(_rows(range(200, 250)).drop(columns=["served", "ts"]), setup.landing / "b2.csv")

    _run_until_killed(setup, stop, tmp_path)

    if stop == "batch_commit":
        assert len(setup.store.rows("p")) == 200  # the killed batch left nothing
        rerun = setup.batches(now=T0 + 20, policy=policy)
        assert [r.n_rows for r in rerun.accepted] == [50]
    else:
        rerun_labels = setup.labels(now=T0 + 20, policy=policy)
        # What the re-run still had to do: both files, the second one, or (killed before
        # a.csv was archived) only to archive a.csv and to do b.csv.
        joined = {"label_commit": 200, "second_commit": 100, "label_move": 100}[stop]
        assert (rerun_labels.counts.joined, rerun_labels.counts.waiting) == (joined, 50)
        assert rerun_labels.counts.duplicates == rerun_labels.counts.conflicts == 0
        write_table(_rows(range(200, 250)).drop(columns=["served", "ts"]), setup.landing / "b2.csv")
        setup.batches(now=T0 + 30, policy=policy)

    store = setup.store
    rows = store.rows("p").set_index("row_id")
    assert rows.index.tolist() == [str(i) for i in range(250)]
    assert rows["label"].tolist() == [i % 2 for i in range(250)]
    sources = rows["label_source"].str.extract(r"\((.*)\)")[0]
    assert (sources[[str(i) for i in range(100)]] == "a.csv").all()
    assert (sources[[str(i) for i in range(100, 250)]] == "b.csv").all()
    files = store.label_files("p")
    assert [(f.file_name, f.status) for f in files] == [
        ("a.csv", "accepted"),
        ("b.csv", "accepted"),
    ]
    events = store.events("p")
    assert [e.status for e in events] == ["joined"] * 50
    assert [e.row_id for e in events] == [str(i) for i in range(200, 250)]
    stats = store.label_stats("p")
    assert (stats.n_labelled, stats.n_conflicts, stats.n_waiting_labels) == (250, 0, 0)
    assert sorted(p.name for p in setup.paths.label_archive.iterdir()) == ["a.csv", "b.csv"]
    assert not setup.paths.label_quarantine.exists()  # nothing was taken for a duplicate
    assert list(setup.label_dir.iterdir()) == [] and list(setup.landing.iterdir()) == []
    assert len(store.labelled_rows("p")) == 250


# -- the README's example ---------------------------------------------------------------------
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    """The "Late labels" section's files and script, copied into an empty folder, run."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Late labels (data layer)") :]
    section = section[: section.index("\n### ", 1)]
    files = re.findall(
        r"^`([\w./-]+)`[^\n]*:\n\n```\w*\n(.*?)```", section, flags=re.DOTALL | re.MULTILINE
    )
    assert [name for name, _ in files] == [
        "orders.yaml",
        "landing/orders/scored_2024-06-01.csv",
        "labels/orders/churn_2024-06-30.csv",
    ]
    for name, body in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body, encoding="utf-8")
    [script] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "joined=2" in done.stdout and "waiting=1" in done.stdout
    assert "n_rows=3, n_labelled=2" in done.stdout and "n_waiting_labels=1" in done.stdout
    store = LabelStore(f"sqlite:///{tmp_path / 'automl.db'}")
    assert store.labelled_rows("orders")[["customer_id", "churned"]].values.tolist() == [
        ["c-1001", 1],
        ["c-1003", 0],
    ]
