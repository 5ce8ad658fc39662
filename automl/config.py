"""Typed pipeline specs: one YAML file per pipeline, validated by pydantic.

A spec names its data, its target, how drift is decided, how the model is tuned and where it is
tracked. Relative paths in a spec are resolved against the directory of the spec file, and the
*workspace* (default: that same directory) holds everything the service writes: the MLflow
database and artifacts, the state database (ledger and cycle history), accepted batches,
quarantined files and reports.

Example:
    >>> spec = PipelineSpec.model_validate(
    ...     {"name": "churn", "data": {"landing_dir": "landing", "target": "churned"}}
    ... )
    >>> spec.tuning.strategy, spec.tuning.n_trials, spec.model_name, spec.metric
    ('bayesian', 20, 'churn', 'roc_auc')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from automl.errors import ConfigError

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "DataSpec",
    "DriftSpec",
    "MlflowSpec",
    "PipelineSpec",
    "RegistrySpec",
    "ScheduleSpec",
    "TrainingSpec",
    "TuningSpec",
    "load_spec",
    "load_specs",
]

Task = Literal["classification", "regression"]
#: Metrics per task; every one is reported "greater is better" internally.
CLASSIFICATION_METRICS = ("roc_auc", "accuracy", "f1", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    """Where batches land and what they contain."""

    landing_dir: Path = Field(description="Directory watched for new CSV or Parquet batch files.")
    target: str = Field(min_length=1, description="Name of the label column.")
    task: Task = "classification"
    file_patterns: tuple[str, ...] = Field(
        default=("*.csv", "*.parquet"), description="Glob patterns of batch files to ingest."
    )


class TrainingSpec(_Strict):
    """Which rows the model is tuned on and which fresh rows judge it."""

    min_rows: int = Field(default=500, ge=20, description="Fewest rows a training window holds.")
    max_rows: int = Field(default=50_000, ge=20, description="Most rows a training window holds.")
    holdout_fraction: float = Field(
        default=0.2,
        gt=0.0,
        lt=0.9,
        description="Share of the newest window rows kept out of tuning to judge the models.",
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> TrainingSpec:
        if self.min_rows > self.max_rows:
            raise ValueError(
                f"min_rows ({self.min_rows}) must not exceed max_rows ({self.max_rows})"
            )
        return self


class DriftSpec(_Strict):
    """How a batch is compared with the reference and when that counts as drift."""

    method: str | None = Field(
        default=None,
        description="evidently stat test for every column (e.g. 'ks', 'psi', 'wasserstein'); "
        "None picks evidently's default per column type and sample size.",
    )
    threshold: float | None = Field(
        default=None, gt=0.0, description="Threshold for the stat test; None uses its default."
    )
    drift_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Dataset drift when at least this share of the columns drifted.",
    )
    columns: tuple[str, ...] | None = Field(
        default=None, description="Columns to check; None checks every feature column."
    )


class TuningSpec(_Strict):
    """How hyperparameters are searched."""

    strategy: Literal["bayesian", "random"] = "bayesian"
    models: tuple[Literal["xgboost"], ...] = ("xgboost",)
    metric: str | None = Field(
        default=None,
        description="Primary metric; None means roc_auc for classification, rmse for regression.",
    )
    n_trials: int = Field(default=20, ge=1, le=10_000)
    timeout_s: float | None = Field(default=600.0, gt=0.0)
    cv: int = Field(default=3, ge=2, le=20)
    seed: int = 42

    @model_validator(mode="after")
    def _check_models(self) -> TuningSpec:
        if not self.models:
            raise ValueError("models must name at least one model family (allowed: 'xgboost')")
        return self


class RegistrySpec(_Strict):
    """How models are registered and promoted."""

    model_name: str | None = Field(
        default=None, description="Registered model name; None uses the pipeline name."
    )
    promotion_margin: float = Field(
        default=0.0,
        ge=0.0,
        description="The challenger must beat the champion by at least this much on the holdout.",
    )


class MlflowSpec(_Strict):
    """Where runs and models are tracked."""

    tracking_uri: str | None = Field(
        default=None, description="None means a SQLite file 'mlflow.db' in the workspace."
    )
    experiment: str | None = Field(default=None, description="None means 'automl/<pipeline>'.")


class ScheduleSpec(_Strict):
    """When the service runs the pipeline's cycle."""

    interval_s: float | None = Field(default=3600.0, gt=0.0)
    cron: str | None = Field(
        default=None, description="Crontab expression; replaces interval_s when set."
    )


