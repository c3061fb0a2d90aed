"""control.api.byte_ranges: the one range a player asks for, against the audio's length."""

from __future__ import annotations

import pytest

from control.api.byte_ranges import ByteRange, parse_range, resolve


@pytest.mark.parametrize(
    ("header", "length", "span"),
    [
        ("bytes=0-99", 1000, (0, 99)),
        ("bytes=900-", 1000, (900, 999)),
        ("bytes=-100", 1000, (900, 999)),
        ("bytes=990-2000", 1000, (990, 999)),  # past the end: to the end
        ("bytes=-5000", 1000, (0, 999)),
        ("bytes=1000-", 1000, None),  # starts past the end: 416
        ("bytes=-0", 1000, None),
    ],
)
def test_a_range_selects_its_bytes_or_none(
    header: str, length: int, span: tuple[int, int] | None
) -> None:
    wanted = parse_range(header)
    assert wanted is not None
    assert resolve(wanted, length) == span


@pytest.mark.parametrize(
    "header", [None, "", "bytes=5-2", "bytes=0-1,5-6", "items=0-5", "bytes=-", "bytes=a-b"]
)
def test_a_range_this_does_not_read_asks_for_the_whole_body(header: str | None) -> None:
    assert parse_range(header) is None


def test_an_open_range_is_kept_open() -> None:
    assert parse_range("bytes=100-") == ByteRange(100, None)
