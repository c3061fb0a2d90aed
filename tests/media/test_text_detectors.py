"""Escalation phrases and consent answers, from transcript text. Pure."""

from __future__ import annotations

import pytest

from media.detectors.text import (
    ConsentAnswer,
    asks_for_consent,
    asks_if_objecting,
    classify_consent,
    find_phrases,
    words,
)

ESCALATION = ("supervisor", "manager", "cancel my account", "lawyer", "complaint")


def test_words_fold_case_punctuation_and_curly_apostrophes() -> None:
    assert words("I DON\u2019T need a Manager, thanks!") == [
        "i",
        "don't",
        "need",
        "a",
        "manager",
        "thanks",
    ]


@pytest.mark.parametrize(
    ("heard", "wanted", "match"),
    [
        ("supervisors", "supervisor", True),  # one insertion
        ("superviser", "supervisor", True),  # one substitution
        ("supervsior", "supervisor", True),  # neighbouring letters swapped
        ("supper", "supervisor", False),
        ("manger", "manager", True),
        ("lawer", "lawyer", True),
        ("cat", "can", False),  # short words must match exactly
        ("lower", "lawyer", False),  # two edits: too many for one word
    ],
)
def test_words_match_within_one_edit_when_long_enough(heard: str, wanted: str, match: bool) -> None:
    assert bool(find_phrases(heard, (wanted,))) is match


def test_phrases_are_found_despite_transcription_errors() -> None:
    [m] = find_phrases("I want to talk to your superviser right now.", ESCALATION)
    assert (m.phrase, m.start_word, m.end_word, m.exact, m.negated) == (
        "supervisor",
        6,
        7,
        False,
        False,
    )
    [m] = find_phrases("Just cancel my acount, please", ESCALATION)
    assert m.phrase == "cancel my account" and not m.exact


def test_a_phrase_shares_one_edit_per_long_word_among_its_words() -> None:
    # Two long words ("cancel", "account"), so two edits, here both in "account".
    [m] = find_phrases("Just cancel my count today.", ESCALATION)
    assert m.phrase == "cancel my account" and not m.exact
    # Three edits are too many, and a short word ("my") must be heard exactly.
    assert find_phrases("Just cancer my count today.", ESCALATION) == []
    assert find_phrases("Just cancel by account today.", ESCALATION) == []
    assert find_phrases("I'll see you tomorrow", ("sue you",)) == []


def test_a_negation_just_before_a_phrase_is_noticed() -> None:
    [m] = find_phrases("No, I don't need a manager, thank you.", ESCALATION)
    assert m.negated
    [m] = find_phrases("I never said I was fine, get me a manager", ESCALATION)
    assert not m.negated  # "never" is far from it


def test_nothing_is_found_in_a_neutral_sentence() -> None:
    assert find_phrases("Thank you for calling, how can I help you today?", ESCALATION) == []


@pytest.mark.parametrize(
    "text",
    ["Yes.", "Yeah, that's fine.", "Sure, go ahead.", "I agree", "OK", "No problem.",
     "Yes, I consent to that"],
)  # fmt: skip
def test_agreement_grants_consent(text: str) -> None:
    answer = classify_consent(text)
    assert answer is not None and answer.verdict == "granted", text


@pytest.mark.parametrize(
    "text",
    ["No.", "Please don't record this.", "I do not consent.", "I don't agree", "Not okay",
     "No thanks", "I'd rather not", "Do not record this call.",
     "I don't want this call recorded."],
)  # fmt: skip
def test_refusal_refuses_consent(text: str) -> None:
    answer = classify_consent(text)
    assert answer is not None and answer.verdict == "refused", text


@pytest.mark.parametrize(
    "text",
    ["Why would I agree?", "Do I have to say yes?", "yes?", "Can I say no", "Yeah no",
     "I'm calling about my bill", "",
     # One-word answers deep in a sentence answer nothing (a transcript lost the question).
     "I was charged twice and no one fixed it", "I have to say yeah"],
)  # fmt: skip
def test_questions_mixed_answers_and_other_talk_decide_nothing(text: str) -> None:
    assert classify_consent(text) is None, text


