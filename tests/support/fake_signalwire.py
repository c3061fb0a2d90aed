"""A fake SignalWire Compatibility REST API (calls) on loopback, for client tests.

It speaks the shapes of docs/protocols.md section e: HTTP Basic auth (Project ID : API token),
form-encoded bodies, `.json` paths under /api/laml/2010-04-01/Accounts/{AccountSid}, Call JSON
answers and both error shapes. Every request is recorded before anything else happens, and a
test can script what the next requests of an operation get:

    fake.script("create", [Fail(500), Fail(429, retry_after=0), Ok()])

Operations are "create" (POST …/Calls.json), "fetch" (GET …/Calls/{CallSid}.json), "update"
(POST …/Calls/{CallSid}.json),
"create_recording" (POST …/Calls/{CallSid}/Recordings.json), "update_recording"
(POST …/Calls/{CallSid}/Recordings/{Sid}.json), "delete_recording" (DELETE
…/Recordings/{Sid}.json), "create_stream" (POST …/Calls/{CallSid}/Streams.json) and "caller_id"
(the space API's verified caller IDs). When an operation's script is empty, requests are
handled as `Ok()`: for real. A recording's audio (`recording_media`) is served, with no
credentials as SignalWire's is, at its public URL.

Media streams are real: a stream a Streams request starts, or one a test opens as a call's
`<Start><Stream>` would (`open_stream`), connects to its URL and plays the call's audio on the
call's timeline (tests/support/fake_streams.py) until the call ends (`end_call` sends `stop`)
or the connection is lost. Only wss:// stream URLs are taken, ws:// too with
`allow_insecure_media` (the server's own setting for local streams).

Inbound calls are never created through the REST API; `add_call()` makes one known to the fake,
as SignalWire knows a call that rang one of the project's numbers, so that it can be recorded;
`end_call()` ends one as SignalWire would (status, `end_time`, `duration`, `stop` on its
streams). With a `Lifecycle`, calls created through the API end by themselves and post their
signed final status callback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from control.signatures import compute_signature
from server.simulator.audio import CallAudio
from tests.support.fake_streams import TRACKS_OF, CallTimeline, FakeStream, play, stream_for

API_BASE = "/api/laml/2010-04-01"
MORE_INFO = "https://developer.signalwire.com/rest/compatibility-api/overview/error-codes"


@dataclass(frozen=True, slots=True)
class Ok:
    """Handle the request as SignalWire would: check auth, path and form, then answer."""


@dataclass(frozen=True, slots=True)
class Fail:
    """Answer `status` at once, before auth (as a load balancer or rate limiter would)."""

    status: int
    retry_after: float | None = None
    """Sent as the Retry-After header (seconds) when set."""
    body: dict[str, Any] | None = None
    """The JSON body; default: SignalWire's `{"code", "message", "more_info", "status"}`."""


