"""Run ``automl`` in a fresh interpreter and see which packages it imported (the quick commands'
tests: ``status``, ``history``, ``predict``, and ``promote``/``rollback`` against a server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_automl_importtime(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime -m automl ARGS``; return the process (its stderr without the
    import-time lines) and the top-level packages it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "automl", *args],
        cwd=cwd,
        env={
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    messages = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    done.stderr = "\n".join(messages)
    return done, imported
