"""Log lines: one JSON object each, carrying the request id and, inside a request, who."""

from __future__ import annotations

import json
import logging
import uuid

from control.auth import Principal, current_principal
from server import request_context
from server.log_setup import JsonFormatter


def render(message: str) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def test_a_line_names_the_request_org_and_user() -> None:
    who = Principal(
        org_id=uuid.uuid4(), role="admin", plan="base", actor_type="user", actor_id=uuid.uuid4()
    )
    rid_token = request_context.request_id.set("req-42")
    who_token = current_principal.set(who)
    try:
        entry = render("changed a thing\nwith a newline")
    finally:
        current_principal.reset(who_token)
        request_context.request_id.reset(rid_token)
    assert entry["message"] == "changed a thing\nwith a newline"
    assert (entry["request_id"], entry["org_id"], entry["user"]) == (
        "req-42",
        str(who.org_id),
        str(who.actor_id),
    )


def test_outside_a_request_there_is_no_org() -> None:
    entry = render("background work")
    assert entry["request_id"] == "-" and "org_id" not in entry
