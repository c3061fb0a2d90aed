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
from functools import lru_cache
from typing import Literal

from rapidfuzz import process
from rapidfuzz.distance import OSA

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


FUZZY_MIN_LETTERS = 5
"""Shorter words must be heard exactly: one edit turns "sue" into "see"."""
MAX_EDITS_PER_WORD = 2


@dataclass(frozen=True, slots=True)
class PhraseMatch:
    phrase: str
    start_word: int
    end_word: int
    """One past the last word of the match."""
    exact: bool
    negated: bool


@dataclass(frozen=True, slots=True)
class _PhraseList:
    phrases: tuple[tuple[str, tuple[str, ...], int], ...]
    """(phrase, its words, its edit budget: one per long word)."""
    long_words: tuple[str, ...]
    """The words of five letters or more across all phrases: the ones heard fuzzily."""


@lru_cache(maxsize=256)
def _phrase_list(phrases: tuple[str, ...]) -> _PhraseList:
    compiled = []
    for phrase in phrases:
        wanted = tuple(words(phrase))
        if wanted:
            budget = sum(len(w) >= FUZZY_MIN_LETTERS for w in wanted)
            compiled.append((phrase, wanted, budget))
    long_words = sorted({w for _, ws, _ in compiled for w in ws if len(w) >= FUZZY_MIN_LETTERS})
    return _PhraseList(tuple(compiled), tuple(long_words))


def find_phrases(text: str, phrases: Sequence[str]) -> list[PhraseMatch]:
    """Every occurrence of every phrase in `text`, in order of position.

    Each long word of a phrase brings one edit to a budget the phrase shares: "cancel my
    count" is "cancel my account" (two edits, two long words), but "lower" is not "lawyer"
    (two edits, one long word). No word takes more than two, and short words none.

    Phrase rules read every partial of every live call, so this is an index, not a scan: each
    word heard is compared once with every long phrase word (rapidfuzz, in C++), and a phrase
    is tried only where its first word was heard."""
    clauses = _clauses(text)
    heard = [w for clause in clauses for w in clause]
    clause_start: list[int] = []  # for each word, the index of the first word of its clause
    for clause in clauses:
        clause_start += [len(clause_start)] * len(clause)
    listed = _phrase_list(tuple(phrases))
    near: dict[str, dict[str, int]] = {}
    """Heard word -> the phrase words it may stand for, with the edits between them."""
    for word in set(heard):
        near[word] = {word: 0}
        for like, edits, _ in process.extract(
            word, listed.long_words, scorer=OSA.distance,
            score_cutoff=MAX_EDITS_PER_WORD, limit=None,
        ):  # fmt: skip
            near[word].setdefault(like, int(edits))
    starts: dict[str, list[int]] = {}
    """Phrase word -> where in the text it may have been heard."""
    for at, word in enumerate(heard):
        for like in near[word]:
            starts.setdefault(like, []).append(at)
    found = []
    for phrase, wanted, budget in listed.phrases:
        for start in starts.get(wanted[0], ()):
            if start + len(wanted) > len(heard):
                break
            window = tuple(heard[start : start + len(wanted)])
            if _window_matches(window, wanted, budget, near):
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


def _window_matches(
    window: Sequence[str], wanted: Sequence[str], budget: int, near: dict[str, dict[str, int]]
) -> bool:
    for heard, want in zip(window, wanted, strict=True):
        if heard == want:
            continue
        if len(want) < FUZZY_MIN_LETTERS:
            return False
        edits = near[heard].get(want)
        if edits is None:
            return False
        budget -= edits
        if budget < 0:
            return False
    return True


