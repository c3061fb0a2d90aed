"""SignalWire LaML webhooks: the voice webhook, call status and stream status callbacks.

Every request must carry a valid signature (`X-SignalWire-Signature` or `X-Twilio-Signature`,
scheme B of docs/protocols.md, keyed by the project's signing key, over the configured public
URL); anything else gets 403 before its body is looked at for meaning.

The voice webhook answers within its database budget: when Postgres is too slow or away, the
caller is held and SignalWire asked for the call again (`Webhooks._hold_for_database`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from aiohttp import web
from multidict import MultiDict

from control import jurisdiction, laml, metrics
from control.app_keys import POOL
from control.numbers import normalize_number
from control.signatures import SIGNATURE_HEADERS, verify_signature
from media.events import ConsentVerdict
from storage import calls, consent, feed, recordings
from storage.db import UNAVAILABLE_ERRORS, Pool, cancel_promptly
from storage.tenancy import tenant

log = logging.getLogger(__name__)

StreamTokenIssuer = Callable[[uuid.UUID, uuid.UUID, str], str]
"""(org id, call id, CallSid) → the token the media plane verifies on `start`."""

NOT_IN_SERVICE = "The number you have called is not in service. Goodbye."
KEYPAD_PROMPT = "Press 1 to allow recording, or 2 to decline."
ASK_PROMPT = "Is that okay with you? Say yes, or press 1 to allow recording, or 2 to decline."
KEYPAD_ANSWERS: dict[str, ConsentVerdict] = {"1": "granted", "2": "refused"}
HOLD_PROMPT = "Please hold while we connect your call."
CALL_BACK_LATER = "We are sorry, we cannot take your call right now. Please call again later."
VOICE_ATTEMPTS = 4
"""Voice webhook answers a call may get while the database is slow or away before it is given
up: about 30 s on hold when each waits out the default 5 s budget, 10 s when Postgres refuses
at once."""
HOLD_PAUSE_S = 3


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    signing_key: str
    public_base_url: str
    """As SignalWire sees this server, e.g. https://voice.example.com (no trailing slash)."""
    media_url: str
    disclosure: str | None
    hold_seconds: int
    allow_insecure_media: bool
    """ws:// stream URLs, for local development and the simulator only."""
    database_timeout_s: float = 5.0
    """The voice webhook's budget for its database work (see `Webhooks._hold_for_database`)."""


@dataclass(frozen=True, slots=True)
class _OpenedCall:
    """What the voice webhook stored and looked up, for the LaML it answers."""

    call: calls.CallRef
    route: calls.NumberRoute
    disclosure: str | None
    prompt: str


