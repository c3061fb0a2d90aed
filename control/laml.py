"""LaML (cXML) documents answering SignalWire voice webhooks (protocols.md section b).

Documents are built with ElementTree, so text and attribute values are escaped correctly,
and returned as `str` beginning with the XML declaration, `<Response>` as the root. Verb and
attribute names are case-sensitive on the platform and are spelled here exactly as documented.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeAlias, get_args
from urllib.parse import urlsplit

StreamTrack = Literal["inbound_track", "outbound_track", "both_tracks"]

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'

# Characters XML 1.0 cannot carry at all, even escaped: ElementTree would write them as-is and
# the platform would reject the whole document.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def call_stream_url(media_url: str, call_id: uuid.UUID) -> str:
    """Where every stream of a call connects: the media URL with the call's id last, so that
    whatever routes connections (`serve --workers N`'s parent, a balancer) can tell the call
    without a query string (SignalWire drops those)."""
    return f"{media_url.rstrip('/')}/{call_id}"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A `<Start><Stream>` fork of the call's audio to our media server.

    Raises ValueError on construction when `url` is not an absolute `wss://` URL (`ws://` is
    accepted only with `allow_insecure=True`, for local tests) or carries a query string or a
    fragment (SignalWire drops query strings: pass data as `parameters`, which arrive in the
    stream's `start.customParameters`), when `name` or a parameter name is empty, or when
    `track` is not one of the three allowed values. `parameters` is copied into a read-only
    mapping; their order is kept in the document.
    """

    url: str
    name: str
    status_callback: str
    parameters: Mapping[str, str]
    track: StreamTrack = "both_tracks"
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        allowed_schemes = ("wss", "ws") if self.allow_insecure else ("wss",)
        if parts.scheme not in allowed_schemes or not parts.hostname:
            raise ValueError(f"stream url must be an absolute {' or '.join(allowed_schemes)} URL")
        # Test the raw text: urlsplit reports "wss://h/p?" as having an empty query.
        if "?" in self.url or "#" in self.url:
            raise ValueError("stream url must not carry a query string or fragment")
        if not self.name:
            raise ValueError("stream name must not be empty")
        if self.track not in get_args(StreamTrack):
            raise ValueError(f"unknown stream track {self.track!r}")
        if not all(self.parameters):
            raise ValueError("stream parameter names must not be empty")
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))


@dataclass(frozen=True, slots=True)
class Play:
    """Audio played instead of words said: a prompt a voice rendered, or an uploaded file
    (control.prompts), at a URL SignalWire can fetch."""

    url: str


Spoken: TypeAlias = str | Play
"""What a prompt is: words for `<Say>`, or audio for `<Play>`."""


def _speak(parent: ET.Element, spoken: Spoken) -> None:
    """`<Play>` the audio, or `<Say>` the words (nothing for blank words)."""
    if isinstance(spoken, Play):
        ET.SubElement(parent, "Play").text = spoken.url
    elif spoken.strip():
        ET.SubElement(parent, "Say").text = spoken


@dataclass(frozen=True, slots=True)
class ConsentGather:
    """Ask for recording consent: the prompt is said inside a one-digit `<Gather>` whose action
    receives `Digits` (empty when the caller pressed nothing, or answered by voice)."""

    action_url: str
    prompt: Spoken
    timeout_s: int = 8
    speech: bool = False
    """Also take a spoken answer (`input="dtmf speech"`): the media stream hears it."""


@dataclass(frozen=True, slots=True)
class CampaignFlow:
    """What a campaign's answered call (or a call to a number with a survey) hears after the
    disclosure: exactly one of a text said then hung up, an audio file played then hung up, a
    `<Dial>` to a number, or a `<Redirect>` to the survey's first question."""

    say: Spoken | None = None
    play: str | None = None
    connect: str | None = None
    survey_url: str | None = None
    caller_id: str | None = None
    """The `callerId` of a connect: the campaign's own number."""

    def __post_init__(self) -> None:
        given = (self.say, self.play, self.connect, self.survey_url)
        if sum(v is not None for v in given) != 1:
            raise ValueError("a flow is exactly one of say, play, connect and survey_url")


def voice_response(
    *,
    disclosure: Spoken | None,
    stream: StreamSpec,
    dial_target: str | None,
    dial_caller_id: str | None = None,
    hold_seconds: int = 600,
    consent_gather: ConsentGather | None = None,
    flow: CampaignFlow | None = None,
) -> str:
    """Return the document that answers an inbound or outbound call we record.

    In order: `<Say>` with the disclosure (omitted when None or blank); `<Start><Stream>` with
    `statusCallbackMethod="POST"` and one `<Parameter>` per entry of `stream.parameters`; then
    `<Dial>` to `dial_target` (with `callerId` only when `dial_caller_id` is given), or, with no
    target, `<Pause length=hold_seconds>` so the forked call stays up (a `<Start>` with no next
    verb hangs up); a campaign's call plays its `flow` instead. With `consent_gather`, the
    stream starts first, then the `<Gather>` asks (the disclosure is its prompt) and the call
    continues in the document its action returns.
    Raises ValueError when `hold_seconds` < 1 or a value contains a character XML cannot
    represent.
    """
    if hold_seconds < 1:
        raise ValueError("hold_seconds must be at least 1")
    response = ET.Element("Response")
    if consent_gather is None and disclosure is not None:
        _speak(response, disclosure)
    stream_el = ET.SubElement(
        ET.SubElement(response, "Start"),
        "Stream",
        {
            "url": stream.url,
            "name": stream.name,
            "track": stream.track,
            "statusCallback": stream.status_callback,
            "statusCallbackMethod": "POST",
        },
    )
    for name, value in stream.parameters.items():
        ET.SubElement(stream_el, "Parameter", {"name": name, "value": value})
    if consent_gather is not None:
        _gather(response, consent_gather)
        return _serialize(response)
    _continue(response, dial_target, dial_caller_id, hold_seconds, flow)
    return _serialize(response)


