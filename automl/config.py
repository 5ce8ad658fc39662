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

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from automl.errors import ConfigError
from automl.vocab import (
    CLASSIFICATION_METRICS,
    DEFAULT_METRIC,
    PREDICTION_METRICS,
    REGRESSION_METRICS,
    RESOURCE_METRICS,
    Approval,
    BadValues,
    Correction,
    ModelFamily,
    NewClasses,
    Policy,
    Pruner,
    SignificanceTest,
    Task,
    TestChoice,
    check_metric,
    check_models,
)
from automl.vocab import Strategy as TuningStrategy

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "ColumnDriftSpec",
    "DataSpec",
    "DirectorySource",
    "DriftSpec",
    "GuardrailSpec",
    "HysteresisSpec",
    "LabelsSpec",
    "MlflowSpec",
    "ModelFamily",
    "NotifySpec",
    "ObjectStoreSource",
    "ParamRange",
    "PipelineSpec",
    "RegistrySpec",
    "ScheduleSpec",
    "SignificanceSpec",
    "SourceSpec",
    "SqlSource",
    "TrainingSpec",
    "TuningSpec",
    "TuningStrategy",
    "argument_errors",
    "build_section",
    "check_search",
    "load_spec",
    "load_specs",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_Section = TypeVar("_Section", bound=_Strict)
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _argument_message(error: Mapping[str, Any]) -> str:
    """One pydantic error as ``parameter must be <rule>, got <value>``."""
    name = ".".join(str(part) for part in error["loc"])
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"{name} must be {_BOUNDS[kind]} {limit:g}, got {got!r}"
    if kind == "literal_error":
        return f"{name} must be one of {ctx['expected']}, got {got!r}"
    if kind == "value_error":  # a model validator's rule: its message names the fields
        return str(ctx["error"])
    return f"{name}: {error['msg']}, got {got!r}"


def build_section(section: type[_Section], /, **values: object) -> _Section:
    """Validate plain arguments as a spec section: the one validation path of a capability
    that is also built without a spec (``Hysteresis(confirm_checks=2)``).

    Args:
        section: The spec section's class (e.g. :class:`HysteresisSpec`).
        **values: Its fields.

    Returns:
        The validated section.

    Raises:
        ValueError: A field breaks the section's rules; the message names the parameter, the
            rule and the value (``confirm_checks must be >= 1, got 0``).

    Example:
        >>> build_section(HysteresisSpec, confirm_checks=0)
        Traceback (most recent call last):
        ...
        ValueError: confirm_checks must be >= 1, got 0
    """
    with argument_errors():
        return section.model_validate(values)


@contextlib.contextmanager
def argument_errors() -> Iterator[None]:
    """Turn a spec section's validation error into the ``ValueError`` plain arguments raise
    (see :func:`build_section`): ``parameter must be <rule>, got <value>``, one per field."""
    try:
        yield
    except ValidationError as exc:
        raise ValueError("; ".join(_argument_message(e) for e in exc.errors())) from None


def check_search(
    strategy: str,
    models: Sequence[str],
    search_space: Mapping[str, object],
    grid: Mapping[str, object] | None,
    *,
    error: type[Exception] = ValueError,
) -> None:
    """The rules of a search that tie several ``tuning`` settings together (shared by
    :class:`TuningSpec` and ``automl.tuning.SearchConfig``).

    Raises:
        Exception: ``error``: ``search_space`` or ``grid`` names a family not in ``models``, or
            strategy ``grid`` has no grid.
    """
    for name, table in (("search_space", search_space), ("grid", grid or {})):
        for family in table:
            if family not in models:
                raise error(
                    f"tuning.{name} names family {family!r}, which is not in models "
                    f"({', '.join(models)})"
                )
    if strategy == "grid" and not grid:
        raise error(
            "strategy 'grid' needs an explicit grid: tuning.grid: {family: {param: [values]}}"
        )


#: Keys of ``storage_options`` that would put a credential in the spec file.
_CREDENTIAL_OPTIONS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "sas_token",
        "client_secret",
    }
)


