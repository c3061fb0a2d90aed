"""The org's escalation rules: read by anyone who sees escalations, changed by admins.

A new org gets the default rules the first time they are needed (here, or when a call's stream
opens). Every change is checked as a whole set (a composite must name rules that exist), is
audited, and applies to streams that open after it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import EMAIL_PATTERN, invalid_field, parse_body, path_uuid, plain
from control.api.openapi import doc
from control.app_keys import EMAIL_ENABLED, POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from control.rule_catalog import RULE_CATALOG, RuleCatalog
from storage import escalations
from storage.db import Connection
from storage.tenancy import tenant

RuleKind = Literal[
    "phrase", "keypad", "raised_voice", "dead_air", "talk_over", "sentiment", "composite"
]
Severity = Literal["low", "medium", "high", "critical"]


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/escalation-rules", list_rules),
        web.post("/api/escalation-rules", create_rule),
        web.put("/api/escalation-rules/{rule_id}", replace_rule),
        web.delete("/api/escalation-rules/{rule_id}", delete_rule),
    ]


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: RuleKind
    severity: Severity
    cooldown_s: int = Field(default=120, ge=0, le=86_400)
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    notify: list[Annotated[str, Field(max_length=320, pattern=EMAIL_PATTERN)]] = Field(
        default_factory=list, max_length=20
    )
    """Who is emailed when the rule raises an escalation (the server must send email)."""


async def ensure_rules(conn: Connection, org_id: uuid.UUID, catalog: RuleCatalog) -> None:
    await escalations.seed_default_rules(conn, org_id, catalog.defaults())


@doc("The organization's escalation rules")
@requires(Action.ESCALATIONS_READ)
async def list_rules(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        await ensure_rules(conn, org_id, request.app[RULE_CATALOG])
        rows = await escalations.list_rules(conn, org_id)
    return web.json_response({"rules": plain(rows)})


@doc("Add an escalation rule", body=RuleBody, status=201, errors=(409,))
@requires(Action.RULES_MANAGE)
async def create_rule(request: web.Request) -> web.Response:
    body = await parse_body(request, RuleBody)
    org_id = principal(request).org_id
    catalog = request.app[RULE_CATALOG]
    rule = _normalised(body, catalog, request.app[EMAIL_ENABLED])
    async with tenant(request.app[POOL], org_id) as conn:
        await ensure_rules(conn, org_id, catalog)
        existing = await escalations.list_rules(conn, org_id)
        _check_name_free(existing, rule["name"])
        _check_set(catalog, [*existing, rule])
        try:
            created = await escalations.create_rule(conn, org_id, **rule)
        except asyncpg.UniqueViolationError:  # created concurrently
            raise _rule_exists() from None
        await audit.record(
            conn, request, "escalation_rule.create", resource_type="escalation_rule",
            resource_id=str(created["id"]), after=plain(created),
        )  # fmt: skip
    return web.json_response(plain(created), status=201)


@doc("Replace an escalation rule", body=RuleBody, errors=(404, 409))
@requires(Action.RULES_MANAGE)
async def replace_rule(request: web.Request) -> web.Response:
    body = await parse_body(request, RuleBody)
    org_id = principal(request).org_id
    rule_id = path_uuid(request, "rule_id", "rule")
    catalog = request.app[RULE_CATALOG]
    rule = _normalised(body, catalog, request.app[EMAIL_ENABLED])
    async with tenant(request.app[POOL], org_id) as conn:
        before = await escalations.get_rule(conn, org_id, rule_id)
        if before is None:
            raise ApiError(404, "NOT_FOUND", "no such rule")
        others = [r for r in await escalations.list_rules(conn, org_id) if r["id"] != rule_id]
        _check_name_free(others, rule["name"])
        _check_set(catalog, [*others, rule])
        try:
            after = await escalations.update_rule(conn, org_id, rule_id, rule)
        except asyncpg.UniqueViolationError:
            raise _rule_exists() from None
        assert after is not None  # locked by get_rule
        await audit.record(
            conn, request, "escalation_rule.update", resource_type="escalation_rule",
            resource_id=str(rule_id), before=plain(before), after=plain(after),
        )  # fmt: skip
    return web.json_response(plain(after))


@doc("Delete an escalation rule", status=204, errors=(404, 409))
@requires(Action.RULES_MANAGE)
async def delete_rule(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    rule_id = path_uuid(request, "rule_id", "rule")
    catalog = request.app[RULE_CATALOG]
    async with tenant(request.app[POOL], org_id) as conn:
        before = await escalations.get_rule(conn, org_id, rule_id)
        if before is None:
            raise ApiError(404, "NOT_FOUND", "no such rule")
        others = [r for r in await escalations.list_rules(conn, org_id) if r["id"] != rule_id]
        _check_set(catalog, others, conflict=True)
        await escalations.delete_rule(conn, org_id, rule_id)
        await audit.record(
            conn, request, "escalation_rule.delete", resource_type="escalation_rule",
            resource_id=str(rule_id), before=plain(before),
        )  # fmt: skip
    return web.Response(status=204)


def _rule_exists() -> ApiError:
    return ApiError(409, "RULE_EXISTS", "a rule with that name exists")


def _check_name_free(rules: list[dict[str, Any]], name: str) -> None:
    if any(r["name"] == name for r in rules):
        raise _rule_exists()


def _normalised(body: RuleBody, catalog: RuleCatalog, email: bool) -> dict[str, Any]:
    if body.notify and not email:
        raise invalid_field("notify", "this server sends no email (VOXSOUTH_SMTP_HOST)")
    try:
        params = catalog.normalise(body.kind, body.params)
    except ValueError as exc:
        raise ApiError(
            422, "VALIDATION_FAILED", "the body is invalid",
            {"fields": [{"field": "params", "message": str(exc)}]},
        ) from None  # fmt: skip
    return {**body.model_dump(), "params": params}


def _check_set(
    catalog: RuleCatalog, rules: list[dict[str, Any]], *, conflict: bool = False
) -> None:
    try:
        catalog.check_set(rules)
    except ValueError as exc:
        if conflict:  # deleting a rule a composite still names
            raise ApiError(409, "RULE_IN_USE", str(exc)) from None
        raise ApiError(
            422, "VALIDATION_FAILED", "the body is invalid",
            {"fields": [{"field": "params", "message": str(exc)}]},
        ) from None  # fmt: skip
