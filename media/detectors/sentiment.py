"""Sentiment of caller speech, one utterance at a time, from a small hand-made lexicon. Pure.

The scorer: each word found in `VALENCE` (a table written for this project, not a published
lexicon: about 110 words of contact-center complaint and praise, each valued from -5 to +5)
contributes its valence. An intensifier just before it ("very", "really", "so", ...) multiplies
it by 1.5, a softener ("slightly", "a bit") by 0.5. A negation up to `NEGATION_WINDOW` words
before it in the same clause (the same rule `find_phrases` uses) flips it and weakens it: "not
happy" counts -0.75 x happy, "not bad" only -0.5 x bad, because denying praise is a complaint
while denying a complaint is faint praise. The sum is squashed into [-1, 1] with
`x / sqrt(x² + 15)` (the normalisation VADER uses), so one strong word scores about ±0.7 and
more words saturate towards ±1. An utterance with no lexicon words scores 0.0.

A transcript is not a text a reviewer wrote: sarcasm ("oh great") and words outside the table
are missed. `SentimentWindow` therefore judges the mean of several utterances, not one.
"""

from __future__ import annotations

import math
import re
from collections import deque
from types import MappingProxyType
from typing import Final

from media.detectors.text import NEGATION_WINDOW, NEGATIONS, words

VALENCE: Final = MappingProxyType(
    {
        # Anger, contempt and outrage: the words a supervisor wants to hear about.
        "furious": -5, "outrageous": -4, "unacceptable": -4, "disgusting": -4,
        "terrible": -4, "horrible": -4, "awful": -4, "worst": -4, "bullshit": -4,
        "ridiculous": -3, "useless": -3, "pathetic": -3, "incompetent": -3, "angry": -3,
        "livid": -4, "hate": -3, "stupid": -3, "rude": -3, "insulting": -3, "nightmare": -3,
        "disaster": -3, "scam": -3, "lied": -3, "liar": -3, "lies": -2, "crap": -3, "shit": -3,
        "unhappy": -3, "dissatisfied": -3, "frustrated": -3, "frustrating": -3, "bad": -3,
        "worse": -3, "insane": -3, "joke": -2, "absurd": -3,
        # Disappointment and annoyance.
        "disappointed": -2, "disappointing": -2, "annoyed": -2, "annoying": -2, "upset": -2,
        "irritated": -2, "unhelpful": -2, "wrong": -2, "broken": -2, "mess": -2, "poor": -2,
        "waste": -2, "wasted": -2, "wasting": -2, "ignored": -2, "overcharged": -2,
        "unfair": -2, "unreasonable": -2, "confusing": -2, "shame": -2, "sick": -2,
        "damn": -2, "hell": -2, "crazy": -2, "fault": -2, "sucks": -3, "lousy": -3,
        "mad": -3, "complain": -1, "confused": -1, "tired": -1, "slow": -1, "worried": -1,
        "difficult": -1,
        # Praise and thanks.
        "excellent": 4, "amazing": 4, "awesome": 4, "fantastic": 4, "wonderful": 4,
        "brilliant": 4, "outstanding": 4, "superb": 4, "great": 3, "perfect": 3, "love": 3,
        "lovely": 3, "happy": 3, "best": 3, "grateful": 3, "delighted": 3, "thrilled": 3,
        "good": 2, "nice": 2, "helpful": 2, "thanks": 2, "thank": 2, "appreciate": 2,
        "appreciated": 2, "glad": 2, "pleased": 2, "satisfied": 2, "resolved": 2, "fixed": 2,
        "friendly": 2, "better": 2, "relieved": 2, "solved": 2, "easy": 1, "quick": 1,
        "fair": 1, "works": 1, "working": 1, "cool": 1,
    }
)  # fmt: skip
# Left out on purpose: topic words every support call uses ("problem", "issue", "cancel",
# "refund", "bill"), which name the reason for calling, not a mood; and words whose other sense
# is as common on a call ("kind of", "hard drive", "a patient", "hold").

INTENSIFIERS: Final = frozenset(
    {"very", "really", "so", "extremely", "absolutely", "totally", "completely", "incredibly",
     "super", "utterly", "truly", "seriously", "beyond"}
)  # fmt: skip
SOFTENERS: Final = frozenset({"slightly", "somewhat", "bit", "little", "kinda", "mildly"})
INTENSIFY = 1.5
SOFTEN = 0.5
NEGATED_PRAISE = -0.75
"""A negated positive word ("not happy") becomes a complaint, nearly as strong."""
NEGATED_COMPLAINT = -0.5
"""A negated negative word ("not bad") becomes faint praise."""
SQUASH_ALPHA = 15.0

# The same clause boundaries as media.detectors.text: a negation does not reach past them.
_CLAUSE_END = re.compile(r"[,.;:!?]")


def score(text: str) -> float:
    """The utterance's sentiment in [-1, 1]; 0.0 when no lexicon word is in it."""
    total = sum(_clause_valence(words(clause)) for clause in _CLAUSE_END.split(text))
    if total == 0:
        return 0.0
    return total / math.sqrt(total * total + SQUASH_ALPHA)


def _clause_valence(heard: list[str]) -> float:
    total = 0.0
    for i, word in enumerate(heard):
        valence = VALENCE.get(word, 0)
        if valence:
            total += valence * _modifier(heard, i) * _negation(heard, i, valence)
    return total


def _modifier(heard: list[str], i: int) -> float:
    """Intensifiers and softeners directly before the word ("really very angry")."""
    factor = 1.0
    j = i - 1
    while j >= 0 and (heard[j] in INTENSIFIERS or heard[j] in SOFTENERS):
        factor *= INTENSIFY if heard[j] in INTENSIFIERS else SOFTEN
        j -= 1
    return factor


def _negation(heard: list[str], i: int, valence: int) -> float:
    before = heard[max(0, i - NEGATION_WINDOW) : i]
    if not any(w in NEGATIONS or w.endswith("n't") for w in before):
        return 1.0
    return NEGATED_PRAISE if valence > 0 else NEGATED_COMPLAINT


class SentimentWindow:
    """Negative sentiment held over the last `window` utterances of one speaker.

    Every utterance with at least one word counts, neutral ones too ("my account number is
    ..."), so a single outburst in a calm call is diluted rather than flagged. Empty
    transcripts (noise the engine heard as nothing) are not utterances and are skipped.
    """

    def __init__(self, window: int, threshold: float) -> None:
        if window < 1:
            raise ValueError("window: must be at least 1")
        self._threshold = threshold
        self._scores: deque[float] = deque(maxlen=window)

    def feed(self, text: str) -> float | None:
        """The window's mean when the window is full and the mean is at or below the
        threshold, else None."""
        if not words(text):
            return None
        return self.push(score(text))

    def push(self, value: float) -> float | None:
        """As `feed`, for an utterance already scored (one score serves several windows)."""
        self._scores.append(value)
        if len(self._scores) < (self._scores.maxlen or 0):
            return None
        mean = sum(self._scores) / len(self._scores)
        return mean if mean <= self._threshold else None
