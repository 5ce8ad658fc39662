"""Service load and soak: a burst of small batches, then many short cycles.

    python benchmarks/service_soak.py [--files 1000] [--cycles 300]

Burst: FILES small CSV batches (20 rows each) land at once; one cycle ingests them. Reports
files per second and checks each was recorded exactly once (ledger rows == files, no file
left in the landing folder, one stored batch per file). Baseline measured in the same run:
pandas reading the same files with no validation, ledger or storage (the cost floor).

Soak: the in-process service runs the pipeline every 0.2 s (after the first champion, every
cycle checks an empty landing folder) for CYCLES cycles, sampling resident memory and thread
count; prints the first and last samples and their ratio (flat = ~1.0).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import yaml

from automl.config import load_spec
from automl.data import BatchLedger, PipelinePaths, ingest_landing, make_churn_frame, write_table
from automl.service import AutomlService, CycleResult, run_cycle


def _rss_mb() -> float:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Run the burst and the soak and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=300)
    args = parser.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="automl-soak-"))
    spec_file = ws / "soak.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "soak",
                "data": {"landing_dir": "landing", "target": "churned"},
                "training": {"min_rows": 200},
                "tuning": {"n_trials": 2, "cv": 2},
                "registry": {"significance": {"test": "none"}},
                "schedule": {"interval_s": 0.2},
            }
        )
    )
    spec = load_spec(spec_file)
    frames = [make_churn_frame(20, seed=i) for i in range(args.files)]
    for i, frame in enumerate(frames):
        write_table(frame, spec.landing_path / f"b{i:05d}.csv")

    started = time.perf_counter()
    for path in sorted(spec.landing_path.glob("*.csv")):
        pd.read_csv(path)
    baseline_s = time.perf_counter() - started

    # Ingest alone, on a copy of the burst in a scratch workspace.
    scratch = ws / "scratch"
    for i, frame in enumerate(frames):
        write_table(frame, scratch / "landing" / f"b{i:05d}.csv")
    started = time.perf_counter()
    ingested = ingest_landing(
        pipeline="scratch",
        landing_dir=scratch / "landing",
        paths=PipelinePaths(scratch, "scratch"),
        ledger=BatchLedger(f"sqlite:///{scratch / 'state.db'}"),
        target="churned",
        task="classification",
    )
    ingest_s = time.perf_counter() - started
    print(
        f"burst: ingest alone {len(ingested.accepted)} files in {ingest_s:.1f}s, "
        f"{ingest_s / baseline_s:.1f}x a plain pandas read ({baseline_s:.1f}s)"
    )

    started = time.perf_counter()
    result = run_cycle(spec)
    cycle_s = time.perf_counter() - started
    records = BatchLedger(spec.state_url).records("soak")
    stored = len(list((ws / "batches" / "soak").glob("*.parquet")))
    left = len(list(spec.landing_path.iterdir()))
    print(f"burst: {args.files} files -> {len(records)} ledger rows, {stored} stored, {left} left")
    print(f"burst: exactly once: {len(records) == stored == args.files and left == 0}")
    print(
        f"burst: first cycle {cycle_s:.1f}s (ingest + first tuning, status {result.status}); "
        f"plain pandas read of the same files {baseline_s:.1f}s"
    )

    done = threading.Event()
    count = 0
    samples: list[tuple[int, float, int]] = []

    def on_cycle(_: CycleResult) -> None:
        nonlocal count
        count += 1
        if count % 50 == 0 or count == 1:
            samples.append((count, _rss_mb(), threading.active_count()))
        if count >= args.cycles:
            done.set()

    service = AutomlService([spec], on_cycle=on_cycle)
    started = time.perf_counter()
    service.start()
    done.wait(timeout=args.cycles * 5)
    service.stop()
    soak_s = time.perf_counter() - started
    print(f"soak: {count} cycles in {soak_s:.0f}s ({soak_s / max(count, 1) * 1000:.0f} ms/cycle)")
    for n, rss, threads in samples:
        print(f"soak: after {n:4d} cycles  rss {rss:7.1f} MB  threads {threads}")
    if len(samples) >= 2:
        print(
            f"soak: rss last/first after warm-up {samples[-1][1] / samples[1][1]:.3f}, "
            f"threads {samples[1][2]} -> {samples[-1][2]}"
        )


if __name__ == "__main__":
    main()
