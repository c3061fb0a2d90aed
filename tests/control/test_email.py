"""Email through a real SMTP server started here (aiosmtpd): the outbox sends what is queued,
tries again when the server refuses or is away, and a booking's reminder goes at its time."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.fake_service import free_port
from control.daily_summary import queue_summaries
from control.email import (
    EmailSender,
    ResendConfig,
    SenderConfig,
    SmtpConfig,
    resend_transport,
    smtp_transport,
)
from media.events import EscalationRaised
from server.app import RunningServer
from storage import email_outbox
from storage.db import Pool
from storage.event_writer import write_events
from tests.conftest import SIGNALWIRE_PROJECT, SIGNALWIRE_TOKEN, timeout
from tests.control.test_api_access import new_call
from tests.control.test_bookings import AGENT, tomorrow_at_half_past_three
from tests.control.test_targets_api import call_api
from tests.support.accounts import make_org
from tests.support.fake_signalwire import Fail, FakeSignalWire
from tests.support.loopback import serving_app


@dataclass
class Mailbox:
    """What the SMTP server received; `refuse` answers the next messages with 550."""

    messages: list[Message] = field(default_factory=list)
    refuse: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.refuse:
            self.refuse -= 1
            return "550 mailbox unavailable"
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def sending(pool: Pool, port: int) -> EmailSender:
    return EmailSender(
        pool, smtp_transport(SmtpConfig(host="127.0.0.1", port=port, security="none",
                                        timeout_s=timeout(5),
                                        sender="Voxsouth <calls@example.com>")),
        SenderConfig(first_retry_s=0.0),
    )  # fmt: skip


async def outbox(pool: Pool, key: str) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM email_outbox WHERE dedupe_key = $1", key)
    assert row is not None
    return dict(row)


async def test_queued_mail_is_sent_and_a_refusal_or_a_dead_server_is_tried_again(
    pool: Pool, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    key = f"test:{uuid.uuid4()}"
    assert await email_outbox.queue(pool, None, "test", "ann@example.com", "Hello", "Body\n",
                                    dedupe_key=key)  # fmt: skip
    assert not await email_outbox.queue(pool, None, "test", "ann@example.com", "Hello", "x",
                                        dedupe_key=key)  # fmt: skip  # once per key
    # A server that is away: nothing raised, the message waits.
    await sending(pool, free_port()).tick()
    waiting = await outbox(pool, key)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 1)
    assert "Connect" in waiting["last_error"] or "refused" in waiting["last_error"].lower()
    # A server that refuses it once, then takes it.
    mailbox.refuse = 1
    await sending(pool, port).tick()
    assert (await outbox(pool, key))["status"] == "pending"
    await sending(pool, port).tick()
    await asyncio.wait_for(mailbox.arrived.wait(), timeout(10))
    [message] = mailbox.messages
    assert (message["To"], message["Subject"]) == ("ann@example.com", "Hello")
    assert message["From"] == "Voxsouth <calls@example.com>"
    assert str(message.get_payload()).strip() == "Body"
    sent = await outbox(pool, key)
    assert (sent["status"], sent["attempts"]) == ("sent", 3)


@pytest.fixture
async def mailing(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    smtp: tuple[Mailbox, int],
) -> AsyncIterator[RunningServer]:
    """A server whose email goes to the test's SMTP server (its own sender idle)."""
    async with start_server(smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_security="none",
                            email_every_s=3600) as server:  # fmt: skip
        yield server