@dataclass(frozen=True, slots=True)
class Hang:
    """Send nothing until the test sets `release`; then handle the request as `Ok()` would
    (SignalWire got it, so the call may exist even though the client gave up)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)


Behaviour = Ok | Fail | Hang


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    operation: str
    """"create", "fetch", "update", "create_recording", "update_recording",
    "delete_recording", "create_stream", "caller_id" or "media" (a recording's audio)."""
    method: str
    path: str
    form: list[tuple[str, str]]
    headers: dict[str, str]


_KNOWN_ERRORS: dict[int, tuple[int, str]] = {
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
}


def error_body(status: int, code: int | None = None, message: str | None = None) -> dict[str, Any]:
    """SignalWire's usual error shape; 5xx codes are not documented, so they carry none."""
    known_code, known_message = _KNOWN_ERRORS.get(status, (None, None))
    body: dict[str, Any] = {
        "message": message or known_message or f"HTTP {status}",
        "more_info": MORE_INFO,
        "status": status,
    }
    if (code or known_code) is not None:
        body["code"] = code or known_code
    return body


def create_error_body(code: str, message: str) -> dict[str, Any]:
    """The `errors` array shape that create-call 400s use (code as a string)."""
    return {"errors": [{"code": code, "message": message, "more_info": MORE_INFO}]}


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Calls created through the API live on their own, as SignalWire's do: each ends after
    `lifetime_s` with `status`, and its final status callback is posted, signed with
    `signing_key`, to the StatusCallback the create request gave."""

    signing_key: str
    lifetime_s: float
    status: str = "completed"
    held: asyncio.Event | None = None
    """When given, calls live until it is set, then `lifetime_s` more: a test holds them."""


class FakeSignalWire:
    def __init__(
        self, project_id: str, api_token: str, lifecycle: Lifecycle | None = None, *,
        allow_insecure_media: bool = False,
    ) -> None:  # fmt: skip
        self.project_id = project_id
        self.api_token = api_token
        self.lifecycle = lifecycle
        self.allow_insecure_media = allow_insecure_media
        """Take ws:// stream URLs as well as wss:// (SignalWire takes wss:// only)."""
        self.timelines: dict[str, CallTimeline] = {}
        """Each call's audio timeline and streams, by CallSid."""
        self._players: set[asyncio.Task[None]] = set()
        self.ended_at: dict[str, float] = {}
        """When (loop time) each call the lifecycle ended did; `created_at` when it began."""
        self.created_at: dict[str, float] = {}
        self._lives: set[asyncio.Task[None]] = set()
        self.requests: list[RecordedRequest] = []
        self.calls: dict[str, dict[str, Any]] = {}
        """Calls created so far, by CallSid, as their current Call JSON."""
        self.url = ""
        """http://127.0.0.1:PORT once running: the client's space_url."""
        self._scripts: dict[str, deque[Behaviour]] = {
            "create": deque(),
            "fetch": deque(),
            "update": deque(),
            "create_recording": deque(),
            "update_recording": deque(),
            "delete_recording": deque(),
            "create_stream": deque(),
            "caller_id": deque(),
        }
        self.recordings: dict[str, dict[str, Any]] = {}
        """Recordings started so far, by RecordingSid, as their current Recording JSON."""
        self.recording_media: dict[str, bytes] = {}
        """Recordings' audio by RecordingSid, served at their public media URL (no
        credentials, as SignalWire's; no Range support, which is unconfirmed there)."""
        self.caller_ids: dict[str, dict[str, Any]] = {}
        """Verified caller IDs by id, as SignalWire's objects."""
        self.verification_codes: dict[str, str] = {}
        """The code SignalWire's verification call would read out, by caller ID id."""
        self._hangs: list[Hang] = []
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    def script(self, operation: str, behaviours: Iterable[Behaviour]) -> None:
        """Queue what the next requests of `operation` (see the module docstring) get."""
        self._scripts[operation].extend(behaviours)

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.operation == operation]

    async def wait_for_requests(self, count: int) -> None:
        """Returns once at least `count` requests have arrived (wrap it in a timeout)."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)

    async def start(self) -> None:
        app = web.Application()
        accounts = f"{API_BASE}/Accounts/{{account_sid}}"
        app.router.add_post(f"{accounts}/Calls.json", self._create)
        app.router.add_get(f"{accounts}/Calls/{{call_sid}}.json", self._fetch, allow_head=False)
        app.router.add_post(f"{accounts}/Calls/{{call_sid}}.json", self._update)
        recordings = f"{accounts}/Calls/{{call_sid}}/Recordings"
        app.router.add_post(f"{recordings}.json", self._create_recording)
        app.router.add_post(f"{recordings}/{{recording_sid}}.json", self._update_recording)
        app.router.add_post(f"{accounts}/Calls/{{call_sid}}/Streams.json", self._create_stream)
        app.router.add_get(f"{accounts}/Recordings/{{recording_media}}", self._media)
        app.router.add_delete(f"{accounts}/Recordings/{{recording_sid}}.json", self._delete_media)
        caller_ids = "/api/relay/rest/verified_caller_ids"
        app.router.add_post(caller_ids, self._create_caller_id)
        app.router.add_put(f"{caller_ids}/{{id}}/verification", self._verify_caller_id)
        app.router.add_delete(f"{caller_ids}/{{id}}", self._delete_caller_id)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def recording_url(self, recording_sid: str) -> str:
        """The `RecordingUrl` SignalWire's callbacks give for a recording of this project."""
        return f"{self.url}{API_BASE}/Accounts/{self.project_id}/Recordings/{recording_sid}"

    async def _media(self, request: web.Request) -> web.Response:
        self.requests.append(
            RecordedRequest("media", request.method, request.path, [], dict(request.headers))
        )
        sid, _, ext = request.match_info["recording_media"].partition(".")
        audio = self.recording_media.get(sid)
        if audio is None or ext not in ("", "wav", "mp3"):
            return web.json_response(error_body(404, 20404), status=404)
        kind = "audio/mpeg" if ext == "mp3" else "audio/x-wav"
        return web.Response(body=audio, content_type=kind)

    async def _delete_media(self, request: web.Request) -> web.Response:
        await self._record("delete_recording", request)
        if (refused := self._refused(request)) is not None:
            return refused
        if (scripted := await self._scripted("delete_recording")) is not None:
            return scripted
        if self.recording_media.pop(request.match_info["recording_sid"], None) is None:
            return web.json_response(error_body(404, 20404), status=404)
        return web.Response(status=204)

    async def close(self) -> None:
        for life in self._lives:
            life.cancel()
        for player in list(self._players):
            player.cancel()
        if self._players:
            await asyncio.wait(self._players)
        for hang in self._hangs:  # let parked handlers finish so shutdown does not wait
            hang.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, operation: str, request: web.Request) -> list[tuple[str, str]]:
        form = [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
        async with self._arrived:
            self.requests.append(
                RecordedRequest(
                    operation, request.method, request.path, form, dict(request.headers)
                )
            )
            self._arrived.notify_all()
        return form

    async def _scripted(self, operation: str) -> web.Response | None:
        """The scripted answer, or None to go on as Ok()."""
        script = self._scripts[operation]
        behaviour = script.popleft() if script else Ok()
        if isinstance(behaviour, Fail):
            headers = {}
            if behaviour.retry_after is not None:
                retry_after = behaviour.retry_after
                headers["Retry-After"] = (
                    str(int(retry_after)) if retry_after == int(retry_after) else str(retry_after)
                )
            body = behaviour.body if behaviour.body is not None else error_body(behaviour.status)
            return web.json_response(body, status=behaviour.status, headers=headers)
        if isinstance(behaviour, Hang):
            self._hangs.append(behaviour)
            await behaviour.release.wait()
        return None

    async def _answer_first(self, operation: str, request: web.Request) -> web.Response | None:
        """What a request gets before its operation is looked at: the scripted behaviour, then
        the credentials' check; None to go on."""
        scripted = await self._scripted(operation)
        return scripted if scripted is not None else self._refused(request)

    def _refused(self, request: web.Request) -> web.Response | None:
        """401 for wrong credentials, 404 for another account's path, else None."""
        expected = f"{self.project_id}:{self.api_token}"
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            given = None
        if scheme.lower() != "basic" or given != expected:
            return web.json_response(error_body(401), status=401)
        account = request.match_info.get("account_sid", self.project_id)  # space API: none
        if account != self.project_id:
            # What SignalWire answers for a path under another account is not documented.
            return web.json_response(error_body(404), status=404)
        return None

    # Verified caller IDs (space REST API, JSON). The object's fields follow SignalWire's
    # generated SDK types; its error body for a wrong code is not documented: the
    # `errors` array shape is assumed.

    async def _caller_id_request(self, request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = None
        fields = [(str(k), str(v)) for k, v in parsed.items()] if isinstance(parsed, dict) else []
        async with self._arrived:
            self.requests.append(
                RecordedRequest("caller_id", request.method, request.path, fields,
                                dict(request.headers))
            )  # fmt: skip
            self._arrived.notify_all()
        if (early := await self._answer_first("caller_id", request)) is not None:
            return None, early
        if parsed is None:
            return None, web.json_response(create_error_body("400", "invalid JSON"), status=400)
        return parsed, None

    async def _create_caller_id(self, request: web.Request) -> web.Response:
        body, answer = await self._caller_id_request(request)
        if answer is not None:
            return answer
        number = body.get("number") if isinstance(body, dict) else None
        if not isinstance(number, str) or not number.startswith("+"):
            return web.json_response(
                create_error_body("invalid_parameter", "number is invalid"), status=422
            )
        caller_id = str(uuid.uuid4())
        self.caller_ids[caller_id] = {
            "type": "verified_caller_id", "id": caller_id, "number": number,
            "name": body.get("name"), "extension": body.get("extension"), "verified": False,
            "verified_at": None, "status": "Awaiting Verification",
        }  # fmt: skip
        self.verification_codes[caller_id] = f"{len(self.caller_ids):06d}"
        return web.json_response(self.caller_ids[caller_id], status=201)

    async def _verify_caller_id(self, request: web.Request) -> web.Response:
        body, answer = await self._caller_id_request(request)
        if answer is not None:
            return answer
        caller_id = request.match_info["id"]
        if caller_id not in self.caller_ids:
            return web.json_response(create_error_body("not_found", "not found"), status=404)
        code = body.get("verification_code") if isinstance(body, dict) else None
        if code != self.verification_codes[caller_id]:
            return web.json_response(
                create_error_body("invalid_code", "verification code is invalid"), status=422
            )
        self.caller_ids[caller_id].update(
            verified=True, status="Verified", verified_at="2026-11-25T12:00:00Z"
        )
        return web.json_response(self.caller_ids[caller_id])

    async def _delete_caller_id(self, request: web.Request) -> web.Response:
        _body, answer = await self._caller_id_request(request)
        if answer is not None:
            return answer
        if self.caller_ids.pop(request.match_info["id"], None) is None:
            return web.json_response(create_error_body("not_found", "not found"), status=404)
        return web.Response(status=204)

    async def _create(self, request: web.Request) -> web.Response:
        form = await self._record("create", request)
        if (early := await self._answer_first("create", request)) is not None:
            return early
        fields: dict[str, list[str]] = {}
        for key, value in form:
            fields.setdefault(key, []).append(value)

        def first(name: str) -> str:
            return fields.get(name, [""])[0]

        missing = [
            ("To", "21211", "Missing required parameter: To"),
            ("From", "21213", "Missing required parameter: From"),
            ("Url", "21205", "Url or ApplicationSid is required"),
        ]
        for name, code, message in missing:
            if not first(name):
                return web.json_response(create_error_body(code, message), status=400)
        for name in ("Method", "StatusCallbackMethod"):
            if first(name) and first(name) not in ("GET", "POST"):
                return web.json_response(create_error_body("21209", f"Invalid {name}"), status=400)
        call = self._new_call(
            str(uuid.uuid4()), first("To"), first("From"), status="queued", direction="outbound-api"
        )
        self.created_at[call["sid"]] = asyncio.get_running_loop().time()
        if self.lifecycle is not None and first("StatusCallback"):
            life = asyncio.create_task(self._live(call["sid"], first("StatusCallback")))
            self._lives.add(life)
            life.add_done_callback(self._lives.discard)
        return web.json_response(call, status=201)

    async def _live(self, call_sid: str, status_callback: str) -> None:
        """A created call's life (`Lifecycle`): it ends, and SignalWire says so."""
        assert self.lifecycle is not None
        if self.lifecycle.held is not None:
            await self.lifecycle.held.wait()
        await asyncio.sleep(self.lifecycle.lifetime_s)  # the call's length: a time, not an event
        self.end_call(call_sid, self.lifecycle.status)
        self.ended_at[call_sid] = asyncio.get_running_loop().time()
        call = self.calls[call_sid]
        form = {
            "CallSid": call_sid, "AccountSid": self.project_id, "From": call["from"],
            "To": call["to"], "Direction": "outbound-api", "CallStatus": call["status"],
        }  # fmt: skip
        signature = compute_signature(self.lifecycle.signing_key, status_callback, form.items())
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                status_callback, data=form, headers={"X-SignalWire-Signature": signature}
            ) as resp,  # fmt: skip
        ):
            await resp.read()

    def add_call(
        self,
        call_sid: str,
        *,
        to: str = "+15550100001",
        from_: str = "+15550100002",
        status: str = "in-progress",
        direction: str = "inbound",
        audio: CallAudio | None = None,
    ) -> dict[str, Any]:
        """Makes a call SignalWire did not create through the REST API (an inbound call)
        known to the fake, by the CallSid its webhooks carried; returns its Call JSON. Its
        timeline starts now: its streams play `audio` (silence where None, and past its end)."""
        call = self._new_call(call_sid, to, from_, status=status, direction=direction)
        self.timelines[call_sid] = CallTimeline(
            audio, asyncio.get_running_loop().time(), self.project_id
        )
        return call

    def open_stream(
        self,
        call_sid: str,
        url: str,
        *,
        parameters: dict[str, str],
        name: str | None = None,
        track: str = "both_tracks",
    ) -> FakeStream:
        """Starts streaming a known call to `url`, as SignalWire does when the call's LaML runs
        `<Start><Stream>` (the test passes what the LaML said) or a Streams request asks."""
        timeline = self.timelines[call_sid]
        stream = stream_for(timeline, call_sid, url, name=name, track=track,
                            parameters=parameters)  # fmt: skip
        player = asyncio.create_task(play(timeline, stream), name=f"stream-{stream.sid}")
        self._players.add(player)
        player.add_done_callback(self._players.discard)
        return stream

    def streams(self, call_sid: str) -> list[FakeStream]:
        """The call's streams so far, oldest first."""
        timeline = self.timelines.get(call_sid)
        return list(timeline.streams) if timeline is not None else []

    def _new_call(
        self, sid: str, to: str, from_: str, *, status: str, direction: str
    ) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC))
        uri = f"{API_BASE}/Accounts/{self.project_id}/Calls/{sid}"
        call: dict[str, Any] = {
            "sid": sid,
            "account_sid": self.project_id,
            "date_created": now,
            "date_updated": now,
            "parent_call_sid": None,
            "to": to,
            "formatted_to": to,
            "to_formatted": to,
            "from": from_,
            "formatted_from": from_,
            "from_formatted": from_,
            "phone_number_sid": None,
            "status": status,
            "start_time": None,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "direction": direction,
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "caller_name": None,
            "uri": f"{uri}.json",
            "subresource_uris": {
                "notifications": f"{uri}/Notifications.json",
                "recordings": f"{uri}/Recordings.json",
            },
            "annotation": None,
            "group_sid": None,
        }
        self.calls[sid] = call
        return call

    def end_call(self, call_sid: str, status: str = "completed", *, duration: int = 0) -> None:
        """Ends a known call as SignalWire would: its status, `end_time` now, `duration` (in
        seconds, sent as a string as Twilio does), and its recordings completed."""
        call = self.calls[call_sid]
        now = datetime.now(UTC)
        if call["start_time"] is None and status == "completed":
            call["start_time"] = format_datetime(now)
        call.update(
            status=status,
            end_time=format_datetime(now),
            duration=str(duration),
            date_updated=format_datetime(now),
        )
        for recording in self.recordings.values():  # a call's recordings end with it
            running = recording["status"] in ("in-progress", "paused")
            if running and recording["call_sid"] == call_sid:
                recording.update(status="completed", end_time=call["date_updated"])
        if (timeline := self.timelines.get(call_sid)) is not None:
            timeline.hung_up = True  # its streams send `stop` at their next frame

    async def _fetch(self, request: web.Request) -> web.Response:
        await self._record("fetch", request)
        if (early := await self._answer_first("fetch", request)) is not None:
            return early
        call = self.calls.get(request.match_info["call_sid"])
        if call is None:
            return web.json_response(error_body(404), status=404)
        return web.json_response(call, status=200)

    async def _update(self, request: web.Request) -> web.Response:
        form = dict(await self._record("update", request))
        if (early := await self._answer_first("update", request)) is not None:
            return early
        call = self.calls.get(request.match_info["call_sid"])
        if call is None:
            return web.json_response(error_body(404), status=404)
        status = form.get("Status")
        if status is not None:
            if status not in ("completed", "canceled"):
                return web.json_response(
                    error_body(400, 10000, f"Invalid Status: {status}"), status=400
                )
            if call["status"] in ("completed", "canceled", "failed", "busy", "no-answer"):
                return web.json_response(
                    error_body(400, 10000, "Call is not in progress"), status=400
                )
            self.end_call(call["sid"], status)
        return web.json_response(call, status=200)

    # Call recordings. Shapes from SignalWire's spec (calls/models/{requests,core}.tsp):
    # RecordingStatusCallbackEvent is one field of space-separated events; the Recording JSON
    # has `source` "StartCallRecordingApi" (Twilio spells it "StartCallRecordingAPI"). What
    # SignalWire answers for a recording request in the wrong state (the call not in progress,
    # the recording already stopped) is not documented: 400 with code 21220 is assumed.

    async def _create_recording(self, request: web.Request) -> web.Response:
        form = await self._record("create_recording", request)
        if (early := await self._answer_first("create_recording", request)) is not None:
            return early
        call_sid = request.match_info["call_sid"]
        call = self.calls.get(call_sid)
        if call is None:
            return web.json_response(error_body(404), status=404)
        fields = dict(form)
        allowed = {
            "RecordingChannels": {"mono", "dual"},
            "RecordingStatusCallbackMethod": {"GET", "POST"},
            "RecordingTrack": {"inbound", "outbound", "both"},
            "Trim": {"trim-silence", "do-not-trim"},
        }
        for name, values in allowed.items():
            if name in fields and fields[name] not in values:
                return web.json_response(
                    error_body(400, 10000, f"Invalid {name}: {fields[name]}"), status=400
                )
        events = fields.get("RecordingStatusCallbackEvent", "completed").split(" ")
        if not set(events) <= {"in-progress", "completed", "absent"}:
            return web.json_response(
                error_body(400, 10000, "Invalid RecordingStatusCallbackEvent"), status=400
            )
        if call["status"] != "in-progress":
            return web.json_response(error_body(400, 21220, "Call is not in-progress"), status=400)
        sid = str(uuid.uuid4())
        now = format_datetime(datetime.now(UTC))
        account = f"{API_BASE}/Accounts/{self.project_id}"
        recording: dict[str, Any] = {
            "account_sid": self.project_id,
            "api_version": "2010-04-01",
            "call_sid": call_sid,
            "conference_sid": None,
            "channels": 2 if fields.get("RecordingChannels") == "dual" else 1,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "end_time": None,
            "price": None,
            "price_unit": "USD",
            "duration": None,
            "sid": sid,
            "source": "StartCallRecordingApi",
            "status": "in-progress",
            "error_code": None,
            "uri": f"{account}/Calls/{call_sid}/Recordings/{sid}.json",
            "subresource_uris": {
                "transcriptions": f"{account}/Recordings/{sid}/Transcriptions.json",
            },
        }
        self.recordings[sid] = recording
        return web.json_response(recording, status=201)

    async def _update_recording(self, request: web.Request) -> web.Response:
        form = dict(await self._record("update_recording", request))
        if (early := await self._answer_first("update_recording", request)) is not None:
            return early
        recording = self.recordings.get(request.match_info["recording_sid"])
        if recording is None or recording["call_sid"] != request.match_info["call_sid"]:
            return web.json_response(error_body(404), status=404)
        status = form.get("Status")
        if status not in ("paused", "in-progress", "stopped"):
            return web.json_response(
                error_body(400, 10000, f"Invalid Status: {status}"), status=400
            )
        behavior = form.get("PauseBehavior")
        if behavior is not None and (status != "paused" or behavior not in ("skip", "silence")):
            return web.json_response(
                error_body(400, 10000, f"Invalid PauseBehavior: {behavior}"), status=400
            )
        if recording["status"] not in ("paused", "in-progress"):
            return web.json_response(
                error_body(400, 21220, "Recording is not in progress"), status=400
            )
        now = format_datetime(datetime.now(UTC))
        recording.update(status=status, date_updated=now)
        if behavior is not None:
            recording["pause_behavior"] = behavior
        if status == "stopped":
            recording["end_time"] = now
        return web.json_response(recording, status=200)

    # Streams (docs/protocols.md e). What SignalWire answers for a bad Url or a bad Track is not
    # documented: 400 with code 21402 (invalid URL) and 10000 (invalid argument) are assumed,
    # and 21205 for a missing Url, as create-call answers. 21220 for a call not in progress.

    async def _create_stream(self, request: web.Request) -> web.Response:
        form = await self._record("create_stream", request)
        if (early := await self._answer_first("create_stream", request)) is not None:
            return early
        call_sid = request.match_info["call_sid"]
        call = self.calls.get(call_sid)
        if call is None:
            return web.json_response(error_body(404), status=404)
        fields = dict(form)
        url = fields.get("Url", "")
        if not url:
            return web.json_response(error_body(400, 21205, "Url is required"), status=400)
        parts = urlsplit(url)
        schemes = ("wss", "ws") if self.allow_insecure_media else ("wss",)
        if parts.scheme not in schemes or not parts.hostname or parts.query:
            return web.json_response(error_body(400, 21402, f"Invalid Url: {url}"), status=400)
        track = fields.get("Track", "both_tracks")  # the REST default, unlike the verb's
        method = fields.get("StatusCallbackMethod", "POST")
        if track not in TRACKS_OF or method not in ("GET", "POST"):
            return web.json_response(error_body(400, 10000, "Invalid argument"), status=400)
        parameters: dict[str, str] = {}
        for n in range(1, 100):
            key = fields.get(f"Parameter{n}.Name")
            if key is not None:
                parameters[key] = fields.get(f"Parameter{n}.Value", "")
        if call["status"] != "in-progress" or call_sid not in self.timelines:
            return web.json_response(error_body(400, 21220, "Call is not in-progress"), status=400)
        stream = self.open_stream(
            call_sid, url, parameters=parameters, name=fields.get("Name"), track=track
        )
        now = format_datetime(datetime.now(UTC))
        return web.json_response(
            {
                "sid": stream.sid,
                "account_sid": self.project_id,
                "call_sid": call_sid,
                "name": stream.name or stream.sid,
                "status": "in-progress",
                "date_updated": now,
                "uri": f"{API_BASE}/Accounts/{self.project_id}/Calls/{call_sid}/Streams/"
                f"{stream.sid}.json",
            },
            status=201,
        )


@asynccontextmanager
async def running_fake_signalwire(
    project_id: str,
    api_token: str,
    lifecycle: Lifecycle | None = None,
    *,
    allow_insecure_media: bool = False,
) -> AsyncIterator[FakeSignalWire]:
    fake = FakeSignalWire(
        project_id, api_token, lifecycle, allow_insecure_media=allow_insecure_media
    )
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