class DirectorySource(_Strict):
    """Batches dropped as files into a local folder (``data.landing_dir``): the default.

    The folder, its patterns and the settle time are ``data.landing_dir``,
    ``data.file_patterns`` and ``data.settle_s``; files are moved to the workspace's archive
    or quarantine once read.
    """

    kind: Literal["directory"] = "directory"


class ObjectStoreSource(_Strict):
    """Batches as objects under a prefix of an object store (S3, MinIO, GCS, ``file://``).

    Any fsspec filesystem works (``s3://`` needs the ``s3`` extra, s3fs). Every object under
    the prefix whose key matches a pattern is read once: it is recorded by key, version (ETag
    or version id) and content hash. The store is read only, unless ``archive_prefix`` or
    ``quarantine_prefix`` is set; credentials come from the environment or the provider's
    chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance or
    pod role), never from the spec.
    """

    kind: Literal["object_store"]
    url: str = Field(
        min_length=4,
        description="The prefix to watch, with its scheme: s3://bucket/prefix/, gs://..., "
        "file:///path/.",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, a test server); None: the provider's. Not "
        "a credential; AWS_ENDPOINT_URL in the environment also works.",
    )
    patterns: tuple[str, ...] = Field(
        default=("*.csv", "*.parquet"),
        description="Patterns of object keys (relative to the prefix) to ingest.",
    )
    archive_prefix: str | None = Field(
        default=None,
        description="Move accepted objects under this URL (same store); None: leave them.",
    )
    quarantine_prefix: str | None = Field(
        default=None,
        description="Move rejected and duplicate objects under this URL with a .reason.txt; "
        "None: leave them, the reason is in the ledger (automl status).",
    )
    storage_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra fsspec filesystem options (region, anonymous access, ...); never "
        "credentials.",
    )
    retries: int = Field(
        default=4, ge=1, le=20, description="Attempts per store call on transient errors."
    )

    @model_validator(mode="after")
    def _check_urls(self) -> ObjectStoreSource:
        for name in ("url", "archive_prefix", "quarantine_prefix"):
            value = getattr(self, name)
            if value is not None and not urlsplit(value).scheme:
                raise ValueError(
                    f"{name} {value!r} has no scheme; write it as s3://bucket/prefix/ (or "
                    "gs://, file:///)"
                )
        secret = sorted(k for k in self.storage_options if k.lower() in _CREDENTIAL_OPTIONS)
        if secret:
            raise ValueError(
                f"storage_options {secret} would put credentials in the spec file; take them "
                "from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE) "
                "or the provider's chain instead"
            )
        return self


class SqlSource(_Strict):
    """Batches as new rows of a table or query on any SQLAlchemy URL, read by watermark.

    Rows are read in order of the watermark: an increasing id (``watermark_id``), or a
    timestamp and the id (``watermark_time`` + ``watermark_id``). With a timestamp, each read
    looks back ``lookback_s`` before the watermark, so a row committed late inside a range
    already read is still read, once (rows read inside the window are remembered by id).
    """

    kind: Literal["sql"]
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL without a password (libpq reads PGPASSWORD, ~/.pgpass).",
    )
    url_env: str | None = Field(
        default=None,
        min_length=1,
        description="Name of an environment variable holding the URL (may hold a password).",
    )
    table: str | None = Field(default=None, min_length=1, description="Table (schema.table).")
    query: str | None = Field(
        default=None, min_length=1, description="A SELECT whose rows are read (instead of table)."
    )
    watermark_id: str = Field(
        min_length=1, description="Column that orders rows and identifies each (unique)."
    )
    watermark_time: str | None = Field(
        default=None,
        min_length=1,
        description="Timestamp column read in order before the id; None: the id alone.",
    )
    lookback_s: float = Field(
        default=300.0,
        ge=0.0,
        description="With watermark_time: how long after a row's time it may still commit.",
    )
    max_rows: int = Field(
        default=100_000, ge=1, description="Most rows one cycle reads into one batch."
    )
    retries: int = Field(
        default=4, ge=1, le=20, description="Attempts per query on transient errors."
    )

    @model_validator(mode="after")
    def _check_source(self) -> SqlSource:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table and query")
        if self.url is not None:
            try:
                from sqlalchemy.engine import make_url

                password = make_url(self.url).password
            except Exception as exc:
                raise ValueError(f"url {self.url!r} is not a SQLAlchemy URL: {exc}") from exc
            if password:
                raise ValueError(
                    "url holds a password; keep credentials out of the spec: drop it from the "
                    "URL and set PGPASSWORD (or ~/.pgpass), or name an environment variable "
                    "holding the whole URL in url_env"
                )
        return self


