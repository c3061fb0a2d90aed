"""Phone surveys: answers read from keys and words (sans-I/O), and a caller taking a survey on
an inbound call through the signed webhooks, on a real Postgres."""

from __future__ import annotations

import re
import uuid

import aiohttp
import pytest

from control.survey_answers import meaning
from server.app import RunningServer
from storage.db import Pool
from tests.control.test_targets_api import call_api
from tests.support.accounts import Org, make_org
from tests.support.calls import simulator

CHOICES = {"1": "Billing", "2": "Repairs", "3": "Something else"}


@pytest.mark.parametrize(
    ("kind", "digits", "speech", "value"),
    [
        ("yes_no", "1", "", "yes"),
        ("yes_no", "2", "", "no"),
        ("yes_no", "9", "", None),
        ("yes_no", "", "Yeah, that's right", "yes"),
        ("yes_no", "", "no, not really", "no"),
        ("yes_no", "", "yes and no", None),
        ("rating", "4", "", "4"),
        ("rating", "7", "", None),
        ("rating", "", "I'd give it a four", "4"),
        ("rating", "", "ten out of ten", None),
        ("choice", "2", "", "2"),
        ("choice", "5", "", None),
        ("choice", "", "it's about my bill, billing please", "1"),
        ("choice", "", "I need a repair", "2"),
        ("choice", "", "the weather", None),
        ("speech", "", "the engineer was late", "spoken"),
        ("speech", "", "", None),
    ],
)
def test_an_answer_means_what_the_question_asks(
    kind: str, digits: str, speech: str, value: str | None
) -> None:
    assert meaning(kind, digits, speech, CHOICES) == value  # type: ignore[arg-type]


async def post_signed(srv: RunningServer, url: str, form: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        return await simulator(http, srv, srv.settings).post_signed(url, form)


def next_url(laml: str) -> str:
    """Where SignalWire posts next: the `<Gather>` action or the `<Redirect>`."""
    found = re.search(r'action="([^"]+)"', laml) or re.search(r"<Redirect[^>]*>([^<]+)<", laml)
    assert found, laml
    return found.group(1).replace("&amp;", "&")


async def a_survey(srv: RunningServer, pool: Pool, org: Org) -> str:
    await pool.execute("UPDATE organizations SET plan = 'insights' WHERE id = $1", org.id)
    status, survey = await call_api(srv, org, "POST", "/api/surveys", role="admin", body={
        "name": "After a repair",
        "questions": [
            {"kind": "yes_no", "prompt": "Was the problem solved? Press 1 for yes, 2 for no."},
            {"kind": "rating", "prompt": "From 1 to 5, how was the engineer?"},
            {"kind": "choice", "prompt": "Press 1 for billing, 2 for repairs.",
             "choices": CHOICES},
            {"kind": "speech", "prompt": "Anything else you'd like to tell us?",
             "audio_url": "https://media.example.com/anything-else.wav"},
        ],
    })  # fmt: skip
    assert status == 201, survey
    return str(survey["id"])


async def test_a_caller_takes_the_survey_on_a_number_and_the_results_count_the_answers(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Survey org")
    survey_id = await a_survey(srv, pool, org)
    path = f"/api/surveys/{survey_id}"
    assert (await call_api(srv, org, "PUT", f"{path}/numbers/{org.number}"))[0] == 204
    call_sid = str(uuid.uuid4())
    caller = {"CallSid": call_sid, "AccountSid": str(uuid.uuid4()), "From": "+17065550142",
              "To": org.number, "Direction": "inbound", "CallStatus": "ringing"}  # fmt: skip
    status, laml = await post_signed(srv, f"{srv.public_url}/laml/voice", caller)
    assert status == 200 and "<Stream" in laml and "<Redirect" in laml
    url = next_url(laml)
    answers = [{}, {"Digits": "1"}, {"SpeechResult": "I'd give it a four", "Confidence": "0.9"},
               {"SpeechResult": "repairs please"},
               {"SpeechResult": "my card is 4111 1111 1111 1111 and the man was late"}]  # fmt: skip
    prompts, laml_seen = [], []
    for answer in answers:
        status, laml = await post_signed(srv, url, {**caller, **answer})
        assert status == 200, laml
        prompts.append(re.findall(r"<Say>([^<]*)</Say>", laml))
        laml_seen.append(laml)
        if "<Hangup" in laml:
            break
        url = next_url(laml)
    assert [p[0][:20] for p in prompts[:3]] == [
        "Was the problem solv", "From 1 to 5, how was", "Press 1 for billing,",
    ]  # fmt: skip
    assert prompts[3] == []  # its recording is played instead
    assert "<Play>https://media.example.com/anything-else.wav</Play>" in laml_seen[3]
    assert prompts[-1] == ["Thank you for your answers. Goodbye."]
    rows = await pool.fetch(
        "SELECT question, value, digits, speech FROM survey_answers WHERE survey_id = $1 "
        "ORDER BY question", uuid.UUID(survey_id),
    )  # fmt: skip
    assert [(r["question"], r["value"]) for r in rows] == [
        (0, "yes"), (1, "4"), (2, "2"), (3, "spoken"),
    ]  # fmt: skip
    assert rows[3]["speech"] == "my card is [card] and the man was late"  # redacted first
    # A repeated webhook keeps the first answer.
    await post_signed(srv, f"{srv.public_url}/laml/survey?survey={survey_id}&answer=0",
                      {**caller, "Digits": "2"})  # fmt: skip
    status, results = await call_api(srv, org, "GET", f"{path}/results", role="analyst")
    assert status == 200 and results["calls"] == 1
    assert [q["values"] for q in results["questions"]] == [
        {"yes": 1}, {"4": 1}, {"2": 1}, {"spoken": 1},
    ]  # fmt: skip
    status, listed = await call_api(srv, org, "GET", f"{path}/answers", role="analyst")
    spoken = [a["speech"] for a in listed["answers"] if a["value"] == "spoken"]
    assert spoken == ["my card is [card] and the man was late"]
    assert (await call_api(srv, org, "GET", f"{path}/answers", role="viewer"))[0] == 403


async def test_surveys_need_their_plan_valid_questions_and_the_orgs_own_number(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Survey rules")
    body = {"name": "x", "questions": [{"kind": "yes_no", "prompt": "Yes?"}]}
    status, answer = await call_api(srv, org, "POST", "/api/surveys", role="admin", body=body)
    assert (status, answer["error"]["code"]) == (403, "PLAN_REQUIRED")
    survey_id = await a_survey(srv, pool, org)
    for bad in ([{"kind": "choice", "prompt": "Which?"}],
                [{"kind": "yes_no", "prompt": "Yes?", "choices": {"1": "a"}}],
                [{"kind": "choice", "prompt": "Which?", "choices": {"0": "a"}}], []):  # fmt: skip
        status, _ = await call_api(srv, org, "POST", "/api/surveys", role="admin",
                                   body={"name": "x", "questions": bad})  # fmt: skip
        assert status == 422, bad
    other = await make_org(pool, "Another")
    status, _ = await call_api(srv, org, "PUT", f"/api/surveys/{survey_id}/numbers/{other.number}")
    assert status == 404
    assert (await call_api(srv, other, "GET", f"/api/surveys/{survey_id}"))[0] == 404
