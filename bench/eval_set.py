"""The detector evaluation set: labelled two-party calls built from speech clips.

The set lives in `tests/fixtures/eval/` (its README.md says how it is made): `calls.json` is the
manifest and `clips/<id>.wav` holds one utterance each. `load` reads and checks the manifest;
`render_call` lays a call's clips on its two tracks, as the simulator plays them to the server.

Manifest shape (`make_eval.sh` writes it):

    {"escalation_rules": [...], "voices": {...}, "texts": {clip id: spoken text},
     "calls": [{"id", "agent": [turn], "caller": [turn],
                "expect": {"consent": "granted" | "refused" | null, "escalations": [rule]},
                "notes"}]}

where a turn is `{"clip": id, "at_ms": start in the call}`. The caller's first turn answers the
agent's recording disclosure; `expect.consent` null means no verdict may be given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from media.codecs import ulaw_decode
from server.simulator.audio import OUTPUT_RATE, read_call_audio

SAMPLE_RATE: Final = OUTPUT_RATE
"""Both rendered tracks are 16-bit mono PCM at this rate (8 kHz)."""
TAIL_MS: Final = 1500
"""Silence after a call's last turn ends, so the endpointer closes the last utterance."""
EVAL_DIR: Final = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "eval"
MANIFEST: Final = EVAL_DIR / "calls.json"
CLIPS_DIR: Final = EVAL_DIR / "clips"

Verdict = Literal["granted", "refused"]


class ManifestError(ValueError):
    """The manifest is malformed or inconsistent; the message says where."""


@dataclass(frozen=True, slots=True)
class Turn:
    clip: str
    at_ms: int
    """When the clip starts, from the start of the call."""
    text: str
    """What the clip says, from the manifest's `texts`."""


@dataclass(frozen=True, slots=True)
class Expect:
    consent: Verdict | None
    """The verdict the caller's answer gives; None when no verdict may be given."""
    escalations: tuple[str, ...]
    """Phrase rules that must fire (`DEFAULT_RULES` names in media/detectors/rules.py)."""


@dataclass(frozen=True, slots=True)
class EvalCall:
    id: str
    agent: tuple[Turn, ...]
    """The outbound track's turns, in time order."""
    caller: tuple[Turn, ...]
    """The inbound track's turns, in time order; the first answers the disclosure."""
    expect: Expect
    notes: str

    @property
    def answer(self) -> Turn | None:
        """The caller's answer to the recording disclosure: their first turn."""
        return self.caller[0] if self.caller else None


@dataclass(frozen=True, slots=True)
class EvalSet:
    calls: tuple[EvalCall, ...]
    escalation_rules: tuple[str, ...]
    texts: Mapping[str, str]
    """Clip id -> the exact spoken text."""


def load(path: Path = MANIFEST) -> list[EvalCall]:
    """The manifest's calls, checked (see `load_set`)."""
    return list(load_set(path).calls)


