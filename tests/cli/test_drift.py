"""``automl drift``: the one-shot check and its JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from automl.cli import app
from automl.data import make_churn_frame

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "reference": tmp_path / "reference.csv",
        "calm": tmp_path / "calm.parquet",
        "drifted": tmp_path / "drifted.csv",
    }
    make_churn_frame(600, seed=1).to_csv(paths["reference"], index=False)
    make_churn_frame(400, seed=2).to_parquet(paths["calm"], index=False)
    make_churn_frame(400, seed=3, drift=1.0).to_csv(paths["drifted"], index=False)
    return paths


def _json(*args: str) -> dict:
    result = runner.invoke(app, ["drift", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_contract(files: dict[str, Path]) -> None:
    out = _json("--reference", str(files["reference"]), "--current", str(files["drifted"]))
    assert out["drift_detected"] is True and out["state"] == "drift"
    assert isinstance(out["score"], float) and 0.5 <= out["share_drifted"] <= 1.0
    assert out["score"] == out["share_drifted"]  # default policy: share of drifted columns
    assert set(out["columns"]) >= {"monthly_charges", "contract", "age"}
    for name, col in out["columns"].items():
        assert {"method", "score", "threshold", "drifted"} <= set(col), name
        assert isinstance(col["method"], str) and isinstance(col["drifted"], bool)
        assert isinstance(col["score"], float) and isinstance(col["threshold"], float)
    assert out["columns"]["monthly_charges"]["drifted"] is True
    assert out["columns"]["monthly_charges"]["method"] == "ks"


def test_calm_batch_is_not_drift(files: dict[str, Path]) -> None:
    out = _json("--reference", str(files["reference"]), "--current", str(files["calm"]))
    assert out["drift_detected"] is False and out["state"] in ("ok", "warning")
    assert out["share_drifted"] < out["drift_share"]


def test_pipeline_spec_sets_target_and_overrides(files: dict[str, Path], tmp_path: Path) -> None:
    spec = tmp_path / "churn.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "churn",
                "data": {"landing_dir": "landing", "target": "churned"},
                "drift": {
                    "per_column": {"age": {"method": "wasserstein", "threshold": 0.2}},
                    "target_drift": True,
                    "drift_share": 0.9,
                },
            }
        )
    )
    out = _json(
        "--reference",
        str(files["reference"]),
        "--current",
        str(files["drifted"]),
        "--pipeline",
        str(spec),
    )
    assert "churned" not in out["columns"]  # the label is a signal, not a feature
    assert (out["columns"]["age"]["method"], out["columns"]["age"]["threshold"]) == (
        "wasserstein",
        0.2,
    )
    assert out["pipeline"] == "churn" and out["drift_share"] == 0.9
    assert [s["name"] for s in out["signals"]] == ["data", "target"]


@pytest.mark.slow  # evidently's HTML report takes seconds
def test_html_only_when_asked(files: dict[str, Path], tmp_path: Path) -> None:
    html = tmp_path / "out" / "drift.html"
    args = ["--reference", str(files["reference"]), "--current", str(files["drifted"])]
    assert "html" not in _json(*args)
    out = _json(*args, "--html", str(html))
    assert out["html"] == str(html) and html.stat().st_size > 10_000


def test_schema_change_is_reported_not_a_crash(files: dict[str, Path], tmp_path: Path) -> None:
    changed = tmp_path / "changed.csv"
    frame = make_churn_frame(300, seed=4).drop(columns=["age"])
    frame["promo_code"] = "none"
    frame.to_csv(changed, index=False)
    out = _json("--reference", str(files["reference"]), "--current", str(changed))
    assert {"column": "age", "change": "missing_column"}.items() <= out["schema_changes"][0].items()
    assert out["columns"]["age"]["drifted"] is True and out["columns"]["age"]["method"] == "schema"
    assert any(c["change"] == "new_column" for c in out["schema_changes"])


def test_table_output_and_errors(files: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["drift", "--reference", str(files["reference"]), "--current", str(files["drifted"])]
    )
    assert result.exit_code == 0 and "state: drift" in result.output
    missing = runner.invoke(
        app, ["drift", "--reference", str(tmp_path / "nope.csv"), "--current", str(files["calm"])]
    )
    assert missing.exit_code == 1 and "nope.csv: file not found" in missing.output
    assert "drift" in runner.invoke(app, ["--help"]).output


def test_named_columns_are_the_only_ones_read(files: dict[str, Path], tmp_path: Path) -> None:
    from automl.config import DriftSpec
    from automl.data import read_table
    from automl.service import CheckedColumns, detect_drift

    spec = tmp_path / "churn.yaml"
    drift = {"columns": ["age", "contract"], "target_drift": True}
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "churn",
                "data": {"landing_dir": "landing", "target": "churned"},
                "drift": drift,
            }
        )
    )
    current = tmp_path / "current.parquet"
    frame = make_churn_frame(400, seed=3, drift=1.0)
    frame["promo_code"] = "none"  # not in the reference: a schema change, so it is read
    frame.to_parquet(current)  # with its index stored
    out = _json(
        "--reference", str(files["reference"]), "--current", str(current), "--pipeline", str(spec)
    )
    assert list(out["columns"]) == ["age", "contract"]
    assert [c["column"] for c in out["schema_changes"]] == ["promo_code"]
    # The same report as a check on the whole frames.
    whole = read_table(files["reference"])
    report, _ = detect_drift(
        DriftSpec(**drift),
        whole,
        read_table(current),
        CheckedColumns.select(
            DriftSpec(**drift), numeric=["age"], categorical=["contract"], target="churned"
        ),
        seed=0,
    )
    expected = report.to_dict()
    assert out["columns"] == json.loads(json.dumps(expected["columns"]))
    assert out["signals"] == json.loads(json.dumps(expected["signals"]))


def test_table_columns_reads_only_the_header(tmp_path: Path) -> None:
    from automl.data import read_table, table_columns
    from automl.errors import DataValidationError

    frame = make_churn_frame(50, seed=0)
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.set_index("contract").to_parquet(tmp_path / "b.parquet")  # a stored index
    assert table_columns(tmp_path / "a.csv") == list(frame.columns)
    stored = table_columns(tmp_path / "b.parquet")
    assert stored == list(read_table(tmp_path / "b.parquet").columns) and "contract" not in stored
    assert list(read_table(tmp_path / "a.csv", columns=["age", "churned"]).columns) == [
        "age",
        "churned",
    ]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataValidationError, match=r"bad\.parquet: cannot be parsed as parquet"):
        table_columns(tmp_path / "bad.parquet")
    with pytest.raises(DataValidationError, match="cannot be parsed as csv"):
        read_table(tmp_path / "a.csv", columns=["nope"])
