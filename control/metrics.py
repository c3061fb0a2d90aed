"""Prometheus metrics of the control plane (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
FEED_SUBSCRIBERS = Gauge(
    "voxsouth_feed_subscribers",
    "Live feed clients connected to this server.",
    multiprocess_mode="livesum",
)
FEED_EVENTS = Counter(
    "voxsouth_feed_events_total", "Feed events this process read and handed out, by type.", ["type"]
)
FEED_OVERFLOWS = Counter(
    "voxsouth_feed_overflows_total", "Live feed clients told to resync because they fell behind."
)
RECORDING_ACTIONS = Counter(
    "voxsouth_recording_actions_total",
    "Call recordings this process started or stopped at SignalWire (action: start, stop), by"
    " outcome: ok, failed, or unconfigured (no SignalWire REST credentials: nothing was done).",
    ["action", "outcome"],
)
CALL_RECONCILES = Counter(
    "voxsouth_call_reconciles_total",
    "Calls left open by a lost process looked up at SignalWire, by outcome: applied (its end,"
    " from SignalWire, stored), live (still live there: asked again later), stale (its end was"
    " stored meanwhile), not_found (404), rejected (another 4xx), unavailable (5xx, 429,"
    " timeouts, circuit open), malformed, error (storing the answer failed), out_of_time (the"
    " sweep's budget ran out first).",
    ["outcome"],
)
