"""deploy/ stays in step with the code: every metric it watches is one the server exports."""

from __future__ import annotations

import re
from pathlib import Path

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
