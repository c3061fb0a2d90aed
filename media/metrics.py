"""Prometheus metrics of the media plane (default registry; server/ exposes it on /metrics).

Labels are bounded sets (track, reason kind); never call or stream ids. Every gauge says how a
server of several worker processes (server.workers) adds up its workers' values
(`multiprocess_mode`; the `live` modes forget a worker once it has exited).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STREAMS_ACTIVE = Gauge(
    "voxsouth_media_streams_active",
    "Media streams open on this server.",
    multiprocess_mode="livesum",
)
CALLS_ACTIVE = Gauge(
    "voxsouth_media_calls_active",
    "Calls with at least one open media stream.",
    multiprocess_mode="livesum",
)
STREAMS_TOTAL = Counter(
    "voxsouth_media_streams_total", "Media streams ended, by how they ended.", ["outcome"]
)
STREAMS_RESUMED = Counter(
    "voxsouth_media_streams_resumed_total",
    "Streams that took over a call from an earlier, dropped stream of it on this process.",
)
LOOP_LAG = Histogram(
    "voxsouth_event_loop_lag_seconds",
    "How late the media plane's event loop ran a callback asked for every 100 ms: the delay "
    "every frame pays on top of its own processing.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
)
STREAM_ERRORS = Counter(
    "voxsouth_media_stream_errors_total",
    "Streams closed for bad input, or bad input tolerated, by kind.",
    ["kind"],
)
REDACTIONS = Counter(
    "voxsouth_redactions_total",
    "Sensitive spans replaced in stored transcript text, by kind (media.redaction).",
    ["kind"],
)
FRAMES_RECEIVED = Counter(
    "voxsouth_media_frames_received_total", "Media frames received.", ["track"]
)
FRAMES_LOST = Counter(
    "voxsouth_media_frames_lost_total", "Media frames missing from chunk numbering.", ["track"]
)
AUDIO_LOST = Counter(
    "voxsouth_media_audio_lost_seconds_total", "Seconds of audio missing in streams.", ["track"]
)
FRAME_SECONDS = Histogram(
    "voxsouth_media_frame_processing_seconds",
    "Per-message work (parse, decode, VAD), sampled one message in 16.",
    # Fine below 50 us: the budget per frame is 25 us, and quantiles interpolate in buckets.
    buckets=(2.5e-6, 5e-6, 7.5e-6, 1e-5, 1.5e-5, 2e-5, 2.5e-5, 3.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3),
)
UTTERANCES = Counter("voxsouth_utterances_total", "Utterances found by endpointing.", ["track"])
EARLY_DECODES = Counter(
    "voxsouth_early_decodes_total",
    "Utterances decoded ahead of the endpointing hangover, by outcome: used (no more speech, "
    "the text is the utterance's) or void (the speaker went on; the decode was wasted).",
    ["outcome"],
)
OFFLINE_PARTIALS = Counter(
    "voxsouth_offline_partials_total",
    "Partial decodes of utterances still being spoken, by outcome: shown (on the feed and to "
    "phrase rules), stale (the utterance ended or a newer partial came first) or shed (no "
    "transcription worker to spare: partials stop under load).",
    ["outcome"],
)
OFFLINE_PARTIALS_ACTIVE = Gauge(
    "voxsouth_offline_partials_active",
    "1 while the offline engine had a worker to spare for the latest partial decode asked for, "
    "0 while partials are shed under load.",
    # The latest asked for, whichever worker asked: a worker with no calls would hold a min at 0.
    multiprocess_mode="livemostrecent",
)
TRANSCRIPTION_LATENCY = Histogram(
    "voxsouth_transcription_latency_seconds",
    "End of speech (last voiced frame received) to final text.",
    buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
TRANSCRIPTION_SECONDS = Histogram(
    "voxsouth_transcription_decode_seconds",
    "Time one utterance spends in the engine.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
TRANSCRIPTION_QUEUE = Gauge(
    "voxsouth_transcription_queue_depth",
    "Utterances waiting for a transcription worker.",
    multiprocess_mode="livesum",
)
CLOUD_ERRORS = Counter(
    "voxsouth_cloud_transcription_errors_total",
    "Cloud transcription sessions ended by an error, by service and error (circuit_open: not "
    "tried, the service kept failing); the track goes on with the offline engine.",
    ["service", "code"],
)
CLOUD_CIRCUIT_OPEN = Gauge(
    "voxsouth_cloud_transcription_circuit_open",
    "1 while new streams skip a cloud service that keeps failing (the offline engine hears them).",
    ["service"],
    multiprocess_mode="livemax",  # each worker has its own circuit: 1 if any skips the service
)
CLOUD_STANDINS = Counter(
    "voxsouth_cloud_transcription_standins_total",
    "Utterances the offline engine transcribed in a cloud service's place, by service and why: "
    "failed (its session ended) or late (not covered within the grace).",
    ["service", "reason"],
)
TRANSCRIPTION_SKIPPED = Counter(
    "voxsouth_transcription_skipped_total",
    "Utterances never transcribed for want of time, by what their words were for: "
    "consent (a turn that may decide consent: an answer to a request, the agent's words before "
    "it, the agent's opening), conversation, agent_after (the agent once consent is decided).",
    ["rank"],
)
DROPPED_WORK = Counter("voxsouth_dropped_work_total", "Work skipped to keep up, by kind.", ["kind"])
HELD_DROPPED = Counter(
    "voxsouth_consent_held_dropped_total",
    "Transcript segments and digits held for all-party consent, then dropped (refused, never "
    "given, or too many held).",
)
CONSENT_FINDINGS = Counter(
    "voxsouth_consent_findings_total",
    "Disclosures and consent answers detected, by detector and verdict.",
    ["detector", "verdict"],
)
ESCALATIONS_RAISED = Counter(
    "voxsouth_escalations_raised_total",
    "Escalations raised, by rule kind and severity.",
    ["kind", "severity"],
)
