"""Ingest speed: ``automl.data.ingest_landing`` vs a bare read + write + hash loop, same files.

The landing folder holds N CSV files of 1,000 rows each (the churn table of
``automl.data.make_churn_frame``: 5 numeric and 3 categorical features, a 0/1 label, about 1%
missing values), seeded. Both sides run in this process, on fresh copies of the same files, one
after the other (alternating which goes first), imports done beforehand:

- **automl**: ``ingest_landing`` with a SQLite ledger (``settle_s=0``: no waiting for files
  still being written): check each file has settled, read it once, hash it, look it up, parse
  and validate it against the schema (inferred from the first file) and the validation rules,
  write it as Parquet, record it and move the original to the archive.
- **bare**: for each file ``hashlib.sha256`` of its bytes, ``pd.read_csv``, ``to_parquet``.

    .venv/bin/python benchmarks/ingest_speed.py            # 1,000 files, 2 repeats
    .venv/bin/python benchmarks/ingest_speed.py --quick    # 200 files, 1 repeat
    .venv/bin/python benchmarks/ingest_speed.py --quick --profile /tmp/ingest.txt  # CPU profile
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROWS_PER_FILE = 1_000
SEED = 7


def make_files(folder: Path, n_files: int) -> None:
    """``n_files`` CSV files of churn rows, each with its own seed."""
    from automl.data import make_churn_frame

    folder.mkdir(parents=True)
    for i in range(n_files):
        frame = make_churn_frame(ROWS_PER_FILE, seed=SEED + i)
        frame.to_csv(folder / f"batch-{i:05d}.csv", index=False)


def run_automl(landing: Path, work: Path) -> dict[str, Any]:
    """``ingest_landing`` over the folder; returns time and counts."""
    from automl.data import BatchLedger, PipelinePaths, ingest_landing

    ledger = BatchLedger(f"sqlite:///{work / 'state.db'}")
    paths = PipelinePaths(work, "bench")
    t0, c0 = time.perf_counter(), time.process_time()
    result = ingest_landing(
        pipeline="bench",
        landing_dir=landing,
        paths=paths,
        ledger=ledger,
        target="churned",
        task="classification",
        settle_s=0.0,  # the settling wait is a policy (files still being written), not work
    )
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "s": elapsed,
        "cpu_s": cpu,
        "accepted": len(result.accepted),
        "rejected": len(result.rejected),
        "rows": sum(r.n_rows or 0 for r in result.accepted),
    }


def run_bare(landing: Path, work: Path) -> dict[str, Any]:
    """Hash, read and write every file as Parquet, nothing else."""
    out = work / "parquet"
    out.mkdir(parents=True)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = 0
    for file in sorted(landing.glob("*.csv")):
        sha = hashlib.sha256(file.read_bytes()).hexdigest()
        frame = pd.read_csv(file)
        frame.to_parquet(out / f"{sha[:16]}.parquet", index=False)
        rows += len(frame)
    return {
        "s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "accepted": len(list(out.iterdir())),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 files, one repeat")
    parser.add_argument("--files", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--profile", type=Path, help="write a CPU-time profile of automl")
    parser.add_argument("--out", type=Path)
    opts = parser.parse_args()
    n_files = opts.files or (200 if opts.quick else 1_000)
    repeats = opts.repeats or (1 if opts.quick else 2)
    out = opts.out or Path(__file__).parent / "results" / (
        "ingest_speed_quick.json" if opts.quick else "ingest_speed.json"
    )
    import automl.data  # imports are not part of either loop

    ours: list[dict[str, Any]] = []
    bare: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ingest-speed-") as tmp:
        source = Path(tmp) / "source"
        make_files(source, n_files)
        size_mb = sum(f.stat().st_size for f in source.iterdir()) / 2**20
        print(
            f"{n_files:,} CSV files x {ROWS_PER_FILE:,} rows ({size_mb:.0f} MB), "
            f"{repeats} repeat(s)"
        )
        for i in range(repeats):
            order = ("automl", "bare") if i % 2 == 0 else ("bare", "automl")
            for side in order:
                work = Path(tmp) / f"{side}-{i}"
                landing = work / "landing"
                shutil.copytree(source, landing)
                if side == "automl":
                    profiler = None
                    if opts.profile and i == 0:
                        import cProfile

                        profiler = cProfile.Profile(time.process_time)  # CPU, not wall
                        profiler.enable()
                    run = run_automl(landing, work)
                    if profiler is not None:
                        import io
                        import pstats

                        profiler.disable()
                        text = io.StringIO()
                        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
                        opts.profile.write_text(text.getvalue(), encoding="utf-8")
                    ours.append(run)
                else:
                    run = run_bare(landing, work)
                    bare.append(run)
                print(
                    f"  repeat {i + 1} {side:6s}: {run['s']:6.2f} s (CPU {run['cpu_s']:6.2f} s), "
                    f"{run['accepted']} files"
                )
                shutil.rmtree(work)
    a = statistics.median(r["s"] for r in ours)
    b = statistics.median(r["s"] for r in bare)
    cpu_a = statistics.median(r["cpu_s"] for r in ours)
    cpu_b = statistics.median(r["cpu_s"] for r in bare)
    assert ours[0]["accepted"] == bare[0]["accepted"] == n_files, (ours[0], bare[0])
    summary = {
        "files": n_files,
        "rows_per_file": ROWS_PER_FILE,
        "repeats": repeats,
        "automl_s": a,
        "bare_s": b,
        "ratio": a / b,
        "automl_cpu_s": cpu_a,
        "bare_cpu_s": cpu_b,
        "cpu_ratio": cpu_a / cpu_b,
        "automl_ms_per_file": 1000 * a / n_files,
        "bare_ms_per_file": 1000 * b / n_files,
        "runs": {"automl": ours, "bare": bare},
        "automl_from": str(Path(automl.data.__file__).parent.parent.parent),
    }
    print(
        f"automl {a:.2f} s ({summary['automl_ms_per_file']:.1f} ms/file), "
        f"bare {b:.2f} s ({summary['bare_ms_per_file']:.1f} ms/file): "
        f"{a / b:.2f}x (goal <= 1.5x); CPU {cpu_a:.2f} s vs {cpu_b:.2f} s: {cpu_a / cpu_b:.2f}x"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
