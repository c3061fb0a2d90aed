"""Which recording-consent rule applies to a call, from its parties' phone numbers. Pure.

The most protective law among the parties wins: US courts have applied an all-party state's law
to a call recorded from a one-party state when one party was in the all-party state (California
did in Kearney v. Salomon Smith Barney, 2006). So:
- any party in an all-party state → `all_party`;
- every party (at least two) in a known US one-party state → `one_party`;
- otherwise (a foreign, Canadian, Caribbean, territorial, toll-free or non-E.164 number, or a
  party whose number is missing) → the org's default.

A state is read from the number's area code (control/area_codes.py). That is where the number
was issued, not where the party stands: the usual proxy, and why the reason is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from control.area_codes import AREA_CODE_STATE
from control.numbers import is_e164

__all__ = [
    "ALL_PARTY_STATES",
    "AREA_CODE_STATE",
    "ConsentDecision",
    "ConsentRule",
    "decide",
    "state_of",
]

ConsentRule: TypeAlias = Literal["one_party", "all_party"]

# LEGAL TABLE. Compiled 2026-11-26 by engineering from the statutes' public text and summaries;
# NOT yet reviewed by counsel. It decides whether a call may be recorded on one party's consent,
# so counsel must review it (and the citations) before it is relied on, date the review here,
# and review it again whenever a state changes its law. Doubtful entries say why they are here.
ALL_PARTY_STATES: Final[frozenset[str]] = frozenset(
    {
        "CA",  # Cal. Penal Code § 632 (and § 632.7 for cellular and cordless calls).
        # Doubtful: Connecticut's criminal law is one-party, but its civil statute (Conn. Gen.
        # Stat. § 52-570d) requires every party's consent to record a telephone call. A civil
        # claim is the very risk this table guards against, so listed.
        "CT",
        # Doubtful: Delaware's wiretap act (11 Del. C. § 2402) allows one-party consent, while
        # its older privacy statute (11 Del. C. § 1335) reads as all-party. Listed on the
        # protective side until counsel decides.
        "DE",
        "FL",  # Fla. Stat. § 934.03.
        # 720 ILCS 5/14-2 as rewritten in 2014 (after People v. Melongo): all-party for a
        # private conversation, which a phone call normally is.
        "IL",
        "MD",  # Md. Code, Cts. & Jud. Proc. § 10-402.
        "MA",  # Mass. Gen. Laws ch. 272, § 99 (any secret recording).
        # Disputed: MCL § 750.539c reads as all-party, but Sullivan v. Gray (Mich. Ct. App.
        # 1982) held that a participant may record. Treated as all-party, the safe side.
        "MI",
        "MT",  # Mont. Code Ann. § 45-8-213 (every party must be informed).
        # Phone calls only: NRS § 200.620 as read in Lane v. Allstate (Nev. 1998) needs every
        # party's consent for a telephone call; in-person talk is one-party (§ 200.650).
        # This table is only ever used for phone calls, so listed.
        "NV",
        "NH",  # N.H. Rev. Stat. § 570-A:2.
        "PA",  # 18 Pa. C.S. §§ 5703-5704.
        "WA",  # Rev. Code Wash. § 9.73.030.
    }
)
# Deliberately NOT listed: Oregon (ORS § 165.540 is all-party for in-person conversations but
# one-party for telephone calls), Hawaii (one-party, with an in-private-place exception that
# does not concern calls), Vermont (no statute; one-party under federal law).

_US_NUMBER = re.compile(r"\+1([2-9][0-9]{2})[2-9][0-9]{6}")
# Full match only: a trailing newline or a SIP URI around the number makes it unknown.


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    rule: ConsentRule
    reason: str
    """For people, e.g. "all-party state CA (+1415…)"; never a full phone number."""


def state_of(number: str) -> str | None:
    """The US state (or "DC") of an E.164 number's area code; None for anything else."""
    m = _US_NUMBER.fullmatch(number.strip())
    return AREA_CODE_STATE.get(m[1]) if m else None


def decide(numbers: Iterable[str], org_default: ConsentRule) -> ConsentDecision:
    """The consent rule for a call whose parties have `numbers` (both ends, as E.164)."""
    parties = [(number, state_of(number)) for number in numbers]
    for number, state in parties:
        if state in ALL_PARTY_STATES:
            shown = number.strip()[:5]  # "+1415": the area code, never the whole number
            return ConsentDecision("all_party", f"all-party state {state} ({shown}…)")
    # A call has two ends: a number missing is a party we know nothing about.
    if len(parties) < 2:
        return ConsentDecision(org_default, "org default (a party's number is missing)")
    for number, state in parties:
        if state is None:
            return ConsentDecision(org_default, f"org default ({_unknown_party(number)})")
    states = ", ".join(dict.fromkeys(state for _, state in parties if state is not None))
    who = "both parties" if len(parties) == 2 else "all parties"
    return ConsentDecision("one_party", f"{who} in one-party states ({states})")


def _unknown_party(number: str) -> str:
    if not is_e164(number.strip()):
        return "party number unknown"
    if number.strip().startswith("+1"):
        # Canada, the Caribbean, US territories, toll-free and other non-geographic codes.
        return "party outside the US states"
    return "party outside the US"
