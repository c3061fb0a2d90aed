"""LaML documents, read back with ElementTree as the platform would parse them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from control.laml import StreamSpec, say_and_hangup, voice_response

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
NASTY = "a < b && \"c\" > 'd'\n</Say><Hangup/>"


def make_stream(**overrides: Any) -> StreamSpec:
    fields: dict[str, Any] = {
        "url": "wss://media.example.com/stream",
        "name": "rec-1",
        "status_callback": "https://api.example.com/stream-status",
        "parameters": {"token": "abc.def", "org": "o1"},
    }
    fields.update(overrides)
    return StreamSpec(**fields)


def parse(document: str) -> ET.Element:
    assert document.startswith(DECLARATION)
    root = ET.fromstring(document.encode("utf-8"))
    assert root.tag == "Response"
    return root


def test_full_document_verb_order_and_attributes() -> None:
    root = parse(
        voice_response(
            disclosure="This call is recorded.",
            stream=make_stream(),
            dial_target="+15551230000",
            dial_caller_id="+15559870000",
        )
    )
    assert [child.tag for child in root] == ["Say", "Start", "Dial"]
    say, start, dial = root
    assert say.text == "This call is recorded."
    assert [child.tag for child in start] == ["Stream"]
    stream = start[0]
    assert stream.attrib == {
        "url": "wss://media.example.com/stream",
        "name": "rec-1",
        "track": "both_tracks",
        "statusCallback": "https://api.example.com/stream-status",
        "statusCallbackMethod": "POST",
    }
    assert [(p.tag, p.attrib) for p in stream] == [
        ("Parameter", {"name": "token", "value": "abc.def"}),
        ("Parameter", {"name": "org", "value": "o1"}),
    ]
    assert dial.text == "+15551230000"
    assert dial.attrib == {"callerId": "+15559870000"}


def test_dial_without_caller_id_has_no_attribute() -> None:
    root = parse(voice_response(disclosure=None, stream=make_stream(), dial_target="+15551230000"))
    dial = root.find("Dial")
    assert dial is not None
    assert dial.attrib == {}
    assert dial.text == "+15551230000"


@pytest.mark.parametrize("disclosure", [None, "", "  \n"])
def test_no_disclosure_means_no_say(disclosure: str | None) -> None:
    root = parse(voice_response(disclosure=disclosure, stream=make_stream(), dial_target="+1555"))
    assert [child.tag for child in root] == ["Start", "Dial"]


def test_no_dial_target_holds_the_call_with_pause() -> None:
    root = parse(
        voice_response(disclosure="Hi", stream=make_stream(), dial_target=None, hold_seconds=42)
    )
    assert [child.tag for child in root] == ["Say", "Start", "Pause"]
    assert root[2].attrib == {"length": "42"}


def test_default_hold_is_600_seconds() -> None:
    root = parse(voice_response(disclosure=None, stream=make_stream(), dial_target=None))
    pause = root.find("Pause")
    assert pause is not None and pause.get("length") == "600"


@pytest.mark.parametrize("hold_seconds", [0, -1])
def test_non_positive_hold_is_rejected(hold_seconds: int) -> None:
    with pytest.raises(ValueError):
        voice_response(
            disclosure=None, stream=make_stream(), dial_target=None, hold_seconds=hold_seconds
        )


@pytest.mark.parametrize("track", ["inbound_track", "outbound_track", "both_tracks"])
def test_track_is_written(track: str) -> None:
    root = parse(voice_response(disclosure=None, stream=make_stream(track=track), dial_target=None))
    stream = root.find("Start/Stream")
    assert stream is not None and stream.get("track") == track


def test_special_characters_are_escaped_and_round_trip() -> None:
    document = voice_response(
        disclosure=NASTY,
        stream=make_stream(parameters={"note": NASTY, "k&<": "v"}),
        dial_target="+1555",
    )
    root = parse(document)
    assert [child.tag for child in root] == ["Say", "Start", "Dial"]  # nothing injected
    assert root[0].text == NASTY
    params = {p.get("name"): p.get("value") for p in root.iter("Parameter")}
    assert params == {"note": NASTY, "k&<": "v"}
    assert "&lt;" in document and "&amp;" in document and "&quot;" in document


def test_xml_illegal_characters_are_rejected() -> None:
    with pytest.raises(ValueError):
        voice_response(disclosure="bell\x07", stream=make_stream(), dial_target=None)
    with pytest.raises(ValueError):
        voice_response(
            disclosure=None, stream=make_stream(parameters={"t": "\x00"}), dial_target=None
        )


def test_non_ascii_text_survives() -> None:
    root = parse(say_and_hangup("Llamada grabada — 通话录音"))
    assert root[0].text == "Llamada grabada — 通话录音"


def test_say_and_hangup() -> None:
    root = parse(say_and_hangup('Sorry, "this" number & that <one> is not in service.'))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == 'Sorry, "this" number & that <one> is not in service.'
    assert root[1].attrib == {} and len(root[1]) == 0


def test_say_and_hangup_blank_text_just_hangs_up() -> None:
    assert [child.tag for child in parse(say_and_hangup(" "))] == ["Hangup"]


@pytest.mark.parametrize(
    "url",
    [
        "ws://media.example.com/stream",
        "https://media.example.com/stream",
        "wss://media.example.com/stream?token=x",
        "wss://media.example.com/stream?",
        "wss://media.example.com/stream#frag",
        "wss:///no-host",
        "/relative/stream",
        "",
    ],
)
def test_bad_stream_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        make_stream(url=url)


def test_ws_allowed_only_when_insecure_is_allowed() -> None:
    stream = make_stream(url="ws://127.0.0.1:8765/stream", allow_insecure=True)
    root = parse(voice_response(disclosure=None, stream=stream, dial_target=None))
    element = root.find("Start/Stream")
    assert element is not None and element.get("url") == "ws://127.0.0.1:8765/stream"
    with pytest.raises(ValueError):
        make_stream(url="ws://127.0.0.1:8765/stream?x=1", allow_insecure=True)


def test_bad_stream_fields_are_rejected() -> None:
    with pytest.raises(ValueError):
        make_stream(name="")
    with pytest.raises(ValueError):
        make_stream(track="inbound")
    with pytest.raises(ValueError):
        make_stream(parameters={"": "v"})


def test_parameters_are_frozen_copies() -> None:
    source = {"token": "t1"}
    stream = make_stream(parameters=source)
    source["token"] = "changed"
    assert stream.parameters == {"token": "t1"}
    with pytest.raises(TypeError):
        stream.parameters["token"] = "x"  # type: ignore[index]
