"""deploy/ stays in step with the code: every metric it watches is one the server exports, the
Kubernetes manifests are valid against Kubernetes' own schemas, and compose reads its file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

import control.metrics
import control.signalwire
import media.metrics
import server.middleware
import storage.metrics

DEPLOY = Path(__file__).parents[2] / "deploy"
# Imported for their metrics, which register on import.
assert control.metrics and control.signalwire and media.metrics and server.middleware
assert storage.metrics


def exported_samples() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Labelled metrics export no sample until a label set is used: add their sample names.
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}
    for family in REGISTRY.collect():
        names.update(f"{family.name}{s}" for s in suffixes.get(family.type, ()))
    return names


def test_alerts_and_dashboard_only_use_metrics_the_server_exports() -> None:
    used = set()
    for path in [DEPLOY / "prometheus" / "alerts.yml", DEPLOY / "grafana/dashboards/voxsouth.json"]:
        used |= set(re.findall(r"\bvoxsouth_[a-z_]+", path.read_text()))
    assert used, "deploy files reference no metrics"
    assert used <= exported_samples(), used - exported_samples()


def test_the_container_runs_in_production_mode_as_a_non_root_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "VOXSOUTH_ENV=production" in dockerfile
    assert re.search(r"^USER voxsouth$", dockerfile, re.MULTILINE)


KUBERNETES_VERSION = "1.30.0"
"""The oldest Kubernetes the manifests are for (autoscaling/v2, policy/v1, sidecar-free)."""


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def test_the_kubernetes_manifests_are_valid_against_the_kubernetes_schemas() -> None:
    kinds = []
    for name, doc in manifests():
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{name} {doc['kind']}: {exc.message} at {exc.path}") from exc
        kinds.append(doc["kind"])
    assert {"StatefulSet", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "ConfigMap"} <= set(kinds)  # fmt: skip


def test_a_pod_drains_before_it_stops_and_scales_on_the_streams_it_carries() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in manifests()}
    pod = docs[("StatefulSet", "voxsouth")]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = float(docs[("ConfigMap", "voxsouth")]["data"]["VOXSOUTH_DRAIN_TIMEOUT_S"])
    # SIGTERM comes after the preStop pause; the drain must end before the kubelet's SIGKILL.
    assert pause + drain < pod["terminationGracePeriodSeconds"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"  # fails draining
    hpa = docs[("HorizontalPodAutoscaler", "voxsouth")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "voxsouth"
    [metric] = hpa["metrics"]
    served = metric["pods"]["metric"]["name"]
    assert served in exported_samples()
    rules = yaml.safe_load(docs[("ConfigMap", "voxsouth-adapter-rules")]["data"]["config.yaml"])
    assert [r["name"]["as"] for r in rules["rules"]] == [served]
    assert re.findall(r"\bvoxsouth_[a-z_]+", rules["rules"][0]["seriesQuery"]) == [served]


def test_the_compose_file_is_read_by_docker_compose_and_needs_its_secrets() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        if os.environ.get("VOXSOUTH_REQUIRE_COMPOSE") == "1":
            pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    secrets = {
        "POSTGRES_PASSWORD": "p", "VOXSOUTH_PUBLIC_URL": "https://voice.example.com",
        "VOXSOUTH_MEDIA_PUBLIC_URL": "wss://voice.example.com/media",
        "VOXSOUTH_SIGNALWIRE_SIGNING_KEY": "k", "VOXSOUTH_STREAM_TOKEN_SECRET": "s",
        "VOXSOUTH_CREDENTIALS_KEY": "c", "GRAFANA_ADMIN_PASSWORD": "g",
    }  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k not in secrets}
    read = [compose, "-f", str(DEPLOY / "compose.yaml"), "config"]
    done = subprocess.run(read, env={**base, **secrets}, capture_output=True, text=True,
                          check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    server = config["services"]["voxsouth"]
    assert server["environment"]["VOXSOUTH_PUBLIC_URL"] == "https://voice.example.com"
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    missing = subprocess.run(read, env=base, capture_output=True, text=True, check=False,
                             timeout=60)  # fmt: skip
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD" in missing.stderr
