"""deploy/kubernetes: rendered with ``kubectl kustomize``, validated against the Kubernetes
schemas with ``kubernetes-validate``, and checked for what the deployment relies on.

Skipped when ``kubectl`` (``$KUBECTL``, else on PATH) or the ``kubernetes_validate``
module is missing. The manifests render with kustomize v2.0.3 (Debian's
kubernetes-client 1.20) as well as current kubectl (v5, which warns that ``bases`` and
``patchesStrategicMerge`` are deprecated: they are kept for the old one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bragi.cli.serve import EXIT_WITHIN, REQUESTS_GRACE
from bragi.config import load_settings
from bragi.models.catalog import Catalog
from bragi.models.manager import KILL_GRACE, STOP_TIMEOUT

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")
# The oldest and the newest Kubernetes that kubernetes-validate carries schemas for.
VERSIONS = ("1.25.0", "latest")

pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is missing (Debian: apt-get install kubernetes-client; or set KUBECTL)",
)

Manifest = dict[str, Any]


def render(kustomization: str) -> list[Manifest]:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(DEPLOY / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/gpu"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    return request.param, render(request.param)


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(pod_spec: Manifest, name: str, init: bool = False) -> Manifest:
    key = "initContainers" if init else "containers"
    return next(c for c in pod_spec[key] if c["name"] == name)


def env(spec: Manifest) -> dict[str, str]:
    return {item["name"]: item["value"] for item in spec.get("env", [])}


def test_schemas(rendered: tuple[str, list[Manifest]]) -> None:
    validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is missing (pip install kubernetes-validate)",
    )
    _, manifests = rendered
    latest = validate.latest_version()
    for version in VERSIONS:
        for manifest in manifests:
            validate.validate(manifest, latest if version == "latest" else version, strict=True)


def test_resources(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    kinds = sorted(m["kind"] for m in manifests)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "PersistentVolumeClaim",
            "Secret",
            "Secret",
            "Service",
        ]
    )
    for manifest in manifests:
        assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "bragi"


def test_server_pods(rendered: tuple[str, list[Manifest]]) -> None:
    overlay, manifests = rendered
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    server = container(pod, "bragi")
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    assert server["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert server["startupProbe"]["httpGet"]["path"] == "/health/ready"
    assert {"cpu", "memory"} <= server["resources"]["requests"].keys()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns replicas"

    mounts = {m["name"]: m for m in server["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["models"]["readOnly"] is True
    assert volumes["models"]["persistentVolumeClaim"]["readOnly"] is True
    assert env(server)["BRAGI_MODEL_CACHE_DIR"] == mounts["models"]["mountPath"]
    assert env(server)["HF_HUB_OFFLINE"] == "1"
    assert mounts["config"]["mountPath"] == "/etc/bragi"
    assert mounts["data"]["mountPath"] == "/data"

    gpu = server["resources"].get("limits", {}).get("nvidia.com/gpu")
    if overlay == "overlays/gpu":
        assert gpu == 1
        assert server["image"].endswith(":cuda")
        assert env(server)["BRAGI_DEVICE"] == "cuda"
    else:
        assert gpu is None
        assert server["image"].endswith(":cpu")


def test_the_server_stops_within_the_grace_period(rendered: tuple[str, list[Manifest]]) -> None:
    """Past terminationGracePeriodSeconds the kubelet kills the pod: bragi serve's own
    bound on stopping (requests, then downloads and engines, then the kill) fits in it."""
    _, manifests = rendered
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert EXIT_WITHIN == REQUESTS_GRACE + STOP_TIMEOUT + KILL_GRACE
    assert pod["terminationGracePeriodSeconds"] > EXIT_WITHIN


def test_references_resolve(rendered: tuple[str, list[Manifest]]) -> None:
    """Generated names (with their hash suffix) are what the pods refer to."""
    _, manifests = rendered
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    deployment = one(manifests, "Deployment")
    job = one(manifests, "Job")
    for workload in (deployment, job):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "secret" in volume:
                assert ("Secret", volume["secret"]["secretName"]) in names
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names
        for spec in pod["containers"] + pod.get("initContainers", []):
            for source in spec.get("envFrom", []):
                assert ("Secret", source["secretRef"]["name"]) in names
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    service = one(manifests, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in {
        port["name"] for port in container(deployment["spec"]["template"]["spec"], "bragi")["ports"]
    }


def test_model_cache_is_shared(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    claim = one(manifests, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pull = one(manifests, "Job")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in container(pull, "pull")["volumeMounts"]}
    assert not mounts["models"].get("readOnly", False)
    assert env(container(pull, "pull"))["BRAGI_MODEL_CACHE_DIR"] == mounts["models"]["mountPath"]


def test_config_is_valid(tmp_path: Path) -> None:
    """The ConfigMap's config.yaml loads under today's settings and names known models."""
    manifests = render("base")
    config = tmp_path / "config.yaml"
    config.write_text(one(manifests, "ConfigMap")["data"]["config.yaml"])
    settings = load_settings(config)
    assert settings.allow_downloads is False
    assert settings.models
    catalog = Catalog.builtin()
    for alias, model in settings.models.items():
        assert model.model in catalog, f"{alias}: {model.model} is not in the catalog"


def test_pull_job_pulls_every_configured_model(tmp_path: Path) -> None:
    """Run the Job's script with a stand-in `bragi` that records its arguments."""
    manifests = render("base")
    config = tmp_path / "config.yaml"
    config.write_text(one(manifests, "ConfigMap")["data"]["config.yaml"])
    pull = container(one(manifests, "Job")["spec"]["template"]["spec"], "pull")
    assert pull["command"][:2] == ["sh", "-ec"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"  # this interpreter, which can import bragi
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    record = tmp_path / "pulled"
    fake = bin_dir / "bragi"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {record}\n')
    fake.chmod(0o755)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "BRAGI_CONFIG": str(config),
        **env(pull),
    }
    subprocess.run(["sh", "-ec", pull["command"][2]], env=environment, check=True, timeout=60)
    settings = load_settings(config)
    assert settings.models
    expected = [f"pull {model.model}" for model in settings.models.values()]
    assert record.read_text().splitlines() == expected
