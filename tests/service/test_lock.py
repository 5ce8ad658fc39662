"""The pipeline lock: one actor per pipeline, released when its holder dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from automl.config import PipelineSpec, load_spec
from automl.service._lock import lock_key, pipeline_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from automl.config import load_spec
    from automl.service._lock import pipeline_lock
    with pipeline_lock(load_spec(sys.argv[1])) as acquired:
        print("held" if acquired else "refused", flush=True)
        time.sleep(60)
    """
)


def _holder(spec_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(spec_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _killed_holder_frees_the_lock(spec: PipelineSpec, spec_path: Path) -> None:
    proc = _holder(spec_path)
    try:
        with pipeline_lock(spec) as acquired:
            assert acquired is False  # another process holds it
    finally:
        proc.kill()  # kill -9: no cleanup code runs in the holder
        proc.wait()
    with pipeline_lock(spec) as acquired:
        assert acquired is True


def test_file_lock_is_exclusive_across_processes_and_dies_with_its_holder(
    write_spec: Callable[..., PipelineSpec], tmp_path: Path
) -> None:
    spec = write_spec()
    _killed_holder_frees_the_lock(spec, tmp_path / "churn.yaml")
    with pipeline_lock(spec) as first, pipeline_lock(write_spec("other")) as other:
        assert first and other  # pipelines lock independently


def test_keys_are_stable_and_distinct_per_pipeline() -> None:
    assert lock_key("churn") == lock_key("churn") != lock_key("fraud")
    assert -(2**63) <= lock_key("churn") < 2**63


@pytest.mark.postgres
def test_advisory_lock_on_postgres_dies_with_its_holder(postgres_url: str, tmp_path: Path) -> None:
    from tests.conftest import small_spec_dict

    raw = small_spec_dict("pglock")
    raw["state_db"] = postgres_url
    path = tmp_path / "pglock.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    spec = load_spec(path)
    assert spec.state_url.startswith("postgresql")
    _killed_holder_frees_the_lock(spec, path)
