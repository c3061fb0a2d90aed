"""Escalation rules and the engine that runs them over one call. Pure.

An org's rules (`Rule`: a kind, a severity, a cooldown and kind-specific `params`) become one
`RuleEngine` per call, fed by the session: every 20 ms frame (`on_frame`, the hot path), every
final transcript segment (`on_text`) and every keypad digit (`on_digit`). Each returns what
fired (`Fired`), which the session turns into escalation events.

A rule is *detected* when its condition holds, and *fired* when it is detected outside its
cooldown: after firing, a rule stays quiet until `cooldown_ms` of call clock (the latest offset
seen on any track) has passed. A composite rule fires when enough of the rules it names were
detected close together, whether or not their own cooldowns let them fire.

`validate_params` and `check_rule_set` are the REST API's validation: their ValueError messages
read "<field>: <what is wrong>" and are shown to the user as they are.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, get_args

from media.detectors.acoustic import AcousticConfig, DeadAir, RaisedVoice, TalkOver
from media.detectors.intents import find_intent
from media.detectors.sentiment import SentimentWindow, score
from media.detectors.text import words
from media.events import Track

Severity: TypeAlias = Literal["low", "medium", "high", "critical"]
RuleKind: TypeAlias = Literal[
    "phrase", "keypad", "raised_voice", "dead_air", "talk_over", "sentiment", "composite"
]
SEVERITIES: Final[tuple[str, ...]] = get_args(Severity)
RULE_KINDS: Final[tuple[str, ...]] = get_args(RuleKind)
TRACKS: Final[tuple[Track, ...]] = ("inbound", "outbound")
KEYPAD_KEYS: Final = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: RuleKind
    severity: Severity
    cooldown_ms: int
    params: Mapping[str, Any]
    """As returned by `validate_params` (the engine validates again, so a stale row fails
    loudly at call start rather than quietly mid-call)."""
    id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Fired:
    rule: Rule
    track: Track | None
    """None for signals about both parties (dead air, talk-over) and mixed composites."""
    start_ms: int
    end_ms: int
    """Offsets on the call's audio clock (ms since the stream started)."""
    evidence: str
    """Short and human-readable: "manager", "digit 0", "+9.5 dB for 1.6 s"…"""
    segment_id: uuid.UUID | None = None
    """The transcript segment that triggered it, for text rules."""


# --- Parameter validation -------------------------------------------------------------------

_MISSING: Final = object()
_Check: TypeAlias = Callable[[str, object], Any]
"""Validates one field's value (`_MISSING` when absent) and returns it normalised."""


def _number(low: float, high: float, default: float) -> _Check:
    def check(field: str, value: object) -> float:
        if value is _MISSING:
            return default
        # bool is an int subclass, and JSON true is not a number of seconds. NaN fails the
        # range test like any other out-of-range value.
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{field}: must be a number from {low:g} to {high:g}")
        if not low <= value <= high:
            raise ValueError(f"{field}: must be a number from {low:g} to {high:g}")
        return float(value)

    return check


def _whole(low: int, high: int, default: int | None, *, nullable: bool = False) -> _Check:
    def check(field: str, value: object) -> int | None:
        if value is _MISSING:
            return default
        if value is None and nullable:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type; 4.0 is 4
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            null = " or null" if nullable else ""
            raise ValueError(f"{field}: must be a whole number from {low} to {high}{null}")
        return value

    return check


def _strings(
    low: int, high: int, what: str, item: Callable[[str, object], str], default: list[str] | None
) -> _Check:
    """A list of `low`..`high` distinct items, each checked by `item(field[i], value)`."""

    def check(field: str, value: object) -> list[str]:
        if value is _MISSING and default is not None:
            return list(default)
        if not isinstance(value, list) or not low <= len(value) <= high:
            raise ValueError(f"{field}: must be a list of {low} to {high} {what}")
        items = [item(f"{field}[{i}]", v) for i, v in enumerate(value)]
        if len(set(items)) != len(items):
            repeated = next(v for i, v in enumerate(items) if v in items[:i])
            raise ValueError(f"{field}: lists {repeated!r} twice")
        return items

    return check