class Webhooks:
    def __init__(
        self,
        config: WebhookConfig,
        issue_token: StreamTokenIssuer,
        recording_in_progress: Callable[[str, str], None],
    ) -> None:
        """`recording_in_progress(call_sid, recording_sid)` hears every recording SignalWire
        reports as running (`RecordingController.recording_in_progress`)."""
        self._config = config
        self._issue_token = issue_token
        self._recording_in_progress = recording_in_progress

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/laml/voice", self.voice, name="laml_voice"),
            web.post("/laml/status", self.call_status, name="laml_status"),
            web.post("/laml/stream-status", self.stream_status, name="laml_stream_status"),
            web.post("/laml/consent", self.keypad_consent, name="laml_consent"),
            web.post("/laml/recording", self.recording_status, name="laml_recording"),
        ]

    async def _verified_form(self, request: web.Request, route: str) -> MultiDict[str]:
        form = await request.post()
        params = [(k, v) for k, v in form.items() if isinstance(v, str)]
        signature = next(
            (request.headers[h] for h in SIGNATURE_HEADERS if h in request.headers), None
        )
        url = self._config.public_base_url + request.raw_path
        if not verify_signature(self._config.signing_key, url, params, signature):
            metrics.SIGNATURE_FAILURES.labels(route).inc()
            log.warning("webhook %s refused: bad or missing signature", route)
            raise web.HTTPForbidden(reason="invalid webhook signature")
        return MultiDict(params)

    async def voice(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "voice")
        call_sid = _required(form, "CallSid")
        direction = (form.get("Direction") or "inbound")[:32]
        attempt = _attempt(request)
        pool = request.app[POOL]
        try:
            async with asyncio.timeout(self._config.database_timeout_s) as budget:
                opened = await cancel_promptly(self._open_call(pool, form, call_sid, direction))
        except UNAVAILABLE_ERRORS as exc:
            cause = "db_timeout" if budget.expired() else "db_unavailable"
            return self._hold_for_database(request, attempt, cause, exc)
        if opened is None:
            metrics.WEBHOOK_OUTCOMES.labels("voice", "unknown_number").inc()
            log.warning("voice webhook for a number no org owns (%s)", direction)
            return _laml(laml.say_and_hangup(NOT_IN_SERVICE))
        metrics.WEBHOOK_OUTCOMES.labels("voice", "call_opened").inc()
        return _laml(self._call_flow(opened, call_sid))

    def _hold_for_database(
        self, request: web.Request, attempt: int, cause: str, exc: BaseException
    ) -> web.Response:
        """The answer when the database did not open the call in time (`cause` db_timeout) or
        is away (db_unavailable): hold the caller, then have SignalWire ask again.

        Why not connect the call some other way: without the database we know neither where
        the org sends its calls nor how it takes consent, and have no call row for the stream's
        evidence, so no flow we could answer would be the org's; and hanging up loses a caller
        who would have been served seconds later. `<Pause>` keeps the call up, `<Redirect>`
        has SignalWire request this webhook again (safe: a re-delivered voice webhook gets
        the same call row, its disclosure stored once), and once Postgres answers the caller
        hears the org's usual flow, disclosure first. After `VOICE_ATTEMPTS` answers the
        caller is told to call again: dead air without end is worse."""
        log.warning(
            "voice webhook attempt %d: database %s (%r)",
            attempt, cause.removeprefix("db_"), exc,
        )  # fmt: skip
        if attempt >= VOICE_ATTEMPTS:
            metrics.WEBHOOK_OUTCOMES.labels("voice", "db_gave_up").inc()
            return _laml(laml.say_and_hangup(CALL_BACK_LATER))
        metrics.WEBHOOK_OUTCOMES.labels("voice", cause).inc()
        again = request.rel_url.update_query(attempt=str(attempt + 1))
        return _laml(
            laml.hold_and_retry(
                self._config.public_base_url + str(again),
                pause_s=HOLD_PAUSE_S,
                say=HOLD_PROMPT if attempt == 1 else None,
            )
        )

    async def _open_call(
        self, pool: Pool, form: MultiDict[str], call_sid: str, direction: str
    ) -> _OpenedCall | None:
        """The call's row (with its disclosure evidence and feed row), or None when no org
        owns the number."""
        # Inbound calls reach one of our numbers (To); calls we placed come from one (From).
        ours = normalize_number(form.get("From" if direction.startswith("outbound") else "To"))
        route = await calls.route_number(pool, ours) if ours else None
        if route is None:
            return None
        from_number = _number_or_raw(form.get("From"))
        to_number = _number_or_raw(form.get("To"))
        rule = jurisdiction.decide((from_number, to_number), route.consent_default)
        mode = route.consent_mode
        disclosure = d if (d := self._config.disclosure) and d.strip() else None
        question = {"ask": ASK_PROMPT, "keypad": KEYPAD_PROMPT}.get(mode)
        prompt = " ".join(p for p in (disclosure, question) if p)
        # The call, its disclosure evidence and its feed row: one transaction, so the feed
        # never announces what was not stored.
        async with pool.acquire() as conn, conn.transaction():
            call = await calls.open_call(
                conn,
                org_id=route.org_id,
                call_sid=call_sid,
                account_sid=form.get("AccountSid"),
                direction=direction,
                from_number=from_number,
                to_number=to_number,
                status=form.get("CallStatus") or "ringing",
                consent_rule=rule.rule,
                consent_rule_reason=rule.reason,
            )
            if prompt:
                detector = {"ask": "laml_ask", "keypad": "laml_gather"}.get(mode, "laml_say")
                await consent.disclosure_played(
                    conn, call.org_id, call.id, detector=detector, text=prompt
                )
            await feed.append(
                conn, call.org_id, call.id, "call_started",
                {"call_sid": call_sid, "direction": direction, "from_number": from_number,
                 "to_number": to_number, "consent_rule": rule.rule, "status": call.status},
                event_id=uuid.uuid5(call.id, "call_started"),
            )  # fmt: skip
        return _OpenedCall(call, route, disclosure, prompt)

    def _call_flow(self, opened: _OpenedCall, call_sid: str) -> str:
        """The org's flow for an opened call: disclosure, stream, consent question, dial."""
        call, mode = opened.call, opened.route.consent_mode
        token = self._issue_token(call.org_id, call.id, call_sid)
        stream = laml.StreamSpec(
            url=self._config.media_url,
            name=f"voxsouth-{call.id}",
            status_callback=self._config.public_base_url + "/laml/stream-status",
            parameters={"token": token},
            allow_insecure=self._config.allow_insecure_media,
        )
        gather = None
        if mode in ("ask", "keypad"):
            gather = laml.ConsentGather(
                action_url=self._config.public_base_url + "/laml/consent",
                prompt=opened.prompt,
                speech=mode == "ask",
            )
        return laml.voice_response(
            disclosure=opened.disclosure,
            stream=stream,
            dial_target=opened.route.dial_target,
            hold_seconds=self._config.hold_seconds,
            consent_gather=gather,
        )

    async def keypad_consent(self, request: web.Request) -> web.Response:
        """The consent `<Gather>`'s action: 1 grants, 2 refuses, anything else (or nothing)
        leaves consent undecided; then the call goes on as it would have."""
        form = await self._verified_form(request, "consent")
        call_sid = _required(form, "CallSid")
        pool = request.app[POOL]
        call = await calls.call_by_sid(pool, call_sid)
        if call is None:
            metrics.WEBHOOK_OUTCOMES.labels("consent", "unknown_call").inc()
            return _laml(laml.say_and_hangup(NOT_IN_SERVICE))
        digits = (form.get("Digits") or "")[:8]
        verdict = KEYPAD_ANSWERS.get(digits)
        if verdict is not None:
            async with tenant(pool, call.org_id) as conn:
                await consent.record_verdict(
                    conn, call.org_id, call.id, verdict, detector="keypad",
                    evidence=f"digit {digits}",
                    # A re-delivered action is the same answer, stored once.
                    event_id=uuid.uuid5(call.id, f"keypad:{digits}"),
                )  # fmt: skip
        metrics.WEBHOOK_OUTCOMES.labels("consent", verdict or "no_answer").inc()
        ours = call.from_number if call.direction.startswith("outbound") else call.to_number
        route = await calls.route_number(pool, ours)
        return _laml(
            laml.continuation(
                say="This call will not be recorded." if verdict == "refused" else None,
                dial_target=route.dial_target if route else None,
                dial_caller_id=None,
                hold_seconds=self._config.hold_seconds,
            )
        )

    async def recording_status(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "recording")
        call_sid = _required(form, "CallSid")
        recording_sid = _required(form, "RecordingSid")
        status = _required(form, "RecordingStatus")[:32]
        known = await recordings.apply_status(
            request.app[POOL],
            call_sid=call_sid,
            recording_sid=recording_sid,
            status=status,
            url=(form.get("RecordingUrl") or None),
            duration_s=_optional_int(form, "RecordingDuration"),
            channels=_optional_int(form, "RecordingChannels"),
        )
        metrics.WEBHOOK_OUTCOMES.labels("recording", "applied" if known else "unknown_call").inc()
        if known and status == "in-progress":
            self._recording_in_progress(call_sid, recording_sid)
        return web.Response(status=204)

    async def call_status(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "status")
        status = _required(form, "CallStatus")
        if status not in calls.CALL_STATUSES:
            raise web.HTTPBadRequest(reason=f"unknown CallStatus {status[:32]!r}")
        async with request.app[POOL].acquire() as conn, conn.transaction():
            outcome = await calls.apply_call_status(
                conn,
                call_sid=_required(form, "CallSid"),
                status=status,
                sequence=_optional_int(form, "SequenceNumber"),
                at=_rfc2822(form.get("Timestamp")),
                duration_seconds=_optional_int(form, "CallDuration"),
            )
        metrics.WEBHOOK_OUTCOMES.labels("status", outcome).inc()
        return web.Response(status=204)

    async def stream_status(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "stream_status")
        known = await calls.apply_stream_status(
            request.app[POOL],
            call_sid=_required(form, "CallSid"),
            stream_sid=_required(form, "StreamSid"),
            name=form.get("StreamName"),
            event=_required(form, "StreamEvent"),
            error=(form.get("StreamError") or None),
            at=_iso8601(form.get("Timestamp")),
        )
        outcome = "applied" if known else "unknown_call"
        metrics.WEBHOOK_OUTCOMES.labels("stream_status", outcome).inc()
        return web.Response(status=204)