#: Where batches come from, by ``kind``.
SourceSpec = Annotated[DirectorySource | ObjectStoreSource | SqlSource, Field(discriminator="kind")]
#: Where label files come from, by ``kind`` (a folder is ``data.labels.landing_dir``).
LabelSourceSpec = Annotated[ObjectStoreSource | SqlSource, Field(discriminator="kind")]


class LabelsSpec(_Strict):
    """Where late labels come from (needs ``data.id_column``).

    Labels arrive as label files in their own folder (columns ``<id_column>, <target>``), in
    later batches that repeat known ids with the target filled, or both.
    """

    landing_dir: Path | None = Field(
        default=None,
        description="Folder of label files (CSV or Parquet with the id column and the target "
        "column); None: no label files.",
    )
    source: LabelSourceSpec | None = Field(
        default=None,
        description="Labels from an object-store prefix or a SQL table instead of a folder "
        "(same contract as data.source).",
    )
    in_batches: bool = Field(
        default=True,
        description="A later batch may repeat known ids with the target filled to deliver "
        "their labels; false: a batch that repeats a known id is rejected.",
    )
    alert_after_s: float | None = Field(
        default=None,
        gt=0.0,
        description="Send the webhook event labels_late once when no label has arrived for "
        "this long (counted from the newest label, or from the first row while none has "
        "come); None: no alert.",
    )

    @model_validator(mode="after")
    def _check_one_place(self) -> LabelsSpec:
        if self.landing_dir is not None and self.source is not None:
            raise ValueError("give labels either landing_dir (a folder) or source, not both")
        return self


