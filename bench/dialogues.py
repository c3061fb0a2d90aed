"""The dialogue evaluation set: scripted two-party calls and what the detectors should find.

The scripts are `tests/fixtures/dialogues/{test,dev}-*.json` (the folder's README.md says who
wrote them and how they are played). This module reads and checks them and nothing else: no
audio (`bench.dialogue_audio` renders a `Dialogue` into the simulator's two tracks).

File shape (README.md gives the full schema and the writers' rules):

    {"part": "test" | "dev",
     "calls": [{"id", "situation", "consent_request", "played", "caller_gain_db",
                "turns": [{"who": "agent" | "caller", "say": text | "press": key,
                           "loud"?, "overlap_ms"?, "pause_before_ms"?}],
                "expect": {"consent", "escalations", "raised_voice", "dead_air",
                           "talk_over", "operator_key"},
                "distractors", "notes"}]}

Every check raises `ManifestError` naming the file, the call and the field: unknown keys, wrong
types, ids used twice (across all the files of a part), and labels that contradict the turns
(`raised_voice` iff two or more loud turns, `dead_air` iff a pause of 16 s or more, `talk_over`
iff an overlap of 2.5 s or more, `operator_key` iff a press of 0, a `played` text iff the
disclosure is played, escalations only from the four families).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeVar, get_args

DIALOGUES_DIR: Final = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "dialogues"

Part = Literal["test", "dev"]
Who = Literal["agent", "caller"]
Verdict = Literal["granted", "refused"]
ConsentRequest = Literal[
    "agent_question", "agent_notice", "played_question", "played_keypad", "played_notice", "none"
]  # fmt: skip
Escalation = Literal["supervisor-request", "legal-threat", "cancellation", "complaint"]

PARTS: Final[tuple[Part, ...]] = get_args(Part)
PARTIES: Final[tuple[Who, ...]] = get_args(Who)
VERDICTS: Final[tuple[Verdict, ...]] = get_args(Verdict)
ESCALATIONS: Final[tuple[Escalation, ...]] = get_args(Escalation)
CONSENT_REQUESTS: Final[tuple[ConsentRequest, ...]] = get_args(ConsentRequest)
SITUATIONS: Final = (
    "billing", "repairs", "cancellations", "collections", "appointments", "deliveries",
    "insurance", "utilities", "telecom", "banking", "healthcare-admin", "travel", "retail-returns",
)  # fmt: skip
KEYS: Final = frozenset("0123456789*#")

DEAD_AIR_MS: Final = 16_000
"""A `pause_before_ms` of at least this is dead air."""
TALK_OVER_MS: Final = 2_500
"""An `overlap_ms` of at least this is talking over the other party."""
RAISED_VOICE_TURNS: Final = 2
"""A caller with at least this many loud turns raises their voice."""
OPERATOR_KEY: Final = "0"
MAX_PAUSE_MS: Final = 60_000
MAX_OVERLAP_MS: Final = 10_000
MAX_CALLER_GAIN_DB: Final = 12.0

_CALL_KEYS: Final = frozenset(
    ("id", "situation", "consent_request", "played", "caller_gain_db", "turns", "expect",
     "distractors", "notes")
)  # fmt: skip
_REQUIRED_CALL_KEYS: Final = frozenset(("id", "situation", "consent_request", "turns", "expect"))
_TURN_KEYS: Final = frozenset(("who", "say", "press", "loud", "overlap_ms", "pause_before_ms"))
_EXPECT_KEYS: Final = frozenset(
    ("consent", "escalations", "raised_voice", "dead_air", "talk_over", "operator_key")
)


_T = TypeVar("_T", bound=str)


class ManifestError(ValueError):
    """A dialogue file is malformed or its labels contradict its turns; the message says where."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn: a spoken line (`say`) or a keypad press (`press`), never both."""

    who: Who
    say: str | None = None
    press: str | None = None
    """One key of 0-9, * or #; only the caller presses."""
    loud: bool = False
    """Shouted (caller only): rendered `LOUD_GAIN_DB` above the caller's other turns."""
    overlap_ms: int | None = None
    """Starts this long before the previous turn (the other party's) ends."""
    pause_before_ms: int | None = None
    """Silence from both parties before this turn, in place of the usual gap."""


@dataclass(frozen=True, slots=True)
class Expect:
    consent: Verdict | None
    """The caller's answer to the recording request; None when no verdict may be given."""
    escalations: tuple[Escalation, ...]
    raised_voice: bool
    dead_air: bool
    talk_over: bool
    operator_key: bool


@dataclass(frozen=True, slots=True)
class Dialogue:
    id: str
    part: Part
    situation: str
    consent_request: ConsentRequest
    played: str | None
    """What the phone system plays before the agent joins (played_* requests only)."""
    caller_gain_db: float
    """Whole-call loudness of the caller above the normal level (a loud but calm speaker)."""
    turns: tuple[Turn, ...]
    expect: Expect
    distractors: tuple[str, ...]
    notes: str