def test_the_evidence_names_what_decided() -> None:
    answer = classify_consent("I don't agree with that")
    assert answer is not None and answer.evidence == "i don't agree"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        # A phrase outweighs a bare word that says the opposite.
        ("No, that's fine.", "granted"),
        ("Ja, no, that's fine.", "granted"),
        # Fillers do not push a bare answer out of the utterance's first words...
        ("Um, well, oh, no.", "refused"),
        # ...and a bare answer that is a clause of its own counts anywhere.
        ("Provided it's not shared outside the company, sure.", "granted"),
        ("I'm gonna say no to that one.", "refused"),
        ("I'd sooner you didn't, love, if it's all the same to you.", "refused"),
        ("Righto, crack on.", "granted"),
        ("Oh, if you must.", "granted"),
        ("Not particularly, no.", "refused"),
    ],
)
def test_answers_in_their_own_words(text: str, verdict: str) -> None:
    answer = classify_consent(text)
    assert answer is not None and answer.verdict == verdict, text


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Not at all, go for your life.", "granted"),
        ("No, I wouldn't object. That's fine.", "granted"),
        ("Mm, no, go on then, I don't mind.", "granted"),
        ("Yeah, I do, mate. Rather you didn't.", "refused"),
        ("Actually, yeah, I do mind. Leave it off, please.", "refused"),
        ("Yes.", "refused"),
    ],
)
def test_a_request_that_asks_for_objections_turns_bare_answers_round(
    text: str, verdict: str
) -> None:
    answer = classify_consent(text, inverted=True)
    assert answer is not None and answer.verdict == verdict, text


@pytest.mark.parametrize(
    "text",
    ["Do you mind if I record this call for training?", "Any objection to me recording this?",
     "Would you object if this call were recorded?", "Calls are recorded. Would you mind?"],
)  # fmt: skip
def test_requests_that_ask_for_objections(text: str) -> None:
    assert asks_for_consent(text) and asks_if_objecting(text)


@pytest.mark.parametrize(
    "text",
    ["We record calls for training. Is recording alright by you?",
     "Calls are recorded for quality. You okay with that?",
     "We record calls for quality assurance. Is that cool with you?",
     "For training and compliance we record calls; are you agreeable to that?",
     "I'd like to record this for accuracy, if you'll allow it?",
     "I'd like to record this for accuracy, if you allow it.",  # the question mark not heard
     "Calls are recorded. Happy with that.", "We record calls. Are you alright with that."
     "Calls to this line are recorded. Is that acceptable to you?"],
)  # fmt: skip
def test_a_yes_no_question_about_accepting_it_asks(text: str) -> None:
    assert asks_for_consent(text) and not asks_if_objecting(text)


@pytest.mark.parametrize(
    "text",
    ["Calls are recorded. Can I have your account number?", "We record calls. How can I help?",
     "This call is recorded. What's the reference, is it on the letter?",
     "This line isn't recorded, so you're fine.",  # tells: no tag question
     "We record calls. Okay, how can I help?", "We record calls. Happy to help.",
     "Does the owner know we need their consent?"],
)  # fmt: skip
def test_a_question_about_something_else_does_not_ask(text: str) -> None:
    assert not asks_for_consent(text)


@pytest.mark.parametrize(
    "text",
    ["If we record calls for training, that's all right.",  # the question mark not heard
     "Our calls are recorded for training, that I'll write with you.",  # "alright", misheard
     "We record calls for training, I'll write if we record this one.",
     "Just so you know, we record calls, that are right."],
)  # fmt: skip
def test_a_request_heard_imperfectly_still_asks(text: str) -> None:
    assert asks_for_consent(text)


def test_a_disclosure_told_or_a_tag_that_agrees_with_nothing_does_not_ask() -> None:
    assert not asks_for_consent("We record calls for training, that's right.")
    assert not asks_for_consent("Okay, that's fine.")  # names no recording


def test_asking_whether_the_caller_wants_to_opt_out_asks_for_an_objection() -> None:
    text = "All of our calls are recorded, you want to opt out of the recording."
    assert asks_for_consent(text) and asks_if_objecting(text)
    assert classify_consent("Yes, please.", inverted=True) == ConsentAnswer(
        "refused", "yes please (to an objection asked)"
    )


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Oh, and recording's no problem, before anyone asks.", "granted"),
        ("Good, I'm glad this is being recorded, I want proof.", "granted"),
        ("Is this being recorded? Because I'd rather it wasn't, it's personal.", "refused"),
        ("Oh, hang on, I'm not keen on being recorded, to be honest.", "refused"),
        ("Oh, hmm, I'd really prefer this one wasn't recorded, it's a bit personal.", "refused"),
        ("Actually, you know what, do record this, in case there's an argument.", "granted"),
    ],
)
def test_a_turn_about_recording_in_the_callers_words(text: str, verdict: str) -> None:
    answer = classify_consent(text, about_recording=True)
    assert answer is not None and answer.verdict == verdict, text


@pytest.mark.parametrize(
    "text",
    ["Is recording all right by you?", "We record calls for training. That'll rate?"],
)
def test_all_right_asks_as_alright_does(text: str) -> None:
    assert asks_for_consent(text)


def test_words_that_only_sound_like_alright_elsewhere_do_not_ask() -> None:
    assert not asks_for_consent("Alright, I'll write that down.")
    assert not asks_for_consent("We record calls. You are right to ask about it.")
