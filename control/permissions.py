"""Who may do what: the one role × action table and the one plan × feature table.

Every API route declares the action it needs (`control.auth.requires`); nothing else in the
code decides permissions. Roles, from most to least powerful:
owner (everything, including the organization itself), admin (team, numbers, keys, audit),
operator (works calls and handles escalations), analyst (reads everything about calls),
viewer (reads calls).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, TypeAlias, get_args

Role: TypeAlias = Literal["owner", "admin", "operator", "analyst", "viewer"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)


class Action(StrEnum):
    CALLS_READ = "calls:read"
    CALLS_CREATE = "calls:create"
    CALLS_UPDATE = "calls:update"
    TRANSCRIPTS_READ = "transcripts:read"
    CONSENT_RECORD = "consent:record"
    FEED_READ = "feed:read"
    ESCALATIONS_READ = "escalations:read"
    ESCALATIONS_HANDLE = "escalations:handle"
    RULES_MANAGE = "rules:manage"
    TRANSCRIPTION_MANAGE = "transcription:manage"
    """Choose what transcribes the org's calls and hold its speech-service key."""
    RECORDINGS_LISTEN = "recordings:listen"
    """Play or download a call recording's audio (each play audited)."""
    RECORDINGS_DELETE = "recordings:delete"
    """Delete a call recording, at SignalWire and here."""
    REDACTION_MANAGE = "redaction:manage"
    """Choose what is redacted from the org's calls' words, and what secure mode does."""
    SECURE_MODE = "secure_mode:set"
    """Turn a call's secure mode (payments) on or off."""
    RETENTION_MANAGE = "retention:manage"
    """Choose how long the org keeps each kind of call data."""
    ERASURE = "erasure"
    """Erase a call, or everything about a phone number (a data-subject request)."""
    TARGETS_READ = "targets:read"
    """Read the numbers the org calls (names, custom fields) and its do-not-call list."""
    TARGETS_MANAGE = "targets:manage"
    DO_NOT_CALL_ADD = "do_not_call:add"
    DO_NOT_CALL_REMOVE = "do_not_call:remove"
    """Taking a number off the list lets it be called again: owners and admins only."""
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_MANAGE = "campaigns:manage"
    """Make, fill, start, pause, resume and cancel campaigns."""
    CAMPAIGN_LIMITS_MANAGE = "campaign_limits:manage"
    """Set how many calls the org's campaigns may have in flight at once."""
    TRANSLATION_MANAGE = "translation:manage"
    """Choose the language the org's calls are translated into."""
    HEALTH_READ = "health:read"
    """Read how the services the server depends on stand (hosts, errors)."""
    WEBHOOKS_MANAGE = "webhooks:manage"
    """Register outbound webhook endpoints, read and replay their deliveries."""
    SHOPPER_READ = "shopper:read"
    SHOPPER_MANAGE = "shopper:manage"
    """Write secret-shopper scripts and score calls against them (reading their transcripts)."""
    SURVEYS_READ = "surveys:read"
    SURVEYS_MANAGE = "surveys:manage"
    AUDIO_READ = "audio:read"
    """List and listen to the org's audio clips (uploads and rendered prompts)."""
    AUDIO_MANAGE = "audio:manage"
    """Upload audio, render prompts, delete clips."""
    VOICE_MANAGE = "voice:manage"
    """Choose the voice the org's prompts are said in."""
    BOOKINGS_READ = "bookings:read"
    BOOKINGS_MANAGE = "bookings:manage"
    """Book, reschedule and cancel callbacks."""
    NUMBERS_READ = "numbers:read"
    NUMBERS_MANAGE = "numbers:manage"
    TEAM_READ = "team:read"
    TEAM_MANAGE = "team:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    AUDIT_READ = "audit:read"
    ORG_MANAGE = "org:manage"
    SELF = "self"
    """What any signed-in principal may do to itself (who am I, change my password)."""


_READ = {
    Action.SELF,
    Action.CALLS_READ,
    Action.NUMBERS_READ,
    Action.TEAM_READ,
    Action.FEED_READ,
    Action.ESCALATIONS_READ,
}

ROLE_PERMISSIONS: Final[dict[Role, frozenset[Action]]] = {
    "owner": frozenset(Action),
    "admin": frozenset(Action) - {Action.ORG_MANAGE},
    "operator": frozenset(
        _READ
        | {
            Action.TRANSCRIPTS_READ,
            Action.RECORDINGS_LISTEN,
            Action.CALLS_CREATE,
            Action.CALLS_UPDATE,
            Action.CONSENT_RECORD,
            Action.ESCALATIONS_HANDLE,
            Action.SECURE_MODE,
            Action.TARGETS_READ,
            Action.TARGETS_MANAGE,
            Action.DO_NOT_CALL_ADD,
            Action.CAMPAIGNS_READ,
            Action.CAMPAIGNS_MANAGE,
            Action.BOOKINGS_READ,
            Action.BOOKINGS_MANAGE,
            Action.SURVEYS_READ,
            Action.SURVEYS_MANAGE,
            Action.SHOPPER_READ,
            Action.AUDIO_READ,
            Action.AUDIO_MANAGE,
        }
    ),
    "analyst": frozenset(
        _READ
        | {
            Action.TRANSCRIPTS_READ,
            Action.RECORDINGS_LISTEN,
            Action.TARGETS_READ,
            Action.CAMPAIGNS_READ,
            Action.BOOKINGS_READ,
            Action.SURVEYS_READ,
            Action.SHOPPER_READ,
            Action.SHOPPER_MANAGE,
            Action.AUDIO_READ,
        }
    ),
    "viewer": frozenset(_READ),
}


def allowed(role: Role, action: Action) -> bool:
    return action in ROLE_PERMISSIONS[role]


Plan: TypeAlias = Literal["base", "pro", "insights", "enterprise"]
PLANS: Final[tuple[Plan, ...]] = get_args(Plan)


class Feature(StrEnum):
    LIVE_TRANSCRIPTION = "live_transcription"
    OUTBOUND_CALLS = "outbound_calls"
    API_KEYS = "api_keys"
    ESCALATIONS = "escalations"
    SURVEYS = "surveys"
    CAMPAIGNS = "campaigns"
    AUDIT_EXPORT = "audit_export"


PLAN_FEATURES: Final[dict[Plan, frozenset[Feature]]] = {
    "base": frozenset({Feature.LIVE_TRANSCRIPTION, Feature.OUTBOUND_CALLS}),
    "pro": frozenset({Feature.LIVE_TRANSCRIPTION, Feature.OUTBOUND_CALLS, Feature.API_KEYS}),
    "insights": frozenset(
        {
            Feature.LIVE_TRANSCRIPTION,
            Feature.OUTBOUND_CALLS,
            Feature.API_KEYS,
            Feature.ESCALATIONS,
            Feature.SURVEYS,
        }
    ),
    "enterprise": frozenset(Feature),
}


def plan_includes(plan: Plan, feature: Feature) -> bool:
    return feature in PLAN_FEATURES[plan]