def _phrase(field: str, value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 100:
        raise ValueError(f"{field}: must be text of 1 to 100 characters")
    if not words(value):
        raise ValueError(f"{field}: must contain a word")
    return value.strip()


def _key(field: str, value: object) -> str:
    if not isinstance(value, str) or len(value) != 1 or value.upper() not in KEYPAD_KEYS:
        raise ValueError(f"{field}: must be one of 0-9, *, #, A-D")
    return value.upper()


def _track(field: str, value: object) -> str:
    if not isinstance(value, str) or value not in TRACKS:
        raise ValueError(f"{field}: must be 'inbound' or 'outbound'")
    return value


def _rule_name(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: must be a rule name")
    return value


_BOTH = ["inbound", "outbound"]
_SCHEMAS: Final[Mapping[str, Mapping[str, _Check]]] = {
    "phrase": {
        "phrases": _strings(0, 50, "phrases", _phrase, []),
        "actions": _strings(0, 50, "phrases", _phrase, []),
        "targets": _strings(0, 50, "phrases", _phrase, []),
        "outcomes": _strings(0, 50, "phrases", _phrase, []),
        "tracks": _strings(1, 2, "tracks", _track, _BOTH),
    },
    "keypad": {
        "digits": _strings(1, 16, "keys", _key, ["0"]),
        "tracks": _strings(1, 2, "tracks", _track, ["inbound"]),
    },
    "raised_voice": {
        "db": _number(3, 30, 8.0),
        "seconds": _number(0.5, 30, 1.5),
        "tracks": _strings(1, 2, "tracks", _track, _BOTH),
    },
    "dead_air": {"seconds": _number(2, 600, 10.0)},
    "talk_over": {
        "seconds": _number(0.5, 60, 2.0),
        "per_minute": _whole(2, 30, 4, nullable=True),
    },
    "sentiment": {
        "threshold": _number(-1, 0, -0.4),
        "window": _whole(1, 20, 3),
        "tracks": _strings(1, 2, "tracks", _track, ["inbound"]),
    },
    "composite": {
        "rules": _strings(2, 10, "rule names", _rule_name, None),
        "within_seconds": _number(1, 3600, 60.0),
        "min_count": _whole(2, 10, 2),
    },
}


def validate_params(kind: RuleKind, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with defaults filled in; ValueError("<field>: <what is wrong>") otherwise."""
    schema = _SCHEMAS.get(kind)
    if schema is None:
        raise ValueError(f"kind: must be one of {', '.join(RULE_KINDS)}")
    if not isinstance(params, Mapping):
        raise ValueError("params: must be an object")
    for key in params:
        if key not in schema:
            raise ValueError(f"{key}: not a setting of {kind} rules")
    normalised = {key: check(key, params.get(key, _MISSING)) for key, check in schema.items()}
    if kind == "phrase":
        _check_intent(normalised)
    if kind == "composite" and normalised["min_count"] > len(normalised["rules"]):
        count = len(normalised["rules"])
        raise ValueError(f"min_count: must be a whole number from 2 to {count}")
    return normalised


def _check_intent(params: Mapping[str, Any]) -> None:
    """A phrase rule needs words that say it alone, or an action with a target to follow."""
    actions, targets = params["actions"], params["targets"]
    if actions and not targets:
        raise ValueError("targets: must be given with actions")
    if targets and not actions:
        raise ValueError("actions: must be given with targets")
    if params["outcomes"] and not targets:
        raise ValueError("outcomes: must be given with actions and targets")
    if not params["phrases"] and not actions:
        raise ValueError("phrases: give phrases, or actions and targets (or both)")


def _validated(kind: RuleKind, params: Mapping[str, Any]) -> dict[str, Any]:
    """`validate_params`, remembered: every call of an org starts with the same rules, and
    checking a phrase list word by word took 2.7 ms of the event loop per stream start (a
    third of admitting it, measured with 200 stream starts under cProfile). The engine only
    reads what it gets (a shallow copy, so its dict is its own)."""
    return dict(_validated_text(kind, json.dumps(params, sort_keys=True)))


@functools.lru_cache(maxsize=1024)
def _validated_text(kind: RuleKind, params: str) -> dict[str, Any]:
    return validate_params(kind, json.loads(params))


def check_rule_set(rules: Sequence[Rule]) -> None:
    """ValueError for what no single rule's params can show: duplicate names, and composites
    naming rules that are missing, composite themselves, or the composite itself."""
    by_name: dict[str, Rule] = {}
    for rule in rules:
        if not rule.name:
            raise ValueError("name: must not be empty")
        if rule.name in by_name:
            raise ValueError(f"name: two rules are named {rule.name!r}")
        if rule.kind not in RULE_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(RULE_KINDS)}")
        if rule.severity not in SEVERITIES:
            raise ValueError(f"severity: must be one of {', '.join(SEVERITIES)}")
        if rule.cooldown_ms < 0:
            raise ValueError("cooldown: must not be negative")
        by_name[rule.name] = rule
    for rule in rules:
        if rule.kind != "composite":
            continue
        for name in rule.params.get("rules", ()):
            named = by_name.get(name)
            if named is None:
                raise ValueError(f"rules: {rule.name!r} names {name!r}, which is not a rule")
            if named.kind == "composite":
                # Composites of composites could name each other in a loop; one level is
                # all the "this and that together" escalation needs.
                raise ValueError(f"rules: {rule.name!r} names composite rule {name!r}")


# --- Default rules --------------------------------------------------------------------------


def _default(name: str, kind: RuleKind, severity: Severity, cooldown_s: int, **params: Any) -> Rule:
    return Rule(name, kind, severity, cooldown_s * 1000, validate_params(kind, params))


# Names follow the storage slug rule (lower case, digits, "-" and "_"). Caller phrases listen
# to the inbound track only: an agent saying "let me get my supervisor" is the remedy, not the
# problem. Each is an intent (media.detectors.intents): an action followed by a target, or a
# phrase that says it alone, read in its clause (negation, reported speech, past events, third
# parties and questions about policy do not count). Words of five letters or more match
# within one edit, so some obvious ones are left out: "suing" (matches "using"), bare "court"
# ("count"), and bare "sue" is a name ("Sue in billing").
_SENIOR = [
    "manager", "supervisor", "boss", "superior", "someone above you", "somebody above you",
    "someone higher up", "somebody higher up", "someone senior", "somebody senior",
    "someone more senior", "whoever is in charge", "whoever's in charge", "someone in charge",
    "somebody in charge", "person in charge", "whoever runs", "head of", "team leader",
    "team lead", "higher up", "line manager", "senior", "anyone above you", "anybody above you",
    "anyone higher up", "anyone senior", "anyone more senior", "with authority",
    "head office", "someone who can", "somebody who can", "anyone who can",
]  # fmt: skip
_ASK_FOR = [
    "speak to", "speak with", "talk to", "talk with", "put me through to", "put me on to",
    "put me onto", "transfer me to", "transfer me", "connect me to", "connect me with",
    "get me", "give me", "i want", "i need", "i'd like", "i would like", "i demand",
    "let me speak", "let me talk", "escalate this", "escalate it", "escalate",
    "pass me to", "pass me over to", "pass me on to", "pass me", "hand me over to", "fetch",
    "get", "i'm asking for", "ask for", "can i have", "can i get", "could i have", "put",
    "is there", "a word with", "i'd like a word with",
]  # fmt: skip
_LEGAL = [
    "lawyer", "lawyers", "attorney", "attorneys", "solicitor", "solicitors", "legal action",
    "legal proceedings", "court", "small claims", "lawsuit", "legal", "sue", "suing",
    "claim against", "proceedings",
]  # fmt: skip
_THREATEN = [
    "i'll", "i will", "i'm going to", "i am going to", "i'm gonna", "gonna", "i'm calling",
    "get", "call", "contact", "involve", "hear from", "hearing from", "speak to", "take you to",
    "take this to", "take it to", "see you in", "i'm taking", "i'll be taking", "i'll be",
    "talk to", "ring", "getting", "i'm getting", "i'm contacting", "going", "straight to",
    "starting", "start", "filing", "file", "issue", "issuing", "hands of", "bring in",
]  # fmt: skip
_END = [
    "cancel", "cancelling", "canceling", "close", "closing", "terminate", "end", "shut",
    "discontinue", "stop", "get rid of", "quit", "leave", "done with",
]  # fmt: skip
_ENDED = ["cancelled", "canceled", "closed", "terminated", "ended", "shut", "stopped"]
"""After the target, in "I want my subscription closed", "I need the contract ended today"."""
_HELD = [
    "account", "accounts", "service", "services", "subscription", "contract", "policy",
    "membership", "plan", "line", "broadband", "package", "cover", "insurance",
    "my count",  # "my account", as transcription often hears it
]  # fmt: skip
_COMPLAIN = [
    "make", "file", "lodge", "raise", "put in", "submit", "register", "log", "i want to",
    "i'd like to", "i would like to", "i'm going to", "i am going to", "i will", "i'll",
    "i'm", "going to", "want to", "i want", "i'd like", "logged as", "log it as", "log this as",
    "record this as",
]  # fmt: skip
_GRIEVANCE = ["complaint", "formal complaint", "complain", "complaining", "grievance"]
_REGULATORS = [
    "better business bureau", "ombudsman", "trading standards", "the regulator",
    "consumer protection", "ofcom", "ofgem", "ofwat", "fca", "financial conduct authority",
    "care quality commission", "cqc", "insurance commissioner", "attorney general", "fcc",
    "ftc", "cfpb", "consumer affairs", "public utilities commission", "bbb", "acma", "accc",
]  # fmt: skip
DEFAULT_RULES: Final[tuple[Rule, ...]] = (
    _default(
        "supervisor-request", "phrase", "high", 120,
        actions=_ASK_FOR, targets=_SENIOR, tracks=["inbound"],
    ),
    _default(
        "legal-threat", "phrase", "high", 300,
        actions=_THREATEN, targets=_LEGAL, tracks=["inbound"],
        phrases=["sue you", "sue your company", "see you in court", "take you to court",
                 "legal action", "lawsuit", "small claims court", "my lawyer will",
                 "my attorney will", "my solicitor will", "my lawyers will"],
    ),
    _default(
        "cancellation", "phrase", "medium", 300,
        actions=_END, targets=_HELD, outcomes=_ENDED, tracks=["inbound"],
        phrases=["switch providers", "switching providers", "take my business elsewhere",
                 "cancel everything", "close it all down"],
    ),
    _default(
        "complaint", "phrase", "medium", 300,
        actions=_COMPLAIN, targets=_GRIEVANCE, tracks=["inbound"],
        phrases=["report you", "report your company", "report this to", "reporting you",
                 "reporting your company", "reporting this to", *_REGULATORS],
    ),
    _default("operator-key", "keypad", "medium", 120, digits=["0"], tracks=["inbound"]),
    _default("raised-voice", "raised_voice", "high", 180, db=8.0, seconds=1.5),
    _default("dead-air", "dead_air", "low", 120, seconds=15),
    _default("talk-over", "talk_over", "low", 180, seconds=2.0, per_minute=4),
    _default("negative-sentiment", "sentiment", "medium", 300, threshold=-0.4, window=3),
    _default(
        "heated-call", "composite", "critical", 300,
        rules=["raised-voice", "negative-sentiment"], within_seconds=60, min_count=2,
    ),
)  # fmt: skip


# --- The engine -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Detection:
    start_ms: int
    end_ms: int
    track: Track | None


@dataclass(slots=True)
class _SentimentWatch:
    rule: Rule
    window: SentimentWindow
    starts: deque[int]
    """Start of each utterance in the window, for the evidence's time span."""


_NOTHING: Final[tuple[Fired, ...]] = ()


class RuleEngine:
    """The rules of one call. Not thread-safe: one session feeds it."""

    def __init__(self, rules: Sequence[Rule], tracks: tuple[Track, ...]) -> None:
        """Raises ValueError for a rule set `check_rule_set` or `validate_params` rejects."""
        normalised = [_validated(rule.kind, rule.params) for rule in rules]
        check_rule_set(rules)
        self._rules = tuple(rules)
        self._clock = 0
        self._quiet_until: dict[str, int] = {}
        self._detections: dict[str, _Detection] = {}
        self._phrases: dict[Track, list[tuple[Rule, dict[str, Any]]]] = {t: [] for t in TRACKS}
        self._keypad: dict[Track, list[tuple[Rule, str]]] = {t: [] for t in TRACKS}
        self._sentiment: dict[Track, list[_SentimentWatch]] = {t: [] for t in TRACKS}
        self._raised: dict[Track, list[tuple[Rule, RaisedVoice]]] = {t: [] for t in TRACKS}
        self._dead_air: list[tuple[Rule, DeadAir]] = []
        self._talk_over: list[tuple[Rule, TalkOver]] = []
        self._composites: dict[str, list[tuple[Rule, dict[str, Any]]]] = {}
        self._partial_hits: dict[Track, dict[str, bool]] = {t: {} for t in TRACKS}
        """Phrase rules the track's latest partial matched, and whether they fired: the
        utterance's later partials and its final do not raise them again."""
        """Rule name → the composites that name it, with their params."""
        for rule, params in zip(rules, normalised, strict=True):
            self._add(rule, params, tracks)

    def _add(self, rule: Rule, params: dict[str, Any], tracks: tuple[Track, ...]) -> None:
        enabled: list[Track] = [t for t in TRACKS if t in params.get("tracks", ())]
        match rule.kind:
            case "phrase":
                for t in enabled:
                    self._phrases[t].append((rule, params))
            case "keypad":
                for t in enabled:
                    self._keypad[t].append((rule, "".join(params["digits"])))
            case "sentiment":
                for t in enabled:
                    window = SentimentWindow(params["window"], params["threshold"])
                    watch = _SentimentWatch(rule, window, deque(maxlen=params["window"]))
                    self._sentiment[t].append(watch)
            case "raised_voice":
                config = AcousticConfig(
                    raised_by_db=params["db"], raised_for_ms=round(params["seconds"] * 1000)
                )
                for t in enabled:
                    if t in tracks:
                        self._raised[t].append((rule, RaisedVoice(t, config)))
            case "dead_air":
                self._dead_air.append((rule, DeadAir(round(params["seconds"] * 1000))))
            case "talk_over":
                held_ms = round(params["seconds"] * 1000)
                detector = TalkOver(tracks, held_ms=held_ms, per_minute=params["per_minute"])
                self._talk_over.append((rule, detector))
            case "composite":
                for name in params["rules"]:
                    self._composites.setdefault(name, []).append((rule, params))

    def carry_cooldowns(self, fired: Iterable[tuple[str, int]]) -> None:
        """Rules that fired on the call before this engine heard it (on a stream now lost),
        each with where on the call's clock it last fired: each stays quiet for the rest of
        its cooldown, as it would have on the engine that fired it. Unknown names (a rule
        deleted since) are ignored."""
        cooldowns = {rule.name: rule.cooldown_ms for rule in self._rules}
        for name, at_ms in fired:
            if (cooldown := cooldowns.get(name)) is not None:
                until = at_ms + cooldown
                self._quiet_until[name] = max(self._quiet_until.get(name, until), until)

    @property
    def needs_level(self) -> bool:
        """Whether `on_frame` uses `level_db` (so the caller can skip measuring it)."""
        return any(self._raised.values())

    def on_frame(
        self, track: Track, clock_ms: int, voiced: bool, level_db: float
    ) -> Sequence[Fired]:
        """One 20 ms frame ending at `clock_ms` on `track`'s clock. The hot path: returns a
        shared empty tuple, and allocates nothing, unless something fires."""
        if clock_ms > self._clock:
            self._clock = clock_ms
        fired: list[Fired] | None = None
        for rule, raised in self._raised.get(track, ()):
            signal = raised.feed(clock_ms, voiced, level_db)
            if signal is not None:
                span = (signal.end_ms - signal.start_ms) / 1000
                evidence = f"{signal.detail:+.1f} dB for {span:.1f} s"
                fired = self._detect(fired, rule, track, signal.start_ms, signal.end_ms, evidence)
        for rule, quiet in self._dead_air:
            signal = quiet.feed(clock_ms, voiced)
            if signal is not None:
                evidence = f"{signal.detail:.1f} s of silence"
                fired = self._detect(fired, rule, None, signal.start_ms, signal.end_ms, evidence)
        for rule, talk in self._talk_over:
            signal = talk.feed(track, clock_ms, voiced)
            if signal is not None:
                if signal.overlaps > 1:
                    evidence = f"{signal.overlaps} overlaps in 60 s"
                else:
                    evidence = f"{signal.detail:.1f} s of talking over each other"
                fired = self._detect(fired, rule, None, signal.start_ms, signal.end_ms, evidence)
        return _NOTHING if fired is None else fired

    def on_partial(self, track: Track, start_ms: int, end_ms: int, text: str) -> list[Fired]:
        """A speaker's words so far (a partial result): a phrase rule fires once
        two partials in a row match it, so an alert need not wait for the end of the utterance,
        yet one word heard wrong and corrected at once does not raise it. Its cooldown then
        keeps the final from raising it again."""
        self._clock = max(self._clock, end_ms)
        if not text.strip():
            self._partial_hits[track] = {}  # withdrawn: the utterance came to nothing
            return []
        fired: list[Fired] = []
        before, now = self._partial_hits[track], {}
        for rule, params in self._phrases.get(track, ()):
            intent = find_intent(
                text, actions=params["actions"], targets=params["targets"],
                outcomes=params["outcomes"], phrases=params["phrases"],
            )  # fmt: skip
            if intent is None:
                continue
            if rule.name in before and not before[rule.name]:
                self._detect(fired, rule, track, start_ms, end_ms, intent.evidence)
            now[rule.name] = rule.name in before  # fired now, or before
        # A rule raised on this utterance stays raised, even if the words move on.
        now |= {name: True for name, raised in before.items() if raised}
        self._partial_hits[track] = now
        return fired

    def on_text(
        self, track: Track, start_ms: int, end_ms: int, text: str, segment_id: uuid.UUID | None
    ) -> list[Fired]:
        """One final transcript segment of `track`, spoken from `start_ms` to `end_ms`."""
        self._clock = max(self._clock, end_ms)
        raised = {name for name, done in self._partial_hits[track].items() if done}
        self._partial_hits[track] = {}
        fired: list[Fired] = []
        for rule, params in self._phrases.get(track, ()):
            if rule.name in raised:
                continue  # raised while the words were still coming
            # "I don't need a manager" is not a request for one (media.detectors.intents).
            intent = find_intent(
                text, actions=params["actions"], targets=params["targets"],
                outcomes=params["outcomes"], phrases=params["phrases"],
            )  # fmt: skip
            if intent is not None:
                self._detect(fired, rule, track, start_ms, end_ms, intent.evidence, segment_id)
        watches = self._sentiment.get(track, ())
        if watches and words(text):
            value = score(text)
            for watch in watches:
                watch.starts.append(start_ms)
                mean = watch.window.push(value)
                if mean is not None:
                    count = len(watch.starts)
                    utterances = "utterance" if count == 1 else "utterances"
                    evidence = f"sentiment {mean:.2f} over {count} {utterances}"
                    first = watch.starts[0]
                    self._detect(fired, watch.rule, track, first, end_ms, evidence, segment_id)
        return fired

    def on_digit(self, track: Track, digit: str, offset_ms: int) -> list[Fired]:
        self._clock = max(self._clock, offset_ms)
        fired: list[Fired] = []
        key = digit.upper()
        for rule, keys in self._keypad.get(track, ()):
            if len(key) == 1 and key in keys:
                self._detect(fired, rule, track, offset_ms, offset_ms, f"digit {key}")
        return fired

    def _detect(
        self,
        fired: list[Fired] | None,
        rule: Rule,
        track: Track | None,
        start_ms: int,
        end_ms: int,
        evidence: str,
        segment_id: uuid.UUID | None = None,
    ) -> list[Fired]:
        """Records a detection; appends to `fired` (made when None) what it fires."""
        fired = [] if fired is None else fired
        self._detections[rule.name] = _Detection(start_ms, end_ms, track)
        if self._ready(rule):
            fired.append(Fired(rule, track, start_ms, end_ms, evidence, segment_id))
        for composite, params in self._composites.get(rule.name, ()):
            self._check_composite(fired, composite, params, end_ms)
        return fired

    def _ready(self, rule: Rule) -> bool:
        """Whether `rule` is out of its cooldown; if so, starts the next one."""
        if self._clock < self._quiet_until.get(rule.name, -1):
            return False
        self._quiet_until[rule.name] = self._clock + rule.cooldown_ms
        return True

    def _check_composite(
        self, fired: list[Fired], composite: Rule, params: dict[str, Any], at_ms: int
    ) -> None:
        """Fires `composite` if, around the detection that ended at `at_ms`, enough of its
        rules were detected within its window of each other."""
        within_ms = math.floor(params["within_seconds"] * 1000)
        latest = sorted(
            (d.end_ms, name)
            for name in params["rules"]
            if (d := self._detections.get(name)) is not None
        )
        # Windows that hold the new detection start at most `within_ms` before it. Segments
        # are transcribed late, so a text detection may end before earlier-seen frames did.
        for low, _ in latest:
            if not at_ms - within_ms <= low <= at_ms:
                continue
            group = [name for end, name in latest if low <= end <= low + within_ms]
            if len(group) < params["min_count"]:
                continue
            if self._ready(composite):
                parts = [self._detections[name] for name in group]
                tracks = {p.track for p in parts}
                fired.append(
                    Fired(
                        composite,
                        tracks.pop() if len(tracks) == 1 else None,
                        min(p.start_ms for p in parts),
                        max(p.end_ms for p in parts),
                        f"{' + '.join(group)} within {params['within_seconds']:g} s",
                    )
                )
            return
