"""One track's live connection to a cloud speech service: the I/O loop around a sans-I/O
protocol (`assemblyai.py`, `deepgram.py`).

Audio goes out as it arrives: `feed` never waits (a sender task writes), and each message the
service sends becomes results handed to `on_result` on the event loop. Every way a session can
fail (connection refused, handshake rejected, a close code, a malformed message, a backlog the
socket cannot drain, no end confirmed in time) ends it with exactly one `ServiceError` result;
nothing is sent after it, and the owner goes on without the service (its fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from media.transcription.cloud.results import Ended, ProtocolViolation, Result, ServiceError

log = logging.getLogger(__name__)

MAX_BACKLOG: Final = 100
"""Audio messages waiting for the socket (10 s of the protocols' 100 ms chunks) before the
session is given up as too slow: the owner's fallback then transcribes what the service did
not."""


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


_END = object()
"""Queued after the last audio: flush, then ask the service to finish."""


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
        self._outgoing: asyncio.Queue[bytes | object] = asyncio.Queue()
        """Whole chunks to send: a payload is chunked as it is fed, so that the sender wakes
        once per chunk, not once per 20 ms frame."""
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
        if self.error is not None or self.ended.is_set():
            return
        for chunk in self._protocol.audio(payload):
            if self._outgoing.qsize() >= MAX_BACKLOG:
                self._fail(
                    ServiceError("backlog", "the service is not taking audio fast enough", True)
                )
                return
            self._outgoing.put_nowait(chunk)

    async def finish(self, timeout_s: float) -> None:
        """Asks the service for its last results and waits, bounded, for it to confirm the end
        and close."""
        if not self.ended.is_set():
            self._outgoing.put_nowait(_END)
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
            if not done:
                self._fail(ServiceError("end_timeout", "no end of session in time", True))
        await self.close()

    def abort(self) -> None:
        """Ends the session now, without asking the service (it was given up on)."""
        self.ended.set()
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.ended.set()

    def _fail(self, error: ServiceError) -> None:
        if self.error is None and not self.ended.is_set():
            self.error = error
            self._on_result(error)
        self.ended.set()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def _run(self) -> None:
        try:
            await self._session()
        finally:
            self.ended.set()

    async def _session(self) -> None:
        protocol = self._protocol
        try:
            async with connect(
                protocol.url(),
                additional_headers=protocol.headers(self._api_key),
                open_timeout=self._connect_timeout_s,
                max_size=1 << 20,
            ) as ws:
                sender = asyncio.create_task(self._send(ws))
                try:
                    await self._receive(ws)
                finally:
                    sender.cancel()
        except InvalidStatus as exc:
            status = exc.response.status_code
            # Refused credentials do not get better by retrying; a service error may.
            self._fail(ServiceError(f"http_{status}", "handshake refused", status >= 500))
        except (OSError, TimeoutError, InvalidURI) as exc:
            self._fail(ServiceError("unreachable", str(exc) or type(exc).__name__, True))
        except ProtocolViolation as exc:
            self._fail(ServiceError("malformed", str(exc), True))
        except WebSocketException as exc:
            self._fail(ServiceError("websocket", str(exc) or type(exc).__name__, True))

    async def _send(self, ws: ClientConnection) -> None:
        protocol, outgoing = self._protocol, self._outgoing
        with contextlib.suppress(ConnectionClosed):
            while True:
                try:
                    async with asyncio.timeout(self._keepalive_s):
                        item = await outgoing.get()
                except TimeoutError:
                    await ws.send(protocol.keepalive())  # a hold or a pause: no audio for a while
                    continue
                if item is _END:
                    for chunk in protocol.flush():
                        await ws.send(chunk)
                    await ws.send(protocol.end())
                    return
                assert isinstance(item, bytes)
                await ws.send(item)

    async def _receive(self, ws: ClientConnection) -> None:
        protocol = self._protocol
        try:
            async for message in ws:
                for result in protocol.receive(message):
                    if isinstance(result, ServiceError):
                        self._fail(result)
                        return
                    self._on_result(result)
                    if isinstance(result, Ended):
                        self._confirmed = True  # the service closes the socket next
        except ConnectionClosed:
            pass
        if self._confirmed:
            return
        code = ws.close_code if ws.close_code is not None else 1006  # 1006: no close frame
        error = protocol.close_error(code, ws.close_reason or "")
        if error is None:
            error = ServiceError("closed_early", "closed before the session's end", True)
        self._fail(error)
