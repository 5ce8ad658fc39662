from __future__ import annotations

import pandas as pd
import pytest

from automl.data import parse_table, write_table
from automl.data._io import read_csv_text
from automl.errors import DataValidationError


def test_parse_table_reads_csv_and_parquet_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"x": [1.5, 2.5], "c": ["a", "b"]})
    for name in ("b.csv", "b.parquet"):
        data = write_table(frame, tmp_path / name).read_bytes()
        pd.testing.assert_frame_equal(parse_table(data, name=name), frame)


def test_parse_table_handles_bom_and_crlf() -> None:
    data = '\ufeffx,c\r\n1,"a\r\nb"\r\n'.encode()
    out = parse_table(data, name="b.csv")
    assert list(out.columns) == ["x", "c"] and out["c"].iloc[0] == "a\r\nb"


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"", "e.csv", "empty"),
        (b"PAR1 nope", "c.parquet", "unreadable"),
        (b"x", "a.xlsx", "unreadable"),
    ],
)
def test_parse_table_errors_name_the_file(data: bytes, name: str, code: str) -> None:
    with pytest.raises(DataValidationError) as info:
        parse_table(data, name=name)
    assert info.value.reason_code == code and name in str(info.value)


def test_read_csv_text_keeps_missing_markers_as_written() -> None:
    raw = read_csv_text(b"x,y\nn/a,1\n,NULL\n")
    assert raw["x"].tolist() == ["n/a", ""] and raw["y"].tolist() == ["1", "NULL"]
