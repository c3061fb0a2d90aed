"""Plays SignalWire's side of a call against a running server.

Signs and posts the voice webhook, reads the LaML it gets back, opens the `<Stream>` URL and
streams the audio with SignalWire's message shapes (string counters, UUID ids, no top-level
streamSid, connected version 0.2.0), in real time or `speed` times faster, posts the stream and
call status callbacks, and returns what happened.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from control.signatures import compute_signature
from server.simulator.audio import CallAudio

FRAME_S = 0.02


class SimulationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class StreamInstruction:
    url: str
    name: str | None
    track: str
    status_callback: str | None
    parameters: dict[str, str]


MAX_REDIRECTS = 10
"""`<Redirect>`s followed for one voice webhook before the simulated call gives up."""


@dataclass(slots=True)
class SimulatedCall:
    call_sid: str
    stream_sid: str
    laml: str
    frames_sent: int = 0
    close_code: int | None = None
    close_reason: str = ""
    errors: list[str] = field(default_factory=list)


def parse_stream(laml: str) -> StreamInstruction | None:
    """The `<Start><Stream>` of a LaML document, if it has one."""
    root = ET.fromstring(laml)
    stream = root.find("./Start/Stream")
    if stream is None:
        return None
    return StreamInstruction(
        url=stream.attrib["url"],
        name=stream.attrib.get("name"),
        track=stream.attrib.get("track", "inbound_track"),
        status_callback=stream.attrib.get("statusCallback"),
        parameters={p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")},
    )


class SignalWireSimulator:
    """One per run: holds the HTTP session and the project's identifiers."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        signing_key: str,
        account_sid: str | None = None,
    ) -> None:
        self._http = session
        self._base_url = base_url.rstrip("/")
        self._key = signing_key
        self.account_sid = account_sid or str(uuid.uuid4())

    async def post_signed(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        """Posts a form the way SignalWire does, signed; returns (status, body)."""
        signature = compute_signature(self._key, url, params.items())
        async with self._http.post(
            url, data=params, headers={"X-SignalWire-Signature": signature}
        ) as response:
            return response.status, await response.text()

    async def call(
        self,
        audio: CallAudio,
        *,
        to_number: str,
        from_number: str,
        speed: float = 1.0,
        dtmf: Sequence[tuple[float, str]] = (),
    ) -> SimulatedCall:
        call_sid = str(uuid.uuid4())
        common = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "Direction": "inbound",
            "From": from_number,
            "To": to_number,
        }
        laml = await self._answer(
            f"{self._base_url}/laml/voice", {**common, "CallStatus": "ringing"}
        )
        result = SimulatedCall(call_sid=call_sid, stream_sid=str(uuid.uuid4()), laml=laml)
        instruction = parse_stream(laml)
        if instruction is None:
            raise SimulationError(f"the LaML starts no stream: {laml}")

        status_url = f"{self._base_url}/laml/status"
        await self._call_status(status_url, common, "in-progress", 1)
        await self._stream_status(instruction, common, result.stream_sid, "stream-started")
        await self._stream_audio(instruction, audio, result, speed, dtmf)
        await self._stream_status(instruction, common, result.stream_sid, "stream-stopped")
        duration = max(1, round(audio.duration_ms / 1000))
        await self._call_status(status_url, common, "completed", 2, duration)
        return result

    async def _answer(self, url: str, params: dict[str, str]) -> str:
        """The call's LaML from its voice webhook, following `<Redirect>` as SignalWire does (a
        server holding the caller while its database is late): after the document's pauses,
        the redirect's URL is asked with the call's parameters, the call answered by then."""
        for _ in range(MAX_REDIRECTS + 1):
            status, laml = await self.post_signed(url, params)
            if status != 200:
                raise SimulationError(f"voice webhook answered {status}: {laml[:200]}")
            root = ET.fromstring(laml)
            redirect = root.find("Redirect")
            if redirect is None or root.find("./Start/Stream") is not None:
                return laml
            if redirect.attrib.get("method", "POST").upper() != "POST" or not redirect.text:
                raise SimulationError(f"a redirect this simulator does not follow: {laml}")
            pauses = [float(p.attrib.get("length", "1")) for p in root.iter("Pause")]
            await asyncio.sleep(sum(pauses))
            url, params = redirect.text.strip(), {**params, "CallStatus": "in-progress"}
        raise SimulationError(f"more than {MAX_REDIRECTS} redirects")

    async def _call_status(
        self,
        url: str,
        common: dict[str, str],
        status: str,
        sequence: int,
        duration: int | None = None,
    ) -> None:
        params = {
            **common,
            "CallStatus": status,
            "SequenceNumber": str(sequence),
            "Timestamp": format_datetime(datetime.now(UTC)),
            "CallbackSource": "call-progress-events",
        }
        if duration is not None:
            params["CallDuration"] = str(duration)
        await self.post_signed(url, params)

    async def _stream_status(
        self, instruction: StreamInstruction, common: dict[str, str], stream_sid: str, event: str
    ) -> None:
        if instruction.status_callback is None:
            return
        params = {
            "AccountSid": common["AccountSid"],
            "CallSid": common["CallSid"],
            "StreamSid": stream_sid,
            "StreamName": instruction.name or stream_sid,
            "StreamEvent": event,
            "Timestamp": datetime.now(UTC).isoformat(),
        }
        await self.post_signed(instruction.status_callback, params)

    async def _stream_audio(
        self,
        instruction: StreamInstruction,
        audio: CallAudio,
        result: SimulatedCall,
        speed: float,
        dtmf: Sequence[tuple[float, str]],
    ) -> None:
        both = instruction.track == "both_tracks" and audio.agent is not None
        tracks = ["inbound", "outbound"] if both else ["inbound"]
        pending_dtmf = sorted(dtmf)
        async with connect(instruction.url, compression=None, max_size=2**20) as ws:
            sequence = 0

            def nxt() -> str:
                nonlocal sequence
                sequence += 1
                return str(sequence)

            connected = {"event": "connected", "protocol": "Call", "version": "0.2.0"}
            await ws.send(json.dumps(connected))
            await ws.send(
                json.dumps(
                    {
                        "event": "start",
                        "sequenceNumber": nxt(),
                        "start": {
                            "streamSid": result.stream_sid,
                            "accountSid": self.account_sid,
                            "callSid": result.call_sid,
                            "tracks": tracks,
                            "customParameters": instruction.parameters,
                            "mediaFormat": {
                                "encoding": "audio/x-mulaw",
                                "sampleRate": 8000,
                                "channels": 1,
                            },
                        },
                    }
                )
            )
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                for index, (caller, agent) in enumerate(audio.frames()):
                    # Paced on an absolute schedule, so pacing errors do not accumulate.
                    delay = started + index * FRAME_S / speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    timestamp = str(index * 20)
                    chunk = str(index + 1)
                    frames = [("inbound", caller)]
                    if both and agent is not None:
                        frames.append(("outbound", agent))
                    for track, payload in frames:
                        await ws.send(
                            json.dumps(
                                {
                                    "event": "media",
                                    "sequenceNumber": nxt(),
                                    "media": {
                                        "track": track,
                                        "chunk": chunk,
                                        "timestamp": timestamp,
                                        "payload": base64.b64encode(payload).decode(),
                                    },
                                }
                            )
                        )
                        result.frames_sent += 1
                    while pending_dtmf and pending_dtmf[0][0] <= index * FRAME_S:
                        _at, digit = pending_dtmf.pop(0)
                        await ws.send(
                            json.dumps(
                                {
                                    "event": "dtmf",
                                    "sequenceNumber": nxt(),
                                    "dtmf": {"digit": digit, "duration": 250},
                                }
                            )
                        )
                await ws.send(json.dumps({"event": "stop", "sequenceNumber": nxt()}))
                await ws.wait_closed()
            except ConnectionClosed as exc:
                result.errors.append(f"stream closed early: {exc}")
            result.close_code = ws.close_code
            result.close_reason = ws.close_reason or ""
