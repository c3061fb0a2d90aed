"""Lexicon sentiment of one utterance, and negative sentiment held over several. Pure."""

from __future__ import annotations

import pytest

from media.detectors.sentiment import SentimentWindow, score


@pytest.mark.parametrize(
    "text",
    ["This is ridiculous.", "Your service is useless", "I'm furious", "Absolutely unacceptable!",
     "Worst company ever, awful.", "I'm so frustrated and disappointed"],
)  # fmt: skip
def test_complaints_score_negative(text: str) -> None:
    assert score(text) <= -0.4, text


@pytest.mark.parametrize(
    "text",
    ["Great, thanks!", "That's perfect", "You've been really helpful", "I appreciate it"],
)
def test_praise_scores_positive(text: str) -> None:
    assert score(text) >= 0.4, text


@pytest.mark.parametrize(
    "text",
    ["My account number is 4471", "I want to cancel my subscription",
     "I have a problem with my bill", "", "uh"],
)  # fmt: skip
def test_talk_without_sentiment_words_scores_zero(text: str) -> None:
    assert score(text) == 0.0, text


def test_negation_turns_praise_into_complaint_and_complaint_into_faint_praise() -> None:
    assert score("I am not happy") < -0.4
    assert 0 < score("not bad") < score("good")
    assert score("that wasn't helpful") < 0
    # A negation does not reach across a clause, nor from far away.
    assert score("No, this is great") == score("this is great")
    assert score("I never thought the people here would be this helpful") > 0


def test_intensifiers_strengthen_and_softeners_weaken() -> None:
    assert score("really very angry") < score("very angry") < score("angry") < 0
    assert score("angry") < score("a bit angry") < 0
    assert score("so helpful") > score("helpful")


def test_scores_stay_within_minus_one_and_one() -> None:
    rant = "terrible awful useless ridiculous unacceptable " * 20
    assert -1 <= score(rant) < -0.99
    assert 0.99 < score("great excellent perfect " * 20) <= 1


def test_the_window_needs_every_slot_filled_before_judging() -> None:
    window = SentimentWindow(window=3, threshold=-0.4)
    assert window.feed("This is ridiculous") is None
    assert window.feed("This is useless") is None
    mean = window.feed("I'm furious")
    assert mean is not None and mean == pytest.approx(
        (score("This is ridiculous") + score("This is useless") + score("I'm furious")) / 3
    )


def test_a_calm_utterance_dilutes_the_window_and_a_recovered_caller_is_not_flagged() -> None:
    window = SentimentWindow(window=3, threshold=-0.4)
    for text in ("This is ridiculous", "My number is 4471", "OK"):
        assert window.feed(text) is None  # one outburst among calm talk
    for text in ("That's great", "thanks so much", "perfect"):
        assert window.feed(text) is None


def test_the_window_slides_and_keeps_flagging_while_negative() -> None:
    window = SentimentWindow(window=2, threshold=-0.4)
    window.feed("Thanks")
    assert window.feed("This is terrible") is None  # the mean still includes the thanks
    assert window.feed("Awful, just awful") is not None
    assert window.feed("Useless") is not None


def test_empty_transcripts_are_not_utterances() -> None:
    window = SentimentWindow(window=2, threshold=-0.4)
    window.feed("This is terrible")
    assert window.feed("") is None
    assert window.feed("   ") is None
    assert window.feed("Horrible") is not None
