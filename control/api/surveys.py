"""Phone surveys: questions (yes/no, a 1-5 rating, a keypad choice, an open answer) asked
with `<Say>` and answered by keypad or speech, on inbound calls to a number the survey is
attached to, or on a campaign's calls (flow `{"survey": id}`). Answers are stored per call
(control.webhooks `survey`, read by control.survey_answers) and counted per question here.
"""

from __future__ import annotations

import uuid
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from control.api import audit
from control.api.bodies import invalid_field, parse_body, path_uuid, plain
from control.api.openapi import Query, doc
from control.api.query import parse_int
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action, Feature, allowed, plan_includes
from storage import audio, surveys
from storage.tenancy import tenant

E164 = r"^\+[1-9][0-9]{6,14}$"


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/surveys", list_surveys),
        web.post("/api/surveys", create_survey),
        web.get("/api/surveys/{survey_id}", get_survey),
        web.get("/api/surveys/{survey_id}/results", survey_results),
        web.get("/api/surveys/{survey_id}/answers", survey_answers),
        web.put("/api/surveys/{survey_id}/numbers/{number}", attach_number),
        web.delete("/api/surveys/{survey_id}/numbers/{number}", detach_number),
    ]


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["yes_no", "rating", "choice", "speech"]
    prompt: str = Field(min_length=1, max_length=1000)
    """Said as it is: tell the caller how to answer ("Press 1 for yes, 2 for no, or say…")."""
    audio_url: HttpUrl | None = None
    """A recording of the prompt (https), played instead of saying it."""
    audio_clip: uuid.UUID | None = None
    """One of the org's clips (`/api/audio`), played instead of saying it."""
    choices: dict[str, str] | None = None
    """For a choice: the key for each answer ({"1": "Billing", "2": "Repairs"})."""

    @model_validator(mode="after")
    def _choices(self) -> Question:
        if self.audio_url is not None and self.audio_url.scheme != "https":
            raise ValueError("audio_url takes an https URL")
        if self.audio_url is not None and self.audio_clip is not None:
            raise ValueError("give audio_url or audio_clip, not both")
        if (self.kind == "choice") != (self.choices is not None):
            raise ValueError("choices go with a choice question, and only with one")
        if self.choices is not None and not (
            1 <= len(self.choices) <= 9
            and all(
                k in "123456789" and len(k) == 1 and 1 <= len(v) <= 100
                for k, v in self.choices.items()
            )  # fmt: skip
        ):
            raise ValueError("choices are 1 to 9 keys from 1 to 9, each with a label")
        return self


class SurveyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    questions: list[Question] = Field(min_length=1, max_length=20)
    closing: str = Field(default="Thank you for your answers. Goodbye.", min_length=1,
                         max_length=1000)  # fmt: skip


def _survey_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "survey_id", "survey")


async def _survey_of(request: web.Request) -> dict[str, object]:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        survey = await surveys.get(conn, org_id, _survey_id(request))
    if survey is None:
        raise ApiError(404, "NOT_FOUND", "no such survey")
    return survey


@doc("The organization's surveys")
@requires(Action.SURVEYS_READ)
async def list_surveys(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await surveys.list_surveys(conn, org_id)
    return web.json_response({"surveys": plain(rows)})


@doc("Make a survey", body=SurveyBody, status=201, errors=(403, 422))
@requires(Action.SURVEYS_MANAGE)
async def create_survey(request: web.Request) -> web.Response:
    who = principal(request)
    if not plan_includes(who.plan, Feature.SURVEYS):
        raise ApiError(403, "PLAN_REQUIRED", "your plan does not include surveys")
    body = await parse_body(request, SurveyBody)
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        for i, question in enumerate(body.questions):
            if question.audio_clip is not None and not await audio.get(
                conn, who.org_id, question.audio_clip
            ):
                raise invalid_field(f"questions.{i}.audio_clip", "no such audio clip")
        survey = await surveys.create(
            conn, who.org_id, body.name,
            [q.model_dump(mode="json", exclude_none=True) for q in body.questions], body.closing,
            f"{who.actor_type}:{who.actor_id}",
        )  # fmt: skip
        await audit.record(conn, request, "survey.create", resource_type="survey",
                           resource_id=str(survey["id"]), after=plain(survey))  # fmt: skip
    return web.json_response(plain(survey), status=201)


@doc("A survey", errors=(404,))
@requires(Action.SURVEYS_READ)
async def get_survey(request: web.Request) -> web.Response:
    return web.json_response(plain(await _survey_of(request)))


@doc("A survey's results: per question, the calls that answered and the answers counted",
     errors=(404,))  # fmt: skip
@requires(Action.SURVEYS_READ)
async def survey_results(request: web.Request) -> web.Response:
    survey = await _survey_of(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        found = await surveys.results(conn, org_id, _survey_id(request))
    questions = survey["questions"]
    assert isinstance(questions, list)
    found["questions"] = [
        {"question": i, "kind": q["kind"], "prompt": q["prompt"],
         **found["questions"].get(i, {"answered": 0, "unreadable": 0, "values": {}})}
        for i, q in enumerate(questions)
    ]  # fmt: skip
    return web.json_response(found)


@doc(
    "A survey's answers, newest first (spoken words for roles that may read transcripts)",
    query=(Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),),
    errors=(404,),
)
@requires(Action.SURVEYS_READ)
async def survey_answers(request: web.Request) -> web.Response:
    await _survey_of(request)
    limit = parse_int(request.query.get("limit"), "limit", default=100, low=1, high=500)
    who = principal(request)
    with_speech = allowed(who.role, Action.TRANSCRIPTS_READ)
    async with tenant(request.app[POOL], who.org_id) as conn:
        rows = await surveys.answers(conn, who.org_id, _survey_id(request), limit=limit,
                                     with_speech=with_speech)  # fmt: skip
    return web.json_response({"answers": plain(rows)})


async def _attach(request: web.Request, survey_id: uuid.UUID | None, action: str) -> None:
    number = request.match_info["number"]
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        if not await surveys.attach_to_number(conn, org_id, number, survey_id):
            raise ApiError(404, "NOT_FOUND", "that is not one of your numbers")
        await audit.record(conn, request, action, resource_type="phone_number",
                           resource_id=number, after={"survey_id": survey_id})  # fmt: skip


@doc("Ask the survey on every inbound call to one of the organization's numbers",
     status=204, errors=(404,))  # fmt: skip
@requires(Action.SURVEYS_MANAGE)
async def attach_number(request: web.Request) -> web.Response:
    await _survey_of(request)
    await _attach(request, _survey_id(request), "survey.attach")
    return web.Response(status=204)


@doc("Stop asking the survey on a number's inbound calls", status=204, errors=(404,))
@requires(Action.SURVEYS_MANAGE)
async def detach_number(request: web.Request) -> web.Response:
    await _survey_of(request)
    await _attach(request, None, "survey.detach")
    return web.Response(status=204)
