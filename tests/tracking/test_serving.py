"""The @champion served by MLflow's own server (``mlflow models serve``), as a real process."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automl.data import coerce_features
from automl.tracking import predict_frame
from tests.tracking.conftest import Champion, free_port, running

BIN = Path(sys.executable).parent
PROBA = {"predict_method": "predict_proba"}


def invoke(port: int, payload: dict[str, Any]) -> Any:
    """POST a payload to /invocations; the parsed ``predictions``."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())["predictions"]
    except urllib.error.HTTPError as exc:
        pytest.fail(f"/invocations answered {exc.code}: {exc.read().decode()[:2000]}")


@pytest.mark.slow
def test_mlflow_models_serve_scores_raw_rows_like_automl_predict(
    champion: Champion, tmp_path: Path
) -> None:
    rows = pd.read_csv(champion.landing)
    model, _ = champion.tracker.load_pyfunc(champion.model_uri)
    features = coerce_features(rows, champion.schema, source="rows")
    expected = predict_frame(model.get_raw_model(), features, with_proba=True)
    records = json.loads(rows.to_json(orient="records"))
    split = json.loads(rows.to_json(orient="split", index=False))
    assert type(records[0]["support_calls"]) is int and type(split["data"][0][3]) is int
    assert any(r["contract"] is None for r in records)  # a JSON null in a categorical column

    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": champion.tracking_uri,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # uvicorn comes from PATH
    }
    port = free_port()
    command = [str(BIN / "mlflow"), "models", "serve", "-m", champion.model_uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-w", "1", "-p", str(port)]
    with running(command, port=port, env=env, cwd=tmp_path):
        for body in ({"dataframe_split": split}, {"dataframe_records": records}):
            assert invoke(port, body) == expected["prediction"].tolist()
            served = pd.DataFrame(
                invoke(port, {**body, "params": {"predict_method": "predict_proba"}})
            )
            assert list(served.columns) == ["prediction", "proba_no", "proba_yes"]
            assert served["prediction"].tolist() == expected["prediction"].tolist()
            for column in ("proba_no", "proba_yes"):
                assert (served[column] - expected[column]).abs().max() < 1e-9
