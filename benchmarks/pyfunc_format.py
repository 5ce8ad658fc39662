"""Model format cost: the logged model as before (``mlflow.sklearn`` only, automl's label
wrapper) vs now (automl's pyfunc entry point, scikit-learn's label decoder), same data, same run.

One XGBoost classifier (text labels, so both label decoders are in play) is fit twice on the
same seeded churn rows, logged both ways to one SQLite MLflow store, downloaded once each, and
then each is loaded with ``mlflow.pyfunc.load_model`` ``--repeats`` times in this process
(imports warm, median reported), and scored on 1,000 rows: labels, and labels with
probabilities (before: ``get_raw_model().predict_proba``, what ``automl predict`` did; now:
``params={"predict_method": "predict_proba"}``). "Before" is fed float columns (its signature
refuses int64); "now" gets the rows as ``read_csv`` gives them.

    .venv/bin/python benchmarks/pyfunc_format.py              # writes results/pyfunc_format.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "pyfunc_format.json"


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def main() -> None:
    """Fit, log both ways, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    import mlflow
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    from automl.data import as_received, coerce_features, infer_schema, make_churn_frame
    from automl.tracking import MlflowTracker
    from automl.tracking._mlflow import _global_uri, _pip_requirements
    from automl.tuning import LabelEncodedClassifier, build_model

    tmp = Path(tempfile.mkdtemp())
    frame = make_churn_frame(args.rows, seed=0)
    frame["churned"] = np.where(frame["churned"] == 1, "yes", "no")
    frame.to_csv(tmp / "landing.csv", index=False)
    raw = pd.read_csv(tmp / "landing.csv")
    schema = infer_schema(raw, target="churned", task="classification")
    train = coerce_features(raw, schema, source="landing.csv")
    kw: dict[str, Any] = {
        "task": "classification",
        "numeric": schema.numeric,
        "categorical": schema.categorical,
        "params": {"n_estimators": args.trees},
        "seed": 0,
    }
    now_model = build_model(**kw, encode_labels=True).fit(train, raw["churned"])
    before_model = LabelEncodedClassifier(build_model(**kw)).fit(train, raw["churned"])
    tracker = MlflowTracker(f"sqlite:///{tmp / 'mlflow.db'}", "b", artifact_location=tmp.as_uri())
    run_id = tracker.start_run("bench")

    def log_before(name: str) -> str:
        with _global_uri(tracker.tracking_uri), mlflow.start_run(run_id=run_id):
            return str(
                mlflow.sklearn.log_model(
                    before_model,
                    name=name,
                    signature=infer_signature(train.head(5), before_model.predict(train.head(5))),
                    input_example=train.head(5),
                    pip_requirements=_pip_requirements(),
                    serialization_format="cloudpickle",
                ).model_uri
            )

    def log_now(name: str) -> str:
        example = as_received(train, schema).head(5)
        return tracker.log_model(run_id, now_model, input_example=example, name=name)

    # Each format is logged twice, alternating; the second time is reported (the first pays
    # for imports and MLflow's first-use setup).
    log_s: dict[str, float] = {}
    uris: dict[str, str] = {}
    for attempt in ("warm", "timed"):
        for label, log in (("before", log_before), ("now", log_now)):
            started = time.perf_counter()
            uris[label] = log(f"{label}-{attempt}")
            log_s[label] = time.perf_counter() - started
    tracker.end_run(run_id)

    rows_raw = raw.drop(columns="churned").head(1000)
    rows_float = train.head(1000)
    results: dict[str, Any] = {"rows": args.rows, "trees": args.trees, "repeats": args.repeats}
    for label, rows in (("before", rows_float), ("now", rows_raw)):
        uri = uris[label]
        with _global_uri(tracker.tracking_uri):
            local = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp / label))
        model = mlflow.pyfunc.load_model(local)
        if label == "before":

            def with_proba(model: Any = model, rows: pd.DataFrame = rows) -> Any:
                raw_model = model.get_raw_model()
                return model.predict(rows), raw_model.predict_proba(rows)

        else:

            def with_proba(model: Any = model, rows: pd.DataFrame = rows) -> Any:
                return model.predict(rows, params={"predict_method": "predict_proba"})

        results[label] = {
            "log_s": round(log_s[label], 2),
            "load_ms": round(
                _median_ms(lambda p=local: mlflow.pyfunc.load_model(p), args.repeats), 1
            ),
            "predict_1000_ms": round(
                _median_ms(lambda m=model, r=rows: m.predict(r), args.repeats), 1
            ),
            "predict_proba_1000_ms": round(_median_ms(with_proba, args.repeats), 1),
            "size_kb": round(
                sum(f.stat().st_size for f in Path(local).rglob("*") if f.is_file()) / 1e3, 1
            ),
        }
    before, now = results["before"], results["now"]
    results["ratio_now_over_before"] = {
        key: round(now[key] / before[key], 2) for key in before if before[key]
    }
    print(json.dumps(results, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
