"""media.detectors.consent: consent is the caller's answer to a consent request."""

from __future__ import annotations

import uuid

from media.detectors.consent import ConsentFinding, ConsentTracker
from media.events import Track

SEG = uuid.UUID(int=7)
NOTHING_OPEN: dict[Track, int | None] = {}


def say(tracker: ConsentTracker, track: Track, start_ms: int, text: str) -> list[ConsentFinding]:
    return tracker.on_text(track, start_ms, text, SEG, NOTHING_OPEN)


def verdicts(found: list[ConsentFinding]) -> list[tuple[str, str | None]]:
    return [(f.detector, f.verdict) for f in found if f.kind == "answer"]


def test_a_played_question_is_answered_by_the_callers_first_turn() -> None:
    tracker = ConsentTracker(played="question")
    assert verdicts(say(tracker, "inbound", 1_200, "Yeah, that's fine.")) == [
        ("caller_speech", "granted")
    ]
    assert tracker.verdict == "granted"


def test_a_notice_that_asks_nothing_gets_no_spoken_verdict() -> None:
    for played in ("notice", "none"):
        tracker = ConsentTracker(played=played)
        assert verdicts(say(tracker, "inbound", 1_000, "Yes.")) == []
        assert verdicts(say(tracker, "inbound", 3_000, "No, the parcel never came.")) == []
        assert tracker.verdict is None


def test_the_agents_spoken_request_opens_the_answer_and_is_evidence() -> None:
    tracker = ConsentTracker()
    found = say(tracker, "outbound", 0, "Hi, this call may be recorded. Is that okay with you?")
    assert [(f.kind, f.detector, f.track, f.offset_ms) for f in found] == [
        ("disclosure", "agent_speech", "outbound", 0)
    ]
    assert verdicts(say(tracker, "inbound", 3_500, "I'd rather you didn't keep this.")) == [
        ("caller_speech", "refused")
    ]


def test_a_yes_to_the_agents_next_question_is_not_consent() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "Calls are recorded for training. Is that alright?")
    say(tracker, "outbound", 4_000, "And do you have your order number?")
    assert verdicts(say(tracker, "inbound", 6_000, "Yes, it's 4471.")) == []
    assert tracker.verdict is None


def test_a_question_after_the_disclosure_turns_a_notice_into_a_request() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "Just so you know, this call is being recorded.")
    say(tracker, "outbound", 3_000, "Are you okay with that?")
    assert verdicts(say(tracker, "inbound", 5_000, "Go for it.")) == [("caller_speech", "granted")]


def test_a_disclosure_followed_by_another_question_is_a_notice() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "This call may be recorded. How can I help you today?")
    assert verdicts(say(tracker, "inbound", 4_000, "Yeah, no, my internet is down.")) == []
    assert verdicts(say(tracker, "inbound", 9_000, "Okay.")) == []


def test_a_later_turn_about_recording_decides_even_after_a_notice() -> None:
    tracker = ConsentTracker(played="notice")
    assert verdicts(say(tracker, "inbound", 20_000, "Are you recording this?")) == []
    assert verdicts(say(tracker, "inbound", 25_000, "Can you switch the recording off?")) == [
        ("caller_speech", "refused")
    ]


def test_after_the_answer_only_talk_about_recording_changes_it() -> None:
    tracker = ConsentTracker(played="question")
    assert verdicts(say(tracker, "inbound", 1_000, "Sure.")) == [("caller_speech", "granted")]
    assert verdicts(say(tracker, "inbound", 6_000, "No. It's still broken.")) == []
    assert verdicts(say(tracker, "inbound", 9_000, "Actually, please don't record me.")) == [
        ("caller_speech", "refused")
    ]
    assert tracker.verdict == "refused"


def test_questions_and_mixed_answers_decide_nothing_and_leave_the_request_open() -> None:
    tracker = ConsentTracker(played="question")
    assert verdicts(say(tracker, "inbound", 1_000, "Why would I agree?")) == []
    assert verdicts(say(tracker, "inbound", 2_000, "Yeah, no")) == []
    say(tracker, "outbound", 3_000, "It helps us train our staff.")
    assert verdicts(say(tracker, "inbound", 5_000, "Oh, okay then.")) == [
        ("caller_speech", "granted")
    ]


