"""Escalation rules over one call: each kind, cooldowns, composites, validation. Pure."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from media.detectors.acoustic import FRAME_MS
from media.detectors.rules import (
    DEFAULT_RULES,
    Fired,
    Rule,
    RuleEngine,
    RuleKind,
    check_rule_set,
    validate_params,
)
from media.events import Track

BOTH: tuple[Track, ...] = ("inbound", "outbound")


def rule(name: str, kind: RuleKind, cooldown_s: int = 60, **params: Any) -> Rule:
    return Rule(name, kind, "high", cooldown_s * 1000, validate_params(kind, params))


def engine(*rules: Rule) -> RuleEngine:
    return RuleEngine(rules, BOTH)


def audio(
    rules: RuleEngine,
    from_ms: int,
    to_ms: int,
    inbound: float | None = None,
    outbound: float | None = None,
) -> list[Fired]:
    """Both tracks' 20 ms frames from `from_ms` to `to_ms`: each track voiced at the given
    level in dBFS, or silent when None."""
    fired: list[Fired] = []
    levels: tuple[tuple[Track, float | None], ...] = (("inbound", inbound), ("outbound", outbound))
    for now in range(from_ms + FRAME_MS, to_ms + 1, FRAME_MS):
        for track, level in levels:
            voiced = level is not None
            fired += rules.on_frame(track, now, voiced, level if level is not None else -120.0)
    return fired


def shout(rules: RuleEngine, track: Track, at_ms: int) -> list[Fired]:
    """4 s of ordinary speech (the speaker's baseline, -30 dBFS), then 2 s at -20 dBFS."""
    speech = {"inbound": None, "outbound": None} | {track: -30.0}
    loud = {"inbound": None, "outbound": None} | {track: -20.0}
    fired = audio(rules, at_ms, at_ms + 4_000, speech["inbound"], speech["outbound"])
    return fired + audio(rules, at_ms + 4_000, at_ms + 6_000, loud["inbound"], loud["outbound"])


def evidence(fired: Sequence[Fired]) -> list[tuple[str, str]]:
    return [(f.rule.name, f.evidence) for f in fired]


MANAGER = rule("manager", "phrase", phrases=["manager", "supervisor"], tracks=["inbound"])

# --- Phrases --------------------------------------------------------------------------------


def test_a_phrase_fires_with_its_segment_track_and_time() -> None:
    segment = uuid.uuid4()
    [fired] = engine(MANAGER).on_text("inbound", 1_000, 3_000, "Get me your manager!", segment)
    assert fired == Fired(MANAGER, "inbound", 1_000, 3_000, "manager", segment)


def test_a_phrase_misheard_by_one_letter_still_fires() -> None:
    fired = engine(MANAGER).on_text("inbound", 0, 2_000, "I want a manger now", None)
    assert evidence(fired) == [("manager", "manager")]


@pytest.mark.parametrize(
    "text",
    ["I don't need a manager, thanks", "No manager please", "Thanks for your help today", ""],
)
def test_negated_phrases_and_other_talk_do_not_fire(text: str) -> None:
    assert engine(MANAGER).on_text("inbound", 0, 2_000, text, None) == []


def test_a_phrase_rule_listens_only_to_its_tracks() -> None:
    rules = engine(MANAGER)
    assert rules.on_text("outbound", 0, 2_000, "Let me get my supervisor", None) == []
    both = engine(rule("anyone", "phrase", phrases=["supervisor"]))
    assert len(both.on_text("outbound", 0, 2_000, "Let me get my supervisor", None)) == 1


def test_one_utterance_fires_a_rule_once() -> None:
    fired = engine(MANAGER).on_text("inbound", 0, 2_000, "manager, manager, supervisor!", None)
    assert evidence(fired) == [("manager", "manager")]


# --- Cooldown -------------------------------------------------------------------------------


def test_cooldown_suppresses_a_rule_until_the_call_clock_has_moved_on() -> None:
    rules = engine(MANAGER)  # 60 s cooldown
    assert len(rules.on_text("inbound", 5_000, 10_000, "manager", None)) == 1
    assert rules.on_text("inbound", 40_000, 45_000, "manager!", None) == []
    assert rules.on_text("inbound", 66_000, 69_999, "manager!!", None) == []
    assert len(rules.on_text("inbound", 66_000, 70_000, "manager!!!", None)) == 1


def test_the_cooldown_runs_on_the_clock_of_every_track() -> None:
    rules = engine(MANAGER)
    rules.on_text("inbound", 5_000, 10_000, "manager", None)
    audio(rules, 0, 70_000)  # a minute of audio goes by while the next segment is transcribed
    assert len(rules.on_text("inbound", 50_000, 55_000, "manager", None)) == 1


def test_each_rule_has_its_own_cooldown() -> None:
    lawyer = rule("lawyer", "phrase", phrases=["lawyer"])
    rules = engine(MANAGER, lawyer)
    rules.on_text("inbound", 0, 1_000, "manager", None)
    fired = rules.on_text("inbound", 2_000, 3_000, "my lawyer and your manager", None)
    assert evidence(fired) == [("lawyer", "lawyer")]


# --- Keypad ---------------------------------------------------------------------------------


def test_keypad_fires_on_its_digits_and_tracks_only() -> None:
    star = rule("star", "keypad", digits=["0", "*", "a"])
    rules = engine(star)
    assert rules.on_digit("inbound", "5", 1_000) == []
    assert rules.on_digit("outbound", "0", 1_000) == []  # agent side is off by default
    assert rules.on_digit("inbound", "0", 2_000) == [
        Fired(star, "inbound", 2_000, 2_000, "digit 0")
    ]
    later = engine(star)
    assert evidence(later.on_digit("inbound", "A", 2_000)) == [("star", "digit A")]


# --- Raised voice ---------------------------------------------------------------------------


def test_a_raised_voice_fires_with_how_loud_and_how_long() -> None:
    loud = rule("loud", "raised_voice", db=8, seconds=1.5, tracks=["inbound"])
    rules = engine(loud)
    assert rules.needs_level
    [fired] = shout(rules, "inbound", 0)
    # The present level (a half-second mean) is up 0.3 s into the shouting; 1.5 s of it fires.
    assert (fired.track, fired.start_ms, fired.end_ms) == ("inbound", 4_300, 5_800)
    assert fired.evidence == "+9.8 dB for 1.5 s"


def test_a_raised_voice_rule_ignores_other_tracks_and_smaller_rises() -> None:
    caller_only = rule("loud", "raised_voice", tracks=["inbound"])
    assert shout(engine(caller_only), "outbound", 0) == []
    big_rise = rule("very-loud", "raised_voice", db=15)
    assert shout(engine(big_rise), "inbound", 0) == []
    assert not engine(MANAGER).needs_level


# --- Dead air -------------------------------------------------------------------------------


def test_dead_air_fires_once_per_silence() -> None:
    quiet = rule("quiet", "dead_air", seconds=10)
    rules = engine(quiet)
    audio(rules, 0, 2_000, inbound=-30.0)
    fired = audio(rules, 2_000, 60_000)
    assert [(f.track, f.start_ms, f.end_ms, f.evidence) for f in fired] == [
        (None, 2_000, 12_000, "10.0 s of silence")
    ]


def test_someone_talking_is_not_dead_air() -> None:
    rules = engine(rule("quiet", "dead_air", seconds=10))
    assert audio(rules, 0, 30_000, outbound=-30.0) == []


# --- Talk-over ------------------------------------------------------------------------------


def test_one_long_overlap_is_talk_over() -> None:
    over = rule("over", "talk_over", seconds=2, per_minute=None)
    rules = engine(over)
    audio(rules, 0, 1_000, outbound=-30.0)
    fired = audio(rules, 1_000, 4_000, inbound=-30.0, outbound=-30.0)
    assert [(f.track, f.start_ms, f.end_ms, f.evidence) for f in fired] == [
        (None, 1_000, 3_000, "2.0 s of talking over each other")
    ]


def test_repeated_short_interruptions_are_talk_over() -> None:
    rules = engine(rule("over", "talk_over", seconds=2, per_minute=3))
    fired: list[Fired] = []
    for second in (0, 10, 20):  # the caller cuts into the agent for half a second, 3 times
        fired += audio(rules, second * 1000, second * 1000 + 500, inbound=-30.0, outbound=-30.0)
        fired += audio(rules, second * 1000 + 500, second * 1000 + 10_000, outbound=-30.0)
    assert evidence(fired) == [("over", "3 overlaps in 60 s")]


def test_interruptions_minutes_apart_are_not_talk_over() -> None:
    rules = engine(rule("over", "talk_over", seconds=2, per_minute=3))
    fired: list[Fired] = []
    for second in (0, 40, 80, 120):
        fired += audio(rules, second * 1000, second * 1000 + 500, inbound=-30.0, outbound=-30.0)
        fired += audio(rules, second * 1000 + 500, second * 1000 + 40_000, outbound=-30.0)
    assert fired == []


# --- Sentiment ------------------------------------------------------------------------------


def test_negative_sentiment_over_the_window_fires() -> None:
    mood = rule("mood", "sentiment", threshold=-0.4, window=3)
    rules = engine(mood)
    segment = uuid.uuid4()
    assert rules.on_text("inbound", 1_000, 2_000, "This is ridiculous.", None) == []
    assert rules.on_text("inbound", 3_000, 4_000, "Honestly useless.", None) == []
    [fired] = rules.on_text("inbound", 5_000, 6_000, "I'm furious!", segment)
    assert (fired.track, fired.start_ms, fired.end_ms, fired.segment_id) == (
        "inbound",
        1_000,
        6_000,
        segment,
    )
    assert re.fullmatch(r"sentiment -0\.\d\d over 3 utterances", fired.evidence)


def test_sentiment_ignores_calm_callers_and_the_agent() -> None:
    rules = engine(rule("mood", "sentiment", threshold=-0.4, window=2))
    for text in ("Thanks, that's great", "my number is 4471", "perfect"):
        assert rules.on_text("inbound", 0, 1_000, text, None) == []
    for text in ("Sorry, this is terrible", "awful, I know"):
        assert rules.on_text("outbound", 0, 1_000, text, None) == []


# --- Composites -----------------------------------------------------------------------------

ZERO = rule("zero", "keypad", digits=["0"])
BOTH_WAYS = rule("both-ways", "composite", 300, rules=["manager", "zero"], within_seconds=60)


def test_a_composite_fires_when_its_rules_are_detected_within_the_window() -> None:
    rules = engine(MANAGER, ZERO, BOTH_WAYS)
    rules.on_text("inbound", 10_000, 12_000, "manager please", None)
    fired = rules.on_digit("inbound", "0", 50_000)
    assert evidence(fired) == [("zero", "digit 0"), ("both-ways", "manager + zero within 60 s")]
    assert (fired[1].track, fired[1].start_ms, fired[1].end_ms) == ("inbound", 10_000, 50_000)


def test_a_composite_does_not_fire_on_detections_too_far_apart() -> None:
    rules = engine(MANAGER, ZERO, BOTH_WAYS)
    rules.on_text("inbound", 10_000, 12_000, "manager please", None)
    assert evidence(rules.on_digit("inbound", "0", 72_001)) == [("zero", "digit 0")]


def test_a_composite_counts_detections_that_their_cooldown_kept_quiet() -> None:
    rules = engine(MANAGER, ZERO, BOTH_WAYS)
    rules.on_text("inbound", 0, 1_000, "manager", None)
    assert rules.on_text("inbound", 30_000, 31_000, "manager!", None) == []  # cooling down
    assert evidence(rules.on_digit("inbound", "0", 80_000)) == [
        ("zero", "digit 0"),
        ("both-ways", "manager + zero within 60 s"),
    ]


def test_a_composite_has_its_own_cooldown() -> None:
    rules = engine(MANAGER, ZERO, BOTH_WAYS)  # the composite cools down for 300 s
    rules.on_text("inbound", 0, 1_000, "manager", None)
    assert len(rules.on_digit("inbound", "0", 2_000)) == 2
    rules.on_text("inbound", 100_000, 101_000, "manager", None)
    assert evidence(rules.on_digit("inbound", "0", 102_000)) == [("zero", "digit 0")]
    rules.on_text("inbound", 400_000, 401_000, "manager", None)
    assert len(rules.on_digit("inbound", "0", 402_000)) == 2


def test_a_composite_needs_only_min_count_of_its_rules() -> None:
    lawyer = rule("lawyer", "phrase", phrases=["lawyer"])
    two_of_three = rule(
        "two-of-three", "composite", rules=["manager", "zero", "lawyer"], min_count=2
    )
    rules = engine(MANAGER, ZERO, lawyer, two_of_three)
    rules.on_digit("inbound", "0", 1_000)
    fired = rules.on_text("inbound", 2_000, 3_000, "my lawyer will hear about this", None)
    assert evidence(fired)[-1] == ("two-of-three", "zero + lawyer within 60 s")


def test_a_late_transcript_still_pairs_with_audio_heard_after_it() -> None:
    loud = rule("loud", "raised_voice", tracks=["inbound"])
    loud_and_manager = rule("loud-manager", "composite", rules=["loud", "manager"])
    rules = engine(MANAGER, loud, loud_and_manager)
    assert evidence(shout(rules, "inbound", 0)) == [("loud", "+9.8 dB for 1.5 s")]
    # The segment spoken during the shouting is transcribed after it.
    fired = rules.on_text("inbound", 4_000, 5_000, "I want your manager", None)
    assert evidence(fired) == [
        ("manager", "manager"),
        ("loud-manager", "manager + loud within 60 s"),
    ]


def test_a_composite_naming_an_unknown_rule_is_rejected() -> None:
    with pytest.raises(ValueError, match="rules: 'both-ways' names 'zero', which is not a rule"):
        engine(MANAGER, BOTH_WAYS)


# --- Defaults -------------------------------------------------------------------------------


def test_the_default_rules_hold_together() -> None:
    check_rule_set(DEFAULT_RULES)
    RuleEngine(DEFAULT_RULES, BOTH)
    assert {r.kind for r in DEFAULT_RULES} == {
        "phrase", "keypad", "raised_voice", "dead_air", "talk_over", "sentiment", "composite",
    }  # fmt: skip
    for r in DEFAULT_RULES:
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", r.name), r.name  # storage's slug rule
        assert r.cooldown_ms % 1000 == 0 and 60_000 <= r.cooldown_ms <= 300_000
        assert dict(r.params) == validate_params(r.kind, r.params)


@pytest.mark.parametrize(
    "text",
    ["I'm using the app on my phone", "Can you count the charges again?",
     "I need to change my address", "Sue from billing said you could help",
     "Could you close the ticket once it's sorted?"],
)  # fmt: skip
def test_ordinary_caller_talk_raises_nothing_under_the_defaults(text: str) -> None:
    assert RuleEngine(DEFAULT_RULES, BOTH).on_text("inbound", 0, 2_000, text, None) == []


def test_the_defaults_catch_a_shouting_furious_caller() -> None:
    rules = RuleEngine(DEFAULT_RULES, BOTH)
    fired = list(shout(rules, "inbound", 0))
    for start, text in ((6_000, "This is ridiculous."), (8_000, "Useless."), (10_000, "Awful!")):
        fired += rules.on_text("inbound", start, start + 1_500, text, None)
    assert [(f.rule.name, f.rule.severity) for f in fired] == [
        ("raised-voice", "high"),
        ("negative-sentiment", "medium"),
        ("heated-call", "critical"),
    ]
    assert fired[2].evidence == "raised-voice + negative-sentiment within 60 s"


def test_a_long_silence_raises_dead_air_once_and_nothing_else() -> None:
    rules = RuleEngine(DEFAULT_RULES, BOTH)
    results = [
        rules.on_frame(track, now, False, -120.0)
        for now in range(FRAME_MS, 600_001, FRAME_MS)  # ten minutes
        for track in BOTH
    ]
    fired = [f for result in results for f in result]
    assert evidence(fired) == [("dead-air", "15.0 s of silence")]
    # The hot path makes no list for a frame where nothing fires.
    quiet = [r for r in results if not r]
    assert all(r is quiet[0] for r in quiet)


# --- Validation -----------------------------------------------------------------------------


def test_validation_fills_in_defaults() -> None:
    assert validate_params("phrase", {"phrases": ["manager"]}) == {
        "phrases": ["manager"],
        "actions": [],
        "targets": [],
        "outcomes": [],
        "tracks": ["inbound", "outbound"],
    }
    assert validate_params("keypad", {}) == {"digits": ["0"], "tracks": ["inbound"]}
    assert validate_params("raised_voice", {}) == {
        "db": 8.0,
        "seconds": 1.5,
        "tracks": ["inbound", "outbound"],
    }
    assert validate_params("dead_air", {}) == {"seconds": 10.0}
    assert validate_params("talk_over", {}) == {"seconds": 2.0, "per_minute": 4}
    assert validate_params("talk_over", {"per_minute": None})["per_minute"] is None
    assert validate_params("sentiment", {}) == {
        "threshold": -0.4,
        "window": 3,
        "tracks": ["inbound"],
    }
    assert validate_params("composite", {"rules": ["a", "b"]}) == {
        "rules": ["a", "b"],
        "within_seconds": 60.0,
        "min_count": 2,
    }


def test_validation_normalises_what_it_accepts() -> None:
    assert validate_params("keypad", {"digits": ["a", "#"]})["digits"] == ["A", "#"]
    assert validate_params("phrase", {"phrases": ["  cancel my account "]})["phrases"] == [
        "cancel my account"
    ]
    assert validate_params("sentiment", {"window": 5.0})["window"] == 5


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("phrase", {}, "phrases: give phrases, or actions and targets (or both)"),
        ("phrase", {"phrases": []}, "phrases: give phrases, or actions and targets (or both)"),
        ("phrase", {"actions": ["speak to"]}, "targets: must be given with actions"),
        ("phrase", {"phrases": ["a"], "targets": ["boss"]}, "actions: must be given with targets"),
        ("phrase", {"phrases": ["a"], "outcomes": ["closed"]},
         "outcomes: must be given with actions and targets"),
        ("phrase", {"phrases": "manager"}, "phrases: must be a list of 0 to 50 phrases"),
        ("phrase", {"phrases": ["x"] * 51}, "phrases: must be a list of 0 to 50 phrases"),
        ("phrase", {"actions": "get"}, "actions: must be a list of 0 to 50 phrases"),
        ("phrase", {"phrases": ["ok", "y" * 101]},
         "phrases[1]: must be text of 1 to 100 characters"),
        ("phrase", {"phrases": ["  "]}, "phrases[0]: must be text of 1 to 100 characters"),
        ("phrase", {"phrases": ["?!"]}, "phrases[0]: must contain a word"),
        ("phrase", {"phrases": ["a", "a"]}, "phrases: lists 'a' twice"),
        ("phrase", {"phrases": ["a"], "tracks": []}, "tracks: must be a list of 1 to 2 tracks"),
        ("phrase", {"phrases": ["a"], "tracks": ["caller"]},
         "tracks[0]: must be 'inbound' or 'outbound'"),
        ("phrase", {"phrases": ["a"], "colour": "red"}, "colour: not a setting of phrase rules"),
        ("keypad", {"digits": ["E"]}, "digits[0]: must be one of 0-9, *, #, A-D"),
        ("keypad", {"digits": ["12"]}, "digits[0]: must be one of 0-9, *, #, A-D"),
        ("raised_voice", {"db": 2}, "db: must be a number from 3 to 30"),
        ("raised_voice", {"db": True}, "db: must be a number from 3 to 30"),
        ("raised_voice", {"db": "8"}, "db: must be a number from 3 to 30"),
        ("raised_voice", {"seconds": float("nan")}, "seconds: must be a number from 0.5 to 30"),
        ("dead_air", {"seconds": 1}, "seconds: must be a number from 2 to 600"),
        ("dead_air", {"seconds": None}, "seconds: must be a number from 2 to 600"),
        ("talk_over", {"per_minute": 1}, "per_minute: must be a whole number from 2 to 30 or null"),
        ("talk_over", {"per_minute": 2.5},
         "per_minute: must be a whole number from 2 to 30 or null"),
        ("sentiment", {"threshold": 0.5}, "threshold: must be a number from -1 to 0"),
        ("sentiment", {"window": 0}, "window: must be a whole number from 1 to 20"),
        ("composite", {"rules": ["a"]}, "rules: must be a list of 2 to 10 rule names"),
        ("composite", {"rules": ["a", ""]}, "rules[1]: must be a rule name"),
        ("composite", {"rules": ["a", "b"], "min_count": 3},
         "min_count: must be a whole number from 2 to 2"),
        ("composite", {"rules": ["a", "b"], "within_seconds": 0},
         "within_seconds: must be a number from 1 to 3600"),
        ("weather", {}, "kind: must be one of phrase, keypad, raised_voice, dead_air, "
                        "talk_over, sentiment, composite"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field_and_the_problem(
    kind: Any, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as error:
        validate_params(kind, params)
    assert str(error.value) == message


def test_a_rule_set_with_duplicate_names_or_nested_composites_is_rejected() -> None:
    with pytest.raises(ValueError, match="name: two rules are named 'manager'"):
        check_rule_set([MANAGER, MANAGER])
    nested = rule("nested", "composite", rules=["both-ways", "manager"])
    with pytest.raises(ValueError, match="rules: 'nested' names composite rule 'both-ways'"):
        check_rule_set([MANAGER, ZERO, BOTH_WAYS, nested])
    check_rule_set([MANAGER, ZERO, BOTH_WAYS])


def supervisor_rule(cooldown_s: int) -> Rule:
    [default] = [r for r in DEFAULT_RULES if r.name == "supervisor-request"]
    return Rule(default.name, default.kind, default.severity, cooldown_s * 1000, default.params)


def test_a_phrase_fires_on_the_second_partial_that_says_it_and_not_again_on_the_final() -> None:
    rules = engine(supervisor_rule(cooldown_s=0))  # no cooldown: only the partial logic holds it
    assert rules.on_partial("inbound", 1_000, 1_600, "I want to") == []
    assert rules.on_partial("inbound", 1_000, 2_400, "I want to speak to a manager") == []
    [fired] = rules.on_partial("inbound", 1_000, 2_900, "I want to speak to a manager now")
    assert (fired.rule.name, fired.start_ms, fired.end_ms, fired.segment_id) == (
        "supervisor-request", 1_000, 2_900, None,
    )  # fmt: skip
    assert (
        rules.on_partial("inbound", 1_000, 3_400, "I want to speak to a manager now please") == []
    )
    final = "I want to speak to a manager now, please."
    assert rules.on_text("inbound", 1_000, 3_600, final, uuid.uuid4()) == []
    # The next utterance is a new request.
    assert rules.on_partial("inbound", 8_000, 9_000, "get me your manager") == []
    assert len(rules.on_partial("inbound", 8_000, 9_500, "get me your manager today")) == 1


def test_a_phrase_one_partial_heard_and_the_next_corrected_raises_nothing() -> None:
    rules = engine(supervisor_rule(cooldown_s=0))
    assert rules.on_partial("inbound", 0, 900, "I want to speak to a manager") == []
    assert rules.on_partial("inbound", 0, 1_500, "I want to speak to a manatee expert") == []
    assert rules.on_partial("inbound", 0, 1_900, "") == []  # withdrawn
    assert rules.on_partial("inbound", 0, 2_400, "I want to speak to a manager") == []
    assert rules.on_text("inbound", 0, 2_600, "I want to speak to a manatee.", None) == []
