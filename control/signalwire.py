"""SignalWire Compatibility (LaML) REST client: place outbound calls, look them up, hang them
up, start and stop their recordings, and start a media stream of a call under way.

The wire shapes are docs/protocols.md section e. The errors form one tree:

    SignalWireError              root: .status (HTTP status or None), .code (SignalWire's error
    │                            code as a string, or None), .message. Raised bare for a 2xx
    │                            answer that is not what the API documents ("malformed response").
    ├── SignalWireRejected       4xx other than 429: the request is wrong (bad number, bad
    │                            credentials, unknown call). Never retried.
    └── SignalWireUnavailable    429, 5xx, timeouts and connection errors once the retries the
                                 deadline allows are spent, or the circuit is open (no request
                                 was sent). .retry_after_s: when SignalWire or the breaker said
                                 when to come back.

Time: every client call has ONE deadline, `total_timeout_s` from its start, computed once. Each
attempt runs under `asyncio.timeout_at(min(now + request_timeout_s, deadline))`, and a backoff
that would end past the deadline is not slept: the call fails at once instead.

Circuit breaker (per client): `breaker_failures` consecutive calls ending in
SignalWireUnavailable open it; while open, calls fail fast. After `breaker_reset_s` (the injected
clock) one trial call, with a single attempt, is let through: success closes the circuit,
failure opens it again. A SignalWireRejected outcome is a success for the breaker: SignalWire
answered, so it is up.

Nothing secret is logged: the API token only ever travels in the Authorization header, which is
never logged, and `SignalWireConfig`'s repr hides it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from prometheus_client import Counter, Gauge

from control.circuit_breaker import Admission, CircuitBreaker

log = logging.getLogger(__name__)
_RECORDING_PATH = re.compile(
    r"(/api/laml/[^/]+/Accounts/[^/]+/Recordings/[A-Za-z0-9_-]+)(?:\.(?:json|wav|mp3))?"
)
"""A `RecordingUrl`'s path (docs/protocols.md e), without the format its media is asked in."""

API_VERSION = "2010-04-01"
DEFAULT_STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")

