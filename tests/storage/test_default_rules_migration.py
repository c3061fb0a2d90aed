"""Migrations 0011, 0012 and 0017: orgs seeded with the first phrase defaults get today's intent
defaults, each step changing only the rules still as the step before left them."""

from __future__ import annotations

import json
from pathlib import Path

from media.detectors.rules import DEFAULT_RULES
from storage import calls, escalations
from storage.db import Pool

MIGRATIONS = [
    Path(__file__).resolve().parents[2] / "storage" / "migrations" / name
    for name in (
        "0011_default_intents.sql",
        "0012_default_intents_2.sql",
        "0017_default_intents_3.sql",
    )
]
FIRST_DEFAULTS = {
    "supervisor-request": ["supervisor", "manager", "someone in charge", "speak to your boss"],
    "legal-threat": ["lawyer", "attorney", "sue you", "sue your company", "legal action",
                     "take you to court"],
    "cancellation": ["cancel my account", "cancel my service", "cancel my subscription",
                     "close my account", "switch providers"],
    "complaint": ["complaint", "better business bureau", "report you"],
}  # fmt: skip


async def test_seeded_phrase_rules_become_the_intent_defaults_and_edited_ones_stay(
    pool: Pool,
) -> None:
    org_id = await calls.create_org(pool, "Seeded before intents")
    for name, phrases in FIRST_DEFAULTS.items():
        edited = name == "complaint"  # an admin added a phrase: theirs now
        params = {"phrases": [*phrases, "ombudsman"] if edited else phrases, "tracks": ["inbound"]}
        await escalations.create_rule(
            pool, org_id, name=name, kind="phrase", severity="high", cooldown_s=60, params=params
        )
    for migration in MIGRATIONS:  # idempotent: already applied once at set-up
        await pool.execute(migration.read_text())
    rows = await pool.fetch("SELECT name, params FROM escalation_rules WHERE org_id = $1", org_id)
    stored = {r["name"]: json.loads(r["params"]) for r in rows}
    today = {r.name: dict(r.params) for r in DEFAULT_RULES}
    for name in ("supervisor-request", "legal-threat", "cancellation"):
        assert stored[name] == today[name], f"{name}: the migration is behind DEFAULT_RULES"
    assert stored["complaint"]["phrases"][-1] == "ombudsman"