AGREEMENT = (
    "yes", "yeah", "yep", "yup", "yes please", "sure", "sure thing", "ok", "okay", "fine",
    "that's fine", "that is fine", "it's fine", "fine by me", "fine with me", "go ahead",
    "go for it", "sure go ahead", "i agree", "i consent", "no problem", "not a problem",
    "no worries", "that's ok", "that's okay", "that's alright", "that's all right",
    "alright by me", "of course", "absolutely", "certainly", "definitely", "you may", "you can",
    "alright", "all right", "i don't mind", "don't mind", "doesn't bother me", "i suppose",
    "i suppose so", "i guess", "i guess so", "by all means", "please do", "works for me",
    "happy with that", "i'm happy", "i'm okay with that", "i'm ok with that",
    "i'm fine with that", "that works", "no objection", "no objections", "record away",
    "uh huh", "mm hmm", "yes you can record", "you can record", "no dramas", "no bother",
    "not a bother", "no issue", "no issues", "not an issue", "no probs", "feel free",
    "record it", "go ahead and record", "happy to be recorded", "happy for you to record",
    "that's no problem", "yeah go on", "go on then", "sounds good", "fair enough", "no worry",
    "fine with", "okay with", "ok with", "happy with", "alright with", "all right with",
    "aye", "ja", "righto", "crack on", "on you go", "go for your life", "if you must",
    "i'll allow it", "allow it", "you have my permission", "you've got my permission",
    "that's acceptable", "acceptable", "i'm glad", "glad it's", "glad this", "glad you're",
    "be glad", "good that", "suits me", "keep it recorded", "keep this one", "do record",
    "please record", "record this", "i wouldn't object", "wouldn't object", "don't object",
    "i've no objection", "no objection whatsoever", "that's grand", "grand", "say yes",
    "i'm agreeable", "that's cool", "cool with me", "not a problem at all",
)  # fmt: skip
POLITE_TAGS = (
    "if that's alright", "if that's all right", "if that's okay", "if that's ok",
    "if it's okay", "if it's ok", "if it's alright", "if you don't mind", "if that's fine",
    "if it's all the same", "if that's cool", "nothing personal",
)  # fmt: skip
"""Said with an answer, not as one: "no, I'd rather you didn't, if that's alright"."""
REFUSAL = (
    "no", "nope", "nah", "no way", "no thanks", "no thank you", "don't record",
    "do not record", "please don't", "i'd rather not", "i would rather not", "rather not",
    "rather you didn't", "rather you did not", "i'd prefer not", "prefer not",
    "prefer you didn't", "prefer that you didn't", "i don't consent", "i do not consent",
    "don't consent", "i don't agree", "i do not agree", "i don't want", "i do not want",
    "not comfortable", "not happy", "not okay", "not ok", "not fine", "not alright",
    "not really", "absolutely not", "definitely not", "certainly not", "of course not",
    "i object", "i do mind", "i decline", "opt out", "stop recording", "stop the recording",
    "turn it off", "switch it off", "turn that off", "switch that off", "turn off the recording",
    "switch off the recording", "turn the recording off", "switch the recording off",
    "don't want this recorded", "don't want this call recorded", "don't want to be recorded",
    "do not want to be recorded", "not be recorded", "not to be recorded", "don't keep",
    "do not keep", "delete the recording", "no recording", "don't want", "i'd rather",
    "not at all", "not particularly", "rather it wasn't", "rather this wasn't",
    "prefer it wasn't", "prefer this wasn't", "wasn't recorded", "weren't recorded",
    "sooner you didn't", "sooner not", "i'll pass", "i will pass", "pass on", "leave it off",
    "switched that off", "switched it off", "can you not", "could you not", "say no",
    "opt me out", "unrecorded", "don't record me", "rather you switched", "rather you turned",
    "rather you switch", "rather you turn",
    *(f"not {adverb}{attitude}" for adverb in ("", "very ", "really ", "too ", "that ",
      "particularly ", "overly ") for attitude in ("keen", "comfy", "comfortable", "happy")),
)  # fmt: skip
RECORDING_WORDS = frozenset(
    {"record", "recorded", "recording", "recordings", "records", "tape", "taped", "taping",
     "consent"}
)  # fmt: skip
"""A later turn speaks about recording only if it names it: "no, the parcel never came"
answers the agent's other question, "no, please don't record me" answers the disclosure."""
_QUESTION_OPENERS = frozenset(
    {"why", "what", "how", "who", "where", "when", "would", "could", "should", "do", "does",
     "did", "is", "are", "can", "will", "must", "may"}
)  # fmt: skip
ANSWER_WORDS_WITHIN = 3
"""A one-word answer ("yes", "no", "okay") counts only among an utterance's first words, fillers
not counted, or as a clause of its own: "no" in "nobody has fixed it, no one calls back"
answers nothing, "provided it stays in the company, sure" does."""
FILLERS = frozenset({"um", "uh", "erm", "er", "oh", "ah", "hmm", "mm", "well", "actually", "look"})
BARE_YES = frozenset({"yes", "yeah", "yep", "yup", "aye", "ja", "yes please"})
BARE_NO = frozenset({"no", "nope", "nah", "not at all", "not really", "not particularly"})
"""Answers whose meaning is the request's polarity: "yes" to "do you mind?" refuses."""
INVERTED_ASKS = ("mind", "object", "objection", "objections", "opt out", "rather not",
                 "prefer not", "rather we didn't", "prefer we didn't")  # fmt: skip