REQUESTS = Counter(
    "voxsouth_signalwire_requests_total",
    "SignalWire REST requests by outcome: ok, rejected, malformed, unexpected, rate_limited,"
    " server_error, timeout, connection_error; circuit_open counts calls refused unsent.",
    ["operation", "outcome"],
)
CIRCUIT_OPEN = Gauge(
    "voxsouth_signalwire_circuit_open",
    "1 while a SignalWire client's circuit breaker is open or half-open, else 0.",
    multiprocess_mode="livemax",  # each worker has its own client: 1 if any's circuit is open
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SignalWireConfig:
    space_url: str
    """e.g. https://example.signalwire.com (no path)."""
    project_id: str
    """The AccountSid (a UUID); also the HTTP Basic user name."""
    api_token: str = field(repr=False)
    """The HTTP Basic password. Kept out of repr so a logged config leaks nothing."""
    request_timeout_s: float = 10.0
    total_timeout_s: float = 20.0
    """One deadline for all attempts of one call, backoff included."""
    max_attempts: int = 4
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 4.0
    breaker_failures: int = 5
    """Consecutive unavailable outcomes that open the circuit."""
    breaker_reset_s: float = 30.0
    """Open → half-open after this long."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.breaker_failures < 1:
            raise ValueError("max_attempts and breaker_failures must be at least 1")
        if min(self.request_timeout_s, self.total_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")
        if min(self.backoff_initial_s, self.backoff_max_s, self.breaker_reset_s) < 0:
            raise ValueError("backoff and breaker reset must not be negative")


class SignalWireError(Exception):
    """Root of this module's errors (see the module docstring for the tree)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code is not None:
            parts.append(f"code={self.code}")
        return " ".join(parts)


class SignalWireRejected(SignalWireError):
    """SignalWire refused the request as wrong (4xx other than 429). Never retried."""


class SignalWireUnavailable(SignalWireError):
    """SignalWire could not be reached or did not serve the request in time."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message, status=status, code=code)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class CallCreated:
    sid: str
    """SignalWire's CallSid, exactly as it was sent."""
    status: str
    """Usually "queued"; empty if SignalWire sent none."""
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallState:
    """A call as SignalWire's Call resource describes it (`GET …/Calls/{CallSid}.json`)."""

    sid: str
    status: str
    """queued, ringing, in-progress, canceled, completed, busy, failed or no-answer."""
    end_time: datetime | None
    """When it ended (the RFC 2822 `end_time`); None while live, or if unreadable."""
    duration_seconds: int | None
    """`duration` (sent as a string or a number); None while live, or if unreadable."""
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamCreated:
    """A media stream SignalWire started (`POST …/Calls/{CallSid}/Streams.json`)."""

    sid: str
    """The stream's SID: the `streamSid` its websocket's `start` carries."""
    status: str
    """queued, in-progress or stopped; empty if SignalWire sent none."""
    name: str | None
    raw: dict[str, Any]


MAX_STREAM_PARAMETERS = 99
"""`Parameter{N}.Name` / `Parameter{N}.Value` go from N = 1 to 99 (docs/protocols.md e)."""


@dataclass(frozen=True, slots=True)
class _Transient:
    """One attempt failed in a way that may be retried."""

    error: SignalWireUnavailable
    outcome: str
    maybe_sent: bool
    """The request may have reached SignalWire (a read timeout, a dropped connection)."""
    retry_after_s: float | None = None


FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
RELAY_CALLER_IDS = "/api/relay/rest/verified_caller_ids"


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: str
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class CallerId:
    """A number SignalWire verifies as the org's own, so it may be a caller ID."""

    id: str
    number: str
    verified: bool
    raw: dict[str, Any]


def _parse_caller_id(status: int, raw: bytes) -> CallerId:
    try:
        data = json.loads(raw)
    except ValueError:
        raise SignalWireError("malformed response", status=status) from None
    if not isinstance(data, dict):
        raise SignalWireError("malformed response", status=status)
    if isinstance(data.get("data"), dict):  # a single-object envelope
        data = data["data"]
    caller_id, number = data.get("id"), data.get("number")
    if not isinstance(caller_id, str) or not caller_id or not isinstance(number, str):
        raise SignalWireError("malformed response: no caller ID id", status=status)
    verified = data.get("verified") is True or data.get("status") == "Verified"
    return CallerId(caller_id, number, verified, data)


class SignalWireClient:
    """Calls SignalWire's Compatibility REST API over a session the caller owns."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: SignalWireConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._config = config
        self._rng = rng or random.Random()
        self._headers = {
            "Authorization": aiohttp.encode_basic_auth(config.project_id, config.api_token),
            "Accept": "application/json",
        }
        self._space = config.space_url.rstrip("/")
        self._breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_s, clock)
        self._last: tuple[float | None, float | None, str | None] = (None, None, None)
        """When (epoch s) the last request ended, how long it took, and its failure."""
        self._base = (
            f"{config.space_url.rstrip('/')}/api/laml/{API_VERSION}"
            f"/Accounts/{quote(config.project_id, safe='')}"
        )

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        status_callback_events: Sequence[str] = DEFAULT_STATUS_CALLBACK_EVENTS,
        machine_detection: Literal["Enable", "DetectMessageEnd"] | None = None,
    ) -> CallCreated:
        """Places an outbound call; SignalWire fetches cXML from `url` (POST) once it connects
        (with `AnsweredBy` when `machine_detection` asks it to tell machines from people).

        Returns the CallSid SignalWire sent. Retries, within the one deadline, only when the
        call cannot have been created: a 429 or 5xx answer, or a failure to connect. It does
        NOT retry once the request may have reached SignalWire without an answer (a read
        timeout, a connection dropped mid-request): a retry could place a second call, so it
        raises SignalWireUnavailable and the call may or may not exist (its status callback
        will tell). A 5xx answer is taken at its word that nothing was created.
        """
        if isinstance(status_callback_events, str):
            raise TypeError("status_callback_events is a sequence of event names, not a str")
        form = [
            ("To", to),
            ("From", from_),
            ("Url", url),
            ("Method", "POST"),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
            *(("StatusCallbackEvent", event) for event in status_callback_events),
            *((("MachineDetection", machine_detection),) if machine_detection else ()),
        ]
        return await self._call(
            "create_call", self._laml("/Calls.json", form), _parse_call, retry_after_sending=False
        )

    async def get_call(self, call_sid: str) -> CallState:
        """The call's current state. An unknown CallSid is SignalWireRejected with status 404.
        A lookup changes nothing, so it is retried after any transient failure."""
        url = f"{self._base}/Calls/{quote(call_sid, safe='')}.json"
        return await self._call(
            "get_call", _Request("GET", url, b"", ""), _parse_call_state, retry_after_sending=True
        )

    async def hang_up(self, call_sid: str) -> None:
        """Ends the call (`Status=completed`). Retried after any transient failure, a timeout
        included: asking twice for a hang-up is harmless (though a retry after a hang-up that
        did land may come back as SignalWireRejected, code 10000, the call being over)."""
        await self._call(
            "hang_up",
            self._laml(f"/Calls/{quote(call_sid, safe='')}.json", [("Status", "completed")]),
            _ignore_body,
            retry_after_sending=True,
        )

    async def start_recording(self, call_sid: str, status_callback: str) -> str:
        """Starts a dual-channel recording of both tracks of the call; returns its RecordingSid.

        SignalWire then POSTs the recording status callback to `status_callback` when the
        recording is in progress, completed, or absent (no audio).
        """
        form = [
            ("RecordingChannels", "dual"),
            ("RecordingStatusCallback", status_callback),
            # One field, events separated by spaces (SignalWire's CreateCallRecordingRequest),
            # unlike create-call's StatusCallbackEvent, which repeats the field.
            ("RecordingStatusCallbackEvent", "in-progress completed absent"),
            ("RecordingStatusCallbackMethod", "POST"),
            ("RecordingTrack", "both"),
        ]
        return await self._call(
            "start_recording",
            self._laml(f"/Calls/{quote(call_sid, safe='')}/Recordings.json", form),
            _parse_recording_sid,
            # Not retried once the request may have reached SignalWire (a read timeout, a
            # connection dropped mid-request), as for create_call: if the first request did
            # start a recording, its SID was lost with the answer, and a retry would start a
            # second recording of the same call (or be refused, if one may run at a time). We
            # would then hold one SID while another recording ran that a consent refusal
            # could not stop. Failing instead leaves the caller to decide; the recording
            # status callback, if SignalWire did start one, still reports it by its SID.
            retry_after_sending=False,
        )

    async def start_stream(
        self,
        call_sid: str,
        *,
        url: str,
        name: str,
        status_callback: str,
        parameters: Mapping[str, str],
        track: Literal["inbound_track", "outbound_track", "both_tracks"] = "both_tracks",
    ) -> StreamCreated:
        """Starts a media stream of a call under way: SignalWire opens a websocket to `url`
        (wss) and sends the call's `track` audio, `parameters` arriving in the stream's
        `start.customParameters` (as `Parameter{N}.Name` / `.Value`, in order), and reports
        the stream's life to `status_callback` (POST).

        An unknown call is SignalWireRejected with status 404; a call no longer in progress,
        status 400 with code 21220. Not retried once the request may have reached SignalWire
        (a read timeout, a connection dropped mid-request), as for start_recording: if the
        first request did start a stream, a retry would start a second one of the same call,
        heard twice. The caller decides instead; a stream that did start shows up anyway.
        """
        if len(parameters) > MAX_STREAM_PARAMETERS:
            raise ValueError(f"at most {MAX_STREAM_PARAMETERS} stream parameters")
        form = [
            ("Url", url),
            ("Name", name),
            ("Track", track),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
        ]
        for n, (key, value) in enumerate(parameters.items(), start=1):
            form += [(f"Parameter{n}.Name", key), (f"Parameter{n}.Value", value)]
        return await self._call(
            "start_stream",
            self._laml(f"/Calls/{quote(call_sid, safe='')}/Streams.json", form),
            _parse_stream,
            retry_after_sending=False,
        )

    async def stop_recording(self, call_sid: str, recording_sid: str) -> None:
        """Stops the recording (`Status=stopped`). Retried after any transient failure, a
        timeout included: asking twice to stop is harmless (though a retry after a stop that
        did land may come back as SignalWireRejected, the recording being over)."""
        await self._update_recording("stop_recording", call_sid, recording_sid, "stopped")

    async def pause_recording(
        self, call_sid: str, recording_sid: str, behavior: Literal["skip", "silence"]
    ) -> None:
        """Pauses the recording (`Status=paused`): with `PauseBehavior=skip` the paused time is
        left out of the file, with `silence` it is kept as silence. Retried like a stop."""
        await self._update_recording(
            "pause_recording", call_sid, recording_sid, "paused", ("PauseBehavior", behavior)
        )

    async def resume_recording(self, call_sid: str, recording_sid: str) -> None:
        """Resumes a paused recording (`Status=in-progress`). Retried like a stop."""
        await self._update_recording("resume_recording", call_sid, recording_sid, "in-progress")

    async def _update_recording(
        self, operation: str, call_sid: str, recording_sid: str, status: str,
        *extra: tuple[str, str],
    ) -> None:  # fmt: skip
        path = f"/Calls/{quote(call_sid, safe='')}/Recordings/{quote(recording_sid, safe='')}.json"
        await self._call(
            operation,
            self._laml(path, [("Status", status), *extra]),
            _ignore_body,
            retry_after_sending=True,
        )

    @asynccontextmanager
    async def recording_media(
        self, url: str, fmt: Literal["wav", "mp3"]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A recording's audio from its `RecordingUrl`, as SignalWire's 200 response with the
        body still to read. Raises SignalWireError when the URL is not a recording of this
        space (it came from a callback: nothing else is fetched), or SignalWire answers
        anything but the audio."""
        parts, space = urlsplit(url), urlsplit(self._space)
        path = _RECORDING_PATH.fullmatch(parts.path)
        if (parts.scheme, parts.netloc) != (space.scheme, space.netloc) or path is None:
            raise SignalWireError("not a recording of this SignalWire space", code="foreign_url")
        media = f"{parts.scheme}://{parts.netloc}{path[1]}.{fmt}"
        timeout = aiohttp.ClientTimeout(
            sock_connect=self._config.request_timeout_s, sock_read=self._config.request_timeout_s
        )
        try:
            async with self._session.get(media, headers=self._headers, timeout=timeout) as resp:
                if resp.status != 200:
                    raise SignalWireError("recording media refused", status=resp.status)
                yield resp
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SignalWireError(f"recording media unreachable: {exc}") from exc

    async def delete_recording(self, recording_sid: str) -> None:
        """Deletes the recording at SignalWire (`DELETE …/Recordings/{Sid}.json`). Retried after
        any transient failure: deleting twice is harmless, and one already gone (404) counts as
        deleted."""
        path = f"/Recordings/{quote(recording_sid, safe='')}.json"
        try:
            await self._call(
                "delete_recording",
                _Request("DELETE", self._base + path, b"", FORM),
                _ignore_body,
                retry_after_sending=True,
            )
        except SignalWireRejected as exc:
            if exc.status != 404:
                raise

    # Verified caller IDs: SignalWire's space REST API (JSON), not the LaML compatibility API.
    # Shapes from SignalWire's generated SDK types: POST {number, name?, extension?} places a
    # call that reads a six-digit code; PUT {id}/verification {verification_code} submits it;
    # POST {id}/verification redials; the object has id, number, verified, status.

    async def create_verified_caller_id(self, number: str, name: str | None = None) -> CallerId:
        """Starts verification: SignalWire calls `number` and reads a code. Not retried once
        sent (a retry would place a second verification call)."""
        body = {"number": number, **({"name": name} if name else {})}
        return await self._call(
            "create_caller_id", self._relay("", "POST", body), _parse_caller_id,
            retry_after_sending=False,
        )  # fmt: skip

    async def submit_caller_id_code(self, caller_id: str, code: str) -> CallerId:
        return await self._call(
            "verify_caller_id",
            self._relay(f"/{quote(caller_id, safe='')}/verification", "PUT",
                        {"verification_code": code}),
            _parse_caller_id,
            retry_after_sending=False,  # each wrong submission uses one of five attempts
        )  # fmt: skip

    async def delete_caller_id(self, caller_id: str) -> None:
        await self._call(
            "delete_caller_id", self._relay(f"/{quote(caller_id, safe='')}", "DELETE", None),
            _ignore_body, retry_after_sending=True,
        )  # fmt: skip

    def _laml(self, path: str, form: list[tuple[str, str]]) -> _Request:
        return _Request("POST", self._base + path, urlencode(form).encode(), FORM)

    def _relay(self, path: str, method: str, body: dict[str, str] | None) -> _Request:
        data = json.dumps(body).encode() if body is not None else b""
        return _Request(method, f"{self._space}{RELAY_CALLER_IDS}{path}", data, JSON_TYPE)

    async def _call(
        self,
        operation: str,
        request: _Request,
        parse: Callable[[int, bytes], T],
        *,
        retry_after_sending: bool,
    ) -> T:
        admission = self._breaker.admit()
        if admission is Admission.REFUSED:
            REQUESTS.labels(operation, "circuit_open").inc()
            raise SignalWireUnavailable(
                "circuit open: SignalWire failed repeatedly; request not sent",
                retry_after_s=self._breaker.retry_after_s(),
            )
        attempts = 1 if admission is Admission.TRIAL else self._config.max_attempts
        started = time.monotonic()
        try:
            result = await self._attempts(operation, request, parse, attempts, retry_after_sending)
        except SignalWireUnavailable as exc:
            self._breaker.record_failure()
            CIRCUIT_OPEN.set(1 if self._breaker.is_open else 0)
            self._last = (time.time(), time.monotonic() - started, f"{operation}: {exc}")
            raise
        except SignalWireError:
            self._breaker.record_success()  # SignalWire answered: it is up
            CIRCUIT_OPEN.set(0)
            self._last = (time.time(), time.monotonic() - started, None)
            raise
        except BaseException:
            self._breaker.release()
            raise
        self._breaker.record_success()
        CIRCUIT_OPEN.set(0)
        self._last = (time.time(), time.monotonic() - started, None)
        return result

    def health(self) -> dict[str, object]:
        """What /health/dependencies reports: the circuit, and how the last request went (when,
        how long, and its failure if SignalWire did not answer)."""
        at, latency_s, error = self._last
        return {
            "configured": True,
            "circuit_open": self._breaker.is_open,
            "last_request_at": at,
            "last_latency_ms": None if latency_s is None else round(latency_s * 1000),
            "last_error": error,
        }

    async def _attempts(
        self,
        operation: str,
        request: _Request,
        parse: Callable[[int, bytes], T],
        attempts: int,
        retry_after_sending: bool,
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.total_timeout_s
        for attempt in range(attempts):
            result = await self._attempt(operation, request, parse, deadline)
            if not isinstance(result, _Transient):
                return result
            REQUESTS.labels(operation, result.outcome).inc()
            if result.maybe_sent and not retry_after_sending:
                raise result.error
            if attempt + 1 >= attempts:
                raise result.error
            if result.retry_after_s is not None:
                delay = result.retry_after_s
            else:
                cap = min(self._config.backoff_max_s, self._config.backoff_initial_s * 2**attempt)
                delay = self._rng.uniform(0, cap)
            if loop.time() + delay >= deadline:
                log.warning(
                    "signalwire %s: %s; giving up: a retry after %.3fs would pass the deadline",
                    operation,
                    result.error,
                    delay,
                )
                raise result.error
            log.info(
                "signalwire %s attempt %d failed: %s; retrying in %.3fs",
                operation,
                attempt + 1,
                result.error,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(
        self,
        operation: str,
        request: _Request,
        parse: Callable[[int, bytes], T],
        deadline: float,
    ) -> T | _Transient:
        loop = asyncio.get_running_loop()
        now = loop.time()
        attempt_deadline = min(now + self._config.request_timeout_s, deadline)
        # Connecting gets half the attempt's budget, so that a stalled connect shows up as
        # ConnectionTimeoutError (nothing sent: safe to retry even create_call) rather than as
        # the attempt's own timeout, which cannot tell a stalled connect from a lost answer.
        client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=max(attempt_deadline - now, 0.0) / 2
        )
        try:
            async with asyncio.timeout_at(attempt_deadline):
                async with self._session.request(
                    request.method,
                    request.url,
                    data=request.body or None,  # a GET: no body, no Content-Type
                    headers=(
                        {**self._headers, "Content-Type": request.content_type}
                        if request.content_type
                        else self._headers
                    ),
                    allow_redirects=False,
                    timeout=client_timeout,
                ) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    raw = await resp.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return _Transient(
                SignalWireUnavailable(f"cannot connect to SignalWire: {type(exc).__name__}"),
                "connection_error",
                maybe_sent=False,
            )
        except TimeoutError:
            return _Transient(
                SignalWireUnavailable(
                    "no answer from SignalWire in time; the request may have been carried out"
                ),
                "timeout",
                maybe_sent=True,
            )
        except aiohttp.ClientError as exc:
            return _Transient(
                SignalWireUnavailable(
                    f"connection to SignalWire failed mid-request ({type(exc).__name__});"
                    " the request may have been carried out"
                ),
                "connection_error",
                maybe_sent=True,
            )

        if 200 <= status < 300:
            try:
                result = parse(status, raw)
            except SignalWireError:
                REQUESTS.labels(operation, "malformed").inc()
                raise
            REQUESTS.labels(operation, "ok").inc()
            return result
        code, message = parse_error_body(raw)
        message = message or f"HTTP {status}"
        if status == 429 or status >= 500:
            retry_after_s = _parse_retry_after(retry_after)
            return _Transient(
                SignalWireUnavailable(
                    message, status=status, code=code, retry_after_s=retry_after_s
                ),
                "rate_limited" if status == 429 else "server_error",
                maybe_sent=False,
                retry_after_s=retry_after_s,
            )
        if 400 <= status < 500:
            REQUESTS.labels(operation, "rejected").inc()
            raise SignalWireRejected(message, status=status, code=code)
        REQUESTS.labels(operation, "unexpected").inc()
        raise SignalWireError(f"unexpected answer: {message}", status=status, code=code)


def parse_error_body(raw: bytes) -> tuple[str | None, str | None]:
    """(code, message) from either SignalWire error shape, or (None, None).

    `{"code": 20003, "message": ..., "more_info": ..., "status": 401}` or
    `{"errors": [{"code": "21211", "message": ..., "more_info": ...}]}`; codes come back as str.
    """
    try:
        body = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        body = errors[0]
    code = body.get("code")
    message = body.get("message")
    return (
        str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else None,
    )


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (fractions tolerated); an HTTP-date or garbage gives None."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _body_with_sid(status: int, raw: bytes) -> dict[str, Any]:
    """A created resource's JSON, which must carry a non-empty `sid`."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("sid"), str) or not body["sid"]:
        raise SignalWireError("malformed response", status=status)
    return body


def _parse_call(status: int, raw: bytes) -> CallCreated:
    body = _body_with_sid(status, raw)
    call_status = body.get("status")
    return CallCreated(
        sid=body["sid"], status=call_status if isinstance(call_status, str) else "", raw=body
    )


def _parse_call_state(status: int, raw: bytes) -> CallState:
    body = _body_with_sid(status, raw)
    call_status = body.get("status")
    if not isinstance(call_status, str) or not call_status:
        raise SignalWireError("malformed response: no call status", status=status)
    end_time = None
    if isinstance(body.get("end_time"), str):
        try:
            end_time = parsedate_to_datetime(body["end_time"])
        except (TypeError, ValueError):
            end_time = None
        if end_time is not None and end_time.tzinfo is None:
            end_time = None  # "-0000": no zone given, so no instant
    duration = body.get("duration")
    if isinstance(duration, str) and duration.isdigit():
        duration = int(duration)
    return CallState(
        sid=body["sid"],
        status=call_status,
        end_time=end_time,
        duration_seconds=(
            duration
            if isinstance(duration, int) and not isinstance(duration, bool) and duration >= 0
            else None
        ),
        raw=body,
    )


def _parse_stream(status: int, raw: bytes) -> StreamCreated:
    body = _body_with_sid(status, raw)
    stream_status, name = body.get("status"), body.get("name")
    return StreamCreated(
        sid=body["sid"],
        status=stream_status if isinstance(stream_status, str) else "",
        name=name if isinstance(name, str) else None,
        raw=body,
    )


def _parse_recording_sid(status: int, raw: bytes) -> str:
    return str(_body_with_sid(status, raw)["sid"])


def _ignore_body(status: int, raw: bytes) -> None:
    return None
