"""``automl init``'s second pipeline: rows first, labels later, as its printed steps say."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from automl.cli import app

runner = CliRunner()


def _run(spec: Path) -> dict[str, object]:
    result = runner.invoke(app, ["run", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.output.strip().splitlines()[-1])
    return out


@pytest.mark.slow
def test_init_late_pipeline_waits_for_labels_then_retunes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    assert "waiting_for_labels" in result.output
    spec = ws / "churn_late.yaml"
    raw = yaml.safe_load(spec.read_text())
    raw["tuning"]["n_trials"] = 3  # keep the test fast; the spec is otherwise as written
    raw["data"]["settle_s"] = 0
    spec.write_text(yaml.safe_dump(raw))
    samples, landing, labels = (
        ws / "samples" / "churn_late",
        ws / "landing" / "churn_late",
        ws / "labels" / "churn_late",
    )
    assert sorted(p.name for p in samples.iterdir()) == [
        "outcomes_01.csv",
        "outcomes_02.csv",
        "outcomes_03.csv",
        "scored_01_normal.csv",
        "scored_02_drifted.csv",
        "scored_03_drifted.csv",
    ]

    first = _run(spec)  # the history's rows and their labels
    assert (first["status"], first["champion_version"], first["labels_joined"]) == (
        "retuned",
        "1",
        3000,
    )
    shutil.copy(samples / "scored_02_drifted.csv", landing)
    waiting = _run(spec)
    assert (waiting["status"], waiting["drift_verdict"]) == ("waiting_for_labels", "drift")
    assert waiting["estimated_score"] is not None
    status = runner.invoke(app, ["status", str(spec)])
    assert "waiting_for_labels" in status.output and "1000 waiting" in status.output

    shutil.copy(samples / "outcomes_02.csv", labels)
    retuned = _run(spec)
    assert (retuned["status"], retuned["drift_verdict"], retuned["model_version"]) == (
        "retuned",
        "drift",
        "2",
    )