"""A request that asks whether the caller objects: answered "no", it is granted."""


def names_recording(heard: Sequence[str]) -> bool:
    """Whether these words name recording ("recording's fine" names it too)."""
    return any(w.split("'", 1)[0] in RECORDING_WORDS for w in heard)


def asks_if_objecting(text: str) -> bool:
    """Whether a request asks for an objection ("do you mind?", "any objection?"), so that a
    bare "no" grants and a bare "yes" refuses."""
    return any(m.exact for m in find_phrases(text, INVERTED_ASKS))


def _longest(matches: list[PhraseMatch]) -> list[PhraseMatch]:
    """Matches not inside a longer one: "no problem" agrees, its "no" does not refuse, and
    "not okay" refuses, its "okay" does not agree."""
    return [
        m
        for m in matches
        if not any(
            o is not m
            and o.start_word <= m.start_word
            and m.end_word <= o.end_word
            and o.end_word - o.start_word > m.end_word - m.start_word
            for o in matches
        )
    ]


@dataclass(frozen=True, slots=True)
class ConsentAnswer:
    verdict: Literal["granted", "refused"]
    evidence: str
    """The phrase that decided it."""


_POLITE_ASKS = (["can", "you"], ["could", "you"], ["would", "you"], ["will", "you"])
""""Can you switch the recording off?" asks for something: it is a request, not a question."""


def is_question(text: str) -> bool:
    """Asked, not told: a question mark, or a question word first ("do you record?"), but not
    an imperative that opens with "do" ("do not record this") nor a polite request ("could you
    switch it off?")."""
    heard = [w for w in words(text) if w not in FILLERS]  # "um, who gets to listen to it"
    if not heard:
        return False
    if heard[:2] in _POLITE_ASKS or heard[0] == "please":
        return False
    imperative = heard[0] == "do" and heard[1:2] in (["not"], ["it"])
    return text.rstrip().endswith("?") or (heard[0] in _QUESTION_OPENERS and not imperative)


def _answering_part(text: str) -> str:
    """The utterance without the questions in it: "no, I'm not comfortable with that, what
    balance?" answers before it asks; "yeah, speaking. Are you recording this? Because I don't
    want it recorded." answers after. A question is a part that ends in a question mark, or a
    first part that opens with a question word ("do I have to say yes"); a polite request
    ("could you not record it?") is no question."""
    parts = re.split(r"(?<=[,.;:!?])\s+", text.strip())
    return " ".join(
        part
        for n, part in enumerate(parts)
        if not (is_question(part) and (n == 0 or part.rstrip().endswith("?")))
    )


