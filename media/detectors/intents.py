"""What a caller asks for, threatens or announces, read from one utterance's words. Pure.

A phrase rule names an intent by its parts, as data an admin can extend:
- `actions` × `targets`: an action ("put me through to", "cancel", "i'll get") followed, within
  `MAX_GAP_WORDS` words, by a target ("whoever runs", "account", "lawyer"): "put me through to
  whoever runs this department", "close the whole account down";
- `phrases`: words that say it alone ("better business bureau", "see you in court").

Words are matched as `media.detectors.text.find_phrases` matches them (fuzzily, for what
transcription gets wrong). What is matched is then read in its clause, so that only what the
caller does *now* counts:
- negation scoped to its clause: "there's no need to fetch a manager", "I'm not going to
  cancel", but not "if this isn't fixed, I'll get my lawyer" (another clause);
- reported speech and past events: "my supervisor told me to ring you", "a manager sorted it
  out last time";
- questions about policy: "what's your cancellation policy?", "how do complaints work?"; a
  polite request ("can I speak to a manager?") still counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from media.detectors.text import NEGATIONS, PhraseMatch, find_phrases

MAX_GAP_WORDS = 5
"""Words allowed between an action and its target: "put me through to (the) target"."""

_SENTENCE = re.compile(r"(?<=[.?!])\s+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_BREAK = re.compile(r"[,;:]")
# A clause starts again at these words (and at punctuation): negation and tense do not cross.
_CLAUSE_WORDS = frozenset(
    {"and", "but", "so", "because", "cause", "if", "unless", "then", "or", "otherwise",
     "when", "since", "though", "although", "while", "until"}
)  # fmt: skip
_SUBJECTS = frozenset(
    {"i", "i'm", "i'll", "i'd", "i've", "we", "we'll", "we're", "you'll", "you're", "he",
     "she", "they"}
)  # fmt: skip
"""A new subject starts a new clause too ("no I want a manager", untranscribed comma)."""
_CONDITIONS = frozenset({"if", "unless", "whether"})
"""A clause they open is a condition ("if you report this to my credit"), not the act: the
act is the clause that follows ("…, I'm getting an attorney")."""
_PAST_OR_REPORTED = frozenset(
    {"told", "said", "says", "sorted", "spoke", "talked", "was", "were", "had", "did",
     "yesterday", "ago", "previously", "earlier", "last", "suggested", "recommended",
     "advised", "mentioned", "helped", "dealt", "used"}
)  # fmt: skip
_POLICY_QUESTIONS = frozenset(
    {"what", "what's", "whats", "how", "how's", "when", "where", "why", "which", "who"}
)
"""Questions that ask about something ("how do I cancel?", "what's the complaints process?"),
unlike requests put as questions ("can I speak to…", "is there someone above you…")."""


@dataclass(frozen=True, slots=True)
class IntentMatch:
    evidence: str
    """The words that matched and how: "put me through to + whoever runs"."""


@dataclass(frozen=True, slots=True)
class _Clause:
    words: list[str]
    asks_back: bool
    """It opens a question with a negation: "can't you put me through?" asks, not denies."""
    policy_question: bool


def find_intent(
    text: str,
    *,
    actions: Sequence[str] = (),
    targets: Sequence[str] = (),
    phrases: Sequence[str] = (),
) -> IntentMatch | None:
    """The first place in `text` where the intent is expressed, or None."""
    for sentence in _SENTENCE.split(text.lower().replace("\u2019", "'")):
        question = sentence.rstrip().endswith("?")
        first = _WORD.findall(sentence)[:1]
        policy = bool(first) and first[0] in _POLICY_QUESTIONS
        for n, words in enumerate(_clauses(sentence)):
            asks_back = n == 0 and question and words[0].endswith("n't")
            clause = _Clause(words, asks_back, policy)
            if (found := _in_clause(clause, actions, targets, phrases)) is not None:
                return found
    return None


def _clauses(sentence: str) -> list[list[str]]:
    clauses: list[list[str]] = []
    for part in _BREAK.split(sentence):
        current: list[str] = []
        for word in _WORD.findall(part):
            if current and (word in _CLAUSE_WORDS or word in _SUBJECTS):
                clauses.append(current)
                current = []
            current.append(word)
        if current:
            clauses.append(current)
    return clauses


def _in_clause(
    clause: _Clause, actions: Sequence[str], targets: Sequence[str], phrases: Sequence[str]
) -> IntentMatch | None:
    text = " ".join(clause.words)
    candidates: list[tuple[int, str]] = []  # (first word, evidence)
    for m in _matches(text, phrases):
        candidates.append((m.start_word, m.phrase))
    if actions and targets:
        found_targets = _matches(text, targets)
        for a in _matches(text, actions):
            for t in found_targets:
                if a.end_word <= t.start_word <= a.end_word + MAX_GAP_WORDS:
                    candidates.append((a.start_word, f"{a.phrase} + {t.phrase}"))
    for start, evidence in sorted(candidates):
        if _counts(clause, start):
            return IntentMatch(evidence)
    return None


def _matches(text: str, phrases: Sequence[str]) -> list[PhraseMatch]:
    return find_phrases(text, phrases) if phrases else []


def _counts(clause: _Clause, start: int) -> bool:
    words = clause.words
    before = words[1:start] if clause.asks_back else words[:start]
    if any(w in NEGATIONS or w.endswith("n't") for w in before):
        return False
    if clause.policy_question or words[0] in _CONDITIONS:
        return False
    return not _PAST_OR_REPORTED.intersection(words)
