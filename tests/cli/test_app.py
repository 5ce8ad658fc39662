from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from automl.cli import app

runner = CliRunner()


def test_help_lists_every_command_with_a_description() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("init", "run", "serve", "status", "demo"):
        assert name in result.output
    assert "Run exactly one cycle" in result.output


def test_help_starts_without_loading_heavy_libraries() -> None:
    code = (
        "import sys; from automl.cli import app; from typer.testing import CliRunner;"
        "CliRunner().invoke(app, ['--help']);"
        "heavy = ('mlflow', 'evidently', 'optuna', 'xgboost', 'apscheduler');"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_spec_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "data": {"landing_dir": "l", "target": "y"},
                "tuning": {"strategy": "magic"},
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "automl", "run", str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"error: {spec}: invalid pipeline spec: field 'tuning.strategy'" in proc.stderr


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 1
    assert (tmp_path / "x").read_text() == "keep me"


@pytest.mark.slow
def test_init_then_run_then_status(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    spec_path = ws / "churn.yaml"
    assert (ws / "landing" / "churn" / "history.csv").exists()
    assert len(list((ws / "samples").glob("*.csv"))) == 5
    spec = yaml.safe_load(spec_path.read_text())
    spec["tuning"]["n_trials"] = 3  # keep the test fast; the spec is otherwise as written
    spec_path.write_text(yaml.safe_dump(spec))

    result = runner.invoke(app, ["run", str(spec_path), "--json"])
    assert result.exit_code == 0, result.output
    cycle = json.loads(result.output.strip().splitlines()[-1])
    assert cycle["status"] == "retuned" and cycle["champion_version"] == "1"

    broken = ws / "samples" / "batch_05_broken.csv"
    broken.rename(ws / "landing" / "churn" / broken.name)
    result = runner.invoke(app, ["run", str(spec_path), "--json"])
    cycle = json.loads(result.output.strip().splitlines()[-1])
    assert cycle["rejected_files"] == ["batch_05_broken.csv"] and cycle["status"] == "no_data"
    assert (ws / "quarantine" / "churn" / "batch_05_broken.csv.reason.txt").exists()

    result = runner.invoke(app, ["status", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["pipeline"]: r for r in json.loads(result.output)}
    assert set(rows) == {"churn", "churn_late"}  # init's second pipeline: late labels
    row = rows["churn"]
    assert row["champion_version"] == "1" and row["quarantined_files"] == 1
    assert rows["churn_late"]["labels"]["rows"] == 0 and rows["churn_late"]["state"] == "ok"
    assert row["last_status"] == "no_data" and row["last_drift_verdict"] is None
    table = runner.invoke(app, ["status", str(spec_path)])
    assert "churn v1" in table.output


def test_worker_needs_a_database_server_as_storage(tmp_path: Path) -> None:
    from tests.conftest import small_spec_dict

    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump(small_spec_dict("p")), encoding="utf-8")
    result = runner.invoke(app, ["worker", "--pipeline", str(spec), "--wait-s", "0"])
    assert result.exit_code == 1
    assert "database server" in result.output and "postgresql" in result.output


def test_distributed_spec_without_server_storage_is_refused(tmp_path: Path) -> None:
    from tests.conftest import small_spec_dict

    spec = tmp_path / "p.yaml"
    raw = small_spec_dict("p", tuning={"distributed": True, "storage": "sqlite:///x.db"})
    spec.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = runner.invoke(app, ["run", str(spec)])
    assert result.exit_code == 1 and "distributed" in result.output


def test_the_run_table_shows_an_error_and_no_empty_groups() -> None:
    from automl.cli._app import _print_cycle
    from automl.cli._base import console
    from automl.service import CycleResult

    failed = CycleResult(
        pipeline="p",
        cycle_id="c1",
        status="failed",
        started_at="2026-11-29T00:00:00",
        finished_at="2026-11-29T00:00:01",
        error="TuningError: no trial completed",
    )
    with console.capture() as captured:
        _print_cycle(failed.to_dict())
    shown = captured.get()
    assert "TuningError: no trial completed" in shown
    assert "labelled_share" not in shown and "shadow_version" not in shown