def test_an_answer_after_the_window_is_not_an_answer() -> None:
    tracker = ConsentTracker(played="question", window_ms=10_000)
    assert verdicts(say(tracker, "inbound", 10_001, "Yes.")) == []


def test_an_answer_waits_for_the_agents_words_before_it() -> None:
    """Transcribed out of order: the caller's "yes" arrives before the agent's question that
    came between the request and it. It must not be taken for consent."""
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "This call is recorded. Is that okay?")
    tracker.expect("outbound", 3_000)  # "Can I have your name?", still being transcribed
    assert verdicts(say(tracker, "inbound", 5_000, "Yes.")) == []
    assert tracker.verdict is None
    assert verdicts(say(tracker, "outbound", 3_000, "Can I have your name?")) == []
    assert tracker.verdict is None


def test_an_answer_judged_once_the_agents_earlier_words_are_known() -> None:
    tracker = ConsentTracker()
    tracker.expect("outbound", 0)
    assert verdicts(say(tracker, "inbound", 4_000, "Sure, go ahead.")) == []
    found = say(tracker, "outbound", 0, "Is it okay if we record this call?")
    assert [(f.kind, f.verdict) for f in found] == [("disclosure", None), ("answer", "granted")]


def test_an_agent_still_speaking_holds_back_what_came_after_it_started() -> None:
    tracker = ConsentTracker(played="question")
    still_talking: dict[Track, int | None] = {"outbound": 2_000, "inbound": None}
    assert tracker.on_text("inbound", 3_000, "Yes.", SEG, still_talking) == []
    # The agent's utterance turns out too short to transcribe; nothing else is pending.
    assert verdicts(tracker.on_digit("inbound", "5", 8_000, NOTHING_OPEN)) == [
        ("caller_speech", "granted")
    ]


def test_an_unheard_agent_utterance_is_waited_for_then_passed_over() -> None:
    tracker = ConsentTracker(played="question")
    tracker.expect("outbound", 1_000)
    assert say(tracker, "inbound", 3_000, "Yes.") == []
    assert verdicts(tracker.on_lost("outbound", 1_000, NOTHING_OPEN)) == [
        ("caller_speech", "granted")
    ]


def test_an_agent_turn_skipped_under_load_leaves_the_next_yes_unattributed() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "Calls are recorded for training. Is that alright?")
    tracker.expect("outbound", 4_000)  # perhaps "do you have your order number?"
    assert say(tracker, "inbound", 6_000, "Yes, it's 4471.") == []
    assert verdicts(tracker.on_lost("outbound", 4_000, NOTHING_OPEN, skipped=True)) == []
    assert tracker.verdict is None


def test_the_turns_that_may_decide_consent() -> None:
    tracker = ConsentTracker()
    # The opening: the agent's turns may make the request; the caller's may not answer one.
    assert tracker.bears_on_consent("outbound", 2_000)
    assert not tracker.bears_on_consent("outbound", 20_000)
    assert not tracker.bears_on_consent("inbound", 2_000)
    say(tracker, "outbound", 1_000, "This call is recorded. Is that okay with you?")
    # The request is open: every turn in its window, the agent's too (it decides what a "yes"
    # answers); none after it.
    assert tracker.bears_on_consent("inbound", 5_000)
    assert tracker.bears_on_consent("outbound", 4_000)
    assert not tracker.bears_on_consent("inbound", 40_000)
    say(tracker, "inbound", 5_000, "Sure.")
    assert tracker.verdict == "granted"
    assert not tracker.bears_on_consent("inbound", 6_000)  # decided
    assert not tracker.bears_on_consent("outbound", 6_000)

    # A request heard while an earlier turn is still being transcribed is not judged yet (it
    # waits for that turn), but the turns after it already rank as its answer.
    waiting = ConsentTracker()
    waiting.expect("inbound", 500)  # the caller's "hello?", still queued
    say(waiting, "outbound", 1_000, "Calls are recorded, is that okay with you?")
    assert waiting.bears_on_consent("inbound", 4_000)
    assert not waiting.bears_on_consent("inbound", 40_000)

    noticed = ConsentTracker()
    say(noticed, "outbound", 0, "Hello, you're through to Sam.")
    assert noticed.bears_on_consent("outbound", 2_000)  # not disclosed yet
    say(noticed, "outbound", 2_000, "Calls are recorded for training.")
    assert noticed.bears_on_consent("outbound", 4_000)  # "...is that alright?" would ask
    say(noticed, "inbound", 4_000, "Hi, I'm calling about my bill.")
    assert not noticed.bears_on_consent("outbound", 7_000)  # a notice, answered by nothing


