"""Prometheus metrics of storage (default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DB_WRITE_SECONDS = Histogram(
    "voxsouth_db_write_seconds",
    "One batch of media events written to Postgres.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
DB_WRITE_FAILURES = Counter(
    "voxsouth_db_write_failures_total",
    "Batches Postgres did not take, by cause: unavailable or slow (not taken within 2 s; both "
    "journaled), invalid (then written one event at a time).",
    ["cause"],
)
EVENTS_WRITTEN = Counter("voxsouth_events_written_total", "Media events written to Postgres.")
EVENTS_JOURNALED = Counter(
    "voxsouth_events_journaled_total", "Media events parked in the local journal."
)
EVENTS_REJECTED = Counter(
    "voxsouth_events_rejected_total",
    "Media events Postgres refused as invalid, kept in the journal's rejected file.",
)
PARTIALS_DROPPED = Counter(
    "voxsouth_partials_dropped_total",
    "Interim transcripts not announced because Postgres was away or the writer was full "
    "(never journaled: a stale partial means nothing; the final segment is kept).",
)
# Summed over live workers (server.workers): a dead worker's journal counts again once its
# successor, which takes its journal folder, has started.
WRITER_QUEUE = Gauge(
    "voxsouth_event_writer_queue_depth",
    "Media events waiting to be written.",
    multiprocess_mode="livesum",
)
JOURNAL_PENDING = Gauge(
    "voxsouth_event_journal_pending",
    "Media events in the journal waiting for Postgres.",
    multiprocess_mode="livesum",
)
