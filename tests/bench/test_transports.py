"""bench.transports at its smallest point on every installed transport (real processes and
sockets on loopback): every frame sent is processed by both servers, and each transport is in
the report. Figures are not checked: the machine is shared."""

from __future__ import annotations

import pytest

from bench.frame_path import MessageSource
from bench.transport_servers import BUCKET_NS, KINDS, TRANSPORTS, Meter
from bench.transports import TITLES, check_template, detail_row, summary_table, sweep
from server.simulator.audio import read_call_audio
from tests.conftest import SPEECH, timeout

STREAMS = 2
SECONDS = 0.2


def test_media_messages_are_signalwires_with_the_send_time_where_servers_read_it() -> None:
    check_template(MessageSource(read_call_audio(SPEECH / "two_party.wav")))


def test_delay_percentiles_are_bucket_upper_edges() -> None:
    meter = Meter()
    meter.counts[0] = 98  # under 20 µs
    meter.counts[49] = 1  # 0.98-1.00 ms
    meter.counts[-1] = 1  # past the last edge
    assert meter.percentile_ms(0.5) == BUCKET_NS / 1e6
    assert meter.percentile_ms(0.99) == 1.0
    assert meter.percentile_ms(1.0) == float("inf")


@pytest.mark.timeout(timeout(60))
def test_every_transport_processes_every_frame() -> None:
    transports = tuple(TRANSPORTS)
    points = sweep(transports, KINDS, [STREAMS], SECONDS)

    assert [(p.transport, p.kind) for p in points] == [(t, k) for t in transports for k in KINDS]
    for p in points:
        row = detail_row(p)
        assert p.connected == STREAMS, row
        assert p.sent == STREAMS * 2 * round(SECONDS * 50), row
        assert p.server.frames == p.sent and p.lost == 0, row
        assert p.server.errors == 0 and p.dropped == 0, row
    table = summary_table(points, transports)
    for transport in transports:
        assert TITLES[transport] in table
