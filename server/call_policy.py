"""The glue between stored rules and consent state and the media plane's detectors.

control/ may not import the detectors and media/ may not import storage, so the composition
root translates: rule rows ⇄ `media.detectors.rules.Rule`, and a call's row → `CallPolicy`.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import asyncpg

from control.sealed import Sealer, SealError
from media.detectors import rules
from media.detectors.consent import PlayedDisclosure
from media.redaction import KINDS as REDACTED_KINDS
from media.server import CallAdmission, Hearing
from media.session import CallPolicy
from media.stream_token import StreamGrant
from media.streamed import CloudEngine
from storage import calls, escalations
from storage.db import Pool
from storage.tenancy import tenant

log = logging.getLogger(__name__)


PLAYED_BY: Mapping[str | None, PlayedDisclosure] = {
    "laml_say": "notice",  # a <Say> that tells
    "laml_gather": "keypad",  # a <Gather input="dtmf"> that asks for 1 or 2
    "laml_ask": "question",  # a <Gather input="dtmf speech"> that asks
}
"""What the platform played, by the detector its disclosure evidence was stored under."""


def to_rule(row: Mapping[str, Any]) -> rules.Rule:
    return rules.Rule(
        name=row["name"],
        kind=row["kind"],
        severity=row["severity"],
        cooldown_ms=int(row["cooldown_s"]) * 1000,
        params=row["params"],
        id=row.get("id"),
    )


def to_row(rule: rules.Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "severity": rule.severity,
        "cooldown_s": rule.cooldown_ms // 1000,
        "params": dict(rule.params),
    }


class DetectorRuleCatalog:
    """`control.rule_catalog.RuleCatalog`, answered by the media plane's rule engine."""

    def normalise(self, kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return rules.validate_params(cast(rules.RuleKind, kind), params)

    def check_set(self, rows: Sequence[Mapping[str, Any]]) -> None:
        rules.check_rule_set([to_rule(r) for r in rows if r.get("enabled", True)])

    def defaults(self) -> list[dict[str, Any]]:
        return [to_row(r) for r in rules.DEFAULT_RULES]


class OrgHearing:
    """An org's stored choice of transcription (storage.org_transcription) → what the media
    plane runs for its calls."""

    def __init__(
        self,
        sealer: Sealer,
        cloud_engine: Callable[[str, str], CloudEngine],
        deployment_keys: Mapping[str, str],
    ) -> None:
        self._sealer = sealer
        self._cloud_engine = cloud_engine
        """(service, API key) → the engine."""
        self._deployment_keys = deployment_keys

    def __call__(self, org_id: uuid.UUID, engine: str | None, sealed: bytes | None) -> Hearing:
        if engine is None or engine == "deployment":
            return "deployment"
        if engine == "whisper":
            return "offline"
        if sealed is None:
            key = self._deployment_keys.get(engine)
        else:
            try:
                key = self._sealer.open(sealed, org_id)
            except SealError:
                key = None
        if key is None:
            # The org chose a service this server cannot reach for it (its key sealed under
            # another credentials key, or the deployment's key gone): its audio stays here.
            log.error("org %s chose %s but no usable key is held; transcribing offline",
                      org_id, engine)  # fmt: skip
            return "offline"
        return self._cloud_engine(engine, key)


async def admit(
    pool: Pool, catalog: DetectorRuleCatalog, hearing: OrgHearing, grant: StreamGrant
) -> CallAdmission:
    """Whether the granted call is live, its consent state and rules, and what hears it."""
    try:
        async with tenant(pool, grant.org_id) as conn:
            row = await calls.call_admission(conn, grant.call_id, grant.org_id)
            if row is None:
                return CallAdmission("unknown")
            if not row["rules_seeded"]:
                await escalations.seed_default_rules(conn, grant.org_id, catalog.defaults())
            rule_rows = await escalations.list_rules(conn, grant.org_id, enabled_only=True)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        # The token already proves the call; a database blip must not drop live audio. With
        # nothing known of its consent, hold its content as if all-party consent were needed.
        log.warning("call lookup failed; admitting stream on its valid token")
        return CallAdmission("active", CallPolicy(hold_until_consent=True))
    if row["status"] in calls.TERMINAL_STATUSES:
        return CallAdmission("ended")
    chosen = hearing(grant.org_id, row["transcription_engine"], row["api_key_sealed"])
    began, heard = row["streams_began_at"], row["streams_heard_until"]
    return CallAdmission(
        "active",
        policy_of(row, rule_rows),
        chosen,
        call_began_at=None if began is None else began.timestamp(),
        call_heard_until=None if heard is None or began is None else heard.timestamp(),
        stream_connections=Counter(row["stream_connections"] or ()),
    )


def policy_of(row: Mapping[str, Any], rule_rows: Sequence[Mapping[str, Any]]) -> CallPolicy:
    consent = row["recording_consent"]
    verified_by = row["consent_verified_by"] or ""
    try:
        loaded = tuple(to_rule(r) for r in rule_rows)
        rules.check_rule_set(loaded)
    except (ValueError, KeyError, TypeError):
        # Rules are checked when saved; one that no longer loads must not silence the rest.
        log.exception("escalation rules do not load; using the valid ones")
        loaded = tuple(r for r in _loadable(rule_rows) if r.kind != "composite")
    return CallPolicy(
        rules=loaded,
        # Unknown jurisdiction (a call opened before this was recorded) is the strict case.
        hold_until_consent=row["consent_rule"] != "one_party",
        consent=None if consent is None else ("granted" if consent else "refused"),
        consent_by_person=bool(verified_by) and not verified_by.startswith("detector:"),
        played_disclosure=PLAYED_BY.get(row["played_by"], "none"),
        # Implied consent only where one party's consent is enough.
        implied_by_notice=row["consent_implied_by_notice"] and row["consent_rule"] == "one_party",
        redact=REDACTED_KINDS.intersection(row["redact_kinds"]),
        secure=row["secure_mode"],
        secure_words=row["secure_caller_words"],
        fired=tuple((name, at_ms) for name, at_ms in row.get("fired") or ()),
    )


def _loadable(rule_rows: Sequence[Mapping[str, Any]]) -> list[rules.Rule]:
    loaded = []
    for r in rule_rows:
        try:
            rules.validate_params(r["kind"], r["params"])
            loaded.append(to_rule(r))
        except (ValueError, KeyError, TypeError):
            continue
    return loaded
