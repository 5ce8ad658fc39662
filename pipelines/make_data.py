"""Write sample batches for the pipelines in this folder into their landing folders.

Usage:
    python pipelines/make_data.py churn [--batches 6] [--drift-at 4]
    python pipelines/make_data.py diabetes [--batches 3]

Built only on automl's public API (``automl.config``, ``automl.data``) and scikit-learn's bundled
datasets, so it runs offline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from automl.config import load_spec
from automl.data import make_churn_frame, write_table

HERE = Path(__file__).resolve().parent


def churn(batches: int, drift_at: int) -> None:
    """History plus batches that drift from ``drift_at`` on."""
    spec = load_spec(HERE / "churn.yaml")
    write_table(make_churn_frame(3000, seed=1), spec.landing_path / "churn_000_history.csv")
    for i in range(1, batches + 1):
        frame = make_churn_frame(1000, seed=1 + i, drift=1.0 if i >= drift_at else 0.0)
        write_table(frame, spec.landing_path / f"churn_{i:03d}.csv")
    print(f"wrote {batches + 1} files to {spec.landing_path}")


def diabetes(batches: int) -> None:
    """scikit-learn's diabetes data, in arrival order, split into batches."""
    from sklearn.datasets import load_diabetes

    spec = load_spec(HERE / "diabetes.yaml")
    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    size = len(frame) // (batches + 1)
    write_table(frame.iloc[: 2 * size], spec.landing_path / "diabetes_000_history.parquet")
    for i in range(2, batches + 1):
        part = frame.iloc[i * size : (i + 1) * size]
        write_table(part, spec.landing_path / f"diabetes_{i - 1:03d}.parquet")
    print(f"wrote {batches} files to {spec.landing_path}")


def main() -> None:
    """Parse arguments and write the data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", choices=["churn", "diabetes"])
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--drift-at", type=int, default=4)
    args = parser.parse_args()
    if args.pipeline == "churn":
        churn(args.batches, args.drift_at)
    else:
        diabetes(args.batches)


if __name__ == "__main__":
    main()
