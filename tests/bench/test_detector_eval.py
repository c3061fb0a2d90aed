"""bench.detector_eval: a dialogue's audio through the media server's own session, scored."""

from __future__ import annotations

from pathlib import Path

from bench.detector_eval import CallResult, report, run_call
from bench.dialogue_audio import KeyPress, RenderedCall, SpokenTurn
from bench.dialogues import parse_call
from media.codecs import ulaw_decode
from server.simulator.audio import read_call_audio

CLIPS = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "clips"
RATE_MS = 8  # samples per millisecond at 8 kHz


def clip(name: str) -> bytes:
    return ulaw_decode(read_call_audio(CLIPS / f"{name}.wav").caller)


def rendered(turns: list[tuple[str, str, str]], presses: tuple[KeyPress, ...] = ()) -> RenderedCall:
    """(who, clip, text) laid one after another with 0.8 s between them."""
    tracks = {"inbound": bytearray(), "outbound": bytearray()}
    spoken, at_ms = [], 500
    for who, name, text in turns:
        pcm = clip(name)
        track = "inbound" if who == "caller" else "outbound"
        other = "outbound" if track == "inbound" else "inbound"
        end_ms = at_ms + len(pcm) // 2 // RATE_MS
        for t in (track, other):
            tracks[t] += bytes(at_ms * RATE_MS * 2 - len(tracks[t]))
        tracks[track] += pcm
        spoken.append(SpokenTurn(who, track, at_ms, end_ms, text))  # type: ignore[arg-type]
        at_ms = end_ms + 800
    length = (at_ms + 1_500) * RATE_MS * 2
    inbound, outbound = (bytes(t) + bytes(length - len(t)) for t in tracks.values())
    return RenderedCall("t", "neural", inbound, outbound, presses, tuple(spoken), {}, 30, "white")


def dialogue(consent: str | None, escalations: list[str]) -> object:
    return {
        "id": "dev-x-001", "situation": "billing", "consent_request": "agent_question",
        "played": None, "caller_gain_db": 0,
        "turns": [{"who": "agent", "say": "a"}, {"who": "caller", "say": "b"}],
        "expect": {"consent": consent, "escalations": escalations, "raised_voice": False,
                   "dead_air": False, "talk_over": False, "operator_key": False},
        "distractors": [], "notes": "",
    }  # fmt: skip


DISCLOSURE = ("agent", "agent-disclosure_f4", "This call may be recorded for quality and "
              "training. Is that okay with you?")  # fmt: skip


def test_a_consenting_caller_who_asks_for_a_manager_is_scored_right() -> None:
    call = parse_call(dialogue("granted", ["supervisor-request"]), "dev")
    audio = rendered([
        DISCLOSURE,
        ("caller", "answer-yes_gb", "Yes."),
        ("caller", "escalate-manager-speak_gb", "I want to speak to a manager."),
    ])  # fmt: skip
    result = run_call(call, audio, None)
    assert (result.consent, result.escalations) == ("granted", ["supervisor-request"])
    lines = report([result])
    assert any(line.startswith("consent granted") and "1.000   1.000" in line for line in lines)


def test_a_key_the_request_does_not_offer_and_the_operator_key() -> None:
    call = parse_call(dialogue(None, []), "dev")
    press = KeyPress(offset_ms=6_000, track="inbound", digit="0")
    result = run_call(call, rendered([DISCLOSURE], (press,)), None)
    assert result.consent is None and result.escalations == ["operator-key"]
    assert isinstance(result, CallResult) and result.expected_rules == set()