def load_set(path: Path = MANIFEST) -> EvalSet:
    """Read and check a manifest: every clip has a text, every expected rule is one of the
    set's `escalation_rules`, turns on a side are in time order, call ids are unique.

    Raises `ManifestError` naming what is wrong, `OSError` if the file cannot be read.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not JSON: {exc}") from None
    root = _object(raw, "manifest")
    rules = tuple(_string(r, "escalation_rules[]") for r in _array(root, "escalation_rules"))
    texts = {k: _string(v, f"texts.{k}") for k, v in _object(root.get("texts"), "texts").items()}
    calls: list[EvalCall] = []
    seen: set[str] = set()
    for i, item in enumerate(_array(root, "calls")):
        call = _call(_object(item, f"calls[{i}]"), texts, rules)
        if call.id in seen:
            raise ManifestError(f"call {call.id}: id used twice")
        seen.add(call.id)
        calls.append(call)
    return EvalSet(calls=tuple(calls), escalation_rules=rules, texts=texts)


def _call(obj: Mapping[str, object], texts: Mapping[str, str], rules: Sequence[str]) -> EvalCall:
    call_id = _string(obj.get("id"), "call id")
    where = f"call {call_id}"
    expect = _object(obj.get("expect"), f"{where}: expect")
    consent = expect.get("consent")
    verdict: Verdict | None = None
    if consent == "granted":
        verdict = "granted"
    elif consent == "refused":
        verdict = "refused"
    elif consent is not None:
        raise ManifestError(f"{where}: consent must be granted, refused or null, not {consent!r}")
    wanted = _array(expect, "escalations", where)
    escalations = tuple(_string(r, f"{where}: escalations[]") for r in wanted)
    for rule in escalations:
        if rule not in rules:
            raise ManifestError(f"{where}: {rule!r} is not one of the escalation rules")
    return EvalCall(
        id=call_id,
        agent=_turns(obj, "agent", texts, where),
        caller=_turns(obj, "caller", texts, where),
        expect=Expect(consent=verdict, escalations=escalations),
        notes=_string(obj.get("notes", ""), f"{where}: notes"),
    )


def _turns(
    obj: Mapping[str, object], side: str, texts: Mapping[str, str], where: str
) -> tuple[Turn, ...]:
    turns: list[Turn] = []
    for i, item in enumerate(_array(obj, side, where)):
        turn = _object(item, f"{where}: {side}[{i}]")
        clip = _string(turn.get("clip"), f"{where}: {side}[{i}].clip")
        at_ms = turn.get("at_ms")
        if not isinstance(at_ms, int) or isinstance(at_ms, bool) or at_ms < 0:
            raise ManifestError(f"{where}: {side}[{i}].at_ms must be a whole number >= 0")
        if clip not in texts:
            raise ManifestError(f"{where}: clip {clip!r} has no text")
        if turns and at_ms <= turns[-1].at_ms:
            raise ManifestError(f"{where}: {side} turns are not in time order")
        turns.append(Turn(clip=clip, at_ms=at_ms, text=texts[clip]))
    return tuple(turns)


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: expected an object")
    return {str(k): v for k, v in value.items()}


def _array(obj: Mapping[str, object], key: str, where: str = "manifest") -> list[object]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise ManifestError(f"{where}: {key}: expected an array")
    return list(value)


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: expected a string")
    return value


def render_call(call: EvalCall, clips_dir: Path = CLIPS_DIR) -> tuple[bytes, bytes]:
    """The call's two tracks, `(inbound, outbound)` = (caller, agent), as 16-bit native-endian
    mono PCM at 8 kHz of equal length: each clip at its `at_ms`, digital silence elsewhere, and
    the call lasting until its last turn ends plus `TAIL_MS`.

    Raises `ManifestError` if turns on one side overlap, and
    `server.simulator.audio.AudioFileError` for a missing or unreadable clip.
    """
    caller = [(_samples(t.at_ms), _clip_pcm(clips_dir / f"{t.clip}.wav")) for t in call.caller]
    agent = [(_samples(t.at_ms), _clip_pcm(clips_dir / f"{t.clip}.wav")) for t in call.agent]
    end = max((start + len(pcm) // 2 for start, pcm in caller + agent), default=0)
    length = end + _samples(TAIL_MS)
    return _lay(call.id, "caller", caller, length), _lay(call.id, "agent", agent, length)


def _samples(ms: int) -> int:
    return ms * SAMPLE_RATE // 1000


def _lay(call_id: str, side: str, clips: Sequence[tuple[int, bytes]], samples: int) -> bytes:
    track = bytearray(samples * 2)
    busy_until = 0  # in samples
    for start, pcm in clips:
        if start < busy_until:
            raise ManifestError(f"call {call_id}: {side} turns overlap at sample {start}")
        track[start * 2 : start * 2 + len(pcm)] = pcm
        busy_until = start + len(pcm) // 2
    return bytes(track)


def _clip_pcm(path: Path) -> bytes:
    """A mono clip as 8 kHz 16-bit PCM (the reader resamples any rate and format)."""
    audio = read_call_audio(path)
    if audio.agent is not None:
        raise ManifestError(f"{path}: a clip must be mono")
    return ulaw_decode(audio.caller)
