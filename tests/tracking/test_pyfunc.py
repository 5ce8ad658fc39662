"""The logged model as MLflow serves it: a signature of the rows as users send them,
probabilities through pyfunc, and loading where automl is not installed."""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.models import Model
from mlflow.types import DataType
from mlflow.types.schema import AnyType
from sklearn.linear_model import Ridge

from automl.data import coerce_features
from automl.tracking import MlflowTracker, predict_frame
from automl.tracking._mlflow import _global_uri
from tests.conftest import run_python
from tests.tracking.conftest import Champion

PROBA = {"predict_method": "predict_proba"}


def _download(champion: Champion, dst: Path) -> Path:
    with _global_uri(champion.tracking_uri):
        return Path(mlflow.artifacts.download_artifacts(champion.model_uri, dst_path=str(dst)))


def _expected(champion: Champion, rows: pd.DataFrame) -> pd.DataFrame:
    """What ``automl predict`` computes for these rows (the same function, in process)."""
    model, _ = champion.tracker.load_pyfunc(champion.model_uri)
    features = coerce_features(rows, champion.schema, source="rows")
    return predict_frame(model.get_raw_model(), features, with_proba=True)


def test_signature_declares_the_columns_as_users_send_them(
    champion: Champion, tmp_path: Path
) -> None:
    local = _download(champion, tmp_path)
    signature = Model.load(str(local / "MLmodel")).signature
    assert signature is not None
    inputs = {spec.name: spec.type for spec in signature.inputs.inputs}
    assert inputs["support_calls"] == DataType.long  # int64 in the landing file
    assert inputs["tenure_months"] == DataType.double  # written as 12.0
    assert isinstance(inputs["devices"], AnyType)  # an integer with gaps: MLflow has no type
    assert inputs["is_vip"] == DataType.boolean
    assert inputs["contract"] == DataType.string
    assert signature.params is not None
    assert [(p.name, p.default) for p in signature.params.params] == [("predict_method", "predict")]
    example = json.loads((local / "serving_input_example.json").read_text())["dataframe_split"]
    rows = [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]
    assert all(type(row["support_calls"]) is int for row in rows)  # ints as ints
    assert {type(row["devices"]) for row in rows} <= {int, type(None)}


def test_pyfunc_scores_a_landing_file_read_with_read_csv_and_the_same_rows_as_json(
    champion: Champion,
) -> None:
    model, _ = champion.tracker.load_pyfunc(champion.model_uri)
    rows = pd.read_csv(champion.landing)
    assert rows["support_calls"].dtype == "int64" and rows["devices"].dtype == "int64"
    assert rows["is_vip"].dtype == bool and rows["contract"].isna().any()
    expected = _expected(champion, rows)

    pd.testing.assert_frame_equal(model.predict(rows, params=PROBA), expected)
    assert model.predict(rows).tolist() == expected["prediction"].tolist()
    records = json.loads(rows.to_json(orient="records"))
    split = json.loads(rows.to_json(orient="split", index=False))
    for frame in (pd.DataFrame(records), pd.DataFrame(split["data"], columns=split["columns"])):
        pd.testing.assert_frame_equal(model.predict(frame, params=PROBA), expected)

    # Another file where the integer column has a gap: pandas reads it as float64.
    gappy = rows.astype({"devices": "float64"})
    gappy.loc[0, "devices"] = float("nan")
    assert len(model.predict(gappy, params=PROBA)) == len(rows)


def test_predict_proba_gives_the_label_and_one_probability_per_class(
    champion: Champion,
) -> None:
    model, _ = champion.tracker.load_pyfunc(champion.model_uri)
    scored = model.predict(pd.read_csv(champion.landing), params=PROBA)
    assert list(scored.columns) == ["prediction", "proba_no", "proba_yes"]
    assert ((scored["proba_no"] + scored["proba_yes"] - 1).abs() < 1e-6).all()
    most_likely = scored[["proba_no", "proba_yes"]].idxmax(axis=1).str.removeprefix("proba_")
    assert (scored["prediction"] == most_likely).all()
    with pytest.raises(ValueError, match="predict_method 'decision_function' is not one of"):
        model.predict(pd.read_csv(champion.landing), params={"predict_method": "decision_function"})


def test_the_logged_serving_example_validates(champion: Champion, tmp_path: Path) -> None:
    serving_input = (_download(champion, tmp_path) / "serving_input_example.json").read_text()
    with _global_uri(champion.tracking_uri):
        out = mlflow.models.validate_serving_input(champion.model_uri, serving_input)
    assert len(out) == 5 and set(out) <= {"yes", "no"}
    rows = pd.read_csv(champion.landing).head(4)
    payload = {"dataframe_records": json.loads(rows.to_json(orient="records")), "params": PROBA}
    with _global_uri(champion.tracking_uri):
        served = mlflow.models.validate_serving_input(champion.model_uri, json.dumps(payload))
    pd.testing.assert_frame_equal(served, _expected(champion, rows))


NO_AUTOML = """
import json, sys
sys.path.append({site!r})
try:
    import automl
except ImportError:
    automl = None
if automl is not None:
    raise SystemExit("automl is importable here: " + automl.__file__)
import mlflow.pyfunc, mlflow.sklearn, pandas as pd

model = mlflow.pyfunc.load_model("models:/churn@champion")
rows = pd.read_csv({landing!r})
scored = model.predict(rows, params={{"predict_method": "predict_proba"}})
sk_model = mlflow.sklearn.load_model("models:/churn@champion")
assert list(sk_model.classes_) == ["no", "yes"]
assert not [m for m in sys.modules if m == "automl" or m.startswith("automl.")]
print(scored.to_json(orient="split"))
"""


def test_the_model_loads_where_automl_cannot_be_imported(
    champion: Champion, tmp_path: Path
) -> None:
    # -I: no PYTHON* variables, no current directory on sys.path; -S: no site-packages .pth
    # files, which is where the editable install of automl hooks in. The script then adds
    # site-packages as a plain directory: mlflow, scikit-learn, xgboost, but no automl.
    script = NO_AUTOML.format(site=sysconfig.get_paths()["purelib"], landing=str(champion.landing))
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion.tracking_uri}
    out = run_python([sys.executable, "-I", "-S", "-c", script], cwd=tmp_path, env=env)
    split = json.loads(out.strip().splitlines()[-1])
    scored = pd.DataFrame(split["data"], columns=split["columns"])
    expected = _expected(champion, pd.read_csv(champion.landing))
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert (scored["proba_yes"] - expected["proba_yes"]).abs().max() < 1e-9


def test_a_regressor_takes_integer_columns_and_has_no_probability_switch(tmp_path: Path) -> None:
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "reg")
    frame = pd.DataFrame({"rooms": [1, 2, 3, 4, 5, 6], "area": [30.5, 41.0, 55.2, 70.1, 80, 95]})
    model = Ridge().fit(frame.astype("float64"), frame["area"] * 1000)
    run_id = tracker.start_run("r")
    uri = tracker.log_model(run_id, model, input_example=frame.head(3))
    tracker.end_run(run_id)
    loaded, _ = tracker.load_pyfunc(uri)
    assert loaded.metadata.get_params_schema() is None
    inputs = {spec.name: spec.type for spec in loaded.metadata.get_input_schema().inputs}
    assert inputs == {"rooms": DataType.long, "area": DataType.double}
    assert loaded.predict(frame).round(6).tolist() == model.predict(frame).round(6).tolist()
