"""What a caller asks for, threatens or announces, read from one utterance's words. Pure.

A phrase rule names an intent by its parts, as data an admin can extend:
- `actions` × `targets`: an action ("put me through to", "cancel", "i'll get") followed, within
  `MAX_GAP_WORDS` words, by a target ("whoever runs", "account", "lawyer"): "put me through to
  whoever runs this department", "close the whole account down";
- `outcomes`: the target asked for in that state, after a want: "I want my subscription
  closed", "I need the contract ended today";
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

from media.detectors.text import NEGATIONS, PhraseMatch, find_phrases, words

MAX_GAP_WORDS = 5
"""Words allowed between an action and its target: "put me through to (the) target"."""
OUTCOME_GAP_WORDS = 1
"""Words allowed between a target and its outcome: "the account (fully) closed"."""
_WANTS = frozenset({"want", "need", "like", "wanted", "needed"})

_SENTENCE = re.compile(r"(?<=[.?!])\s+")
_BREAK = re.compile(r"[,;:]")
# A clause starts again at these words (and at punctuation): negation and tense do not cross.
_CLAUSE_WORDS = frozenset(
    {"and", "but", "so", "because", "cause", "if", "unless", "then", "or", "otherwise",
     "when", "since", "though", "although", "while", "until"}
)  # fmt: skip
_SUBJECTS = frozenset(
    {"i", "i'm", "i'll", "i'd", "i've", "we", "we'll", "we're", "you'll", "you're", "he",
     "she", "they", "he'll", "she'll", "they'll", "he's", "she's", "they're"}
)  # fmt: skip
"""A new subject starts a new clause too ("no I want a manager", untranscribed comma)."""
_MODIFIED = frozenset(
    {"booking", "bookings", "appointment", "appointments", "visit", "slot", "order", "orders",
     "call", "engineer", "technician", "date"}
)  # fmt: skip
_CONDITIONS = frozenset({"if", "unless", "whether"})
_OTHERS = frozenset(
    {"he", "she", "they", "he'll", "she'll", "they'll", "he's", "she's", "they're", "he'd",
     "she'd", "they'd"}
)  # fmt: skip
"""A clause whose subject is someone else ("they'll take it to court") is not the caller's."""
"""A clause they open is a condition ("if you report this to my credit"), not the act: the
act is the clause that follows ("…, I'm getting an attorney")."""
_PAST_OR_REPORTED = frozenset(
    {"told", "said", "says", "sorted", "spoke", "talked", "was", "were", "had", "did",
     "yesterday", "ago", "previously", "earlier", "last", "suggested", "recommended",
     "advised", "mentioned", "helped", "dealt", "used", "took", "wants", "needs", "reckons",
     "thinks", "reckoned", "thought"}
)  # fmt: skip
_REPORTING = frozenset(
    {"said", "says", "told", "tells", "reckons", "reckoned", "thinks", "thought", "suggested",
     "recommended", "advised", "mentioned"}
)  # fmt: skip
"""A clause that follows one ending in these ("my neighbour said | I should sue you", "he told
me | to get a lawyer") is reported speech."""
_RELATIVES = frozenset({"who", "that", "which", "whoever"})
_OPENERS = frozenset({"and", "but", "so", "oh", "well", "um", "uh", "also", "then", "okay"})
"""Words before a question's first word: "and how would I make a complaint?" asks about policy."""
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
    outcomes: Sequence[str] = (),
    phrases: Sequence[str] = (),
) -> IntentMatch | None:
    """The first place in `text` where the intent is expressed, or None.

    Words are matched over the whole sentence (a target may trail its action past a comma:
    "I'd like to speak to someone, please, whoever's in charge"), then read in the clause the
    match starts in, up to its target."""
    for sentence in _SENTENCE.split(text.lower().replace("\u2019", "'")):
        clauses = _clauses(sentence)
        heard = [w for c in clauses for w in c]
        if not heard:
            continue
        clause_of: list[int] = []  # for each word, its clause's index
        for n, c in enumerate(clauses):
            clause_of += [n] * len(c)
        question = sentence.rstrip().endswith("?")
        opening = [w for w in heard if w not in _OPENERS][:1]
        policy = bool(opening) and opening[0] in _POLICY_QUESTIONS
        joined = " ".join(heard)
        candidates: list[tuple[int, int, str]] = []  # (first word, target's first word, evidence)
        for m in _matches(joined, phrases):
            candidates.append((m.start_word, m.start_word, m.phrase))
        if actions and targets:
            found_targets = [t for t in _matches(joined, targets) if not _modifies(heard, t)]
            for a in _matches(joined, actions):
                for t in found_targets:
                    if a.end_word <= t.start_word <= a.end_word + MAX_GAP_WORDS:
                        evidence = f"{a.phrase} + {t.phrase}"
                        candidates.append((a.start_word, t.start_word, evidence))
            for o in _matches(joined, outcomes):
                for t in found_targets:
                    wanted = [n for n in range(t.start_word) if heard[n] in _WANTS]
                    if wanted and t.end_word <= o.start_word <= t.end_word + OUTCOME_GAP_WORDS:
                        evidence = f"{heard[wanted[-1]]} + {t.phrase} + {o.phrase}"
                        candidates.append((wanted[-1], t.start_word, evidence))
        for start, target_at, evidence in sorted(candidates):
            n = clause_of[start]
            first = clause_of.index(n)
            rest = heard[first:]
            # "…a letter, and how would I make a complaint?": a question clause, mid-sentence
            # (its subject, "I", opened a clause of its own after "and how would").
            asked = clauses[n - 1] if n > 0 and rest[0] in _SUBJECTS else rest
            opens = [w for w in asked if w not in _OPENERS]
            # A question word alone before the subject is a relative ("…, where I'll be
            # talking to my lawyer", "or" misheard) unless the sentence asks.
            asks_policy = policy or (
                n > 0
                and opens[:1] != []
                and opens[0] in _POLICY_QUESTIONS
                and (question or len(opens) > 1)
            )
            clause = _Clause(rest, n == 0 and question and rest[0].endswith("n't"), asks_policy)
            if n > 0 and _reports(clauses[n - 1]):
                continue
            if _counts(clause, start - first, target_at - first):
                return IntentMatch(evidence)
    return None


