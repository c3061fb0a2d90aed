"""Prometheus metrics of the control plane (default registry)."""

from __future__ import annotations

from prometheus_client import Counter

SIGNATURE_FAILURES = Counter(
    "voxsouth_webhook_signature_failures_total",
    "Webhook requests refused for a missing or wrong signature.",
    ["route"],
)
WEBHOOK_OUTCOMES = Counter(
    "voxsouth_webhook_outcomes_total",
    "What webhooks did: call opened, unknown number, stale or duplicate callback, ...",
    ["route", "outcome"],
)
