"""Whole messages out of data frames (media/media_socket.py), as both transports use it."""

from __future__ import annotations

import pytest

from media.media_socket import FrameError, Messages


def collect(messages: Messages) -> list[tuple[bytes, bool]]:
    got: list[tuple[bytes, bool]] = []
    messages.receiver = lambda data, text: got.append((data, text))
    return got


def test_messages_read_before_a_receiver_is_set_reach_it_first_in_order() -> None:
    messages = Messages(max_size=100)
    messages.frame(b"one", text=True, continuation=False, fin=True)
    messages.frame(b"\x00", text=False, continuation=False, fin=True)
    got = collect(messages)
    messages.frame(b"three", text=True, continuation=False, fin=True)
    assert got == [(b"one", True), (b"\x00", False), (b"three", True)]


def test_a_fragmented_message_is_given_whole_as_its_first_frame_says() -> None:
    messages = Messages(max_size=100)
    got = collect(messages)
    messages.frame(b'{"a"', text=True, continuation=False, fin=False)
    messages.frame(b": ", text=False, continuation=True, fin=False)
    assert got == []
    messages.frame(b"1}", text=False, continuation=True, fin=True)
    messages.frame(b"next", text=False, continuation=False, fin=True)
    assert got == [(b'{"a": 1}', True), (b"next", False)]


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(b"x", True, True)], 1002),  # a continuation with nothing to continue
        ([(b"x", False, False), (b"y", False, True)], 1002),  # a new message mid-message
        ([(b"x" * 60, False, False), (b"y" * 41, True, True)], 1009),  # 101 bytes > 100
    ],
)
def test_frames_that_do_not_make_a_message_are_refused_with_a_close_code(
    frames: list[tuple[bytes, bool, bool]], code: int
) -> None:
    messages = Messages(max_size=100)
    got = collect(messages)
    with pytest.raises(FrameError) as refused:
        for data, continuation, fin in frames:
            messages.frame(data, text=True, continuation=continuation, fin=fin)
    assert refused.value.code == code and got == []
