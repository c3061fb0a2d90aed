"""What a survey answer means, from the key pressed or the words SignalWire heard (`<Gather
input="dtmf speech">` gives `Digits`, or `SpeechResult` with a `Confidence`). Pure.

- yes/no: 1 or a yes-word is "yes", 2 or a no-word "no";
- rating: a digit 1-5, or the first number said from one to five ("I'd give it a four");
- choice: a key the question lists, or the label said (closest by edit distance);
- speech: "spoken" when words were heard (the words are kept beside the answer).
An answer that cannot be read is None: the question counts as asked but unanswered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal, get_args

from rapidfuzz import fuzz, process, utils
from text_to_num import alpha2digit

Kind = Literal["yes_no", "rating", "choice", "speech"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)

_YES: Final = frozenset(
    {"yes", "yeah", "yep", "yup", "sure", "correct", "absolutely", "definitely", "right"}
)
_NO: Final = frozenset({"no", "nope", "nah", "not", "never"})
_WORD = re.compile(r"[a-z']+")
_NUMBER = re.compile(r"\d+")
CHOICE_MIN_SCORE: Final = 80
"""How close (0-100, rapidfuzz's WRatio) the words must be to a choice's label."""


def meaning(
    kind: Kind, digits: str, speech: str, choices: Mapping[str, str] | None = None
) -> str | None:
    digits, speech = digits.strip(), speech.strip()
    if kind == "speech":
        return "spoken" if speech else None
    if kind == "yes_no":
        if digits:
            return {"1": "yes", "2": "no"}.get(digits[0])
        words = set(_WORD.findall(speech.lower()))
        yes, no = bool(words & _YES), bool(words & _NO)
        return "yes" if yes and not no else "no" if no and not yes else None
    if kind == "rating":
        if digits:
            return digits[0] if digits[0] in "12345" else None
        said = [int(n) for n in _NUMBER.findall(alpha2digit(speech.lower(), "en"))]
        return next((str(n) for n in said if 1 <= n <= 5), None)
    choices = choices or {}
    if digits:
        return digits[0] if digits[0] in choices else None
    if not speech:
        return None
    best = process.extractOne(
        speech, choices, scorer=fuzz.WRatio, processor=utils.default_process,
        score_cutoff=CHOICE_MIN_SCORE,
    )  # fmt: skip
    return None if best is None else str(best[2])
