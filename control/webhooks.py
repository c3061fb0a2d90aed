"""SignalWire LaML webhooks: the voice webhook, call status and stream status callbacks.

Every request must carry a valid signature (`X-SignalWire-Signature` or `X-Twilio-Signature`,
scheme B of docs/protocols.md, keyed by the project's signing key, over the configured public
URL); anything else gets 403 before its body is looked at for meaning.

Every route answers within one database budget (`WebhookConfig.database_timeout_s`), the work
cancelled when it runs out; what it answers then (see `Webhooks._database_work`):
- voice: the caller is held and SignalWire asked for the call again (`_hold_for_database`);
- consent action: the caller is asked again (`_ask_consent_again`);
- call, stream and recording status callbacks: 503 (`_status_not_stored`).
Each overrun is counted in `WEBHOOK_OUTCOMES` as outcome db_timeout (db_unavailable when Postgres
refused rather than kept silent).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar

from aiohttp import web
from multidict import MultiDict

from control import jurisdiction, laml, metrics, survey_answers
from control.app_keys import POOL
from control.dialler import CAMPAIGN_ATTEMPT
from control.numbers import normalize_number
from control.prompts import Prompts
from control.signatures import SIGNATURE_HEADERS, verify_signature
from media.events import ConsentVerdict
from storage import calls, campaigns, consent, feed, recordings, surveys
from storage.db import UNAVAILABLE_ERRORS, Connection, Pool, cancel_promptly
from storage.tenancy import tenant

log = logging.getLogger(__name__)

T = TypeVar("T")

StreamTokenIssuer = Callable[[uuid.UUID, uuid.UUID, str], str]
"""(org id, call id, CallSid) → the token the media plane verifies on `start`."""

NOT_IN_SERVICE = "The number you have called is not in service. Goodbye."
SURVEY_UNAVAILABLE = "We cannot take your answers just now. Thank you for your time. Goodbye."
MAX_SURVEY_QUESTIONS = 20
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
ASK_AGAIN_PROMPT = "Sorry, we could not save your answer. " + KEYPAD_PROMPT
CONSENT_ATTEMPTS = 3
"""Consent action answers a call may get while the database is slow or away: the first
answer's request and two more askings, about 45 s with the default budget, before the caller
is told to call again."""


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    signing_key: str
    public_base_url: str
    """As SignalWire sees this server, e.g. https://voice.example.com (no trailing slash)."""
    media_url: str
    """The media server's URL: a call's streams connect to `<media_url>/<call id>`, which names
    the call for whatever routes connections to the process holding it (media.protocol's
    `call_in_path`)."""
    disclosure: str | None
    hold_seconds: int
    allow_insecure_media: bool
    """ws:// stream URLs, for local development and the simulator only."""
    database_timeout_s: float = 5.0
    """Every webhook's budget for its database work (see `Webhooks._database_work`)."""


class _DatabaseLate(Exception):
    """The database work of a webhook did not finish in its budget (`cause` db_timeout) or
    Postgres refused it (db_unavailable)."""

    def __init__(self, cause: Literal["db_timeout", "db_unavailable"], error: BaseException):
        super().__init__(cause)
        self.cause = cause
        self.error = error


@dataclass(frozen=True, slots=True)
class _ConsentTaken:
    """What the consent action stored and looked up, for the LaML it answers."""

    verdict: ConsentVerdict | None
    dial_target: str | None
    flow: laml.CampaignFlow | None = None


@dataclass(frozen=True, slots=True)
class _OpenedCall:
    """What the voice webhook stored and looked up, for the LaML it answers."""

    call: calls.CallRef
    route: calls.NumberRoute
    disclosure: str | None
    prompt: str
    campaign: tuple[uuid.UUID, campaigns.Answered] | None = None
    """A campaign's call: its attempt, and what it plays."""
    inbound: bool = True