class DataSpec(_Strict):
    """Where batches land and what they contain."""

    source: SourceSpec = Field(
        default_factory=DirectorySource,
        description="Where batches come from: directory (data.landing_dir, the default), "
        "object_store or sql.",
    )
    landing_dir: Path | None = Field(
        default=None,
        description="Directory watched for new CSV or Parquet batch files (source kind directory).",
    )
    target: str = Field(min_length=1, description="Name of the label column.")
    task: Task = "classification"
    file_patterns: tuple[str, ...] = Field(
        default=("*.csv", "*.parquet"), description="Glob patterns of batch files to ingest."
    )
    max_batch_failures: int | None = Field(
        default=3,
        ge=1,
        le=100,
        description="After this many failed cycles in a row with batches pending, find the "
        "pending batch that fails the cycle's steps and quarantine it (None: never).",
    )
    settle_s: float = Field(
        default=2.0,
        ge=0.0,
        le=3600.0,
        description="A landed file is read only once its size and modification time have not "
        "changed for this long (a file still being written is left for the next cycle).",
    )
    new_classes: NewClasses = Field(
        default="reject",
        description="A label the pipeline has never seen: reject the file, or accept it and "
        "learn the new class (which changes the model's predict_proba shape).",
    )
    max_abs_value: float | None = Field(
        default=1e15,
        gt=0.0,
        description="Largest magnitude of a numeric feature or regression target; None checks "
        "only for inf/-inf.",
    )
    bad_values: BadValues = Field(
        default="reject_file",
        description="inf/-inf or values beyond max_abs_value: quarantine the file, or only "
        "the offending rows and accept the rest.",
    )
    allow_empty_columns: tuple[str, ...] = Field(
        default=(), description="Feature columns that may be entirely empty in a batch."
    )
    id_column: str | None = Field(
        default=None,
        min_length=1,
        description="Column that identifies a row (unique, never a feature); set it to accept "
        "batches without labels whose labels arrive later, joined by this id.",
    )
    labels: LabelsSpec | None = Field(
        default=None,
        description="Where late labels come from; None with id_column set: labels in later "
        "batches only.",
    )
    prediction_column: str | None = Field(
        default=None,
        min_length=1,
        description="Column holding the score the champion served: kept, never a feature.",
    )
    time_column: str | None = Field(
        default=None,
        min_length=1,
        description="Column holding when the row was scored: kept, never a feature.",
    )
    max_label_wait_s: float = Field(
        default=7 * 86400.0,
        gt=0.0,
        description="How long a label for an id no batch has brought yet waits for its row "
        "before it is rejected.",
    )

    @model_validator(mode="after")
    def _check_landing_dir(self) -> DataSpec:
        if self.source.kind == "directory" and self.landing_dir is None:
            raise ValueError(
                "landing_dir is required: set data.landing_dir to the folder batches are "
                "dropped into, or data.source to an object_store or sql source"
            )
        return self

    @model_validator(mode="after")
    def _check_label_columns(self) -> DataSpec:
        if self.labels is not None and self.id_column is None:
            raise ValueError(
                "labels needs id_column: late labels are joined to their rows by id; set "
                "data.id_column to the column that identifies a row"
            )
        named = {
            "target": self.target,
            "id_column": self.id_column,
            "prediction_column": self.prediction_column,
            "time_column": self.time_column,
        }
        seen: dict[str, str] = {}
        for key, column in named.items():
            if column is None:
                continue
            if column in seen:
                raise ValueError(
                    f"{key} and {seen[column]} name the same column {column!r}; each must be "
                    "a different column"
                )
            seen[column] = key
        return self

    @property
    def kept_columns(self) -> tuple[str, ...]:
        """Columns stored with a batch that are never features (prediction, time)."""
        return tuple(c for c in (self.prediction_column, self.time_column) if c is not None)


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
    window: Literal["since_drift", "recent"] = Field(
        default="recent",
        description="recent (default, chosen by benchmarks/stream.py): a re-tune trains on the "
        "newest max_rows rows, before and after the drift (the champion serves everybody); "
        "since_drift: on the batches since the first drifted one (older rows fill up to "
        "min_rows).",
    )
    min_labelled_rows: int | None = Field(
        default=None,
        ge=20,
        description="Late labels: fewest labelled rows after confirmed drift before a re-tune "
        "(until then the pipeline waits for labels); None: min_rows.",
    )

    @model_validator(mode="after")
    def _check_bounds(self) -> TrainingSpec:
        if self.min_rows > self.max_rows:
            raise ValueError(
                f"min_rows ({self.min_rows}) must not exceed max_rows ({self.max_rows})"
            )
        if self.min_labelled_rows is not None and self.min_labelled_rows > self.max_rows:
            raise ValueError(
                f"min_labelled_rows ({self.min_labelled_rows}) must not exceed max_rows "
                f"({self.max_rows})"
            )
        return self


class ColumnDriftSpec(_Strict):
    """The drift test of one column, overriding the pipeline-wide choice."""

    method: str | None = Field(
        default=None, description="evidently stat test for this column; None keeps the default."
    )
    threshold: float | None = Field(
        default=None, gt=0.0, description="Threshold for this column; None: the test's default."
    )


class HysteresisSpec(_Strict):
    """When drifted checks become a re-tune (default: at once, then 3 checks of cool-down)."""

    confirm_checks: int = Field(
        default=1, ge=1, le=100, description="Drift after this many consecutive drifted checks."
    )
    window_checks: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Or: drift when window_drifted of the last "
        "window_checks checks drifted (set both).",
    )
    window_drifted: int | None = Field(default=None, ge=1, le=1000)
    cooldown_checks: int = Field(
        default=3,
        ge=0,
        description="Checks after a re-tune during which drift only warns (default 3, chosen "
        "by benchmarks/stream.py: at most one re-tune in four checks on seasonal streams).",
    )
    cooldown_s: float = Field(
        default=0.0, ge=0.0, description="Seconds after a re-tune during which drift only warns."
    )

    @model_validator(mode="after")
    def _check_window(self) -> HysteresisSpec:
        checks, drifted = self.window_checks, self.window_drifted
        if (checks is None) != (drifted is None):
            raise ValueError(
                "window_checks and window_drifted must be set together, got "
                f"window_checks={checks}, window_drifted={drifted}"
            )
        if checks is not None and drifted is not None and drifted > checks:
            raise ValueError(
                f"window_drifted must be within [1, window_checks={checks}], got {drifted}"
            )
        return self