def _reports(clause: list[str]) -> bool:
    """Whether the clause introduces reported speech: "my neighbour said", "she told me"."""
    last = clause[-2:] if clause[-1:] in (["me"], ["us"]) else clause[-1:]
    return bool(last) and last[0] in _REPORTING


def _modifies(heard: list[str], target: PhraseMatch) -> bool:
    """ "my car service booking", "the account visit": the target names what the next word is
    about, not the thing itself."""
    after = heard[target.end_word] if target.end_word < len(heard) else ""
    return after in _MODIFIED


def _clauses(sentence: str) -> list[list[str]]:
    clauses: list[list[str]] = []
    for part in _BREAK.split(sentence):
        current: list[str] = []
        for word in words(part):
            if current and (word in _CLAUSE_WORDS or word in _SUBJECTS):
                clauses.append(current)
                current = []
            current.append(word)
        if current:
            clauses.append(current)
    return clauses


def _matches(text: str, phrases: Sequence[str]) -> list[PhraseMatch]:
    return find_phrases(text, phrases) if phrases else []


def _counts(clause: _Clause, start: int, target_at: int) -> bool:
    """`start` and `target_at` are word positions in `clause.words` (which runs on to the end
    of the sentence): negation counts up to the target ("I'm not going to complain")."""
    said = clause.words
    before = said[1:target_at] if clause.asks_back else said[:target_at]
    # A negation in a relative clause is not the caller's: "get me someone who can't…" asks.
    if any(
        (w in NEGATIONS or w.endswith("n't")) and (n == 0 or before[n - 1] not in _RELATIVES)
        for n, w in enumerate(before)
    ):
        return False
    if clause.policy_question or said[0] in _CONDITIONS or said[0] in _OTHERS:
        return False
    return not _PAST_OR_REPORTED.intersection(said[: max(target_at, start) + 1])