class Webhooks:
    def __init__(
        self,
        config: WebhookConfig,
        issue_token: StreamTokenIssuer,
        recording_in_progress: Callable[[str, str], None],
        campaign_call_ended: Callable[[uuid.UUID, str], None],
        redact_text: Callable[[str], str],
        prompts: Prompts,
    ) -> None:
        """`recording_in_progress(call_sid, recording_sid)` hears every recording SignalWire
        reports as running (`RecordingController.recording_in_progress`);
        `campaign_call_ended(attempt, status)` the final status of every campaign call
        (`Dialler.call_ended`), named by the attempt in its status callback's URL."""
        self._config = config
        self._issue_token = issue_token
        self._recording_in_progress = recording_in_progress
        self._campaign_call_ended = campaign_call_ended
        self._redact_text = redact_text
        self._prompts = prompts
        """Says the org's words in its voice (control.prompts)."""
        """What a caller says to a survey's open question goes through it before it is kept."""

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/laml/voice", self.voice, name="laml_voice"),
            web.post("/laml/status", self.call_status, name="laml_status"),
            web.post("/laml/stream-status", self.stream_status, name="laml_stream_status"),
            web.post("/laml/consent", self.keypad_consent, name="laml_consent"),
            web.post("/laml/recording", self.recording_status, name="laml_recording"),
            web.post("/laml/survey", self.survey, name="laml_survey"),
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
        attempt = _attempt(request, VOICE_ATTEMPTS)
        pool = request.app[POOL]
        try:
            opened = await self._database_work(
                self._open_call(pool, form, call_sid, direction, _campaign_attempt(request))
            )
        except _DatabaseLate as late:
            return self._hold_for_database(request, attempt, late.cause, late.error)
        if opened is None:
            metrics.WEBHOOK_OUTCOMES.labels("voice", "unknown_number").inc()
            log.warning("voice webhook for a number no org owns (%s)", direction)
            return _laml(laml.say_and_hangup(NOT_IN_SERVICE))
        metrics.WEBHOOK_OUTCOMES.labels("voice", "call_opened").inc()
        return _laml(await self._call_flow(opened, call_sid))

    async def _database_work(self, work: Awaitable[T]) -> T:
        """`work` within the webhooks' database budget; raises `_DatabaseLate` when it runs out
        (the work is cancelled, on the server too, without waiting for Postgres to agree) or
        Postgres is away. The caller's own cancellation goes through as it is."""
        try:
            async with asyncio.timeout(self._config.database_timeout_s) as budget:
                return await cancel_promptly(work)
        except UNAVAILABLE_ERRORS as exc:
            raise _DatabaseLate(
                "db_timeout" if budget.expired() else "db_unavailable", exc
            ) from exc

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
        self, pool: Pool, form: MultiDict[str], call_sid: str, direction: str,
        attempt_id: uuid.UUID | None,
    ) -> _OpenedCall | None:  # fmt: skip
        """The call's row (with its disclosure evidence and feed row), or None when no org
        owns the number; a campaign's call (`attempt_id`) is linked to its attempt."""
        # Inbound calls reach one of our numbers (To); calls we placed come from one (From).
        ours = normalize_number(form.get("From" if direction.startswith("outbound") else "To"))
        if not ours:
            return None
        from_number = _number_or_raw(form.get("From"))
        to_number = _number_or_raw(form.get("To"))
        disclosure = d if (d := self._config.disclosure) and d.strip() else None
        # The number's route, the call, its disclosure evidence and its feed row: one
        # transaction, so the feed never announces what was not stored, on one pooled
        # connection (under load each taking of one waits its turn).
        async with pool.acquire() as conn, conn.transaction():
            route = await calls.route_number(conn, ours)
            if route is None:
                return None
            rule = jurisdiction.decide((from_number, to_number), route.consent_default)
            mode = route.consent_mode
            question = {"ask": ASK_PROMPT, "keypad": KEYPAD_PROMPT}.get(mode)
            prompt = " ".join(p for p in (disclosure, question) if p)
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
            answered = None
            if attempt_id is not None:
                answered = await campaigns.note_answer(
                    conn, attempt_id, call.org_id, call.id, form.get("AnsweredBy")
                )
        campaign = None if answered is None or attempt_id is None else (attempt_id, answered)
        inbound = not direction.startswith("outbound")
        return _OpenedCall(call, route, disclosure, prompt, campaign, inbound)

    async def _call_flow(self, opened: _OpenedCall, call_sid: str) -> str:
        """The org's flow for an opened call: disclosure, stream, consent question, dial (or
        the campaign's flow; a campaign hangs up on a machine unless it leaves a message), its
        words in the org's voice."""
        call, mode = opened.call, opened.route.consent_mode
        flow, consent_url = None, self._config.public_base_url + "/laml/consent"
        if opened.campaign is not None:
            attempt_id, answered = opened.campaign
            if answered.hang_up:
                return laml.say_and_hangup("")
            flow = await self._campaign_flow(call.org_id, answered)
            consent_url += f"?{CAMPAIGN_ATTEMPT}={attempt_id}"
        elif opened.route.survey_id is not None and opened.inbound:
            flow = laml.CampaignFlow(survey_url=self._survey_url(opened.route.survey_id))
        token = self._issue_token(call.org_id, call.id, call_sid)
        stream = laml.StreamSpec(
            url=laml.call_stream_url(self._config.media_url, call.id),
            name=f"voxsouth-{call.id}",
            status_callback=self._config.public_base_url + "/laml/stream-status",
            parameters={"token": token},
            allow_insecure=self._config.allow_insecure_media,
        )
        gather, disclosure = None, None
        if mode in ("ask", "keypad"):
            gather = laml.ConsentGather(
                action_url=consent_url,
                prompt=await self._prompts.speak(call.org_id, opened.prompt),
                speech=mode == "ask",
            )
        elif opened.disclosure is not None:
            disclosure = await self._prompts.speak(call.org_id, opened.disclosure)
        return laml.voice_response(
            disclosure=disclosure,
            stream=stream,
            dial_target=opened.route.dial_target,
            hold_seconds=self._config.hold_seconds,
            consent_gather=gather,
            flow=flow,
        )

    def _survey_url(self, survey_id: uuid.UUID, answer: int | None = None) -> str:
        url = f"{self._config.public_base_url}/laml/survey?survey={survey_id}"
        return url if answer is None else f"{url}&answer={answer}"

    async def _campaign_flow(
        self, org_id: uuid.UUID, answered: campaigns.Answered
    ) -> laml.CampaignFlow:
        flow = answered.flow
        survey, say, clip = flow.get("survey"), flow.get("say"), flow.get("play_clip")
        return laml.CampaignFlow(
            say=None if say is None else await self._prompts.speak(org_id, say),
            play=self._prompts.urls.url(uuid.UUID(clip)) if clip else flow.get("play"),
            connect=flow.get("connect"),
            survey_url=None if survey is None else self._survey_url(uuid.UUID(survey)),
            caller_id=answered.from_number,
        )  # fmt: skip

    async def survey(self, request: web.Request) -> web.Response:
        """A survey's questions, one `<Gather>` after another: the first when the call comes
        (redirected here from its flow), then, each time an answer (or none) comes back, that
        answer is stored (`control.survey_answers` reads it) and the next question asked; after
        the last, the closing words and a hang-up."""
        form = await self._verified_form(request, "survey")
        call_sid = _required(form, "CallSid")
        survey_id = _query_uuid(request, "survey")
        answered = request.query.get("answer")
        question = int(answered) if answered is not None and answered.isdigit() else None
        if answered is not None and (question is None or question > MAX_SURVEY_QUESTIONS):
            raise web.HTTPBadRequest(reason="answer must be a question's number")
        pool = request.app[POOL]

        async def store() -> tuple[uuid.UUID, dict[str, Any] | None] | None:
            call = await calls.call_by_sid(pool, call_sid)
            if call is None:
                return None
            async with tenant(pool, call.org_id) as conn, conn.transaction():
                survey = await surveys.get(conn, call.org_id, survey_id)
                if survey is not None and question is not None:
                    await self._store_answer(conn, call, survey, question, form)
                    if question == len(survey["questions"]) - 1:
                        await feed.append(
                            conn, call.org_id, call.id, "survey_completed",
                            {"survey_id": str(survey_id)},
                            event_id=uuid.uuid5(call.id, f"survey_completed:{survey_id}"),
                        )  # fmt: skip
            return call.org_id, survey

        try:
            found = await self._database_work(store())
        except _DatabaseLate as late:
            metrics.WEBHOOK_OUTCOMES.labels("survey", late.cause).inc()
            return _laml(laml.say_and_hangup(SURVEY_UNAVAILABLE))
        org_id, survey = found if found is not None else (None, None)
        if org_id is None or survey is None:
            metrics.WEBHOOK_OUTCOMES.labels("survey", "unknown").inc()
            return _laml(laml.say_and_hangup(NOT_IN_SERVICE))
        metrics.WEBHOOK_OUTCOMES.labels(
            "survey", "answered" if question is not None else "started"
        ).inc()
        asked = 0 if question is None else question + 1
        questions = survey["questions"]
        if asked >= len(questions):
            return _laml(laml.say_and_hangup(await self._prompts.speak(org_id, survey["closing"])))
        ask = questions[asked]
        clip = ask.get("audio_clip")
        audio_url = self._prompts.urls.url(uuid.UUID(clip)) if clip else ask.get("audio_url")
        return _laml(laml.survey_question(
            prompt=ask["prompt"] if audio_url else await self._prompts.speak(org_id, ask["prompt"]),
            speech_only=ask["kind"] == "speech",
            action_url=self._survey_url(survey_id, asked),
            audio_url=audio_url,
        ))  # fmt: skip

    async def _store_answer(
        self, conn: Connection, call: calls.CallRow, survey: dict[str, Any], question: int,
        form: MultiDict[str],
    ) -> None:  # fmt: skip
        if question >= len(survey["questions"]):
            return
        asked = survey["questions"][question]
        digits = (form.get("Digits") or "")[:8]
        speech = self._redact_text((form.get("SpeechResult") or "")[:2000])
        await surveys.record_answer(
            conn, call.org_id, survey["id"], call.id, question,
            value=survey_answers.meaning(asked["kind"], digits, speech, asked.get("choices")),
            digits=digits or None, speech=speech or None,
            confidence=_optional_float(form, "Confidence"),
        )  # fmt: skip

    async def keypad_consent(self, request: web.Request) -> web.Response:
        """The consent `<Gather>`'s action: 1 grants, 2 refuses, anything else (or nothing)
        leaves consent undecided; then the call goes on as it would have. When the database
        cannot take the answer in time the caller is asked again (`_ask_consent_again`)."""
        form = await self._verified_form(request, "consent")
        call_sid = _required(form, "CallSid")
        attempt = _attempt(request, CONSENT_ATTEMPTS)
        digits = (form.get("Digits") or "")[:8]
        try:
            taken = await self._database_work(
                self._take_consent(request.app[POOL], call_sid, digits, _campaign_attempt(request))
            )
        except _DatabaseLate as late:
            return self._ask_consent_again(request, attempt, digits, late)
        if taken is None:
            metrics.WEBHOOK_OUTCOMES.labels("consent", "unknown_call").inc()
            return _laml(laml.say_and_hangup(NOT_IN_SERVICE))
        metrics.WEBHOOK_OUTCOMES.labels("consent", taken.verdict or "no_answer").inc()
        return _laml(
            laml.continuation(
                say="This call will not be recorded." if taken.verdict == "refused" else None,
                dial_target=taken.dial_target,
                dial_caller_id=None,
                hold_seconds=self._config.hold_seconds,
                flow=taken.flow,
            )
        )

    async def _take_consent(
        self, pool: Pool, call_sid: str, digits: str, attempt_id: uuid.UUID | None
    ) -> _ConsentTaken | None:
        """Stores the keypad verdict `digits` give (if any) and finds where the call goes on
        (a campaign's call: its flow); None when the call is unknown."""
        call = await calls.call_by_sid(pool, call_sid)
        if call is None:
            return None
        verdict = KEYPAD_ANSWERS.get(digits)
        if verdict is not None:
            async with tenant(pool, call.org_id) as conn:
                await consent.record_verdict(
                    conn, call.org_id, call.id, verdict, detector="keypad",
                    evidence=f"digit {digits}",
                    # A re-delivered action is the same answer, stored once.
                    event_id=uuid.uuid5(call.id, f"keypad:{digits}"),
                )  # fmt: skip
        flow = None
        if attempt_id is not None:
            async with tenant(pool, call.org_id) as conn:
                answered = await campaigns.note_answer(conn, attempt_id, call.org_id, call.id,
                                                       None)  # fmt: skip
            flow = None if answered is None else await self._campaign_flow(call.org_id, answered)
        ours = call.from_number if call.direction.startswith("outbound") else call.to_number
        route = await calls.route_number(pool, ours)
        return _ConsentTaken(verdict, route.dial_target if route else None, flow)

    def _ask_consent_again(
        self, request: web.Request, attempt: int, digits: str, late: _DatabaseLate
    ) -> web.Response:
        """The answer when the database did not take the caller's consent answer in time.

        Why ask again rather than go on with the call: going on needs the org's dial target,
        which is in the database too, so all we could answer is the hold `<Pause>`, with the
        key press lost for good; the verdict is what decides whether this call may be recorded,
        and a refusal that never reaches the media plane is the worst outcome here. Asking
        again keeps the decision with the caller: their next press comes back to this action
        (`attempt` + 1), stored once the database answers (a press that did reach the database
        before the budget ran out is the same evidence, stored once by its event id), and the
        call goes on as usual. After `CONSENT_ATTEMPTS` answers the caller is told to call
        again, as the voice webhook does: without the database the call cannot be connected."""
        log.warning(
            "consent action attempt %d: database %s, key press %r not stored (%r)",
            attempt, late.cause.removeprefix("db_"), digits, late.error,
        )  # fmt: skip
        if attempt >= CONSENT_ATTEMPTS:
            metrics.WEBHOOK_OUTCOMES.labels("consent", "db_gave_up").inc()
            return _laml(laml.say_and_hangup(CALL_BACK_LATER))
        metrics.WEBHOOK_OUTCOMES.labels("consent", late.cause).inc()
        again = request.rel_url.update_query(attempt=str(attempt + 1))
        # Keypad only: the org's mode (and so whether speech is taken) is in the database.
        gather = laml.ConsentGather(
            action_url=self._config.public_base_url + str(again), prompt=ASK_AGAIN_PROMPT
        )
        return _laml(laml.ask_consent(gather))

    def _status_not_stored(self, route: str, late: _DatabaseLate) -> web.Response:
        """A status callback the database did not store in time: 503, quickly.

        SignalWire expects 200 or 204 and logs any other answer as a failed callback
        (docs/protocols.md section d; whether it retries one is not documented there). 503
        says truthfully that nothing may have been stored, before SignalWire's own request
        timeout, and should it deliver the callback again, storing is idempotent: a call status
        only moves forward (a repeat is `stale`, no second feed row), stream and recording
        statuses are upserts by their SID."""
        log.warning(
            "%s callback: database %s, not stored (%r)",
            route, late.cause.removeprefix("db_"), late.error,
        )  # fmt: skip
        metrics.WEBHOOK_OUTCOMES.labels(route, late.cause).inc()
        return web.Response(status=503, headers={"Retry-After": "1"})

    async def recording_status(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "recording")
        call_sid = _required(form, "CallSid")
        recording_sid = _required(form, "RecordingSid")
        status = _required(form, "RecordingStatus")[:32]
        try:
            known = await self._database_work(
                recordings.apply_status(
                    request.app[POOL],
                    call_sid=call_sid,
                    recording_sid=recording_sid,
                    status=status,
                    url=(form.get("RecordingUrl") or None),
                    duration_s=_optional_int(form, "RecordingDuration"),
                    channels=_optional_int(form, "RecordingChannels"),
                )
            )
        except _DatabaseLate as late:
            return self._status_not_stored("recording", late)
        metrics.WEBHOOK_OUTCOMES.labels("recording", "applied" if known else "unknown_call").inc()
        if known and status == "in-progress":
            self._recording_in_progress(call_sid, recording_sid)
        return web.Response(status=204)

    async def call_status(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "status")
        status = _required(form, "CallStatus")
        if status not in calls.CALL_STATUSES:
            raise web.HTTPBadRequest(reason=f"unknown CallStatus {status[:32]!r}")
        call_sid = _required(form, "CallSid")
        sequence = _optional_int(form, "SequenceNumber")
        at = _rfc2822(form.get("Timestamp"))
        duration = _optional_int(form, "CallDuration")

        async def apply() -> str:
            async with request.app[POOL].acquire() as conn:  # one statement: no BEGIN/COMMIT
                return await calls.apply_call_status(
                    conn, call_sid=call_sid, status=status, sequence=sequence, at=at,
                    duration_seconds=duration,
                )  # fmt: skip

        try:
            outcome = await self._database_work(apply())
        except _DatabaseLate as late:
            return self._status_not_stored("status", late)
        metrics.WEBHOOK_OUTCOMES.labels("status", outcome).inc()
        attempt_id = _campaign_attempt(request)
        if attempt_id is not None and status in calls.TERMINAL_STATUSES:
            self._campaign_call_ended(attempt_id, status)
        return web.Response(status=204)

    async def stream_status(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "stream_status")
        try:
            known = await self._database_work(
                calls.apply_stream_status(
                    request.app[POOL],
                    call_sid=_required(form, "CallSid"),
                    stream_sid=_required(form, "StreamSid"),
                    name=form.get("StreamName"),
                    event=_required(form, "StreamEvent"),
                    error=(form.get("StreamError") or None),
                    at=_iso8601(form.get("Timestamp")),
                )
            )
        except _DatabaseLate as late:
            return self._status_not_stored("stream_status", late)
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


def _campaign_attempt(request: web.Request) -> uuid.UUID | None:
    value = request.query.get(CAMPAIGN_ATTEMPT)
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{CAMPAIGN_ATTEMPT} must be a UUID") from None


def _query_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.query.get(name, ""))
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be a UUID") from None


def _optional_float(form: MultiDict[str], name: str) -> float | None:
    try:
        return float(form[name]) if form.get(name) else None
    except ValueError:
        return None


def _attempt(request: web.Request, limit: int) -> int:
    """Which answer of the voice webhook or consent action this is: 1, or the `attempt` its
    database fallback put in the URL SignalWire asks next (see `Webhooks._hold_for_database`,
    `Webhooks._ask_consent_again`)."""
    value = request.query.get("attempt", "1")
    attempt = int(value) if value.isascii() and value.isdigit() and len(value) < 3 else 0
    if not 1 <= attempt <= limit:
        raise web.HTTPBadRequest(reason=f"attempt must be from 1 to {limit}")
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