class DriftSpec(_Strict):
    """How a batch is compared with the reference and when that counts as drift.

    The defaults flag a batch when any one column moved (``drift_share: 0.01``), with two-sample
    tests (``tests: two_sample``) whose false alarms Holm's correction bounds at 5% of checks;
    ``benchmarks/drift_quality.py`` measured the choice (README, "Drift decisions").
    """

    method: str | None = Field(
        default=None,
        description="Stat test for every column (an evidently method such as 'ks', 'psi', "
        "'wasserstein', or 'chisquare_2samp'); None picks one per column (see tests).",
    )
    tests: TestChoice = Field(
        default="two_sample",
        description="How columns without a method get their test: two_sample (K-S, z-test or "
        "two-sample chi-square by the number of distinct values, at every size) or evidently "
        "(evidently's DataDriftPreset choice: chi-square goodness of fit up to 1,000 reference "
        "rows, Wasserstein / Jensen-Shannon distances above).",
    )
    threshold: float | None = Field(
        default=None, gt=0.0, description="Threshold for the stat test; None uses its default."
    )
    drift_share: float = Field(
        default=0.01,
        gt=0.0,
        le=1.0,
        description="Dataset drift when the policy score (share of drifted columns, or their "
        "importance-weighted share) is at least this; 0.01: any one column of up to 100.",
    )
    columns: tuple[str, ...] | None = Field(
        default=None, description="Columns to check; None checks every feature column."
    )
    per_column: dict[str, ColumnDriftSpec] = Field(
        default_factory=dict, description="Per-column method/threshold overrides."
    )
    policy: Policy = Field(
        default="share",
        description="share: share of drifted columns; weighted: share of the champion's feature "
        "importance in drifted columns.",
    )
    weights: dict[str, float] | None = Field(
        default=None,
        description="Fixed column weights for the weighted policy; None: the champion's "
        "prediction sensitivity to each column.",
    )
    warning_share: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Score of a warning; None: half drift_share."
    )
    correction: Correction = Field(
        default="holm",
        description="Multiple-testing correction of p-value tests over the columns: holm, "
        "bonferroni (no column flagged by chance in 95% of checks), bh (Benjamini-Hochberg) or "
        "none.",
    )
    min_effect: float = Field(
        default=0.04,
        ge=0.0,
        le=1.0,
        description="A p-value test flags a column only when the shift (K-S statistic or total "
        "variation distance) is at least this; keeps tiny shifts on huge batches out.",
    )
    missing_rate_delta: float | None = Field(
        default=0.1, gt=0.0, le=1.0, description="Missing-value rate change that drifts a column."
    )
    unseen_share: float | None = Field(
        default=0.05,
        gt=0.0,
        le=1.0,
        description="Share of rows with categories unseen in the reference that drifts a column.",
    )
    calibration_resamples: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Calibrate distance thresholds on this many reference-vs-reference "
        "resamples (0: off).",
    )
    calibration_quantile: float = Field(default=0.95, gt=0.5, lt=1.0)
    target_drift: bool = Field(default=False, description="Label drift is a drift signal.")
    prediction_drift: bool = Field(
        default=False, description="Drift of the champion's predictions is a drift signal."
    )
    performance_tolerance: float | None = Field(
        default=None,
        ge=0.0,
        description="Drift when the champion's metric on the new labelled rows is worse than "
        "its validation (CV) score by more than this; None: off.",
    )
    estimated_performance_tolerance: float | None = Field(
        default=None,
        ge=0.0,
        description="Late labels, classification (roc_auc or accuracy): drift when the "
        "champion's label-free estimate (CBPE) on the new rows is worse than its score on its "
        "holdout by more than this; None: the estimate is logged, not a signal.",
    )
    hysteresis: HysteresisSpec = HysteresisSpec()
    html_report: Literal["on_drift", "always", "never"] = Field(
        default="on_drift", description="When the evidently HTML report is rendered."
    )

    @model_validator(mode="after")
    def _check_shares(self) -> DriftSpec:
        if self.warning_share is not None and self.warning_share > self.drift_share:
            raise ValueError(
                f"warning_share must be within (0, drift_share={self.drift_share}], "
                f"got {self.warning_share}"
            )
        return self


