"""Ingest throughput per source kind vs reading the same data directly with pandas/pyarrow.

The same N batches of 1,000 churn rows (``automl.data.make_churn_frame``, seeded) are delivered
to each kind of ``data.source`` and ingested with ``automl.data.ingest_source`` (read once,
hash, validate against the schema, store as Parquet, record in a SQLite ledger):

- **directory**: N CSV files in a landing folder; direct: ``pd.read_csv`` of each file.
- **object_store**: N CSV objects on moto's S3 server (a local process) through s3fs;
  direct: ``pd.read_csv`` of each object through the same s3fs filesystem.
- **sql**: N x 1,000 rows in a PostgreSQL table (timestamp + id watermark), read by
  ``max_rows`` = 1,000 per pass; direct: ``pd.read_sql`` of the same pages by id range.

It prints rows per second for both and the ratio (automl time / direct time).

    .venv/bin/python benchmarks/ingest_sources.py             # 50 batches per kind
    .venv/bin/python benchmarks/ingest_sources.py --batches 10
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = 1_000


def _spec(folder: Path, source: dict[str, Any]) -> Any:
    from automl.config import load_spec

    spec = {
        "name": "churn",
        "data": {"landing_dir": "landing/churn", "target": "churned", "settle_s": 0.0},
    }
    spec["data"]["source"] = source
    path = folder / "churn.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_spec(path)


def _ingest_all(spec: Any, passes: int) -> tuple[float, int]:
    from automl.data import BatchLedger, PipelinePaths, ingest_source

    paths, ledger = PipelinePaths(spec.workspace_dir, spec.name), BatchLedger(spec.state_url)
    started = time.perf_counter()
    n = 0
    for _ in range(passes):
        result = ingest_source(spec, paths=paths, ledger=ledger)
        n += sum(r.n_rows for r in result.accepted)
    return time.perf_counter() - started, n


def bench_directory(frames: list[pd.DataFrame], work: Path) -> dict[str, Any]:
    landing = work / "landing" / "churn"
    landing.mkdir(parents=True)
    for i, frame in enumerate(frames):
        frame.to_csv(landing / f"b{i:04d}.csv", index=False)
    started = time.perf_counter()
    direct_rows = sum(len(pd.read_csv(p)) for p in sorted(landing.glob("*.csv")))
    direct = time.perf_counter() - started
    spec = _spec(work, {"kind": "directory"})
    seconds, rows = _ingest_all(spec, 1)
    assert rows == direct_rows == len(frames) * ROWS, (rows, direct_rows)
    return {"automl_s": seconds, "direct_s": direct, "rows": rows}


def bench_object_store(frames: list[pd.DataFrame], work: Path) -> dict[str, Any]:
    from tests.data.sources_harness import AWS_ENV, moto_server, s3

    os.environ.update(AWS_ENV)
    with moto_server() as endpoint:
        fs = s3(endpoint)
        fs.mkdir("scores")
        for i, frame in enumerate(frames):
            fs.pipe_file(f"scores/churn/b{i:04d}.csv", frame.to_csv(index=False).encode())
        started = time.perf_counter()
        fs.invalidate_cache()
        keys = sorted(fs.find("scores/churn"))
        direct_rows = sum(len(pd.read_csv(io.BytesIO(fs.cat_file(k)))) for k in keys)
        direct = time.perf_counter() - started
        source = {"kind": "object_store", "url": "s3://scores/churn/", "endpoint_url": endpoint}
        seconds, rows = _ingest_all(_spec(work, source), 1)
    assert rows == direct_rows == len(frames) * ROWS, (rows, direct_rows)
    return {"automl_s": seconds, "direct_s": direct, "rows": rows}


def bench_sql(frames: list[pd.DataFrame], work: Path) -> dict[str, Any]:
    from tests.conftest import fresh_postgres_database

    with fresh_postgres_database("automl_bench") as url:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        table = f"scored_{uuid.uuid4().hex[:6]}"
        start = pd.Timestamp("2026-01-01", tz="UTC")
        for i, frame in enumerate(frames):
            ids = range(i * ROWS + 1, (i + 1) * ROWS + 1)
            frame.assign(
                seq=list(ids), scored_at=[start + pd.Timedelta(seconds=s) for s in ids]
            ).to_sql(table, engine, if_exists="append", index=False)
        started = time.perf_counter()
        direct_rows = 0
        for i in range(len(frames)):
            query = sa.text(
                f'SELECT * FROM "{table}" WHERE seq > :lo AND seq <= :hi ORDER BY scored_at, seq'
            )
            with engine.connect() as conn:
                page = pd.read_sql(query, conn, params={"lo": i * ROWS, "hi": (i + 1) * ROWS})
            direct_rows += len(page)
        direct = time.perf_counter() - started
        source = {
            "kind": "sql",
            "url": url,
            "table": table,
            "watermark_id": "seq",
            "watermark_time": "scored_at",
            "lookback_s": 60,
            "max_rows": ROWS,
        }
        seconds, rows = _ingest_all(_spec(work, source), len(frames) + 1)
        engine.dispose()
    assert rows == direct_rows == len(frames) * ROWS, (rows, direct_rows)
    return {"automl_s": seconds, "direct_s": direct, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ingest_sources.json")
    args = parser.parse_args()
    from automl.data import make_churn_frame

    frames = [make_churn_frame(ROWS, seed=i) for i in range(args.batches)]
    results: dict[str, Any] = {"batches": args.batches, "rows_per_batch": ROWS}
    for kind, bench in (
        ("directory", bench_directory),
        ("object_store", bench_object_store),
        ("sql", bench_sql),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            r = bench(frames, Path(tmp))
        r["automl_rows_per_s"] = r["rows"] / r["automl_s"]
        r["direct_rows_per_s"] = r["rows"] / r["direct_s"]
        r["ratio"] = r["automl_s"] / r["direct_s"]
        results[kind] = r
        print(
            f"{kind:13s} automl {r['automl_rows_per_s']:>9,.0f} rows/s   direct "
            f"{r['direct_rows_per_s']:>9,.0f} rows/s   ratio {r['ratio']:.1f}x",
            flush=True,
        )
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
