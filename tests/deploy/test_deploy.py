"""The deployment files parse and keep their promises: non-root, probes, secrets by reference.

No Docker engine or cluster runs here (``kubectl --dry-run=client`` needs an API server), so
the files are checked structurally with a YAML parser.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from automl.config import PipelineSpec

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: A password written into a URL (user:password@host) rather than taken from a variable.
LITERAL_SECRET = re.compile(r"://[^:/@\s]+:(?!\$)[^@\s]+@")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|ROOT_USER")


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text(encoding="utf-8")) if d]


def test_image_is_slim_non_root_pinned_and_health_checked() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", f) for f in froms)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text
    lock = (DEPLOY / "requirements.lock").read_text(encoding="utf-8").splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins)
    names = {line.split("==")[0].lower() for line in pins}
    assert {"optuna", "mlflow", "psycopg2-binary", "boto3", "xgboost", "s3fs", "fsspec"} <= names


def test_compose_topology_and_secrets_from_environment() -> None:
    (compose,) = _docs("docker-compose.yml")
    services = compose["services"]
    assert {"postgres", "minio", "minio-bucket", "mlflow", "automl", "worker"} <= set(services)
    mlflow_cmd = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri" in mlflow_cmd and "postgresql" in mlflow_cmd
    assert "--artifacts-destination s3://" in mlflow_cmd
    assert services["automl"]["command"][:2] == ["serve", "/pipelines"]
    assert "--port" in services["automl"]["command"] and "0.0.0.0" in services["automl"]["command"]
    assert services["worker"]["command"][0] == "worker"
    assert services["worker"]["deploy"]["replicas"] >= 1  # scaled with --scale worker=N
    assert "mc mb" in " ".join(services["minio-bucket"]["command"])
    # Scored rows land in MinIO (bucket scores), read as an object-store source, not a volume.
    assert "local/scores" in " ".join(services["minio-bucket"]["command"])
    assert not any("landing" in v for v in services["automl"].get("volumes", []))
    assert "landing" not in (compose.get("volumes") or {})
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert key in services["automl"]["environment"]
    # Room for the workers' connections (docs/scaling.md, "Sizing"): above PostgreSQL's 100.
    (setting,) = [c for c in services["postgres"]["command"] if "max_connections" in c]
    assert int(re.search(r"(\d+)\}?$", setting).group(1)) >= 200  # type: ignore[union-attr]
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    for var in ("POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        assert f"${{{var}:?" in text  # required from the environment
    assert not LITERAL_SECRET.findall(text)
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), (key, value)


def test_kubernetes_manifests() -> None:
    docs = [d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in _docs(f"k8s/{f.name}")]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    service = by_name["Deployment", "automl-service"]["spec"]
    assert service["replicas"] == 1 and service["strategy"]["type"] == "Recreate"
    (container,) = service["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    worker = by_name["Deployment", "automl-worker"]["spec"]
    assert worker["template"]["spec"]["containers"][0]["args"][:3] == [
        "worker",
        "--pipeline",
        "/pipelines/churn.yaml",
    ]
    assert "Secret" not in {d["kind"] for d in docs}  # referenced, never shipped with values
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            for env in c.get("env", []):
                if re.search("PASSWORD|SECRET|KEY", env["name"]):
                    assert "secretKeyRef" in env["valueFrom"], env
    env_names = {e["name"] for e in container.get("env", [])}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env_names
    config = by_name["ConfigMap", "automl-pipelines"]
    for text in config["data"].values():
        spec = PipelineSpec.model_validate(yaml.safe_load(text))
        assert spec.tuning.is_distributed
        assert spec.data.source.kind == "object_store"
        assert not LITERAL_SECRET.findall(text)


def test_compose_pipelines_are_valid_distributed_specs() -> None:
    for path in (DEPLOY / "pipelines").glob("*.yaml"):
        spec = PipelineSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        storage = spec.tuning.storage or ""
        assert spec.tuning.is_distributed
        assert spec.data.source.kind == "object_store"
        assert spec.data.source.url.startswith("s3://scores/")
        assert ":" not in storage.split("://", 1)[1].split("@")[0]  # user, no password