def classify_consent(
    text: str, *, about_recording: bool = False, inverted: bool = False
) -> ConsentAnswer | None:
    """The answer an utterance gives to a recording request, or None when it gives none.

    A question ("why would I agree?", "do I have to say yes?") is no answer; a negated
    agreement ("I don't agree", "not fine") is a refusal. Where words disagree, a phrase of
    several words outweighs a bare word ("ja, no, that's fine" grants); an utterance that
    still both agrees and refuses ("yeah, no") is no answer: recording on a guess is the costly
    mistake, so the caller is asked again rather than read one way.

    With `inverted` (the request asked whether the caller objects: "do you mind?"), a bare
    "no" grants and a bare "yes" refuses. With `about_recording` (a turn that is not the answer
    to a request), only an utterance that names recording counts, and only by more than a
    bare word.
    """
    # "Is this being recorded? I'd rather it wasn't": the question names what the answer is about.
    if about_recording and not names_recording(words(text)):
        return None
    text = _answering_part(text)
    clauses = _clauses(text)
    heard = [w for clause in clauses for w in clause]
    if not heard:
        return None
    spoken = [n for n, w in enumerate(heard) if w not in FILLERS]  # word index of each non-filler
    alone: set[tuple[int, int]] = set()  # (first, end) of each clause, fillers left out
    at = 0
    for clause in clauses:
        kept = [at + n for n, w in enumerate(clause) if w not in FILLERS]
        if kept:
            alone.add((kept[0], kept[-1] + 1))
        at += len(clause)
    decisions: list[tuple[int, int, ConsentAnswer]] = []  # (words, start, answer)
    agreeing, polite = frozenset(AGREEMENT), frozenset(POLITE_TAGS)
    found = [m for m in find_phrases(text, AGREEMENT + REFUSAL + POLITE_TAGS) if m.exact]
    for m in _longest(found):
        length = m.end_word - m.start_word
        if m.phrase in polite or (about_recording and length == 1):
            continue
        placed = m.start_word in spoken and spoken.index(m.start_word) < ANSWER_WORDS_WITHIN
        if length == 1 and not placed and (m.start_word, m.end_word) not in alone:
            continue
        verdict: Literal["granted", "refused"]
        if inverted and (m.phrase in BARE_YES or m.phrase in BARE_NO):
            verdict = "refused" if m.phrase in BARE_YES else "granted"
            evidence = f"{m.phrase} (to an objection asked)"
        elif m.phrase in agreeing:
            verdict = "refused" if m.negated else "granted"
            evidence = f"not {m.phrase}" if m.negated else m.phrase
        else:
            verdict, evidence = "refused", m.phrase
        decisions.append((length, m.start_word, ConsentAnswer(verdict, evidence)))
    if len({answer.verdict for _, _, answer in decisions}) > 1:
        # Bare words give way to phrases; phrases that still disagree leave no answer.
        decisions = [d for d in decisions if d[0] > 1]
    if len({answer.verdict for _, _, answer in decisions}) != 1:
        return None
    return min(decisions, key=lambda d: d[1])[2]


CONSENT_ASKS = (
    "is that ok", "is that okay", "is that alright", "is that all right", "is that fine",
    "is this ok", "is this okay", "is this alright", "is this all right", "is this fine",
    "is it ok", "is it okay", "is it alright", "is it all right", "is it fine",
    "are you ok with", "are you okay with", "are you alright with", "are you all right with",
    "are you happy", "are you comfortable", "are you fine with", "do you agree",
    "do you consent", "do we have your consent", "do i have your consent",
    "do we have your permission", "do i have your permission", "have your permission",
    "have your consent", "do you mind", "would you mind", "may we record", "may i record",
    "can we record", "can i record", "okay to record", "ok to record", "alright to record",
    "fine to record", "do you object", "any objection", "that okay with you",
    "that ok with you", "that alright with you", "that all right with you", "that fine with you",
    "okay with you", "ok with you", "alright with you", "all right with you",
    "that alright", "that all right", "that okay", "that ok", "that fine", "you happy",
    "happy for me to", "happy for us to", "happy to continue", "happy for you",
    "say yes or no", "agree to this call", "agree to being recorded", "agree to recording",
    "say yes", "you consent", "you agree", "your consent", "your permission", "alright if",
    "all right if", "okay if", "ok if", "fine if", "if you allow it", "if you'll allow it",
    "with your permission", "okay for us to", "okay for me to", "alright for us to",
    "alright for me to", "fine for us to", "fine for me to", "want to opt out",
    "like to opt out", "wish to opt out",
)  # fmt: skip
_ALRIGHT_MISHEARD = re.compile(
    r"\b(?:i'll write|are right|all write|all rate)(?= if\b| with\b|\s*[?.!,]|\s*$)"
    r"|\ball right\b|'ll rate\b"
)
"""How a small engine often hears "alright" in a request ("calls are recorded, that I'll write
with you?", "that'll rate"); a recording disclosure has no call to say any of these for what
they are. "all right" is folded too: "is recording all right by you?" asks as "alright" does."""
_TAGS = frozenset({"okay", "ok", "alright", "right", "fine", "yeah"})
ACCEPTANCE = frozenset(
    {"okay", "ok", "alright", "fine", "acceptable", "agreeable", "cool", "happy", "comfortable",
     "mind", "object", "objection", "objections", "allow", "permission", "continue", "proceed",
     "good", "opt"}
)  # fmt: skip
"""A yes/no question with one of these, after a disclosure, asks whether it is accepted ("is
recording alright by you?", "happy with that?"); "can I take your name?" asks something else,
and so does "does the owner know we need their consent?" (consent is asked of "you":
`CONSENT_ASKS`)."""
_INTERJECTIONS = frozenset({"okay", "ok", "alright", "right", "good", "great", "so", "and"})
_POINTING = frozenset({"that", "this", "it", "recording", "being"})
_WH = frozenset({"how", "what", "what's", "who", "where", "when", "why", "which"})
_KEY_WORDS = {"one": "1", "two": "2", "three": "3", "nine": "9", "zero": "0"}
_PRESS_WORDS = frozenset({"press", "push", "dial", "key", "pressing"})
_KEY_MEANINGS: dict[str, Literal["granted", "refused"]] = {
    "agree": "granted", "accept": "granted", "consent": "granted", "continue": "granted",
    "allow": "granted", "approve": "granted", "yes": "granted", "okay": "granted",
    "decline": "refused", "refuse": "refused", "object": "refused", "opt": "refused",
    "not": "refused", "don't": "refused", "no": "refused", "didn't": "refused",
    "rather": "refused", "without": "refused", "happy": "granted", "unrecorded": "refused",
}  # fmt: skip
_SENTENCE = re.compile(r"[.?!;]")