GridValue = float | int | str | bool


class ParamRange(_Strict):
    """A narrowed range (``low``/``high``, optionally ``log``/``step``) or a list of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool | None = None
    step: float | None = None
    choices: list[GridValue] | None = None


#: One hyperparameter override: a range, ``[low, high]`` (or the choices of a categorical
#: hyperparameter), or a fixed value.
ParamOverrideSpec = ParamRange | list[GridValue] | GridValue


class TuningSpec(_Strict):
    """How hyperparameters are searched (semantics: ``automl.tuning.SearchConfig``, ``tune``)."""

    strategy: TuningStrategy = Field(
        default="bayesian",
        description="bayesian (multivariate TPE), gp (needs the 'gp' extra), random, grid "
        "(exhaustive over `grid`), genetic (NSGA-II) or cmaes.",
    )
    models: tuple[ModelFamily, ...] = Field(
        default=("xgboost",),
        description="Model families; several make one conditional search space in one study.",
    )
    metric: str | None = Field(
        default=None,
        description="Primary metric; None means roc_auc for classification, rmse for regression.",
    )
    n_trials: int = Field(default=20, ge=1, le=10_000)
    timeout_s: float | None = Field(default=600.0, gt=0.0)
    cv: int = Field(default=3, ge=2, le=20)
    seed: int = 42
    search_space: dict[str, dict[str, ParamOverrideSpec]] = Field(
        default_factory=dict,
        description="Per family, per hyperparameter: [low, high], {low, high, log}, "
        "{choices: [...]} or a fixed value; narrows or overrides the curated space.",
    )
    grid: dict[str, dict[str, list[GridValue]]] | None = Field(
        default=None,
        description="Strategy grid: per family, per hyperparameter, the values to try.",
    )
    n_jobs: int = Field(default=1, ge=1, le=64, description="Trials run in parallel.")
    patience: int | None = Field(
        default=None, ge=1, description="Stop after this many trials without improvement."
    )
    pruner: Pruner = Field(
        default="median",
        description="median: stop trials whose learning curve trails the median; none.",
    )
    split: Literal["kfold", "time"] = Field(
        default="kfold",
        description="kfold (stratified for classification) or time: the rows are in time "
        "order and every fold validates on rows after its training rows.",
    )
    warm_start: bool = Field(
        default=True,
        description="Re-evaluate the previous study's best configurations first after drift.",
    )
    warm_start_top_k: int = Field(default=3, ge=1, le=50)
    storage: str | None = Field(
        default=None,
        description="Optuna storage URL; None means the SQLite file optuna.db in the workspace.",
    )
    distributed: bool | None = Field(
        default=None,
        description="Share each re-tune's study with `automl worker` processes; None: on when "
        "`storage` is a database server (postgresql://, mysql://).",
    )
    heartbeat_s: int = Field(
        default=10, ge=1, le=3600, description="Distributed: heartbeat of a running trial."
    )
    grace_s: int | None = Field(
        default=None,
        ge=2,
        description="Distributed: a trial without heartbeat this long is re-queued "
        "(None: 2 x heartbeat_s).",
    )
    in_child_process: bool = Field(
        default=True,
        description="Run a cycle's re-tune (search, model log, registration) and judge in a "
        "child process: its memory and the model libraries go back to the OS when it ends, "
        "and a crash or an out-of-memory fails the cycle, not the service.",
    )
    memory_mb: int | None = Field(
        default=None,
        ge=512,
        description="With in_child_process: the re-tune process's memory limit in MB (its "
        "data segment, RLIMIT_DATA); above it the cycle fails with an error naming this "
        "setting, and the service keeps running.",
    )

    @property
    def is_distributed(self) -> bool:
        """Whether re-tunes open their study to workers (see ``distributed``)."""
        if self.distributed is not None:
            return self.distributed
        return self.storage is not None and self.storage.split(":", 1)[0].split("+", 1)[0] in (
            "postgresql",
            "mysql",
        )

    @model_validator(mode="after")
    def _check_models(self) -> TuningSpec:
        check_models(self.models)
        check_search(self.strategy, self.models, self.search_space, self.grid)
        if self.distributed and not (self.storage or "").startswith(("postgresql", "mysql")):
            raise ValueError(
                f"distributed: true needs `storage` on a database server that workers reach "
                f"(postgresql+psycopg2://user@host/db), got {self.storage!r}"
            )
        if self.grace_s is not None and self.grace_s <= self.heartbeat_s:
            raise ValueError(
                f"grace_s ({self.grace_s}) must exceed heartbeat_s ({self.heartbeat_s})"
            )
        return self


class SignificanceSpec(_Strict):
    """How sure the gate must be that the challenger's improvement is real."""

    test: SignificanceTest = Field(
        default="bootstrap",
        description="bootstrap: paired bootstrap CI of the improvement must exclude 0; "
        "mcnemar: exact McNemar test on disagreements (classification); none: margin only.",
    )
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    n_resamples: int = Field(default=1000, ge=100, le=100_000)


