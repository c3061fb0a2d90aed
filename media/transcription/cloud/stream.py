"""One track's live connection to a cloud speech service: the I/O around a sans-I/O protocol
(`assemblyai.py`, `deepgram.py`), on picows.

Audio goes out as it arrives: `feed` writes each whole chunk to the socket at once (no queue,
no sender task to wake: with hundreds of calls each woken sender cost more of the media loop
than the audio itself), and each message the service sends becomes results handed to
`on_result` on the event loop. Audio fed before the session is open waits, bounded, and goes
first. Every way a session can fail (connection refused, handshake rejected, a close code, a
malformed message, a backlog the socket cannot drain, no end confirmed in time) ends it with
exactly one `ServiceError` result; nothing is sent after it, and the owner goes on without the
service (its fallback).

An HTTP(S) proxy named in the environment (`https_proxy` for wss://, `http_proxy` for ws://,
`no_proxy` honoured) is used, as websockets' client did.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import urllib.request
from collections.abc import Callable
from typing import Final, Protocol
from urllib.parse import urlsplit

from picows import (
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSInvalidURL,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from media.media_socket import FrameError, Messages
from media.transcription.cloud.results import Ended, ProtocolViolation, Result, ServiceError

log = logging.getLogger(__name__)

MAX_BACKLOG: Final = 100
"""Audio chunks waiting for the socket (10 s of the protocols' 100 ms chunks) before the
session is given up as too slow: the owner's fallback then transcribes what the service did
not."""
MAX_MESSAGE_BYTES: Final = 1 << 20
NO_CLOSE_FRAME: Final = 1006


class SpeechProtocol(Protocol):
    """What the stream needs of a service's sans-I/O protocol."""

    def url(self) -> str: ...
    def headers(self, api_key: str) -> dict[str, str]: ...
    def audio(self, payload: bytes) -> list[bytes]: ...
    def flush(self) -> list[bytes]: ...
    def end(self) -> str: ...
    def keepalive(self) -> str: ...
    def receive(self, message: str | bytes) -> list[Result]: ...
    @staticmethod
    def close_error(code: int, reason: str) -> ServiceError | None: ...


@functools.cache
def _environment_proxies() -> dict[str, str]:
    return urllib.request.getproxies()


def _proxy(url: str) -> str | None:
    proxies = _environment_proxies()
    parts = urlsplit(url)
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get("https" if parts.scheme == "wss" else "http")


class _Listener(WSListener):
    """picows' callbacks, handed to the track."""

    def __init__(self, track: StreamingTrack) -> None:
        self._track = track

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self._track._frame(transport, frame)


class StreamingTrack:
    def __init__(
        self,
        protocol: SpeechProtocol,
        api_key: str,
        on_result: Callable[[Result], None],
        *,
        connect_timeout_s: float = 5.0,
        keepalive_s: float = 4.0,
    ) -> None:
        self._protocol = protocol
        self._api_key = api_key
        self._on_result = on_result
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._transport: WSTransport | None = None
        self._waiting: list[bytes] = []
        """Chunks fed before the session opened."""
        self._end_asked = False
        self._last_sent = 0.0
        self._messages = Messages(MAX_MESSAGE_BYTES)
        """Whole messages out of the service's frames, each to `_message` as it completes."""
        self._messages.receiver = self._message
        self._close: tuple[int, str] | None = None
        """The service's close frame: code and reason."""
        self.error: ServiceError | None = None
        """Why the session ended early, once it has (then `on_result` has had it)."""
        self.ended = asyncio.Event()
        """Set when the session is over: confirmed ended, failed, or closed."""
        self._confirmed = False
        """The service confirmed the end (`Ended`): its closing the socket is no error."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def feed(self, payload: bytes) -> None:
        """Audio as it arrives; dropped once the session has failed (the fallback has it)."""
        if self.error is not None or self.ended.is_set() or self._end_asked:
            return
        for chunk in self._protocol.audio(payload):
            if not self._send_audio(chunk):
                return

    async def finish(self, timeout_s: float) -> None:
        """Asks the service for its last results and waits, bounded, for it to confirm the end
        and close."""
        if not self.ended.is_set() and not self._end_asked:
            self._end_asked = True
            if self._transport is not None:
                self._send_end(self._transport)
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self._fail(ServiceError("end_timeout", "no end of session in time", True))
        await self.close()

    def abort(self) -> None:
        """Ends the session now, without asking the service (it was given up on)."""
        self.ended.set()
        self._disconnect()
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._disconnect()
        self.ended.set()

    def _disconnect(self) -> None:
        if self._transport is not None and not self._transport.is_disconnected:
            self._transport.disconnect(graceful=False)

    def _fail(self, error: ServiceError) -> None:
        if self.error is None and not self.ended.is_set():
            self.error = error
            self._on_result(error)
        self.ended.set()
        self._disconnect()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    # Out

    def _send_audio(self, chunk: bytes) -> bool:
        transport = self._transport
        if transport is None:
            if len(self._waiting) >= MAX_BACKLOG:
                self._fail(ServiceError("backlog", "the service took too long to answer", True))
                return False
            self._waiting.append(chunk)
            return True
        if transport.underlying_transport.get_write_buffer_size() > MAX_BACKLOG * len(chunk):
            self._fail(ServiceError("backlog", "the service is not taking audio fast enough", True))
            return False
        transport.send(WSMsgType.BINARY, chunk)
        self._last_sent = asyncio.get_running_loop().time()
        return True

    def _send_end(self, transport: WSTransport) -> None:
        for chunk in self._protocol.flush():
            transport.send(WSMsgType.BINARY, chunk)
        transport.send(WSMsgType.TEXT, self._protocol.end())

    # The session

    async def _run(self) -> None:
        try:
            transport = await self._connect()
            if transport is not None:
                await self._serve(transport)
        finally:
            self.ended.set()
            self._disconnect()

    async def _connect(self) -> WSTransport | None:
        protocol = self._protocol
        url = protocol.url()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                transport, _listener = await ws_connect(
                    lambda: _Listener(self), url,
                    extra_headers=protocol.headers(self._api_key),
                    websocket_handshake_timeout=None,  # within the timeout above
                    max_frame_size=MAX_MESSAGE_BYTES,
                    proxy=_proxy(url),
                    use_aiofastnet=False,
                )  # fmt: skip
        except WSInvalidStatusError as exc:
            status = exc.response.status if exc.response is not None else 0
            # Refused credentials do not get better by retrying; a service error may.
            self._fail(ServiceError(f"http_{int(status)}", "handshake refused", status >= 500))
            return None
        except (OSError, TimeoutError, WSInvalidURL) as exc:
            self._fail(ServiceError("unreachable", str(exc) or type(exc).__name__, True))
            return None
        except WSError as exc:
            self._fail(ServiceError("websocket", str(exc) or type(exc).__name__, True))
            return None
        self._transport = transport
        self._last_sent = asyncio.get_running_loop().time()
        waiting, self._waiting = self._waiting, []
        for chunk in waiting:
            if not self._send_audio(chunk):
                return None
        if self._end_asked:
            self._send_end(transport)
        return transport

    async def _serve(self, transport: WSTransport) -> None:
        """Keeps the session alive through silences until the socket closes, then says why it
        closed if the service did not confirm the end first."""
        loop = asyncio.get_running_loop()
        disconnected = asyncio.ensure_future(transport.wait_disconnected())
        try:
            while not disconnected.done():
                wait_s = self._keepalive_s
                if not self._end_asked:
                    quiet_s = loop.time() - self._last_sent
                    if quiet_s >= self._keepalive_s:
                        # A hold or a pause: no audio for a while.
                        transport.send(WSMsgType.TEXT, self._protocol.keepalive())
                        self._last_sent = loop.time()
                    else:
                        wait_s -= quiet_s
                await asyncio.wait({disconnected}, timeout=wait_s)
        finally:
            disconnected.cancel()
        if self._confirmed or self.error is not None:
            return
        code, reason = self._close or (NO_CLOSE_FRAME, "")
        error = self._protocol.close_error(code, reason)
        if error is None:
            error = ServiceError("closed_early", "closed before the session's end", True)
        self._fail(error)

    # In

    def _frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            payload = frame.get_payload_as_bytes()
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._close = (code, payload[2:].decode("utf-8", "replace"))
            transport.send_close()
            transport.disconnect()
            return
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY or kind is WSMsgType.CONTINUATION:
            try:
                self._messages.frame(
                    frame.get_payload_as_bytes(),
                    text=kind is WSMsgType.TEXT,
                    continuation=kind is WSMsgType.CONTINUATION,
                    fin=frame.fin,
                )
            except FrameError as exc:
                self._fail(ServiceError("websocket", exc.reason, True))
        # Pings are answered by picows; pongs need nothing.

    def _message(self, data: bytes, text: bool) -> None:
        if self.ended.is_set():
            return
        try:
            results = self._protocol.receive(data.decode() if text else data)
        except (ProtocolViolation, UnicodeDecodeError) as exc:
            self._fail(ServiceError("malformed", str(exc), True))
            return
        for result in results:
            if isinstance(result, ServiceError):
                self._fail(result)
                return
            self._on_result(result)
            if isinstance(result, Ended):
                self._confirmed = True  # the service closes the socket next
