"""First contact, as a new user meets the CLI: real ``automl`` processes on an ``init`` workspace.

Each test is one item of the fault battery: one-line errors instead of tracebacks, help that
reads right, output that fits an 80-column terminal, examples that work as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
README = Path(__file__).parents[2] / "README.md"


def automl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``automl ARGS`` in an 80-column terminal."""
    env = {**os.environ, "COLUMNS": "80", "TERMINAL_WIDTH": "80"}
    return subprocess.run(
        [sys.executable, "-m", "automl", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def _fits(text: str) -> None:
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, "\n".join(wide)
    assert "…" not in text  # nothing cut short to fit


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An ``automl init`` workspace after its first cycle (3 trials to keep it quick)."""
    from automl.config import load_spec
    from automl.service import run_cycle

    ws = tmp_path_factory.mktemp("first") / "my-workspace"
    assert automl("init", str(ws)).returncode == 0
    spec_file = ws / "churn.yaml"
    raw = yaml.safe_load(spec_file.read_text())
    raw["tuning"]["n_trials"] = 3
    raw["data"]["settle_s"] = 0  # the landed history is complete; no need to wait for it
    spec_file.write_text(yaml.safe_dump(raw))
    assert run_cycle(load_spec(spec_file)).champion_version == "1"
    yield ws


def test_predict_on_a_missing_file_is_one_line(ws: Path) -> None:
    done = automl("predict", str(ws / "churn.yaml"), str(ws / "missing.csv"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {ws / 'missing.csv'}: file not found (expected a CSV or Parquet file to score)"
    ]


def test_help_shows_no_value_type_after_flags() -> None:
    for args in ((), ("run",), ("status",), ("tune",)):
        done = automl(*args, "--help")
        assert done.returncode == 0 and "--help" in done.stdout
        assert "<bool>" not in done.stdout, args
    run_help = automl("run", "--help").stdout
    assert re.search(r"--log-level\s+<str>", run_help)  # options that take a value keep it


def test_tune_help_lists_grid_and_grid_runs_with_its_grid(ws: Path) -> None:
    assert "grid" in automl("tune", "--help").stdout
    data = str(ws / "samples" / "batch_01_normal.csv")
    refused = automl("tune", data, "--target", "churned", "--strategy", "grid")
    assert refused.returncode == 1 and "--grid" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = automl(
        "tune", data, "--target", "churned", "--strategy", "grid", "--trials", "3", "--json",
        "--grid", '{"xgboost": {"max_depth": [2, 3]}}', cwd=ws,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["strategy"] == "grid" and out["n_trials"] == 3


def test_drift_without_a_target_says_every_column_is_a_feature(ws: Path) -> None:
    ref, cur = ws / "samples" / "batch_01_normal.csv", ws / "samples" / "batch_03_drifted.csv"
    plain = automl("drift", "--reference", str(ref), "--current", str(cur), "--json")
    out = json.loads(plain.stdout)
    assert "churned" in out["columns"] and out["target"] is None
    assert any("every column is treated as a feature" in n for n in out["notes"])
    table = automl("drift", "--reference", str(ref), "--current", str(cur))
    assert "every column is treated as a feature" in " ".join(table.stdout.split())
    named = automl(
        "drift", "--reference", str(ref), "--current", str(cur), "--target", "churned", "--json"
    )
    out = json.loads(named.stdout)
    assert "churned" not in out["columns"] and out["target"] == "churned" and out["notes"] == []


def test_status_and_history_fit_80_columns_and_status_counts_the_landing_folder(ws: Path) -> None:
    landing = ws / "landing" / "churn"
    shutil.copy(ws / "samples" / "batch_02_normal.csv", landing / "batch_02_normal.csv")
    (landing / ".half.csv.tmp").write_text("a,b\n")  # still being written: not counted
    try:
        done = automl("status", str(ws), "--json")
        row = next(r for r in json.loads(done.stdout) if r["pipeline"] == "churn")
        assert row["pending_batches"] == 0 and row["landing_files"] == 1
        table = automl("status", str(ws))
        assert table.returncode == 0
        _fits(table.stdout)
        assert "churn v1" in table.stdout
        assert re.search(r"files in landing\s*│\s*1", table.stdout)
        assert re.search(r"batches pending\s*│\s*0", table.stdout)
    finally:
        (landing / "batch_02_normal.csv").unlink()
        (landing / ".half.csv.tmp").unlink()
    history = automl("history", str(ws / "churn.yaml"))
    assert history.returncode == 0
    _fits(history.stdout)
    for word in ("promote", "applied", "intent", "v1", "service", "no champion yet"):
        assert word in history.stdout, word


def test_readme_tune_and_drift_examples_use_files_init_makes(ws: Path) -> None:
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    commands = [
        line for line in text.splitlines() if re.match(r"\s*\.venv/bin/automl (tune|drift) ", line)
    ]
    assert {c.split()[1] for c in commands} == {"tune", "drift"}
    for command in commands:
        paths = [t for t in shlex.split(command, comments=True) if "my-workspace/" in t]
        assert paths, command
        for path in paths:
            assert (ws.parent / path).is_file(), f"{path} (from: {command.strip()})"


def test_changing_the_target_of_a_workspace_with_data_is_one_clear_error(tmp_path: Path) -> None:
    from automl.config import load_spec
    from automl.data import make_churn_frame
    from automl.service import open_workspace
    from automl.service._steps import ingest
    from tests.conftest import land, small_spec_dict

    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(small_spec_dict("churn")), encoding="utf-8")
    spec = load_spec(path)
    land(spec, "history.csv", make_churn_frame(300, seed=1))
    assert ingest(open_workspace(spec)).accepted  # the schema is fixed: target churned

    raw = small_spec_dict("churn", data={"target": "tenure_months", "task": "regression"})
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    land(spec, "next.csv", make_churn_frame(300, seed=2))
    done = automl("run", str(path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "data.target 'tenure_months'" in line and "target 'churned'" in line
    assert (spec.landing_path / "next.csv").exists()  # nothing was ingested under the new target