def ask_consent(gather: ConsentGather) -> str:
    """Return a document that only asks (again) for consent: the `<Gather>` of
    `voice_response`, whose action, answered or not, returns the rest of the call. Raises
    ValueError when a value contains a character XML cannot represent."""
    response = ET.Element("Response")
    _gather(response, gather)
    return _serialize(response)


def _gather(response: ET.Element, consent_gather: ConsentGather) -> None:
    gather = ET.SubElement(
        response,
        "Gather",
        {
            "input": "dtmf speech" if consent_gather.speech else "dtmf",
            "numDigits": "1",
            "timeout": str(consent_gather.timeout_s),
            "action": consent_gather.action_url,
            "method": "POST",
            "actionOnEmptyResult": "true",
        },
    )
    _speak(gather, consent_gather.prompt)


def continuation(
    *,
    say: Spoken | None,
    dial_target: str | None,
    dial_caller_id: str | None,
    hold_seconds: int,
    flow: CampaignFlow | None = None,
) -> str:
    """The rest of a call after the consent `<Gather>`: an optional `<Say>`, then `<Dial>`,
    `<Pause>` or the campaign's flow as in `voice_response`."""
    response = ET.Element("Response")
    if say is not None:
        _speak(response, say)
    _continue(response, dial_target, dial_caller_id, hold_seconds, flow)
    return _serialize(response)


def _continue(
    response: ET.Element,
    dial_target: str | None,
    dial_caller_id: str | None,
    hold_seconds: int,
    flow: CampaignFlow | None = None,
) -> None:
    if hold_seconds < 1:
        raise ValueError("hold_seconds must be at least 1")
    if flow is not None:
        if flow.survey_url is not None:
            ET.SubElement(response, "Redirect", {"method": "POST"}).text = flow.survey_url
            return
        if flow.say is not None:
            _speak(response, flow.say)
        elif flow.play is not None:
            ET.SubElement(response, "Play").text = flow.play
        if flow.connect is not None:
            dial = ET.SubElement(response, "Dial")
            if flow.caller_id:
                dial.set("callerId", flow.caller_id)
            dial.text = flow.connect
        else:
            ET.SubElement(response, "Hangup")
        return
    if dial_target:
        dial = ET.SubElement(response, "Dial")
        if dial_caller_id:
            dial.set("callerId", dial_caller_id)
        dial.text = dial_target
    else:
        ET.SubElement(response, "Pause", {"length": str(hold_seconds)})


def survey_question(
    *, prompt: Spoken, speech_only: bool, action_url: str, audio_url: str | None = None,
    timeout_s: int = 6,
) -> str:  # fmt: skip
    """One survey question: its prompt said (or its recording played, `audio_url`) inside a
    `<Gather>` that takes a key or words (`speech_only`: words, for an open question) and posts
    them to `action_url`, answered or not. Raises ValueError when a value contains a character
    XML cannot represent."""
    response = ET.Element("Response")
    attributes = {
        "input": "speech" if speech_only else "dtmf speech",
        "timeout": str(timeout_s),
        "speechTimeout": "auto",
        "action": action_url,
        "method": "POST",
        "actionOnEmptyResult": "true",
    }
    if not speech_only:
        attributes["numDigits"] = "1"
    gather = ET.SubElement(response, "Gather", attributes)
    _speak(gather, Play(audio_url) if audio_url is not None else prompt)
    return _serialize(response)


def say_and_hangup(text: Spoken) -> str:
    """Return `<Say>text</Say><Hangup/>` (the `<Say>` omitted when `text` is blank).

    For calls we will not record, such as calls to numbers no organisation owns. Raises
    ValueError when `text` contains a character XML cannot represent.
    """
    response = ET.Element("Response")
    _speak(response, text)
    ET.SubElement(response, "Hangup")
    return _serialize(response)


def hold_and_retry(url: str, *, pause_s: int, say: str | None = None) -> str:
    """Return `<Say>` (when `say` is not blank), `<Pause length=pause_s>`, then
    `<Redirect method="POST">url</Redirect>`: the call is answered and kept up, and after the
    pause the platform asks `url` for the rest of the call with the call's parameters.

    Raises ValueError when `pause_s` < 1, `url` is not an absolute http(s) URL, or a value
    contains a character XML cannot represent.
    """
    if pause_s < 1:
        raise ValueError("pause_s must be at least 1")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("redirect url must be an absolute http(s) URL")
    response = ET.Element("Response")
    if say and say.strip():
        ET.SubElement(response, "Say").text = say
    ET.SubElement(response, "Pause", {"length": str(pause_s)})
    ET.SubElement(response, "Redirect", {"method": "POST"}).text = url
    return _serialize(response)


def _serialize(root: ET.Element) -> str:
    for element in root.iter():
        for value in (element.text or "", *element.attrib.values()):
            if _XML_ILLEGAL.search(value):
                raise ValueError(f"<{element.tag}> holds a character XML cannot represent")
    return XML_DECLARATION + ET.tostring(root, encoding="unicode")
