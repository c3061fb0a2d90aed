"""What the control plane needs to know about escalation rules, without knowing the detectors.

The rule kinds and their parameters belong to the media plane's detectors; control/ may not
import them (DESIGN.md), so the composition root hands the API a `RuleCatalog` that does.
Rules travel as plain rows: {name, kind, severity, cooldown_s, params, enabled}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web


class RuleCatalog(Protocol):
    def normalise(self, kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The params with defaults filled in; ValueError("<field>: <problem>") when bad."""
        ...

    def check_set(self, rules: Sequence[Mapping[str, Any]]) -> None:
        """ValueError when the org's rules do not hold together (a composite naming a rule
        that does not exist)."""
        ...

    def defaults(self) -> list[dict[str, Any]]:
        """The rules a new org starts with."""
        ...


RULE_CATALOG = web.AppKey("rule_catalog", RuleCatalog)