def test_stream_end_decides_on_what_was_heard() -> None:
    tracker = ConsentTracker(played="question")
    tracker.expect("inbound", 500)
    assert say(tracker, "inbound", 4_000, "Yes, go ahead.") == []
    assert verdicts(tracker.flush()) == [("caller_speech", "granted")]


def test_keys_count_when_the_request_offers_them_in_any_mode() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "We record calls. Press 1 to agree, or 2 to decline.")
    assert tracker.on_digit("outbound", "1", 500, NOTHING_OPEN) == []
    assert tracker.on_digit("inbound", "5", 600, NOTHING_OPEN) == []
    [found] = tracker.on_digit("inbound", "2", 700, NOTHING_OPEN)
    assert (found.detector, found.verdict, found.evidence) == ("keypad", "refused", "digit 2")


def test_keys_the_request_did_not_offer_are_not_answers() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "This call may be recorded. Is that okay?")
    assert tracker.on_digit("inbound", "1", 3_000, NOTHING_OPEN) == []
    played = ConsentTracker(played="keypad")
    assert verdicts(played.on_digit("inbound", "1", 3_000, NOTHING_OPEN)) == [("keypad", "granted")]


def test_a_notice_implies_consent_where_the_org_opts_in_and_the_caller_can_still_refuse() -> None:
    tracker = ConsentTracker(played="notice", implied_by_notice=True)
    [implied] = tracker.opening
    assert (implied.detector, implied.verdict) == ("implied_notice", "granted")
    assert implied.evidence.startswith("implied by notice")
    assert verdicts(say(tracker, "inbound", 2_000, "I don't want to be recorded.")) == [
        ("caller_speech", "refused")
    ]
    spoken = ConsentTracker(implied_by_notice=True)
    found = say(spoken, "outbound", 0, "This call is recorded for training. How can I help?")
    assert verdicts(found) == [("implied_notice", "granted")]
    assert ConsentTracker(played="notice").opening == []


def test_an_answer_that_ends_in_a_question_still_answers() -> None:
    tracker = ConsentTracker(played="question")
    found = say(tracker, "inbound", 1_000, "No, I'm not comfortable with that, what balance?")
    assert verdicts(found) == [("caller_speech", "refused")]
    for asked in ("Why would I agree?", "Do I have to say yes?", "Can I say no?"):
        assert verdicts(say(ConsentTracker(played="question"), "inbound", 1_000, asked)) == []


def test_a_notice_in_the_platforms_prompt_keeps_its_request_open() -> None:
    """The played keypad prompt, heard on the line in pieces: its notice sentence is no other
    question, and its last sentence adds the key that declines."""
    tracker = ConsentTracker(played="keypad")
    say(tracker, "outbound", 500, "To help with training, calls may be recorded.")
    say(tracker, "outbound", 3_000, "Press one to agree to recording.")
    say(tracker, "outbound", 5_000, "Press two to continue without recording.")
    assert verdicts(tracker.on_digit("inbound", "2", 7_000, NOTHING_OPEN)) == [
        ("keypad", "refused")
    ]


def test_a_tag_after_the_disclosure_asks() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "We record calls for training, alright?")
    assert verdicts(say(tracker, "inbound", 3_000, "Yeah, no worries.")) == [
        ("caller_speech", "granted")
    ]


def test_a_callers_question_about_the_request_leaves_it_open() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "Hi, Homefix. I need to mention we record calls. Is that alright?")
    assert verdicts(say(tracker, "inbound", 4_000, "Sorry, is that for the whole call?")) == []
    say(tracker, "outbound", 6_000, "The whole call, but only our training team can listen.")
    assert verdicts(say(tracker, "inbound", 9_000, "Oh, in that case, it's fine.")) == [
        ("caller_speech", "granted")
    ]


def test_do_you_mind_is_answered_no_to_agree() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "Do you mind if I record this call for training?")
    assert verdicts(say(tracker, "inbound", 3_000, "Not at all, go for your life.")) == [
        ("caller_speech", "granted")
    ]
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "We record calls for training, would you mind?")
    assert verdicts(say(tracker, "inbound", 3_000, "Yeah, I do, mate.")) == [
        ("caller_speech", "refused")
    ]