class GuardrailSpec(_Strict):
    """A metric that must not get worse when a challenger is promoted."""

    metric: str = Field(
        description="A metric of the task (e.g. accuracy, recall, mae) or latency_ms / "
        "model_size_mb."
    )
    max_regression: float | None = Field(
        default=None, ge=0.0, description="Quality metrics: allowed worsening in its units."
    )
    max_ratio: float | None = Field(
        default=None, gt=0.0, description="latency_ms / model_size_mb: allowed new/old ratio."
    )

    @model_validator(mode="after")
    def _check_kind(self) -> GuardrailSpec:
        resource = self.metric in RESOURCE_METRICS
        if not (resource or self.metric in PREDICTION_METRICS):
            raise ValueError(
                f"guardrail metric {self.metric!r} is unknown; allowed: "
                f"{', '.join((*RESOURCE_METRICS, *PREDICTION_METRICS))}"
            )
        if resource and self.max_regression is not None:
            raise ValueError(f"guardrail {self.metric!r} takes max_ratio, not max_regression")
        if not resource and self.max_ratio is not None:
            raise ValueError(f"guardrail {self.metric!r} takes max_regression, not max_ratio")
        return self


class OldPopulationSpec(_Strict):
    """The old-population guardrail of the promotion gate.

    Every registered version keeps a sample of its own holdout (rows it did not train on) as
    an MLflow artifact of its run. With ``max_regression`` set, a challenger is also scored
    beside the champion on the champion's stored holdout rows it did not train on, and is
    refused when it is worse there by more than ``max_regression``: a model trained on a
    narrow, shifted window must not win on the newest rows and then serve the ordinary
    population worse. The champion's stored rows are kept out of the challenger's training
    window so that they stay unseen evidence.
    """

    max_regression: float | None = Field(
        default=None,
        ge=0.0,
        description="Refuse a challenger worse than the champion by more than this (metric "
        "units) on the champion's stored holdout; None: off.",
    )
    max_rows: int = Field(
        default=5000,
        ge=50,
        le=100_000,
        description="Most holdout rows stored with each registered version (a seeded sample).",
    )
    min_rows: int = Field(
        default=100,
        ge=10,
        description="Fewer stored rows the challenger did not train on: the guardrail is "
        "skipped, with the reason recorded.",
    )


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
    approval: Approval = Field(
        default="auto",
        description="manual: the gate's verdict is recorded and the challenger waits for "
        "`automl promote`.",
    )
    significance: SignificanceSpec = SignificanceSpec()
    guardrails: tuple[GuardrailSpec, ...] = ()
    old_population: OldPopulationSpec = OldPopulationSpec()
    shadow_batches: int = Field(
        default=0,
        ge=0,
        le=100,
        description="0: a challenger that passes the holdout gate is promoted at once. N > 0: "
        "it waits as @challenger, scored beside the champion on each new labelled batch, and "
        "is promoted once the gate passes on at least N such batches together.",
    )
    shadow_max_batches: int = Field(
        default=6,
        ge=1,
        le=1000,
        description="A shadow challenger without a passing gate after this many batches is "
        "dropped (@challenger removed).",
    )

    @model_validator(mode="after")
    def _shadow_bounds(self) -> RegistrySpec:
        if self.shadow_batches > self.shadow_max_batches:
            raise ValueError(
                f"shadow_max_batches must be >= shadow_batches, got {self.shadow_max_batches} "
                f"< {self.shadow_batches}"
            )
        return self