def load_part(part: Part, folder: Path = DIALOGUES_DIR) -> list[Dialogue]:
    """Every call of `folder/{part}-*.json`, the files in name order, calls in file order.

    Raises `ManifestError` for any malformed file, a file whose `part` is not `part`, or a call
    id used twice anywhere in the part; `OSError` if a file cannot be read.
    """
    if part not in PARTS:
        raise ManifestError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
    dialogues: list[Dialogue] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob(f"{part}-*.json")):
        for dialogue in load_file(path):
            if dialogue.part != part:
                raise ManifestError(f"{path.name}: part is {dialogue.part!r}, not {part!r}")
            if dialogue.id in seen:
                raise ManifestError(
                    f"{path.name}: call {dialogue.id}: id also used in {seen[dialogue.id]}"
                )
            seen[dialogue.id] = path.name
            dialogues.append(dialogue)
    return dialogues


def load_file(path: Path) -> list[Dialogue]:
    """The calls of one dialogue file, checked (see the module docstring).

    Raises `ManifestError` naming the file, call and field; `OSError` if it cannot be read.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path.name}: not JSON: {exc}") from None
    try:
        return parse(raw)
    except ManifestError as exc:
        raise ManifestError(f"{path.name}: {exc}") from None


def parse(raw: object) -> list[Dialogue]:
    """The calls of one file's parsed JSON, checked; ids must be unique within it."""
    root = _object(raw, "file")
    _known_keys(root, frozenset(("part", "calls")), "file")
    part = _choice(root.get("part"), PARTS, "part")
    dialogues: list[Dialogue] = []
    seen: set[str] = set()
    for i, item in enumerate(_array(root.get("calls"), "calls")):
        dialogue = parse_call(item, part, f"calls[{i}]")
        if dialogue.id in seen:
            raise ManifestError(f"call {dialogue.id}: id used twice")
        seen.add(dialogue.id)
        dialogues.append(dialogue)
    return dialogues


def parse_call(raw: object, part: Part, where: str = "call") -> Dialogue:
    """One call object, checked: its fields, its turns and its labels against its turns."""
    obj = _object(raw, where)
    call_id = obj.get("id")
    if isinstance(call_id, str) and call_id:
        where = f"call {call_id}"
    else:
        raise ManifestError(f"{where}: id: expected a non-empty string")
    if not call_id.startswith(f"{part}-"):
        raise ManifestError(f"{where}: id: must start with {part}- (the file's part)")
    _known_keys(obj, _CALL_KEYS, where)
    for key in sorted(_REQUIRED_CALL_KEYS - obj.keys()):
        raise ManifestError(f"{where}: {key}: missing")
    request = _choice(obj.get("consent_request"), CONSENT_REQUESTS, f"{where}: consent_request")
    played = obj.get("played")
    if request.startswith("played_"):
        if not isinstance(played, str) or not played.strip():
            raise ManifestError(f"{where}: played: a {request} call needs the played text")
    elif played is not None:
        raise ManifestError(f"{where}: played: must be null for a {request} call")
    gain = obj.get("caller_gain_db", 0)
    if not isinstance(gain, int | float) or isinstance(gain, bool):
        raise ManifestError(f"{where}: caller_gain_db: expected a number")
    if not 0 <= gain <= MAX_CALLER_GAIN_DB:
        raise ManifestError(f"{where}: caller_gain_db: must be 0 to {MAX_CALLER_GAIN_DB:g}")
    turns = _turns(obj.get("turns"), where, played=played is not None)
    dialogue = Dialogue(
        id=call_id,
        part=part,
        situation=_choice(obj.get("situation"), SITUATIONS, f"{where}: situation"),
        consent_request=request,
        played=played,
        caller_gain_db=float(gain),
        turns=turns,
        expect=_expect(obj.get("expect"), f"{where}: expect"),
        distractors=tuple(
            _string(d, f"{where}: distractors[{i}]")
            for i, d in enumerate(_array(obj.get("distractors", []), f"{where}: distractors"))
        ),
        notes=_string(obj.get("notes", ""), f"{where}: notes"),
    )
    _check_labels(dialogue, where)
    return dialogue


