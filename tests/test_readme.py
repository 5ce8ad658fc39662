"""The README's "Using the champion" blocks, run as written against a champion a cycle
registered: pyfunc batch scoring, ``mlflow models serve`` and ``curl``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from automl.cli import app
from automl.config import PipelineSpec
from automl.service import run_cycle
from tests.conftest import land, run_python
from tests.tracking.conftest import free_port, running

README = Path(__file__).resolve().parents[1] / "README.md"
#: A block to run: the marker comment, then a fenced code block.
BLOCK = re.compile(r"<!-- readme-test: (\w+) -->\n```\w+\n(.*?)```", re.DOTALL)
README_PORT = "5001"


def readme_blocks() -> dict[str, str]:
    """The README's marked code blocks by name."""
    return {m.group(1): m.group(2) for m in BLOCK.finditer(README.read_text(encoding="utf-8"))}


def test_the_readme_marks_the_blocks_it_promises_are_tested() -> None:
    blocks = readme_blocks()
    assert set(blocks) == {
        "pyfunc",
        "serve",
        "curl",
        "source_directory",
        "source_object_store",
        "source_sql",
    }
    assert README_PORT in blocks["serve"] and README_PORT in blocks["curl"]
    assert "models:/churn@champion" in blocks["pyfunc"] and "--env-manager local" in blocks["serve"]


def _automl_predict(spec: PipelineSpec, rows: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    rows.to_csv(tmp_path / "to_score.csv", index=False)
    out = tmp_path / "automl_predict.csv"
    spec_file = str(spec.base_dir / f"{spec.name}.yaml")
    result = CliRunner().invoke(
        app, ["predict", spec_file, str(tmp_path / "to_score.csv"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return pd.read_csv(out)


@pytest.mark.slow
def test_the_readme_champion_blocks_run_as_written(
    write_spec: Callable[..., PipelineSpec], churn: Callable[..., pd.DataFrame], tmp_path: Path
) -> None:
    spec = write_spec("churn", workspace="workspace")
    land(spec, "history.csv", churn(400, seed=1))
    assert run_cycle(spec).is_promoted
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the README runs .venv/bin from its directory
    churn(30, seed=5).drop(columns="churned").to_csv(tmp_path / "new_rows.csv", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    blocks = readme_blocks()

    run_python(
        [str(tmp_path / ".venv" / "bin" / "python"), "-c", blocks["pyfunc"]], cwd=tmp_path, env=env
    )
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert list(scored.columns) == ["prediction", "proba_0", "proba_1"]
    expected = _automl_predict(spec, pd.read_csv(tmp_path / "new_rows.csv"), tmp_path)
    pd.testing.assert_frame_equal(scored, expected[scored.columns])

    port = str(free_port())
    serve, curl = (blocks[name].replace(README_PORT, port) for name in ("serve", "curl"))
    with running(["bash", "-c", serve], port=int(port), env=env, cwd=tmp_path):
        answer = subprocess.run(
            ["bash", "-c", curl],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert answer.returncode == 0, answer.stderr
    served = pd.DataFrame(json.loads(answer.stdout)["predictions"])
    payload = re.search(r"-d '(.*?)'", curl, re.DOTALL)
    assert payload is not None
    rows = pd.DataFrame(json.loads(payload.group(1))["dataframe_records"])
    expected = _automl_predict(spec, rows, tmp_path)
    assert served["prediction"].tolist() == expected["prediction"].tolist()
    for column in ("proba_0", "proba_1"):
        assert (served[column] - expected[column]).abs().max() < 1e-6


def test_the_readme_source_specs_are_valid_specs_of_each_kind() -> None:
    """The "Data sources" blocks load as written; tests/data/test_sources.py runs each kind."""
    import yaml

    blocks = readme_blocks()
    for kind in ("directory", "object_store", "sql"):
        spec = PipelineSpec.model_validate(yaml.safe_load(blocks[f"source_{kind}"]))
        assert spec.data.source.kind == kind
