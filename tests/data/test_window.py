from __future__ import annotations

from pathlib import Path

import pandas as pd

from automl.data import (
    BatchLedger,
    PipelinePaths,
    ingest_landing,
    select_window,
    split_holdout,
    write_table,
)


def _records(tmp_path: Path, sizes: list[int]):  # type: ignore[no-untyped-def]
    landing = tmp_path / "landing"
    ledger = BatchLedger(f"sqlite:///{tmp_path / 's.db'}")
    for i, n in enumerate(sizes):
        frame = pd.DataFrame({"batch": [float(i)] * n, "y": [0, 1] * (n // 2)})
        write_table(frame, landing / f"b{i}.csv")
        ingest_landing(
            pipeline="p",
            landing_dir=landing,
            paths=PipelinePaths(tmp_path, "p"),
            ledger=ledger,
            target="y",
            task="classification",
        )
    return ledger.records("p")


def test_window_starts_at_drift_and_fills_up_with_newest_older_rows(tmp_path: Path) -> None:
    records = _records(tmp_path, [100, 100, 100, 50])
    window = select_window(records, since_id=records[3].id, min_rows=120, max_rows=1000)
    assert len(window) == 120
    assert window["batch"].tolist() == [2.0] * 70 + [3.0] * 50


def test_window_keeps_only_the_newest_max_rows(tmp_path: Path) -> None:
    records = _records(tmp_path, [100, 100])
    window = select_window(records, since_id=None, min_rows=20, max_rows=150)
    assert len(window) == 150 and window["batch"].iloc[0] == 0.0 and window["batch"].iloc[-1] == 1.0
    assert (window["batch"] == 0.0).sum() == 50


def test_holdout_is_the_newest_rows() -> None:
    train, holdout = split_holdout(pd.DataFrame({"t": range(10)}), fraction=0.25)
    assert train["t"].tolist() == list(range(7)) and holdout["t"].tolist() == [7, 8, 9]
