"""MLflow runs, artifacts and the model registry, behind one small adapter.

Everything goes through an explicit ``MlflowClient`` bound to the pipeline's tracking URI, so
pipelines with different URIs can share a process. Only model logging and loading need
MLflow's process-global URI; those sections hold a lock and restore the previous URI.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from automl.errors import TrackingError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_GLOBAL_URI_LOCK = threading.RLock()

#: Loaded registered versions kept in memory (a service's champions, one per pipeline).
MODEL_CACHE_SIZE = 8
_MODEL_CACHE: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_MODEL_CACHE_LOCK = threading.Lock()
RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
#: MLflow client settings for a tracking server, unless set in the environment: an unreachable
#: server fails a call after 3 attempts about 1 and 2 s apart (connection refused: ~3 s), a
#: silent one after 3 x 10 s.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version as automl needs it."""

    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        """``models:/name/version`` URI."""
        return f"models:/{self.name}/{self.version}"


@contextlib.contextmanager
def _global_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-global tracking and registry URIs at ``uri`` for a block.

    ``mlflow.set_*_uri`` also exports ``MLFLOW_*_URI`` environment variables, and reading the
    registry URI back returns a *resolved default*; restoring through the public API would pin
    both for the rest of the process (and its subprocesses). So the exact previous state,
    module globals and environment, is saved and put back.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    with _GLOBAL_URI_LOCK:
        saved_tracking = tracking_utils._tracking_uri
        saved_registry = registry_utils._registry_uri
        saved_env = {key: os.environ.get(key) for key in env_keys}
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]  # None unsets it
            registry_utils._registry_uri = saved_registry
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _pip_requirements() -> list[str]:
    # Pinning what the model needs avoids MLflow's slow requirement inference (it reloads the
    # model in a subprocess) and records the exact versions that produced the model.
    pins = []
    for dist in ("scikit-learn", "xgboost", "pandas", "numpy", "scipy", "mlflow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            pins.append(f"{dist}=={metadata.version(dist)}")
    return pins


def store_template_dir() -> Path:
    """Where the empty MLflow SQLite store of each MLflow version is kept (see
    :func:`seed_sqlite_store`): ``$XDG_CACHE_HOME/automl``, else ``~/.cache/automl``."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "automl"


def _make_store_template(template: Path) -> None:
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    template.parent.mkdir(parents=True, exist_ok=True)
    tmp = template.with_name(f".{template.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp}")
    try:
        _initialize_tables(engine)  # type: ignore[no-untyped-call]
    finally:
        engine.dispose()
    tmp.replace(template)  # atomic: concurrent makers each write a whole template


def seed_sqlite_store(tracking_uri: str) -> bool:
    """Start a new MLflow SQLite store as a copy of an empty, migrated one; True if it did.

    MLflow builds a new SQLite store by replaying every schema migration since its first
    release (1-2 s, more than a whole MLflow run takes). The result is the same every time, so
    it is built once per MLflow version under :func:`store_template_dir` (tables and migration
    state only, no experiment) and copied: MLflow then finds every table and adds only its
    default experiment, with this store's own artifact root. Nothing happens for other URIs
    or an existing file; if anything fails, MLflow builds the store itself as before.
    """
    if not tracking_uri.startswith("sqlite:///") or "?" in tracking_uri:
        return False
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    if str(path) in ("", ":memory:") or path.exists():
        return False
    try:
        template = store_template_dir() / f"mlflow-{metadata.version('mlflow')}-store.db"
        if not template.exists():
            _make_store_template(template)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        shutil.copyfile(template, tmp)
        try:
            os.link(tmp, path)  # never replaces a store another process created meanwhile
        finally:
            tmp.unlink()
    except Exception as exc:  # MLflow makes the store the slow way, as it would anyway
        log.debug("no MLflow store template for %s: %s", tracking_uri, exc)
        return False
    return True


def _clean_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def _version_info(model_name: str, mv: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=model_name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=str(mv.source),
        tags=dict(mv.tags or {}),
    )


@dataclass(frozen=True)
class RunSummary:
    """A run's state as automl needs it (e.g. to close a run a crash left open)."""

    run_id: str
    status: str
    start_time_ms: int
    tags: dict[str, str]
    name: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def _run_summary(run: Any) -> RunSummary:
    return RunSummary(
        run_id=str(run.info.run_id),
        status=str(run.info.status),
        start_time_ms=int(run.info.start_time or 0),
        tags=dict(run.data.tags or {}),
        name=str(run.info.run_name or ""),
        metrics={k: float(v) for k, v in (run.data.metrics or {}).items()},
        params=dict(run.data.params or {}),
    )


class MlflowTracker:
    """Runs, artifacts and registry operations for one pipeline's experiment.

    Args:
        tracking_uri: MLflow tracking URI (also used as the registry URI).
        experiment: Experiment name, created on first use.
        artifact_location: Artifact root for a newly created experiment (None: server default).
    """

    def __init__(
        self, tracking_uri: str, experiment: str, *, artifact_location: str | None = None
    ) -> None:
        # Progress bars on every model download would flood service logs.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # With a tracking server MLflow prints a "View run" link to stdout at every run's end,
        # which would corrupt `--json` output (one per trial); the logs name the runs anyway.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        # MLflow's HTTP defaults (7 retries with a backoff factor of 2, 120 s per request) make
        # an unreachable tracking server fail a cycle after about four minutes; a service must
        # notice in seconds and retry the cycle itself. Explicit settings win.
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._experiment_id: str | None = None

    @property
    def client(self) -> Any:
        """The ``MlflowClient``, made on first use: importing MLflow takes about a second, and
        a workspace opened for its state database alone (``automl status``) never needs it."""
        with self._client_lock:
            if self._client is None:
                from mlflow import MlflowClient

                seed_sqlite_store(self.tracking_uri)
                self._client = MlflowClient(
                    tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
                )
            return self._client

    # -- runs --------------------------------------------------------------------------
    @property
    def experiment_id(self) -> str:
        """The experiment's id (the experiment is created when missing)."""
        if self._experiment_id is None:
            try:
                found = self.client.get_experiment_by_name(self.experiment)
                if found is None:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment, artifact_location=self.artifact_location
                    )
                else:
                    self._experiment_id = found.experiment_id
            except Exception as exc:
                raise TrackingError(
                    f"MLflow at {self.tracking_uri!r} refused experiment {self.experiment!r}: "
                    f"{exc} (is the tracking server reachable?)"
                ) from exc
        return self._experiment_id

    def start_run(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        start_time_ms: int | None = None,
    ) -> str:
        """Create a run (nested under ``parent_run_id`` when given) and return its id.

        ``start_time_ms`` (milliseconds since the epoch) records when the work it holds began,
        for a run logged after the fact; default now.
        """
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        try:
            run = self.client.create_run(
                self.experiment_id, start_time=start_time_ms, run_name=name, tags=all_tags
            )
        except TrackingError:
            raise
        except Exception as exc:
            raise TrackingError(f"MLflow could not create run {name!r}: {exc}") from exc
        return str(run.info.run_id)

    def end_run(
        self, run_id: str, status: RunStatus = "FINISHED", *, end_time_ms: int | None = None
    ) -> None:
        """Close a run with a final status (at ``end_time_ms`` since the epoch; default now)."""
        self.client.set_terminated(run_id, status=status, end_time=end_time_ms)

    def rename_run(self, run_id: str, name: str) -> None:
        """Give a run a new name (what the MLflow UI lists it by)."""
        self.client.update_run(run_id, name=name)

    def find_runs(self, filter_string: str, *, max_results: int = 1000) -> list[str]:
        """Ids of the experiment's runs matching an MLflow search filter."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=filter_string, max_results=max_results
        )
        return [str(r.info.run_id) for r in runs]

    def search_runs(
        self, filter_string: str, *, order_by: list[str] | None = None, max_results: int = 1000
    ) -> list[RunSummary]:
        """The experiment's runs matching an MLflow search filter, as summaries.

        Args:
            filter_string: MLflow search filter.
            order_by: MLflow order clauses (e.g. ``["attributes.start_time DESC"]``).
            max_results: At most this many (MLflow allows up to 50000).
        """
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=filter_string,
            order_by=order_by,
            max_results=max_results,
        )
        return [_run_summary(r) for r in runs]

    def run_summary(self, run_id: str) -> RunSummary:
        """A run's status, start time, name, tags, metrics (latest values) and params."""
        return _run_summary(self.client.get_run(run_id))

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log parameters (values are stringified by MLflow)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        """Log finite metrics (NaN and inf are dropped)."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in _clean_metrics(metrics).items()]
        if items:
            self.client.log_batch(run_id, metrics=items)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_nested_run(
        self,
        parent_run_id: str,
        name: str,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str] | None = None,
        status: RunStatus = "FINISHED",
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
    ) -> str:
        """Create, fill and close a child run in one go (one per tuning trial).

        ``start_time_ms`` and ``end_time_ms`` (milliseconds since the epoch) are when the work
        really ran, so a run logged once it is over shows its true span (default: now).
        """
        import time

        from mlflow.entities import Metric, Param

        run_id = self.start_run(
            name, tags=tags, parent_run_id=parent_run_id, start_time_ms=start_time_ms
        )
        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        now = end_time_ms if end_time_ms is not None else int(time.time() * 1000)
        values = [Metric(k, v, now, 0) for k, v in _clean_metrics(metrics).items()]
        if len(items) <= 100 and len(values) <= 1000:  # MLflow's batch limits: one write
            self.client.log_batch(run_id, params=items, metrics=values)
        else:
            self.log_params(run_id, params)
            self.log_metrics(run_id, metrics)
        self.end_run(run_id, status, end_time_ms=end_time_ms)
        return run_id

    def log_artifact(
        self, run_id: str, path: str | Path, *, artifact_dir: str | None = None
    ) -> None:
        """Upload a local file as an artifact."""
        self.client.log_artifact(run_id, str(path), artifact_path=artifact_dir)

    def download_artifact(self, run_id: str, artifact_path: str, dst_dir: str | Path) -> Path:
        """Download one artifact of a run into ``dst_dir``; return the local path.

        Raises:
            TrackingError: The run or the artifact cannot be read.
        """
        try:
            local = self.client.download_artifacts(run_id, artifact_path, str(dst_dir))
        except Exception as exc:
            raise TrackingError(
                f"cannot download artifact {artifact_path!r} of run {run_id} from "
                f"{self.tracking_uri}: {exc}; check that the tracking server and its artifact "
                "store are reachable from this host"
            ) from exc
        return Path(local)

    def log_json(self, run_id: str, data: Mapping[str, Any], file_name: str) -> None:
        """Upload a mapping as a JSON artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / file_name
            path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
            self.client.log_artifact(run_id, str(path))

    def log_table(self, run_id: str, frame: pd.DataFrame, file_name: str) -> None:
        """Upload a DataFrame as a CSV artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / file_name
            frame.to_csv(path, index=False)
            self.client.log_artifact(run_id, str(path))

    # -- models ------------------------------------------------------------------------
    def log_model(
        self, run_id: str, model: Any, *, input_example: pd.DataFrame, name: str = "model"
    ) -> str:
        """Log a fitted scikit-learn model that MLflow serves on rows as clients send them.

        The input example's dtypes are the contract: the signature declares ``int64`` columns
        ``long``, floats ``double``, ``bool`` ``boolean``, text ``string``, and nullable
        ``Int64`` / ``boolean`` columns ``any`` (MLflow has no nullable integer); the model
        converts them to what it was trained on. A classifier's signature also takes
        ``params={"predict_method": "predict_proba"}``, which returns ``prediction`` and one
        ``proba_<class>`` column per class. Build the example with
        ``automl.data.as_received`` from canonical rows. The model loads with MLflow,
        scikit-learn and its own library only (see ``automl.tracking._pyfunc``).

        The run stays as it is (RUNNING while its cycle goes on): the model is logged with
        ``run_id=`` instead of inside ``mlflow.start_run(run_id)``, whose end would mark the run
        FINISHED and make a cycle killed afterwards look complete. No run becomes active. The
        logged model is created first in the run's experiment (without an active run MLflow
        would put it in the default experiment), with the run's params as ``log_model`` gives
        them.

        Returns:
            The model URI (``models:/m-...``).

        Raises:
            TrackingError: MLflow refused the model.
        """
        from mlflow.models import Model, ModelSignature, infer_signature

        from automl.tracking import _model_format, _pyfunc

        # cloudpickle on purpose: an XGBoost model in a scikit-learn pipeline is not skops-safe
        # without a trust list; MLflow would warn about it on every save.
        logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
        _model_format.use_installed_loader()
        features = _model_format.feature_kinds(input_example)
        try:
            rows = _pyfunc.to_model_frame(input_example, features)
            params = (
                {_pyfunc.PREDICT_METHOD: "predict"} if hasattr(model, "predict_proba") else None
            )
            inferred = infer_signature(rows, model.predict(rows), params=params)
            signature = ModelSignature(
                inputs=_model_format.input_schema(input_example),
                outputs=inferred.outputs,
                params=inferred.params,
            )
            logged = self.client.create_logged_model(
                self.experiment_id,
                name=name,
                source_run_id=run_id,
                params=dict(self.client.get_run(run_id).data.params),
            )
            with _global_uri(self.tracking_uri):
                info = Model.log(
                    artifact_path=None,
                    name=name,
                    run_id=run_id,
                    model_id=logged.model_id,
                    flavor=_model_format,
                    flavor_name="mlflow.sklearn",
                    sk_model=model,
                    features=features,
                    signature=signature,
                    input_example=input_example,
                    pip_requirements=_pip_requirements(),
                    serialization_format="cloudpickle",
                )
        except Exception as exc:
            raise TrackingError(f"MLflow could not log the model of run {run_id}: {exc}") from exc
        return str(info.model_uri)

    def register(
        self,
        model_uri: str,
        model_name: str,
        *,
        run_id: str,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelVersionInfo:
        """Register a logged model as a new version of ``model_name``."""
        try:
            # The registry resolves ``models:/m-...`` sources through the global tracking URI.
            with _global_uri(self.tracking_uri):
                return self._register(model_uri, model_name, run_id, tags, description)
        except TrackingError:
            raise
        except Exception as exc:
            raise TrackingError(f"could not register {model_uri} as {model_name!r}: {exc}") from exc

    def _register(
        self,
        model_uri: str,
        model_name: str,
        run_id: str,
        tags: Mapping[str, Any] | None,
        description: str | None,
    ) -> ModelVersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(model_name)
        except MlflowException:
            self.client.create_registered_model(model_name)
        # A tracking server checks that a ``models:/m-<id>`` source names the logged model it
        # was given (a local store does not); without model_id the server refuses it.
        model_id = (
            model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        )
        version = self.client.create_model_version(
            model_name,
            source=model_uri,
            run_id=run_id,
            tags={k: str(v) for k, v in (tags or {}).items()},
            description=description,
            model_id=model_id,
        )
        return self.get_version(model_name, str(version.version))

    def get_version(self, model_name: str, version: str) -> ModelVersionInfo:
        """A registered version by number."""
        mv = self.client.get_model_version(model_name, version)
        return _version_info(model_name, mv)

    def get_alias(self, model_name: str, alias: str) -> ModelVersionInfo | None:
        """The version an alias points at, or None (also when the model is not registered)."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
                return None
            raise TrackingError(f"could not read alias {alias!r} of {model_name!r}: {exc}") from exc
        return _version_info(model_name, mv)

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        """Point an alias at a version."""
        self.client.set_registered_model_alias(model_name, alias, version)

    def delete_alias(self, model_name: str, alias: str) -> None:
        """Remove an alias if it exists."""
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):
            self.client.delete_registered_model_alias(model_name, alias)

    def set_version_tags(self, model_name: str, version: str, tags: Mapping[str, Any]) -> None:
        """Set tags on a model version."""
        for key, value in tags.items():
            self.client.set_model_version_tag(model_name, version, key, str(value))

    def load_pyfunc(self, model_uri: str) -> tuple[Any, float]:
        """Load a model as MLflow would serve it; also return its artifacts' size in MB.

        The artifacts are downloaded once, measured, and loaded from that copy, so the model
        that is measured is the model that is loaded.
        """
        import mlflow.artifacts
        import mlflow.pyfunc

        from automl.tracking._model_format import use_installed_loader

        use_installed_loader()
        try:
            with tempfile.TemporaryDirectory() as tmp, _global_uri(self.tracking_uri):
                local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
                size = sum(f.stat().st_size for f in Path(local).rglob("*") if f.is_file())
                model = mlflow.pyfunc.load_model(local)
        except Exception as exc:
            raise TrackingError(
                f"could not load model {model_uri} with mlflow.pyfunc: {exc}"
            ) from exc
        return model, size / 1e6

    def download_model(self, model_name: str, version: str, dst_dir: str | Path) -> Path:
        """Copy a registered version's artifacts into ``dst_dir`` (made whole or not at all).

        The copy is written beside ``dst_dir`` and renamed into place, so a reader never sees
        a half-written model and two processes downloading at once both end with one copy.

        Raises:
            TrackingError: The version or its artifacts cannot be read.
        """
        import mlflow.artifacts

        dst = Path(dst_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        uri = f"models:/{model_name}/{version}"
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.") as tmp:
            try:
                with _global_uri(self.tracking_uri):
                    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            except Exception as exc:
                raise TrackingError(f"could not download model {uri}: {exc}") from exc
            with contextlib.suppress(OSError):  # another process put its copy first: keep it
                Path(local).rename(dst)
        if not (dst / "MLmodel").is_file():
            raise TrackingError(f"model {uri} downloaded to {dst} has no MLmodel file")
        return dst

    def find_versions(self, model_name: str, *, tag: str, value: str) -> list[ModelVersionInfo]:
        """Versions of ``model_name`` whose tag ``tag`` equals ``value``, newest first."""
        return self._search_versions(f"name = '{model_name}' and tags.`{tag}` = '{value}'")

    def find_run_versions(self, model_name: str, run_id: str) -> list[ModelVersionInfo]:
        """Versions of ``model_name`` registered from run ``run_id``, newest first."""
        return self._search_versions(f"name = '{model_name}' and run_id = '{run_id}'")

    def _search_versions(self, query: str) -> list[ModelVersionInfo]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(query)
        except MlflowException as exc:
            raise TrackingError(f"could not search model versions ({query}): {exc}") from exc
        versions = (_version_info(str(mv.name), mv) for mv in found)
        return sorted(versions, key=lambda v: int(v.version), reverse=True)

    def load_model(self, model: str | ModelVersionInfo) -> Any:
        """Load a model (scikit-learn flavour, so probabilities are available).

        A registered version given as :class:`ModelVersionInfo` is kept in memory for the next
        call (the :data:`MODEL_CACHE_SIZE` most recently used, per process), keyed by its
        immutable source, so a service that checks drift with the champion every few minutes
        downloads it once, not at every check, and a registry rebuilt under the same name and
        version numbers is not confused with the old one. Callers must not modify the model.

        Args:
            model: A model URI (loaded every time), or a registered version (cached).

        Raises:
            TrackingError: The model cannot be loaded.
        """
        model_uri = model if isinstance(model, str) else model.uri
        key = None if isinstance(model, str) else (self.tracking_uri, model.uri, model.source)
        if key is not None:
            with _MODEL_CACHE_LOCK:
                if key in _MODEL_CACHE:
                    _MODEL_CACHE.move_to_end(key)
                    return _MODEL_CACHE[key]
        import mlflow.sklearn

        try:
            with _global_uri(self.tracking_uri):
                loaded = mlflow.sklearn.load_model(model_uri)
        except Exception as exc:
            raise TrackingError(f"could not load model {model_uri}: {exc}") from exc
        if key is not None:
            with _MODEL_CACHE_LOCK:
                _MODEL_CACHE[key] = loaded
                while len(_MODEL_CACHE) > MODEL_CACHE_SIZE:
                    _MODEL_CACHE.popitem(last=False)
        return loaded
