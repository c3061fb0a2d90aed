"""Text detectors over transcript segments: escalation phrases and consent answers. Pure.

Both work on words, not characters, so they tolerate what transcription gets wrong:
`find_phrases` matches words fuzzily (a phrase may be off by one edit per word of five letters
or more, none in shorter words) and notices a negation just before the phrase ("I don't need a
manager"); `classify_consent` tells agreement ("sure, go ahead") from refusal ("please don't record
this") and from questions and negated agreement ("why would I agree?", "I don't agree").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CLAUSE_END = re.compile(r"[,.;:!?]")
NEGATIONS = frozenset(
    {"not", "no", "never", "don't", "dont", "doesn't", "didn't", "won't", "can't", "cannot",
     "isn't", "aren't", "wasn't", "without", "nor", "neither"}
)  # fmt: skip
NEGATION_WINDOW = 3
"""A negation this many words or fewer before a phrase, in the same clause, negates it."""


def words(text: str) -> list[str]:
    """Lower-case words, apostrophes kept inside words ("don't"), curly quotes folded."""
    return [w for clause in _clauses(text) for w in clause]


def _clauses(text: str) -> list[list[str]]:
    """Words per clause: punctuation ends a clause, and negation does not cross it
    ("No, that's fine" does not negate "fine")."""
    folded = text.lower().replace("\u2019", "'")
    return [_WORD.findall(part) for part in _CLAUSE_END.split(folded)]


def edit_distance(a: str, b: str, limit: int) -> int:
    """Edits (insert, delete, substitute, swap neighbouring letters) from `a` to `b`, or
    `limit + 1` once it is sure to be more than `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    # Optimal string alignment distance, row by row; a row whose best cell exceeds the limit
    # ends it early (words here are short, so this is a few dozen cells).
    before: list[int] = []
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, row = row, current
    return min(row[-1], limit + 1)


FUZZY_MIN_LETTERS = 5
"""Shorter words must be heard exactly: one edit turns "sue" into "see"."""
MAX_EDITS_PER_WORD = 2


def _window_matches(window: Sequence[str], wanted: Sequence[str]) -> bool:
    """Each long word of a phrase brings one edit to a budget the phrase shares: "cancel my
    count" is "cancel my account" (two edits, two long words), but "lower" is not "lawyer"
    (two edits, one long word). No word takes more than two, and short words none."""
    budget = sum(len(w) >= FUZZY_MIN_LETTERS for w in wanted)
    for heard, want in zip(window, wanted, strict=True):
        if heard == want:
            continue
        if len(want) < FUZZY_MIN_LETTERS:
            return False
        budget -= edit_distance(heard, want, MAX_EDITS_PER_WORD)
        if budget < 0:
            return False
    return True


@dataclass(frozen=True, slots=True)
class PhraseMatch:
    phrase: str
    start_word: int
    end_word: int
    """One past the last word of the match."""
    exact: bool
    negated: bool


def find_phrases(text: str, phrases: Sequence[str]) -> list[PhraseMatch]:
    """Every occurrence of every phrase in `text`, in order of position."""
    clauses = _clauses(text)
    heard = [w for clause in clauses for w in clause]
    clause_start: list[int] = []  # for each word, the index of the first word of its clause
    for clause in clauses:
        clause_start += [len(clause_start)] * len(clause)
    found = []
    for phrase in phrases:
        wanted = words(phrase)
        if not wanted:
            continue
        for start in range(len(heard) - len(wanted) + 1):
            window = heard[start : start + len(wanted)]
            if _window_matches(window, wanted):
                first = max(clause_start[start], start - NEGATION_WINDOW)
                before = heard[first:start]
                found.append(
                    PhraseMatch(
                        phrase=phrase,
                        start_word=start,
                        end_word=start + len(wanted),
                        exact=window == wanted,
                        negated=any(w in NEGATIONS or w.endswith("n't") for w in before),
                    )
                )
    return sorted(found, key=lambda m: (m.start_word, -len(m.phrase)))


AGREEMENT = (
    "yes", "yeah", "yep", "sure", "ok", "okay", "fine", "that's fine", "that is fine",
    "go ahead", "sure go ahead", "i agree", "i consent", "no problem", "that's ok",
    "that's okay", "of course", "absolutely", "you may", "you can", "alright", "all right",
)  # fmt: skip
REFUSAL = (
    "no", "nope", "don't record", "do not record", "please don't", "i don't consent",
    "i do not consent", "i don't agree", "i do not agree", "stop recording", "i object",
    "not okay", "not ok", "not fine", "no thanks", "no thank you", "i'd rather not",
    "i would rather not", "don't want this recorded", "don't want this call recorded",
    "don't want to be recorded", "do not want to be recorded", "not be recorded",
)  # fmt: skip
_QUESTION_OPENERS = frozenset(
    {"why", "what", "how", "who", "where", "when", "would", "could", "should", "do", "does",
     "did", "is", "are", "can", "will", "must", "may"}
)  # fmt: skip
# "No problem" and "no thanks" start with "no" but say the opposite of a bare "no".
_NOT_REFUSALS = frozenset({"no problem"})
ANSWER_WORDS_WITHIN = 3
"""A one-word answer ("yes", "no", "okay") counts only among an utterance's first words: "no"
in "nobody has fixed it, no one calls back" answers nothing."""


def _placed(match: PhraseMatch) -> bool:
    return match.end_word - match.start_word > 1 or match.start_word < ANSWER_WORDS_WITHIN


@dataclass(frozen=True, slots=True)
class ConsentAnswer:
    verdict: Literal["granted", "refused"]
    evidence: str
    """The phrase that decided it."""


def classify_consent(text: str) -> ConsentAnswer | None:
    """The answer an utterance gives to a recording disclosure, or None when it gives none.

    A question ("why would I agree?", "do I have to say yes?") is no answer; a negated
    agreement ("I don't agree", "not fine") is a refusal. An utterance that both agrees and
    refuses ("no, that's fine", "yeah no") is no answer either: recording on a guess is the
    costly mistake, so the caller is asked again rather than read one way.
    """
    heard = words(text)
    if not heard:
        return None
    # "Do you record?" asks; "Do not record this" tells.
    imperative = heard[0] == "do" and heard[1:2] == ["not"]
    if text.rstrip().endswith("?") or (heard[0] in _QUESTION_OPENERS and not imperative):
        return None
    refusals = [m for m in find_phrases(text, REFUSAL) if m.exact and _placed(m)]
    agreements = [m for m in find_phrases(text, AGREEMENT) if m.exact and _placed(m)]
    decisions: list[tuple[int, ConsentAnswer]] = []
    for m in agreements:
        if m.negated:
            decisions.append((m.start_word, ConsentAnswer("refused", f"not {m.phrase}")))
        else:
            decisions.append((m.start_word, ConsentAnswer("granted", m.phrase)))
    for m in refusals:
        covered = any(
            a.phrase in _NOT_REFUSALS and a.start_word <= m.start_word < a.end_word
            for a in agreements
        )
        if not covered:
            decisions.append((m.start_word, ConsentAnswer("refused", m.phrase)))
    verdicts = {answer.verdict for _, answer in decisions}
    if len(verdicts) != 1:
        return None
    return min(decisions, key=lambda d: d[0])[1]