class PipelineSpec(_Strict):
    """A whole pipeline: data, drift, tuning, registry, tracking and schedule.

    Load one with :func:`load_spec`; relative paths then resolve against the spec's directory.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    workspace: Path = Field(
        default=Path(), description="Directory for everything the service writes."
    )
    data: DataSpec
    training: TrainingSpec = TrainingSpec()
    drift: DriftSpec = DriftSpec()
    tuning: TuningSpec = TuningSpec()
    registry: RegistrySpec = RegistrySpec()
    mlflow: MlflowSpec = MlflowSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    state_db: str | None = Field(
        default=None, description="SQLAlchemy URL of the state database; None means automl.db."
    )

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _check_metric(self) -> PipelineSpec:
        metric = self.tuning.metric
        allowed = (
            CLASSIFICATION_METRICS if self.data.task == "classification" else REGRESSION_METRICS
        )
        if metric is not None and metric not in allowed:
            raise ValueError(
                f"tuning.metric {metric!r} does not fit task {self.data.task!r}; "
                f"allowed: {', '.join(allowed)}"
            )
        return self

    # -- resolved locations -------------------------------------------------------------
    def _resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self._base_dir / path).resolve()

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the spec resolve against."""
        return self._base_dir

    @property
    def workspace_dir(self) -> Path:
        """Absolute workspace directory."""
        return self._resolve(self.workspace)

    @property
    def landing_path(self) -> Path:
        """Absolute landing directory."""
        return self._resolve(self.data.landing_dir)

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI (default: SQLite file in the workspace)."""
        if self.mlflow.tracking_uri:
            return self.mlflow.tracking_uri
        return f"sqlite:///{self.workspace_dir / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str:
        """Artifact root for the pipeline's experiment when tracking locally."""
        return (self.workspace_dir / "mlartifacts").as_uri()

    @property
    def experiment_name(self) -> str:
        """MLflow experiment name."""
        return self.mlflow.experiment or f"automl/{self.name}"

    @property
    def model_name(self) -> str:
        """Registered model name."""
        return self.registry.model_name or self.name

    @property
    def metric(self) -> str:
        """Primary metric, with the task's default filled in."""
        if self.tuning.metric:
            return self.tuning.metric
        return "roc_auc" if self.data.task == "classification" else "rmse"

    @property
    def state_url(self) -> str:
        """SQLAlchemy URL of the state database (ledger, schema, cycle history)."""
        return self.state_db or f"sqlite:///{self.workspace_dir / 'automl.db'}"

    def with_base_dir(self, base_dir: Path) -> PipelineSpec:
        """Return a copy whose relative paths resolve against ``base_dir``."""
        clone = self.model_copy()
        clone._base_dir = base_dir.resolve()
        return clone


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"field '{loc}': unknown field (check the spelling against the documented fields)"
    if error["type"] == "missing":
        return f"field '{loc}': required but missing"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"field '{loc}': {error['msg']}{shown}"


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate one pipeline spec.

    Args:
        path: A ``.yaml``/``.yml`` file.

    Returns:
        The validated spec, with relative paths resolving against the file's directory.

    Raises:
        ConfigError: The file is missing, is not YAML, or a field is invalid. The message names
            the file, the field and what is allowed.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{file}: pipeline spec not found (expected a .yaml file)")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{file}: a pipeline spec must be a YAML mapping, got {type(raw).__name__}"
        )
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(_describe(dict(err)) for err in exc.errors())
        raise ConfigError(f"{file}: invalid pipeline spec: {details}") from exc
    return spec.with_base_dir(file.parent)


def load_specs(directory: str | Path) -> list[PipelineSpec]:
    """Load every ``*.yaml``/``*.yml`` spec in a directory, sorted by file name.

    Raises:
        ConfigError: The directory does not exist, a spec is invalid, or two specs share a name.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a directory of pipeline specs")
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    specs = [load_spec(f) for f in files]
    seen: dict[str, Path] = {}
    for file, spec in zip(files, specs, strict=True):
        if spec.name in seen:
            raise ConfigError(
                f"{file}: pipeline name {spec.name!r} is already used by {seen[spec.name]}"
            )
        seen[spec.name] = file
    return specs
