from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from automl.config import PipelineSpec, load_spec, load_specs
from automl.errors import ConfigError
from tests.conftest import small_spec_dict


def _write(tmp_path: Path, data: object, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_valid_spec_gets_defaults_and_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    spec = load_spec(
        _write(tmp_path, {"name": "churn", "data": {"landing_dir": "in", "target": "y"}})
    )
    assert spec.tuning.strategy == "bayesian"
    assert spec.metric == "roc_auc"
    assert spec.model_name == "churn"
    assert spec.landing_path == (tmp_path / "in").resolve()
    assert spec.workspace_dir == tmp_path.resolve()
    assert spec.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert spec.experiment_name == "automl/churn"


def test_regression_default_metric_is_rmse() -> None:
    spec = PipelineSpec.model_validate(
        {"name": "r", "data": {"landing_dir": "x", "target": "y", "task": "regression"}}
    )
    assert spec.metric == "rmse"


@pytest.mark.parametrize(
    ("patch", "field", "hint"),
    [
        ({"tuning": {"strategy": "annealing"}}, "tuning.strategy", "'genetic' or 'cmaes'"),
        ({"tuning": {"n_trials": 0}}, "tuning.n_trials", "greater than or equal to 1"),
        ({"tuning": {"models": ["catboost"]}}, "tuning.models.0", "'xgboost'"),
        ({"drift": {"drift_share": 1.5}}, "drift.drift_share", "less than or equal to 1"),
        ({"drift": {"tests": "exact"}}, "drift.tests", "'two_sample' or 'evidently'"),
        ({"data": {"task": "ranking"}}, "data.task", "'classification' or 'regression'"),
        ({"data": {"new_classes": "maybe"}}, "data.new_classes", "'reject' or 'accept'"),
        ({"data": {"bad_values": "drop"}}, "data.bad_values", "'quarantine_rows'"),
        ({"data": {"settle_s": -1}}, "data.settle_s", "greater than or equal to 0"),
        ({"data": {"max_abs_value": 0}}, "data.max_abs_value", "greater than 0"),
        ({"registry": {"promotion_margn": 0.1}}, "registry.promotion_margn", "unknown field"),
        ({"name": "bad name!"}, "name", "should match pattern"),
    ],
)
def test_bad_field_names_file_field_and_allowed_values(
    tmp_path: Path, patch: dict[str, object], field: str, hint: str
) -> None:
    path = _write(tmp_path, small_spec_dict(**patch))
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert hint in message


def test_missing_target_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "p", "data": {"landing_dir": "x"}})
    with pytest.raises(ConfigError, match=r"field 'data.target': required but missing"):
        load_spec(path)


def test_metric_must_fit_task(tmp_path: Path) -> None:
    path = _write(tmp_path, small_spec_dict(tuning={"metric": "rmse"}))
    with pytest.raises(ConfigError, match=r"does not fit task 'classification'; allowed: roc_auc"):
        load_spec(path)


def test_min_rows_above_max_rows_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, small_spec_dict(training={"min_rows": 900, "max_rows": 100}))
    with pytest.raises(ConfigError, match="min_rows"):
        load_spec(path)


def test_not_yaml_and_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(_write(tmp_path, "name: [unclosed", "a.yaml"))
    with pytest.raises(ConfigError, match="must be a YAML mapping, got list"):
        load_spec(_write(tmp_path, "- 1\n- 2\n", "b.yaml"))
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "absent.yaml")


def test_load_specs_rejects_duplicate_names(tmp_path: Path) -> None:
    _write(tmp_path, small_spec_dict("same"), "a.yaml")
    _write(tmp_path, small_spec_dict("same"), "b.yaml")
    with pytest.raises(ConfigError, match="already used"):
        load_specs(tmp_path)


def test_load_specs_reads_every_yaml_sorted(tmp_path: Path) -> None:
    _write(tmp_path, small_spec_dict("beta"), "b.yaml")
    _write(tmp_path, small_spec_dict("alpha"), "a.yml")
    assert [s.name for s in load_specs(tmp_path)] == ["alpha", "beta"]
