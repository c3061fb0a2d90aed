"""SignalWire's side of a media stream, for the fake SignalWire (tests/support/fake_signalwire.py).

SignalWire is the websocket client of a stream: once a call's `<Start><Stream>` runs, or a
Streams REST request starts one, it connects to the stream's URL and sends `connected`, `start`
(the stream's sid, the call's sid, its tracks, `customParameters`, 8 kHz mu-law) and then a
`media` message per track every 20 ms (docs/protocols.md a), until the call ends (`stop`) or
the connection is lost. The audio is the call's own, on the call's timeline: a stream opened
3 s into the call begins with the call's audio at 3 s, its chunks and timestamps counted from
its own start, as SignalWire counts them. A key pressed (`CallTimeline.press`) goes out as a
`dtmf` message on the call's open streams.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from server.simulator.audio import FRAME_BYTES, ULAW_SILENCE, CallAudio

FRAME_S = 0.02
SILENCE = bytes((ULAW_SILENCE,)) * FRAME_BYTES
TRACKS_OF = {
    "inbound_track": ("inbound",),
    "outbound_track": ("outbound",),
    "both_tracks": ("inbound", "outbound"),
}


def new_stream_sid() -> str:
    """A `MZ…` SID of Twilio's shape (SignalWire's are UUIDs; nothing may rely on either)."""
    return "MZ" + uuid.uuid4().hex


@dataclass
class FakeStream:
    """One stream of a call, as SignalWire runs it."""

    sid: str
    call_sid: str
    url: str
    name: str | None
    track: str
    parameters: dict[str, str]
    opened_at: float = 0.0
    """Loop time the websocket opened (0 until it has)."""
    started_at_frame: int = 0
    """The call's frame (20 ms from the call's start) its first media message carried."""
    frames_sent: int = 0
    """Media frames sent, per track."""
    last_frame_at: float = 0.0
    """Loop time its last media message went out."""
    ended: str | None = None
    """How it ended: `stop` (the call ended), `connection_lost`, `refused` (never opened)."""
    close_code: int | None = None
    """The close code the server sent, if it closed the stream (1008: it refused it)."""
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once its `start` message has gone out."""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _keys: deque[str] = field(default_factory=deque)


@dataclass
class CallTimeline:
    """A call's audio from when it was answered, and its streams."""

    audio: CallAudio | None
    began: float
    """Loop time the call was answered: its timeline's 0."""
    account_sid: str
    streams: list[FakeStream] = field(default_factory=list)
    hung_up: bool = False

    def frame(self, index: int) -> tuple[bytes, bytes]:
        """The call's (caller, agent) 20 ms frames at `index`; silence past its audio."""
        audio = self.audio
        start = index * FRAME_BYTES
        if audio is None or start >= len(audio.caller):
            return SILENCE, SILENCE
        caller = audio.caller[start : start + FRAME_BYTES].ljust(FRAME_BYTES, SILENCE[:1])
        agent = SILENCE
        if audio.agent is not None:
            agent = audio.agent[start : start + FRAME_BYTES].ljust(FRAME_BYTES, SILENCE[:1])
        return caller, agent

    def press(self, digit: str) -> None:
        """The caller presses a key: a `dtmf` message on each open stream."""
        for stream in self.streams:
            if stream.ended is None:
                stream._keys.append(digit)

    def open(self) -> list[FakeStream]:
        return [s for s in self.streams if s.ended is None]


async def play(timeline: CallTimeline, stream: FakeStream) -> None:
    """Connects to the stream's URL and streams the call until it ends or the connection is
    lost; `stream.ended` says which, `stream.done` is set either way."""
    loop = asyncio.get_running_loop()
    tracks = TRACKS_OF[stream.track]
    sequence = 0

    def message(event: str, **body: object) -> str:
        nonlocal sequence
        sequence += 1
        return json.dumps({"event": event, "sequenceNumber": str(sequence), **body})

    try:
        async with connect(stream.url, compression=None, open_timeout=5, close_timeout=2) as ws:
            connected = {"event": "connected", "protocol": "Call", "version": "0.2.0"}
            await ws.send(json.dumps(connected))
            start = {
                "streamSid": stream.sid, "accountSid": timeline.account_sid,
                "callSid": stream.call_sid, "tracks": list(tracks),
                "customParameters": stream.parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }  # fmt: skip
            await ws.send(message("start", start=start))
            stream.opened_at = loop.time()
            first = stream.started_at_frame = round((stream.opened_at - timeline.began) / FRAME_S)
            stream.started.set()
            chunk = 0
            while True:
                # Paced on an absolute schedule from the call's answer: the call's clock.
                due = timeline.began + (first + chunk) * FRAME_S
                if (delay := due - loop.time()) > 0:
                    await asyncio.sleep(delay)  # real time passing, not a wait for an event
                if timeline.hung_up:
                    break
                caller, agent = timeline.frame(first + chunk)
                chunk += 1
                for track in tracks:
                    payload = caller if track == "inbound" else agent
                    media = {"track": track, "chunk": str(chunk),
                             "timestamp": str((chunk - 1) * 20),
                             "payload": base64.b64encode(payload).decode()}  # fmt: skip
                    await ws.send(message("media", media=media))
                stream.frames_sent = chunk
                stream.last_frame_at = loop.time()
                while stream._keys:
                    digit = stream._keys.popleft()
                    await ws.send(message("dtmf", dtmf={"digit": digit, "duration": 250}))
            await ws.send(message("stop"))
            stream.ended = "stop"
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        stream.ended = "refused" if not stream.started.is_set() else f"connection_lost: {exc!r}"
    except ConnectionClosed as exc:
        stream.close_code = exc.rcvd.code if exc.rcvd is not None else None
        stream.ended = "connection_lost" if stream.ended is None else stream.ended
    finally:
        if stream.ended is None:
            stream.ended = "cancelled"
        stream.done.set()


def stream_for(
    timeline: CallTimeline,
    call_sid: str,
    url: str,
    *,
    name: str | None,
    track: str,
    parameters: Mapping[str, str],
) -> FakeStream:
    stream = FakeStream(new_stream_sid(), call_sid, url, name, track, dict(parameters))
    timeline.streams.append(stream)
    return stream
