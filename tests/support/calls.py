"""Answering a call the way SignalWire would, to get a real stream URL and token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp

from server.app import RunningServer
from server.settings import Settings
from server.simulator.client import SignalWireSimulator, StreamInstruction, parse_stream


@dataclass(frozen=True, slots=True)
class AnsweredCall:
    call_sid: str
    stream: StreamInstruction

    def start_message(self, **overrides: object) -> dict[str, object]:
        """A SignalWire-shaped start message for this call."""
        start: dict[str, object] = {
            "streamSid": str(uuid.uuid4()),
            "accountSid": str(uuid.uuid4()),
            "callSid": self.call_sid,
            "tracks": ["inbound", "outbound"],
            "customParameters": dict(self.stream.parameters),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        start.update(overrides)
        return {"event": "start", "sequenceNumber": "1", "start": start}


def simulator(
    http: aiohttp.ClientSession, srv: RunningServer, settings: Settings
) -> SignalWireSimulator:
    return SignalWireSimulator(
        http, base_url=srv.public_url, signing_key=settings.secret("signalwire_signing_key")
    )


async def answer_call(
    http: aiohttp.ClientSession, srv: RunningServer, settings: Settings, to_number: str
) -> AnsweredCall:
    call_sid = str(uuid.uuid4())
    status, laml = await simulator(http, srv, settings).post_signed(
        f"{srv.public_url}/laml/voice",
        {
            "AccountSid": str(uuid.uuid4()),
            "CallSid": call_sid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": "+15550199999",
            "To": to_number,
        },
    )
    assert status == 200, laml
    stream = parse_stream(laml)
    assert stream is not None, laml
    return AnsweredCall(call_sid, stream)