def test_the_turn_after_a_notice_may_object_to_it_without_naming_it() -> None:
    notice = "Hello, Kingsbridge Bank. I should tell you this call is recorded for your security."
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, notice)
    objection = "Oh, I'd rather you switched that off, if you don't mind. I've lost my purse."
    assert verdicts(say(tracker, "inbound", 4_000, objection)) == [("caller_speech", "refused")]
    # A bare "no" answers the agent's other question; agreeing only acknowledges.
    for reply in ("No, I haven't got it to hand.", "Okay, that's fine, it's about my card."):
        tracker = ConsentTracker()
        say(tracker, "outbound", 0, f"{notice} Do you have your card number?")
        assert verdicts(say(tracker, "inbound", 4_000, reply)) == []


def test_the_platforms_keys_stand_whatever_its_prompt_is_heard_as() -> None:
    tracker = ConsentTracker(played="keypad")
    # Transcribed from the outbound track: "unrecorded" heard as "on record it".
    say(tracker, "outbound", 0, "Press 1 to allow it, or press 2 to continue on record it.")
    found = tracker.on_digit("inbound", "2", 6_000, NOTHING_OPEN)
    assert verdicts(found) == [("keypad", "refused")]


def test_a_question_heard_without_its_question_mark_still_asks_back() -> None:
    tracker = ConsentTracker(played="question")
    assert verdicts(say(tracker, "inbound", 1_000, "Um, who actually gets to listen to it.")) == []
    say(tracker, "outbound", 3_000, "The recordings are only used for training.")
    assert verdicts(say(tracker, "inbound", 6_000, "Oh, okay then, yes, that's fine by me.")) == [
        ("caller_speech", "granted")
    ]


def test_a_streaming_services_turn_settles_the_utterances_it_covers() -> None:
    """A cloud service's turns need not match our endpointing: its words for 1.0-4.6 s settle
    both our utterances in that span (a cough at 0.2 s and the question, cut in two at a
    pause), so the caller's answer after them is judged as an answer."""
    tracker = ConsentTracker()
    for start_ms in (200, 800, 2_600):
        tracker.expect("outbound", start_ms)
    tracker.expect("inbound", 5_000)
    assert say(tracker, "inbound", 5_000, "Yes, that's fine.") == []  # the agent is pending
    found = tracker.on_streamed_text(
        "outbound", 1_000, 4_600, "We record calls. Is that okay?", SEG, NOTHING_OPEN
    )
    assert [(f.kind, f.verdict, f.offset_ms) for f in found] == [
        ("disclosure", None, 800),  # the utterance open when the words began holds them
        ("answer", "granted", 5_000),
    ]


def test_a_streamed_turn_our_endpointing_missed_joins_the_timeline() -> None:
    tracker = ConsentTracker(played="question")
    found = tracker.on_streamed_text("inbound", 3_000, 3_400, "Sure.", SEG, NOTHING_OPEN)
    assert verdicts(found) == [("caller_speech", "granted")]


def test_a_callers_question_about_recording_carries_into_the_rest_of_their_turn() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "Ace appliance repairs, Noel speaking.")
    assert verdicts(say(tracker, "inbound", 2_000, "Oh, do you record these calls?")) == []
    assert verdicts(say(tracker, "inbound", 4_000, "Honestly, I'd be glad if you did.")) == [
        ("caller_speech", "granted")
    ]


def test_once_the_agent_speaks_the_callers_question_no_longer_carries() -> None:
    tracker = ConsentTracker()
    say(tracker, "inbound", 0, "Do you record these calls?")
    say(tracker, "outbound", 2_000, "Only for training. What can I do for you?")
    assert verdicts(say(tracker, "inbound", 4_000, "Yes, I'd be glad if you sorted my bill.")) == []
    assert tracker.verdict is None


def test_a_disclosure_with_recorded_heard_as_reported_still_asks() -> None:
    tracker = ConsentTracker()
    say(tracker, "outbound", 0, "Before I help, the call is reported. Is that all right?")
    assert verdicts(say(tracker, "inbound", 3_000, "Yes, that's okay.")) == [
        ("caller_speech", "granted")
    ]