def asks_for_consent(text: str) -> bool:
    """Whether the agent's words ask the other party to agree ("is that okay with you?",
    "do I have your permission?", "press 1 to agree", a tag: "…we record calls, alright?")
    rather than only tell them."""
    if keypad_choices(text):
        return True
    text = _ALRIGHT_MISHEARD.sub(
        lambda m: " alright" if m.group().startswith("'") else "alright",
        text.lower().replace("\u2019", "'"),
    )
    # Negation does not matter here: "is that not okay with you?" asks all the same.
    if any(m.exact for m in find_phrases(text, CONSENT_ASKS)):
        return True
    for sentence in re.findall(r"[^.?!;]+[.?!;]?", text.lower().replace("\u2019", "'")):
        asked = [w for w in _WORD.findall(sentence) if w not in FILLERS]
        while asked and asked[0] in _INTERJECTIONS:
            asked.pop(0)  # "okay, how can I help?" asks about something else
        # Transcription often drops the question mark: "are you alright with that." asks, and
        # so does a short "happy with that." (not "happy to help.").
        short = len(asked) <= 4 and bool(_POINTING.intersection(asked))
        question = sentence.endswith("?") or is_question(sentence) or short
        if question and asked and asked[0] not in _WH and ACCEPTANCE.intersection(asked):
            return True
    clauses = [clause for clause in _clauses(text) if clause]
    tag = clauses[-1] if clauses else []
    if not text.rstrip().endswith("?"):
        # The question mark dropped from a tag that points back at a disclosure: "…we record
        # calls for training, that's all right." asks; "…so you're fine." tells.
        pointing = tag[:1] in (["that"], ["that's"]) and len(tag) <= 3
        told = [w for clause in clauses[:-1] for w in clause]
        return pointing and bool(ACCEPTANCE.intersection(tag)) and names_recording(told)
    # A tag question ("…we record calls, right?").
    return 0 < len(tag) <= 3 and tag[0] not in _WH and bool(_TAGS.intersection(tag))


def keypad_choices(text: str) -> dict[str, Literal["granted", "refused"]]:
    """The keys a request offers and what each means: "press 1 to agree or 2 to decline", "if
    you agree, press one". Each key takes the meaning word nearest to it between its
    neighbouring keys; only sentences that say "press" (or push, dial) offer keys."""
    folded = text.lower().replace("\u2019", "'")
    choices: dict[str, Literal["granted", "refused"]] = {}
    for sentence in _SENTENCE.split(folded):
        heard = _WORD.findall(sentence)
        if not _PRESS_WORDS.intersection(heard):
            continue
        keys = [i for i, w in enumerate(heard) if w.isdigit() and len(w) == 1 or w in _KEY_WORDS]
        claimed = 0  # words up to here belong to an earlier key
        for n, at in enumerate(keys):
            end = keys[n + 1] if n + 1 < len(keys) else len(heard)
            # The words after a key say what it means ("press 1 to agree"); failing those, the
            # words before it that no earlier key took ("if you agree, press one").
            for side, reach in ((heard[at + 1 : end], end), (heard[claimed:at], at)):
                meanings = {_KEY_MEANINGS[w] for w in side if w in _KEY_MEANINGS}
                if meanings:
                    # "press 2 to continue without recording": a refusal among its words decides.
                    key = _KEY_WORDS.get(heard[at], heard[at])
                    choices[key] = "refused" if "refused" in meanings else "granted"
                    claimed = reach
                    break
    return choices
