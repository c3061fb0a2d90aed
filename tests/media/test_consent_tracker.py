"""media.detectors.consent: the disclosure opens a window, the caller's answer decides."""

from __future__ import annotations

import uuid

from media.detectors.consent import ConsentTracker

SEG = uuid.UUID(int=7)


def answers(tracker: ConsentTracker, start_ms: int, text: str) -> list[tuple[str, str | None]]:
    return [(f.detector, f.verdict) for f in tracker.on_caller_text(start_ms, text, SEG)]


def test_played_disclosure_opens_the_window_at_the_start() -> None:
    tracker = ConsentTracker(disclosure_played=True, keypad_answers=False)
    assert answers(tracker, 1_200, "Yeah, that's fine.") == [("caller_speech", "granted")]
    assert tracker.verdict == "granted"


def test_an_answer_with_no_disclosure_is_not_consent() -> None:
    tracker = ConsentTracker(disclosure_played=False, keypad_answers=False)
    assert answers(tracker, 1_000, "Yes.") == []
    assert tracker.verdict is None


def test_spoken_disclosure_on_the_agent_track_is_evidence_and_opens_the_window() -> None:
    tracker = ConsentTracker(disclosure_played=False, keypad_answers=False)
    found = tracker.on_agent_text(0, "Hi, this call may be recorded for quality.", SEG)
    assert [(f.kind, f.detector, f.track, f.offset_ms) for f in found] == [
        ("disclosure", "agent_speech", "outbound", 0)
    ]
    assert answers(tracker, 3_500, "I do not consent") == [("caller_speech", "refused")]


def test_an_answer_transcribed_before_the_disclosure_is_judged_when_it_arrives() -> None:
    tracker = ConsentTracker(disclosure_played=False, keypad_answers=False)
    assert answers(tracker, 4_000, "Sure, go ahead.") == []
    found = tracker.on_agent_text(0, "Just so you know, this call is being recorded.", SEG)
    assert [(f.kind, f.verdict) for f in found] == [("disclosure", None), ("answer", "granted")]


def test_questions_and_mixed_answers_decide_nothing() -> None:
    tracker = ConsentTracker(disclosure_played=True, keypad_answers=False)
    assert answers(tracker, 1_000, "Why would I agree?") == []
    assert answers(tracker, 2_000, "No, that's fine") == []
    assert tracker.verdict is None


def test_a_later_answer_replaces_an_earlier_one_but_not_the_other_way_round() -> None:
    tracker = ConsentTracker(disclosure_played=True, keypad_answers=False)
    assert answers(tracker, 1_000, "Okay.") == [("caller_speech", "granted")]
    assert answers(tracker, 5_000, "Actually, please don't record this.") == [
        ("caller_speech", "refused")
    ]
    assert answers(tracker, 3_000, "Yes.") == []  # older, transcribed late
    assert tracker.verdict == "refused"


def test_after_an_answer_a_one_word_remark_is_talk_not_a_change_of_mind() -> None:
    tracker = ConsentTracker(disclosure_played=True, keypad_answers=False)
    assert answers(tracker, 1_000, "Sure.") == [("caller_speech", "granted")]
    assert answers(tracker, 6_000, "No. It's still broken.") == []
    assert tracker.verdict == "granted"


def test_nothing_spoken_after_the_window_counts() -> None:
    tracker = ConsentTracker(disclosure_played=True, keypad_answers=False, window_ms=10_000)
    assert answers(tracker, 10_001, "Yes.") == []


def test_keypad_answers_only_when_the_flow_asks_and_only_from_the_caller() -> None:
    asked = ConsentTracker(disclosure_played=True, keypad_answers=True)
    assert asked.on_digit("outbound", "1", 500) == []
    assert asked.on_digit("inbound", "5", 500) == []
    [found] = asked.on_digit("inbound", "2", 600)
    assert (found.detector, found.verdict, found.evidence) == ("keypad", "refused", "digit 2")
    not_asked = ConsentTracker(disclosure_played=True, keypad_answers=False)
    assert not_asked.on_digit("inbound", "1", 500) == []