class NotifySpec(_Strict):
    """Webhook notifications (HTTP POST with a JSON body)."""

    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    events: tuple[
        Literal[
            "drift", "promotion", "rejection", "failure", "approval", "quarantine", "labels_late"
        ],
        ...,
    ] = ("drift", "promotion", "rejection", "failure", "approval", "quarantine", "labels_late")
    timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)


class MlflowSpec(_Strict):
    """Where runs and models are tracked."""

    tracking_uri: str | None = Field(
        default=None, description="None means a SQLite file 'mlflow.db' in the workspace."
    )
    experiment: str | None = Field(default=None, description="None means 'automl/<pipeline>'.")


class ScheduleSpec(_Strict):
    """When the service runs the pipeline's cycle, and an optional forced re-tune."""

    interval_s: float | None = Field(default=3600.0, gt=0.0)
    cron: str | None = Field(
        default=None, description="Crontab expression (UTC); replaces interval_s when set."
    )
    retune_interval_s: float | None = Field(
        default=None, gt=0.0, description="Re-tune this often whatever drift says (None: never)."
    )
    retune_cron: str | None = Field(
        default=None, description="Crontab expression (UTC) of forced re-tunes, e.g. weekly."
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
    notify: NotifySpec = NotifySpec()
    state_db: str | None = Field(
        default=None, description="SQLAlchemy URL of the state database; None means automl.db."
    )

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source_file: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_label_folder(self) -> PipelineSpec:
        labels = self.data.labels
        if (
            labels is not None
            and labels.landing_dir is not None
            and labels.landing_dir == self.data.landing_dir
        ):
            raise ValueError(
                f"data.labels.landing_dir is data.landing_dir ({labels.landing_dir}): label "
                "files need a folder of their own, or deliver labels in later batches "
                "(data.labels.in_batches)"
            )
        return self

    @model_validator(mode="after")
    def _check_metric(self) -> PipelineSpec:
        if self.tuning.metric is not None:
            check_metric(self.tuning.metric, self.data.task, name="tuning.metric")
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
        """Absolute landing directory (source kind ``directory``).

        Raises:
            ConfigError: The source is not a directory.
        """
        if self.data.landing_dir is None:
            raise ConfigError(
                f"pipeline {self.name!r} reads data.source of kind {self.data.source.kind!r}, "
                "which has no landing folder"
            )
        return self._resolve(self.data.landing_dir)

    @property
    def labels_landing_path(self) -> Path | None:
        """Absolute folder of label files, or None when labels come in batches only."""
        labels = self.data.labels
        if labels is None or labels.landing_dir is None:
            return None
        return self._resolve(labels.landing_dir)

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
        return DEFAULT_METRIC[self.data.task]

    @property
    def state_url(self) -> str:
        """SQLAlchemy URL of the state database (ledger, schema, cycle history)."""
        return self.state_db or f"sqlite:///{self.workspace_dir / 'automl.db'}"

    @property
    def source_file(self) -> Path | None:
        """The YAML file the spec was loaded from (None when built in code)."""
        return self._source_file

    def with_base_dir(self, base_dir: Path) -> PipelineSpec:
        """Return a copy whose relative paths resolve against ``base_dir``."""
        clone = self.model_copy()
        clone._base_dir = base_dir.resolve()
        clone._source_file = self._source_file
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
    loaded = spec.with_base_dir(file.parent)
    loaded._source_file = file.resolve()
    return loaded


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
