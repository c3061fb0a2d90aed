"""Recording-consent jurisdiction from the parties' numbers. Pure."""

from __future__ import annotations

import re

import pytest

from control.area_codes import CODES_BY_STATE
from control.jurisdiction import (
    ALL_PARTY_STATES,
    AREA_CODE_STATE,
    ConsentDecision,
    ConsentRule,
    decide,
    state_of,
)

CALIFORNIA = "+14155550100"
TEXAS = "+15125550100"
NEW_YORK = "+12125550100"
ILLINOIS = "+13125550100"
TORONTO = "+14165550100"
LONDON = "+442079460000"


@pytest.mark.parametrize(
    ("number", "state"),
    [
        (CALIFORNIA, "CA"),
        (TEXAS, "TX"),
        (NEW_YORK, "NY"),
        ("+12025550100", "DC"),
        ("+19075550100", "AK"),
        ("+18085550100", "HI"),
        ("+14365550100", "OH"),  # a 2024 overlay
        ("+16795550100", "MI"),  # a 2025 overlay
        (" +14155550100 ", "CA"),
    ],
)
def test_us_numbers_map_to_their_state(number: str, state: str) -> None:
    assert state_of(number) == state


@pytest.mark.parametrize(
    "number",
    [
        TORONTO,
        "+16045550100",  # Vancouver
        "+18765550100",  # Jamaica
        "+18095550100",  # Dominican Republic
        "+17875550100",  # Puerto Rico: a territory, not a state
        "+16715550100",  # Guam
        "+18005550100",  # toll-free says nothing about where a party is
        "+19005550100",
        LONDON,
        "sip:+14155550100@example.sip.signalwire.com",
        "14155550100",
        "+1415555010",  # one digit short
        "+14151550100",  # exchange codes never start with 1
        "client:agent-7",
        "",
    ],
)
def test_anything_but_a_us_state_number_is_unknown(number: str) -> None:
    assert state_of(number) is None


def test_the_area_code_table_covers_the_50_states_and_dc_once_each() -> None:
    assert len(CODES_BY_STATE) == 51 and "DC" in CODES_BY_STATE
    assert sum(len(codes) for codes in CODES_BY_STATE.values()) == len(AREA_CODE_STATE)
    assert all(re.fullmatch(r"[2-9][0-9]{2}", code) for code in AREA_CODE_STATE)
    assert len(AREA_CODE_STATE) > 360  # every assigned geographic code, overlays included


def test_the_all_party_table_is_the_reviewed_list() -> None:
    assert ALL_PARTY_STATES == {
        "CA", "CT", "DE", "FL", "IL", "MD", "MA", "MI", "MT", "NV", "NH", "PA", "WA",
    }  # fmt: skip
    assert "OR" not in ALL_PARTY_STATES  # one-party for phone calls
    assert ALL_PARTY_STATES <= CODES_BY_STATE.keys()


def test_any_party_in_an_all_party_state_needs_all_party_consent() -> None:
    expected = ConsentDecision("all_party", "all-party state CA (+1415…)")
    assert decide([TEXAS, CALIFORNIA], "one_party") == expected
    assert decide([CALIFORNIA, LONDON], "one_party") == expected  # even with a foreign party
    assert decide([CALIFORNIA], "one_party") == expected
    assert decide([NEW_YORK, ILLINOIS], "one_party").rule == "all_party"


def test_both_parties_in_one_party_states_is_one_party() -> None:
    assert decide([TEXAS, NEW_YORK], "all_party") == ConsentDecision(
        "one_party", "both parties in one-party states (TX, NY)"
    )
    assert decide([TEXAS, "+12145550100"], "all_party") == ConsentDecision(
        "one_party", "both parties in one-party states (TX)"
    )


@pytest.mark.parametrize("org_default", ["one_party", "all_party"])
def test_a_party_outside_the_table_leaves_it_to_the_org(org_default: ConsentRule) -> None:
    cases = [
        ([TEXAS, LONDON], "org default (party outside the US)"),
        ([TEXAS, TORONTO], "org default (party outside the US states)"),
        ([TEXAS, "sip:agent@example.com"], "org default (party number unknown)"),
        ([TEXAS], "org default (a party's number is missing)"),
        ([], "org default (a party's number is missing)"),
    ]
    for numbers, reason in cases:
        assert decide(numbers, org_default) == ConsentDecision(org_default, reason), numbers


def test_the_reason_never_carries_a_whole_number() -> None:
    for numbers in ([TEXAS, CALIFORNIA], [TEXAS, NEW_YORK], [TEXAS, LONDON]):
        reason = decide(numbers, "all_party").reason
        assert not any(n in reason or n[1:] in reason for n in numbers), reason
