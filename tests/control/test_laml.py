"""LaML documents, read back with ElementTree as the platform would parse them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from control.laml import (
    ConsentGather,
    StreamSpec,
    ask_consent,
    continuation,
    hold_and_retry,
    say_and_hangup,
    voice_response,
)

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


# The keypad consent flow: the <Gather> that asks, and the document its action returns.

GATHER = ConsentGather(
    action_url="https://voice.example.com/laml/consent?a=1&b=2",
    prompt="This call is recorded. Press 1 to allow recording, or 2 to decline.",
)


def test_consent_gather_starts_the_stream_then_asks_and_never_continues() -> None:
    root = parse(
        voice_response(
            disclosure="This call is recorded.",
            stream=make_stream(),
            dial_target="+15551230000",
            dial_caller_id="+15559870000",
            consent_gather=GATHER,
        )
    )
    # The disclosure is the <Gather>'s prompt, not a <Say> of its own; the call goes on in
    # the document the action returns, so neither <Dial> nor <Pause> is here.
    assert [child.tag for child in root] == ["Start", "Gather"]
    start, gather = root
    assert [p.get("name") for p in start.iter("Parameter")] == ["token", "org"]
    assert gather.attrib == {
        "input": "dtmf",
        "numDigits": "1",
        "timeout": "8",
        "action": "https://voice.example.com/laml/consent?a=1&b=2",
        "method": "POST",
        "actionOnEmptyResult": "true",
    }
    assert [(child.tag, child.text) for child in gather] == [("Say", GATHER.prompt)]
    assert {el.tag for el in root.iter()} == {
        "Response",
        "Start",
        "Stream",
        "Parameter",
        "Gather",
        "Say",
    }


def test_consent_gather_timeout_and_escaping() -> None:
    gather = ConsentGather(action_url='https://h.example/c?x=<1>&y="2"', prompt=NASTY, timeout_s=3)
    document = voice_response(
        disclosure=None, stream=make_stream(), dial_target=None, consent_gather=gather
    )
    root = parse(document)
    assert [child.tag for child in root] == ["Start", "Gather"]  # nothing injected
    element = root[1]
    assert element.get("timeout") == "3"
    assert element.get("action") == 'https://h.example/c?x=<1>&y="2"'
    assert [(child.tag, child.text) for child in element] == [("Say", NASTY)]
    assert "&lt;/Say&gt;" in document


def test_ask_consent_is_the_gather_alone() -> None:
    # Asking again mid-call: no second stream, and the call goes on in the action's answer.
    root = parse(ask_consent(GATHER))
    assert [child.tag for child in root] == ["Gather"]
    assert root[0].get("action") == GATHER.action_url
    assert root[0].get("actionOnEmptyResult") == "true"
    assert [(child.tag, child.text) for child in root[0]] == [("Say", GATHER.prompt)]
    with pytest.raises(ValueError):
        ask_consent(ConsentGather(action_url="https://h.example/c", prompt="bell\x07"))


def test_consent_gather_rejects_what_voice_response_rejects() -> None:
    with pytest.raises(ValueError):
        voice_response(
            disclosure=None,
            stream=make_stream(),
            dial_target=None,
            hold_seconds=0,
            consent_gather=GATHER,
        )
    with pytest.raises(ValueError):
        voice_response(
            disclosure=None,
            stream=make_stream(),
            dial_target=None,
            consent_gather=ConsentGather(action_url="https://h.example/c", prompt="bell\x07"),
        )


def test_continuation_says_then_dials() -> None:
    root = parse(
        continuation(
            say="This call will not be recorded.",
            dial_target="+15551230000",
            dial_caller_id="+15559870000",
            hold_seconds=600,
        )
    )
    assert [(child.tag, child.text) for child in root] == [
        ("Say", "This call will not be recorded."),
        ("Dial", "+15551230000"),
    ]
    assert root[1].attrib == {"callerId": "+15559870000"}


@pytest.mark.parametrize("say", [None, "", " \n"])
def test_continuation_without_words_just_goes_on(say: str | None) -> None:
    root = parse(
        continuation(say=say, dial_target="+15551230000", dial_caller_id=None, hold_seconds=5)
    )
    assert [child.tag for child in root] == ["Dial"]
    assert root[0].attrib == {} and root[0].text == "+15551230000"


def test_continuation_without_a_dial_target_holds_the_call() -> None:
    root = parse(
        continuation(say="Thanks.", dial_target=None, dial_caller_id="+1555", hold_seconds=42)
    )
    assert [child.tag for child in root] == ["Say", "Pause"]
    assert root[1].attrib == {"length": "42"}


def test_continuation_escapes_and_rejects_what_xml_cannot_carry() -> None:
    document = continuation(
        say=NASTY, dial_target="sip:a&b@<host>", dial_caller_id=None, hold_seconds=1
    )
    root = parse(document)
    assert [(child.tag, child.text) for child in root] == [
        ("Say", NASTY),
        ("Dial", "sip:a&b@<host>"),
    ]
    with pytest.raises(ValueError):
        continuation(say="\x00", dial_target=None, dial_caller_id=None, hold_seconds=1)
    with pytest.raises(ValueError):
        continuation(say=None, dial_target="+1555\x1b", dial_caller_id=None, hold_seconds=1)


def test_hold_and_retry_says_pauses_then_redirects_by_post() -> None:
    url = "https://h.example/laml/voice?a=1&attempt=2"
    root = parse(hold_and_retry(url, pause_s=3, say=NASTY))
    assert [(child.tag, child.text, child.attrib) for child in root] == [
        ("Say", NASTY, {}),
        ("Pause", None, {"length": "3"}),
        ("Redirect", url, {"method": "POST"}),
    ]
    assert [child.tag for child in parse(hold_and_retry(url, pause_s=1))] == ["Pause", "Redirect"]


@pytest.mark.parametrize(
    ("url", "pause_s", "say"),
    [
        ("/laml/voice", 3, None),
        ("wss://h.example/laml/voice", 3, None),
        ("https://h.example/laml/voice", 0, None),
        ("https://h.example/laml/voice", 3, "bell\x07"),
    ],
)
def test_hold_and_retry_rejects_what_the_platform_could_not_follow(
    url: str, pause_s: int, say: str | None
) -> None:
    with pytest.raises(ValueError):
        hold_and_retry(url, pause_s=pause_s, say=say)