def _turns(raw: object, where: str, *, played: bool) -> tuple[Turn, ...]:
    turns: list[Turn] = []
    for i, item in enumerate(_array(raw, f"{where}: turns")):
        at = f"{where}: turns[{i}]"
        obj = _object(item, at)
        _known_keys(obj, _TURN_KEYS, at)
        who = _choice(obj.get("who"), PARTIES, f"{at}.who")
        if ("say" in obj) == ("press" in obj):
            raise ManifestError(f"{at}: needs exactly one of say and press")
        say: str | None = None
        press: str | None = None
        if "say" in obj:
            text = obj["say"]
            if not isinstance(text, str) or not text.strip():
                raise ManifestError(f"{at}.say: expected a non-empty string")
            say = text
        else:
            key = obj["press"]
            if not isinstance(key, str) or key not in KEYS:
                raise ManifestError(f"{at}.press: expected one key of 0-9, * or #")
            press = key
            if who != "caller":
                raise ManifestError(f"{at}.press: only the caller presses keys")
        loud = obj.get("loud", False)
        if not isinstance(loud, bool):
            raise ManifestError(f"{at}.loud: expected true or false")
        if loud and (who != "caller" or say is None):
            raise ManifestError(f"{at}.loud: only a spoken caller turn can be loud")
        overlap = _optional_ms(obj, "overlap_ms", 1, MAX_OVERLAP_MS, at)
        pause = _optional_ms(obj, "pause_before_ms", 0, MAX_PAUSE_MS, at)
        if overlap is not None and pause is not None:
            raise ManifestError(f"{at}: overlap_ms and pause_before_ms cannot go together")
        if overlap is not None:
            previous = turns[-1] if turns else None
            if previous is None or say is None or previous.say is None:
                raise ManifestError(f"{at}.overlap_ms: a spoken turn can only overlap a spoken one")
            if previous.who == who:
                raise ManifestError(f"{at}.overlap_ms: overlaps the same party's turn (same track)")
        if pause is not None and not turns and not played:
            raise ManifestError(f"{at}.pause_before_ms: nothing comes before the first turn")
        turns.append(
            Turn(
                who=who,
                say=say,
                press=press,
                loud=loud,
                overlap_ms=overlap,
                pause_before_ms=pause,
            )
        )
    if not turns:
        raise ManifestError(f"{where}: turns: a call needs at least one turn")
    return tuple(turns)


def _expect(raw: object, where: str) -> Expect:
    obj = _object(raw, where)
    _known_keys(obj, _EXPECT_KEYS, where)
    for key in sorted(_EXPECT_KEYS - obj.keys()):
        raise ManifestError(f"{where}.{key}: missing")
    consent: Verdict | None = None
    if obj["consent"] is not None:
        consent = _choice(obj["consent"], VERDICTS, f"{where}.consent")
    escalations: list[Escalation] = []
    for i, item in enumerate(_array(obj["escalations"], f"{where}.escalations")):
        name = _choice(item, ESCALATIONS, f"{where}.escalations[{i}]")
        if name in escalations:
            raise ManifestError(f"{where}.escalations: {name} listed twice")
        escalations.append(name)
    flags = {key: obj[key] for key in ("raised_voice", "dead_air", "talk_over", "operator_key")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise ManifestError(f"{where}.{key}: expected true or false")
    return Expect(
        consent=consent,
        escalations=tuple(escalations),
        raised_voice=bool(flags["raised_voice"]),
        dead_air=bool(flags["dead_air"]),
        talk_over=bool(flags["talk_over"]),
        operator_key=bool(flags["operator_key"]),
    )


def derived_labels(dialogue: Dialogue) -> dict[str, bool]:
    """The acoustic labels the turns imply: what `expect` must say for each."""
    turns = dialogue.turns
    return {
        "raised_voice": sum(t.loud for t in turns) >= RAISED_VOICE_TURNS,
        "dead_air": any((t.pause_before_ms or 0) >= DEAD_AIR_MS for t in turns),
        "talk_over": any((t.overlap_ms or 0) >= TALK_OVER_MS for t in turns),
        "operator_key": any(t.press == OPERATOR_KEY for t in turns),
    }


_RULES: Final = {
    "raised_voice": f"true iff the caller has {RAISED_VOICE_TURNS} or more loud turns",
    "dead_air": f"true iff some turn has pause_before_ms >= {DEAD_AIR_MS}",
    "talk_over": f"true iff some turn has overlap_ms >= {TALK_OVER_MS}",
    "operator_key": f"true iff the caller presses {OPERATOR_KEY}",
}


def _check_labels(dialogue: Dialogue, where: str) -> None:
    for key, implied in derived_labels(dialogue).items():
        stated = getattr(dialogue.expect, key)
        if stated != implied:
            raise ManifestError(
                f"{where}: expect.{key} is {str(stated).lower()} but the turns say "
                f"{str(implied).lower()} ({_RULES[key]})"
            )


def _optional_ms(
    obj: Mapping[str, object], key: str, least: int, most: int, where: str
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        raise ManifestError(f"{where}.{key}: expected a whole number of ms, {least} to {most}")
    return value


def _known_keys(obj: Mapping[str, object], known: frozenset[str], where: str) -> None:
    unknown = sorted(obj.keys() - known)
    if unknown:
        raise ManifestError(f"{where}: unknown key {unknown[0]!r}")


def _choice(value: object, choices: Sequence[_T], where: str) -> _T:
    for choice in choices:
        if value == choice:
            return choice
    raise ManifestError(f"{where}: must be one of {', '.join(choices)}, not {value!r}")


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: expected an object")
    return {str(k): v for k, v in value.items()}


def _array(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise ManifestError(f"{where}: expected an array")
    return list(value)


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: expected a string")
    return value
