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
FEED_POSITIONED = Counter(
    "voxsouth_feed_positioned_total",
    "Feed rows this process gave their positions, as the feed's sequencer (one process at a"
    " time is; a rate that stops on every process while rows are written means none is).",
)
FEED_OVERFLOWS = Counter(
    "voxsouth_feed_overflows_total", "Live feed clients told to resync because they fell behind."
)
RECORDING_ACTIONS = Counter(
    "voxsouth_recording_actions_total",
    "Call recordings this process started, stopped, paused or resumed at SignalWire (action:"
    " start, stop, pause, resume; pause and resume follow a call's secure mode), by outcome: ok,"
    " failed, or unconfigured (no SignalWire REST credentials: nothing was done).",
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
RESTREAMS = Counter(
    "voxsouth_restreams_total",
    "Media streams this process asked SignalWire to start for calls whose process was lost"
    " mid-call, by outcome: started (SignalWire started it; the call is heard again once it"
    " lands), ended (the call is over or unknown there: not restarted), rejected (another 4xx),"
    " unavailable (5xx, 429, timeouts, circuit open), malformed, error, out_of_time (the round's"
    " budget ran out first); and gave_up, once per call whose attempts for a loss ran out (the"
    " reconcile and unknown timeout rules then take it).",
    ["outcome"],
)
RETENTION_DELETED = Counter(
    "voxsouth_retention_deleted_total",
    "Rows the retention sweeper deleted because their org keeps them no longer, by kind:"
    " transcripts, recordings (at SignalWire, then here), dtmf, escalations, feed, audit.",
    ["kind"],
)
RETENTION_FAILURES = Counter(
    "voxsouth_retention_failures_total",
    "Deletions the retention sweeper could not make (kind recordings: SignalWire did not delete"
    " the audio; the recording stays listed and is tried again at the next sweep).",
    ["kind"],
)
ERASURES = Counter(
    "voxsouth_erasures_total",
    "Erasure requests carried out (scope: call, phone_number), by outcome: done, live (a call"
    " still in progress: refused), signalwire_failed (a recording not deleted: nothing erased).",
    ["scope", "outcome"],
)
CAMPAIGN_CALLS = Counter(
    "voxsouth_campaign_calls_total",
    "What the campaign dialler did with each target it claimed or each call that ended: placed,"
    " do_not_call (skipped), outside_window (deferred to its calling hours), rejected (SignalWire"
    " refused the call), unavailable (SignalWire did not answer: the call may exist), error; and"
    " per ended attempt, retry or done.",
    ["outcome"],
)
WEBHOOK_DELIVERIES = Counter(
    "voxsouth_webhook_deliveries_total",
    "Outbound webhook deliveries tried, by outcome: delivered (2xx), retry (another answer, a"
    " timeout or a refused address: tried again later), failed (a day of retries: given up).",
    ["outcome"],
)
EMAILS = Counter(
    "voxsouth_emails_total",
    "Emails the outbox tried to send, by kind (booking_reminder, invitation…) and outcome: sent,"
    " retry (the server refused it or was away: tried again later), failed (a day of retries).",
    ["kind", "outcome"],
)
TRANSLATIONS = Counter(
    "voxsouth_translations_total",
    "Calls whose transcript the translator tried, by outcome: done, failed (the service failed"
    " or answered what was not asked for: the call is tried again later).",
    ["outcome"],
)
TTS_RENDERS = Counter(
    "voxsouth_tts_renders_total",
    "Prompts a text-to-speech engine was asked to render, by engine and outcome: ok, timeout,"
    " connection_error, unauthorized, rate_limited, server_error, rejected (the text or voice),"
    " malformed (an answer with no usable audio), engine_error, circuit_open (not asked).",
    ["engine", "outcome"],
)
TTS_CIRCUIT_OPEN = Gauge(
    "voxsouth_tts_circuit_open",
    "1 while a text-to-speech engine's circuit breaker is open or half-open, else 0.",
    ["engine"],
    multiprocess_mode="livemax",  # each worker has its own adapter: 1 if any's circuit is open
)
AUDIO_UPLOADS = Counter(
    "voxsouth_audio_uploads_total",
    "Audio files uploaded, by outcome: stored, or the refusal's code (UNSUPPORTED_AUDIO…).",
    ["outcome"],
)