async def test_a_bookings_reminder_goes_before_its_call_moves_with_it_and_not_if_cancelled(
    mailing: RunningServer, pool: Pool, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    org = await make_org(pool, "Reminders")
    body = {"number": "+17065550142", "at": tomorrow_at_half_past_three(), "connect": AGENT,
            "from": org.number, "remind_email": "ann@example.com",
            "remind_before_min": 30}  # fmt: skip
    status, booked = await call_api(mailing, org, "POST", "/api/bookings", body=body)
    assert status == 201, booked
    key = f"booking-reminder:{booked['id']}"
    at = datetime.fromisoformat(booked["at"])
    assert (await outbox(pool, key))["next_at"] == at - timedelta(minutes=30)
    status, moved = await call_api(mailing, org, "PATCH", f"/api/bookings/{booked['id']}",
                                   body={"at": (at + timedelta(hours=2)).isoformat()})  # fmt: skip
    assert status == 200
    assert (await outbox(pool, key))["next_at"] == at + timedelta(hours=2, minutes=-30)
    await pool.execute("UPDATE email_outbox SET next_at = now() WHERE dedupe_key = $1", key)
    await sending(pool, port).tick()
    await asyncio.wait_for(mailbox.arrived.wait(), timeout(10))
    [reminder] = mailbox.messages
    assert reminder["To"] == "ann@example.com"
    payload = reminder.get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode()
    assert "+17065550142" in text and "17:30" in text and "America/New_York" in text
    # A cancelled booking's reminder never goes.
    status, other = await call_api(mailing, org, "POST", "/api/bookings", body=body)
    await call_api(mailing, org, "POST", f"/api/bookings/{other['id']}/cancel")
    assert (await outbox(pool, f"booking-reminder:{other['id']}"))["status"] == "cancelled"


async def test_a_reminder_is_refused_where_the_server_sends_no_email(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "No mail here")
    body = {"number": "+17065550142", "at": tomorrow_at_half_past_three(), "connect": AGENT,
            "from": org.number, "remind_email": "ann@example.com"}  # fmt: skip
    status, answer = await call_api(srv, org, "POST", "/api/bookings", body=body)
    assert (status, answer["error"]["details"]["fields"][0]["field"]) == (422, "remind_email")


async def test_an_invitation_is_mailed_to_the_invitee_with_its_code(
    mailing: RunningServer, pool: Pool, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    org = await make_org(pool, "Inviting org")
    status, invited = await call_api(mailing, org, "POST", "/api/team/invitations",
                                     role="admin", body={"email": "new@example.com",
                                                         "role": "analyst"})  # fmt: skip
    assert status == 201 and invited["emailed"] is True
    await sending(pool, port).tick()
    await asyncio.wait_for(mailbox.arrived.wait(), timeout(10))
    [mail] = mailbox.messages
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert mail["To"] == "new@example.com" and invited["token"] in payload.decode()


async def test_the_people_a_rule_names_are_emailed_when_it_raises_an_escalation(
    mailing: RunningServer, pool: Pool, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    org = await make_org(pool, "On duty")
    rule = {"name": "manager-asked", "kind": "phrase", "severity": "high",
            "params": {"phrases": ["speak to a manager"]},
            "notify": ["duty@example.com", "lead@example.com"]}  # fmt: skip
    status, made = await call_api(mailing, org, "POST", "/api/escalation-rules", role="admin",
                                  body=rule)  # fmt: skip
    assert status == 201, made
    assert made["notify"] == ["duty@example.com", "lead@example.com"]
    call_id = await new_call(pool, org)
    raised = EscalationRaised(
        org_id=org.id, call_id=call_id, stream_sid="s", rule_id=uuid.UUID(made["id"]),
        rule_name="manager-asked", kind="phrase", severity="high", track="inbound",
        start_ms=42_000, end_ms=43_000, evidence="speak to a manager",
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, [raised, raised])  # stored once, mailed once
    await sending(pool, port).tick()
    await asyncio.wait_for(mailbox.arrived.wait(), timeout(10))
    assert sorted(m["To"] for m in mailbox.messages) == ["duty@example.com", "lead@example.com"]
    assert mailbox.messages[0]["Subject"] == "[HIGH] manager-asked on a call"
    payload = mailbox.messages[0].get_payload(decode=True)
    assert isinstance(payload, bytes) and "speak to a manager" in payload.decode()
    assert "42 s in" in payload.decode()


async def test_a_rule_cannot_name_people_where_the_server_sends_no_email(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "No mail rules")
    rule = {"name": "manager-asked", "kind": "phrase", "severity": "high",
            "params": {"phrases": ["speak to a manager"]},
            "notify": ["duty@example.com"]}  # fmt: skip
    status, answer = await call_api(srv, org, "POST", "/api/escalation-rules", role="admin",
                                    body=rule)  # fmt: skip
    assert (status, answer["error"]["details"]["fields"][0]["field"]) == (422, "notify")


async def test_a_forgotten_password_is_reset_with_the_mailed_code_once(
    mailing: RunningServer, pool: Pool, smtp: tuple[Mailbox, int], http: aiohttp.ClientSession
) -> None:
    mailbox, port = smtp
    org = await make_org(pool, "Forgetful")
    email = org.emails["operator"]
    url = f"{mailing.http_url}/api/auth/password-reset"
    async with http.post(url, json={"email": "nobody@example.com"}) as resp:
        assert resp.status == 202  # the same answer for an unknown address, and no mail
    async with http.post(url, json={"email": email}) as resp:
        assert resp.status == 202
    await sending(pool, port).tick()
    await asyncio.wait_for(mailbox.arrived.wait(), timeout(10))
    [mail] = mailbox.messages
    assert mail["To"] == email
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    code = re.search(r"valid for an hour: (\S+)", payload.decode())
    assert code is not None
    confirm = f"{url}/confirm"
    async with http.post(confirm, json={"token": code[1], "new_password": "short"}) as resp:
        assert resp.status == 422
    new_password = "a much longer new passphrase"
    async with http.post(confirm, json={"token": code[1], "new_password": new_password}) as resp:
        assert resp.status == 204
    async with http.post(confirm, json={"token": code[1], "new_password": new_password}) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (400, "INVALID_TOKEN")
    async with http.post(f"{mailing.http_url}/api/auth/login",
                         json={"email": email, "password": new_password}) as resp:  # fmt: skip
        assert resp.status == 200


async def test_a_reset_is_refused_plainly_where_the_server_sends_no_email(
    srv: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{srv.http_url}/api/auth/password-reset",
                         json={"email": "a@example.com"}) as resp:  # fmt: skip
        assert (resp.status, (await resp.json())["error"]["code"]) == (409, "EMAIL_NOT_CONFIGURED")


async def test_owners_and_admins_get_yesterdays_summary_once(
    pool: Pool, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    org = await make_org(pool, "Summarised org")
    today_8am = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    yesterday = today_8am - timedelta(days=1)
    for consent in (True, True, False):
        call_id = await new_call(pool, org)
        await pool.execute(
            "UPDATE calls SET started_at = $2, status = 'completed', recording_consent = $3 "
            "WHERE id = $1", call_id, yesterday, consent,
        )  # fmt: skip
    assert await queue_summaries(pool, today_8am.replace(hour=6), 7) == 0  # not yet
    queued = await queue_summaries(pool, today_8am, 7)
    assert queued >= 2  # other orgs' owners too, when they had calls yesterday
    assert await queue_summaries(pool, today_8am, 7) == 0  # once a day
    rows = await pool.fetch(
        "SELECT to_address FROM email_outbox WHERE org_id = $1 AND kind = 'daily_summary'",
        org.id,
    )
    assert sorted(r["to_address"] for r in rows) == sorted(
        [org.emails["owner"], org.emails["admin"]]
    )
    await sending(pool, port).tick()
    await asyncio.wait_for(mailbox.arrived.wait(), timeout(10))
    ours = [m for m in mailbox.messages if m["To"] == org.emails["owner"]]
    [summary] = ours
    payload = summary.get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode()
    assert "Calls: 3 (3 completed)" in text and "2 granted, 1 refused" in text


async def test_an_admin_sees_how_signalwire_email_and_webhooks_stand(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    fake: FakeSignalWire, pool: Pool, smtp: tuple[Mailbox, int],
) -> None:  # fmt: skip
    org = await make_org(pool, "Dependent org")
    settings = {"smtp_host": "127.0.0.1", "smtp_port": smtp[1], "smtp_security": "none",
                "signalwire_space_url": fake.url, "signalwire_project_id": SIGNALWIRE_PROJECT,
                "signalwire_api_token": SIGNALWIRE_TOKEN}  # fmt: skip
    async with start_server(**settings) as srv:
        status, report = await call_api(srv, org, "GET", "/api/health/dependencies",
                                        role="admin")  # fmt: skip
        assert status == 200, report
        assert report["signalwire"]["configured"] and not report["signalwire"]["circuit_open"]
        assert report["email"]["smtp"]["reachable"] is True
        assert report["email"]["pending"] == 0
        assert report["transcription"]["engine"] == srv.settings.transcription_engine
        assert list(report["tts"]) == ["piper"]  # the offline voice; no ElevenLabs key
        # SignalWire failing: the report names the failure.
        fake.script("create", [Fail(503)] * 10)
        await pool.execute("UPDATE organizations SET plan = 'pro' WHERE id = $1", org.id)
        await call_api(srv, org, "POST", "/api/calls",
                       body={"to": "+17065550123", "from": org.number})  # fmt: skip
        status, report = await call_api(srv, org, "GET", "/api/health/dependencies",
                                        role="owner")  # fmt: skip
        assert "create_call" in report["signalwire"]["last_error"]
        assert report["signalwire"]["last_latency_ms"] >= 0
        assert (await call_api(srv, org, "GET", "/api/health/dependencies",
                               role="operator"))[0] == 403  # fmt: skip
    async with start_server(smtp_host="127.0.0.1", smtp_port=free_port(),
                            smtp_security="none") as srv:  # fmt: skip
        status, report = await call_api(srv, org, "GET", "/api/health/dependencies",
                                        role="admin")  # fmt: skip
        assert report["email"]["smtp"]["reachable"] is False
        assert report["signalwire"] == {"configured": False}


@dataclass
class FakeResend:
    """Resend's send endpoint on loopback: checks the key and the body as Resend does, answers
    `{"id"}`, or what `answers` scripts (a status with Resend's error body)."""

    key: str = "re_test_key"
    url: str = ""
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append((dict(request.headers), body))
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"statusCode": 401, "name": "missing_api_key",
                                      "message": "Missing API key"}, status=401)  # fmt: skip
        if self.answers:
            status = self.answers.pop(0)
            name = {429: "rate_limit_exceeded", 422: "validation_error"}.get(status, "error")
            return web.json_response({"statusCode": status, "name": name, "message": name},
                                     status=status, headers={"retry-after": "1"})  # fmt: skip
        if not (body.get("from") and body.get("to") and body.get("subject")):
            return web.json_response({"statusCode": 422, "name": "missing_required_field",
                                      "message": "Missing field"}, status=422)  # fmt: skip
        return web.json_response({"id": str(uuid.uuid4())})


@pytest.fixture
async def resend() -> AsyncIterator[FakeResend]:
    fake = FakeResend()
    app = web.Application()
    app.router.add_post("/emails", fake.send)
    async with serving_app(app) as fake.url:
        yield fake


async def test_email_through_resend_retries_a_rate_limit_and_gives_up_on_a_refusal(
    pool: Pool, resend: FakeResend
) -> None:
    async with aiohttp.ClientSession() as http:
        sender = EmailSender(
            pool, resend_transport(ResendConfig(api_key=resend.key, base_url=resend.url,
                                                sender="Voxsouth <calls@example.com>"), http),
            SenderConfig(first_retry_s=0.0),
        )  # fmt: skip
        good, bad = f"test:{uuid.uuid4()}", f"test:{uuid.uuid4()}"
        await email_outbox.queue(
            pool, None, "test", "ann@example.com", "Hi", "Body", dedupe_key=good
        )
        resend.answers = [429]
        await sender.tick()
        assert (await outbox(pool, good))["status"] == "pending"  # a rate limit: again later
        await sender.tick()
        sent = await outbox(pool, good)
        assert (sent["status"], sent["attempts"]) == ("sent", 2)
        headers, body = resend.received[-1]
        assert body == {"from": "Voxsouth <calls@example.com>", "to": ["ann@example.com"],
                        "subject": "Hi", "text": "Body"}  # fmt: skip
        # The same key on both tries: Resend sends it once even if an answer was lost.
        assert resend.received[0][0]["Idempotency-Key"] == headers["Idempotency-Key"]
        await email_outbox.queue(pool, None, "test", "bad@", "Hi", "Body", dedupe_key=bad)
        resend.answers = [422]
        await sender.tick()
        refused = await outbox(pool, bad)
        assert (refused["status"], refused["attempts"]) == ("failed", 1)  # not tried again
        assert "refused" in refused["last_error"]