def _number_or_raw(value: str | None) -> str:
    """E.164 when the value carries one (SIP and tel URIs do), else the value as sent."""
    return normalize_number(value) or (value or "")[:128]


def _laml(document: str) -> web.Response:
    return web.Response(text=document, content_type="text/xml")


def _required(form: MultiDict[str], name: str) -> str:
    value = form.get(name)
    if not value or len(value) > 256:
        raise web.HTTPBadRequest(reason=f"{name} is missing or invalid")
    return value


def _attempt(request: web.Request) -> int:
    """Which answer of the voice webhook this is: 1, or the `attempt` of a held call's
    `<Redirect>` (see `Webhooks._hold_for_database`)."""
    value = request.query.get("attempt", "1")
    attempt = int(value) if value.isascii() and value.isdigit() and len(value) < 3 else 0
    if not 1 <= attempt <= VOICE_ATTEMPTS:
        raise web.HTTPBadRequest(reason=f"attempt must be from 1 to {VOICE_ATTEMPTS}")
    return attempt


def _optional_int(form: MultiDict[str], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise web.HTTPBadRequest(reason=f"{name} is not a whole number")
    return int(value)


def _rfc2822(value: str | None) -> datetime:
    """Call callbacks stamp RFC 2822 times; a missing or odd one means 'now'."""
    if value:
        try:
            parsed = parsedate_to_datetime(value)
            if parsed.tzinfo is not None:
                return parsed
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _iso8601(value: str | None) -> datetime:
    """Stream callbacks stamp ISO 8601 times."""
    if value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is not None:
                return parsed
        except ValueError:
            pass
    return datetime.now(UTC)
