from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from automl.config import PipelineSpec
from automl.data import (
    BatchLedger,
    PipelinePaths,
    ingest_landing,
    select_window,
    split_holdout,
    window_time_range,
    write_table,
)
from automl.errors import ConfigError


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


def test_recent_window_spans_before_and_after_the_drift(tmp_path: Path) -> None:
    records = _records(tmp_path, [100, 100, 100, 50])
    window = select_window(
        records, since_id=records[3].id, min_rows=20, max_rows=180, policy="recent"
    )
    assert window["batch"].tolist() == [1.0] * 30 + [2.0] * 100 + [3.0] * 50
    since_drift = select_window(records, since_id=records[3].id, min_rows=20, max_rows=180)
    assert since_drift["batch"].tolist() == [3.0] * 50


def test_recent_window_reads_only_the_newest_batches(tmp_path: Path) -> None:
    records = _records(tmp_path, [100, 100, 100])
    Path(records[0].stored_path or "").unlink()  # the oldest batch is not needed
    window = select_window(records, since_id=None, min_rows=20, max_rows=200, policy="recent")
    assert window["batch"].tolist() == [1.0] * 100 + [2.0] * 100


def test_window_time_range_follows_the_policy(tmp_path: Path) -> None:
    records = [
        replace(r, received_at=f"2024-01-0{i + 1}T00:00:00+00:00")
        for i, r in enumerate(_records(tmp_path, [100, 100, 100, 50]))
    ]
    since = records[1].id
    oldest, newest = window_time_range(records, since_id=since, n_rows=150, policy="recent")
    assert (oldest, newest) == (records[2].received_at, records[3].received_at)
    oldest, _ = window_time_range(records, since_id=since, n_rows=150)
    assert oldest == records[1].received_at


def test_unknown_window_policy_is_refused(tmp_path: Path) -> None:
    records = _records(tmp_path, [100])
    with pytest.raises(ConfigError, match=r"'newest'.*training\.window"):
        select_window(records, since_id=None, min_rows=20, max_rows=50, policy="newest")  # type: ignore[arg-type]


def test_spec_window_option_defaults_to_recent_and_refuses_others() -> None:
    data = {"name": "p", "data": {"landing_dir": "in", "target": "y"}}
    # recent since the stream benchmark (issue 11); since_drift before.
    assert PipelineSpec.model_validate(data).training.window == "recent"
    since = PipelineSpec.model_validate({**data, "training": {"window": "since_drift"}})
    assert since.training.window == "since_drift"
    with pytest.raises(ValidationError, match="since_drift"):
        PipelineSpec.model_validate({**data, "training": {"window": "newest"}})
