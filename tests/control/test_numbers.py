"""control.numbers: E.164 checks and the number forms SignalWire puts in From/To."""

from __future__ import annotations

import pytest

from control.numbers import is_e164, normalize_number


@pytest.mark.parametrize(
    "value",
    [
        "+17065551234",
        "+442071838750",
        "+4930123456",
        "+1234567",  # 7 digits: the shortest allowed
        "+123456789012345",  # 15 digits: the longest E.164 allows
    ],
)
def test_e164_numbers(value: str) -> None:
    assert is_e164(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "+",
        "17065551234",  # no plus
        "+07065551234",  # country codes never start with 0
        "+123456",  # too short
        "+1234567890123456",  # 16 digits
        "+1 706 555 1234",
        "+1-706-555-1234",
        "+1706555123a",
        " +17065551234",
        "+17065551234 ",
        "+17065551234\n",  # a trailing newline is not part of a number
        "sip:+17065551234@sip.swire.io",
        "+１７０６５５５１２３４",  # full-width digits
    ],
)
def test_not_e164(value: str) -> None:
    assert not is_e164(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+17065551234", "+17065551234"),
        ("  +17065551234\n", "+17065551234"),
        ("sip:+17065551234@sip.swire.io", "+17065551234"),
        ("sip:+17065551234@sip.swire.io:5060;transport=udp", "+17065551234"),
        ("SIP:+17065551234@example.sip.signalwire.com", "+17065551234"),
        ("sips:+442071838750@sip.example.com", "+442071838750"),
        ("sip:17065551234@sip.swire.io", "+17065551234"),  # digits without the plus
        ("sip:+17065551234", "+17065551234"),
        ("tel:+17065551234", "+17065551234"),
        ("TEL:+17065551234", "+17065551234"),
        ("tel:+17065551234;ext=12", "+17065551234"),
    ],
)
def test_normalize_number_extracts_e164(value: str, expected: str) -> None:
    assert normalize_number(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "anonymous",
        "client:alice",
        "sip:alice@sip.swire.io",  # a SIP user name, not a number
        "sip:+07065551234@sip.swire.io",  # leading zero after the plus
        "sip:07065551234@sip.swire.io",  # leading zero once the plus is added
        "sip:+123456@sip.swire.io",  # too short
        "sip:+1234567890123456@sip.swire.io",  # too long
        "http:+17065551234",
        "sip:+17065551234x@sip.swire.io",
        "17065551234",  # bare digits are not accepted outside a URI
    ],
)
def test_normalize_number_refuses_everything_else(value: str | None) -> None:
    assert normalize_number(value) is None


def test_normalized_numbers_are_e164() -> None:
    for value in ("sip:17065551234@x", "tel:+442071838750", " +4930123456 "):
        result = normalize_number(value)
        assert result is not None
        assert is_e164(result)
