"""Sensitive data found in what a speaker said, and replaced before it leaves memory. Pure.

`redact(text)` returns the text with each sensitive span replaced by its kind in brackets
(`[card]`, `[ssn]`…) and how many of each it replaced, never what they were. Speakers say numbers
as words, and engines write them either way, so number words are first turned into digits
(text2num's `alpha2digit`, plus what it leaves: "oh" for zero between digits, "double four"),
and the spans are looked for in that form; a text with nothing to redact is returned exactly as
it came.

What counts as sensitive:
- `card`: 13–19 digits passing the Luhn check, said or written in any grouping; 8 or more
  where the words name a card (an engine drops and mishears digits of a long number); 6 or
  more where this speaker's own words name it ("my card is 4111 1111…": read out in parts, its
  next part following in the next utterance, `continues`); 12–19 unnamed digits that start the
  way a card network's numbers do. A number the words name as a tracking, order or reference
  number is a card only if it passes the check, and never a phone number.
- `ssn`: 9 digits written 3-2-4 (`123-45-6789`), or 9 digits where the words name a social
  security number.
- `account`: 6–17 digits where the words name a bank account, routing number or sort code
  (a customer account number with a company is not a bank's).
- `cvv`: 3–4 digits where the words name the card's security code.
- `expiry`: a month and year where the words name an expiry date.
- `dob`: a date where the words name a date of birth.
- `phone`: a number the `phonenumbers` library takes as a valid phone number (US and UK
  without a country code, any with one).
- `email`: an address, written or spoken ("jane dot doe at example dot com").
"Where the words name" means shortly before the number (NAMED_WITHIN), in the same text or in
its `context`: what the other speaker asked just before ("and the expiry date?") and what this
one said last.

`partial=True` is for the words so far of an utterance still being spoken: a card being read
out is not yet 13 digits long, so any run of 8 digits or more is hidden as `[digits]` there.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

import phonenumbers
from text_to_num import alpha2digit

from media.events import REDACTION_KINDS, RedactionKind

Kind: TypeAlias = RedactionKind | Literal["digits"]
KINDS: Final[frozenset[Kind]] = frozenset(REDACTION_KINDS)
"""Every kind an org may choose to redact (`digits` is partials' own)."""
PARTIAL_DIGITS: Final = 8
CARD_NAMED_DIGITS: Final = 8
"""Where the words (or the question before) name a card: this many digits or more are its."""
CARD_PART_DIGITS: Final = 6
"""A card's first part read out, where the words name it (fewer: its last four, a year)."""
NAMED_WITHIN: Final = 50
"""How far before a number (in characters) the words naming what it is may be."""
PHONE_REGIONS: Final = ("US", "GB")
"""Where a number said without its country code is read as a phone number."""

_DIGIT_WORD = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|\d)"
_REPEATED = re.compile(rf"\b(double|triple)\s+({_DIGIT_WORD})\b", re.IGNORECASE)
_ORDINARY_NAME = re.compile(
    r"\b(?:tracking|order|reference|ref|invoice|policy|claim|booking|case|ticket|"
    r"confirmation|serial|model|parcel|consignment)\b",
    re.I,
)
_CARD_NETWORK = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6(?:011|5|4[4-9])")
"""The first digits of Visa, Mastercard, Amex and Discover numbers."""
_NUMBER_WORDS = (
    "zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    "fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
    "seventy|eighty|ninety|hundred|thousand|million|billion|double|triple|first|second|third|"
    "fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|fourteenth|"
    "fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth"
)
_MAY_HOLD = re.compile(rf"\d|@|\b(?:{_NUMBER_WORDS}|dot)\b", re.IGNORECASE)
"""Every text with something to redact has one of these (most utterances have none)."""
_PLACEHOLDER = re.compile(r"\[[a-z]+\]")
_TOKENS = re.compile(r"\w+|\W+")
_DIGIT_TOKEN = re.compile(rf"{_DIGIT_WORD}|\d+", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"\d(?:[ ,.\-/]{0,2}\d)*")
_SSN_WRITTEN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SPOKEN_EMAIL = re.compile(
    r"\b(?:[a-z0-9]+ (?:dot|underscore|dash) )*[a-z0-9]+ at (?:[a-z0-9-]+ dot )+"
    r"(?:com|net|org|edu|gov|io|co|uk|us|info|biz|me)\b",
    re.IGNORECASE,
)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_YEAR = r"(?:\d{4}|\d{2} \d{2}|\d{2})"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = re.compile(
    rf"\b(?:(?:the )?{_DAY}(?: of)? {_MONTH},? {_YEAR}|{_MONTH} (?:the )?{_DAY},? {_YEAR}|"
    rf"\d{{1,2}}[/.-]\d{{1,2}}[/.-]{_YEAR})\b",
    re.IGNORECASE,
)
_MONTH_YEAR = re.compile(
    rf"\b(?:{_MONTH},? {_YEAR}|\d{{1,2}} ?[/-] ?\d{{2,4}}|\d{{1,2}} \d{{2}})\b", re.IGNORECASE
)
_CONTEXT: Final[dict[Kind, re.Pattern[str]]] = {
    "card": re.compile(
        # "the back of the card" is where its security code is, not the card's number
        r"(?<!back of the )\b(?:card|visa|master ?card|amex|american express|discover|"
        r"long number)\b",
        re.I,
    ),
    "ssn": re.compile(r"\b(?:social security|social|ssn|s s n)\b", re.I),
    "account": re.compile(
        r"\b(?:bank account|account at the bank|checking account|savings account|"
        r"bank details|routing|sort code|iban)\b",
        re.I,
    ),
    "cvv": re.compile(
        r"\b(?:security code|cvv|cvc|cv2|card verification|back of the card|"
        r"(?:three|3|four|4) digits on the back)\b",
        re.I,
    ),
    "expiry": re.compile(r"\b(?:expir\w*|expiry|valid (?:until|thru|through)|exp date)\b", re.I),
    "dob": re.compile(r"\b(?:date of birth|born|birthday|dob|d o b|birth date)\b", re.I),
}


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    counts: Counter[Kind]
    """Spans replaced, by kind."""
    trailing: Kind | None = None
    """The kind of the span the text ends with, if it ends with one: a number read out may go
    on in the speaker's next utterance (`redact`'s `continues`)."""

    @property
    def changed(self) -> bool:
        return bool(self.counts)


def redact(
    text: str,
    kinds: Iterable[Kind] = KINDS,
    *,
    partial: bool = False,
    context: str = "",
    continues: Kind | None = None,
) -> Redacted:
    """`text` with the sensitive spans of `kinds` replaced (see the module's docstring).
    `context`: what was said just before, by the other speaker ("what's the security code on
    the back?") or this one: it may name what a bare number is. `continues`: the kind this
    speaker's previous utterance ended with (`Redacted.trailing`): digits this one starts with
    go on with it (a card read out in two breaths)."""
    wanted = frozenset(kinds)
    if not wanted or (continues is None and not _MAY_HOLD.search(text)):
        return Redacted(text, Counter())
    spoken = _digits(text)
    # What was redacted from the context names nothing ("[card]" is not the word "card").
    context = _digits(_PLACEHOLDER.sub(" ", context)) if context else ""
    spans = _Finder(spoken, context, wanted, partial).find(continues)
    if not spans:
        return Redacted(text, Counter())
    out, counts, at = [], Counter[Kind](), 0
    trailing: Kind | None = None
    for start, end, kind in sorted(spans):
        if start < at:
            continue  # inside a span already replaced
        out += [spoken[at:start], f"[{kind}]"]
        counts[kind] += 1
        at = end
        trailing = kind
    rest = spoken[at:]
    out.append(rest)
    return Redacted("".join(out), counts, trailing if not rest.strip(" .,;!?") else None)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    """Number words as digits: "four one double one" → "4 1 1 1"."""

    def repeat(m: re.Match[str]) -> str:
        times = 2 if m[1].lower() == "double" else 3
        return " ".join([m[2]] * times)

    text = _REPEATED.sub(repeat, text)
    digits: str = alpha2digit(_zeros(text), "en")  # untyped library
    return digits


def _zeros(text: str) -> str:
    """ "oh" said for zero: next to another digit ("two oh four"), not as a word ("oh well")."""
    tokens = _TOKENS.findall(text)
    words = [i for i, t in enumerate(tokens) if t[0].isalnum()]
    for k, i in enumerate(words):
        if tokens[i].lower() != "oh":
            continue
        near = [words[j] for j in (k - 1, k + 1) if 0 <= j < len(words)]
        if any(_DIGIT_TOKEN.fullmatch(tokens[j]) for j in near):
            tokens[i] = "zero"
    return "".join(tokens)


_NAMED_BY_DIGITS: Final[tuple[Kind, ...]] = ("card", "ssn", "account", "cvv")
_NAMED_DATES: Final[tuple[Kind, ...]] = ("dob", "expiry")


class _Finder:
    """The sensitive spans of one text, as (start, end, kind)."""

    def __init__(self, text: str, context: str, wanted: frozenset[Kind], partial: bool) -> None:
        self.text, self.context, self.wanted, self.partial = text, context, wanted, partial
        self.spans: list[tuple[int, int, Kind]] = []

    def named(self, before: int, kinds: tuple[Kind, ...]) -> Kind | None:
        """Which of `kinds` the words name last, shortly before `before` (in the text, or else
        in its context): "my card number is …", "and the security code?"."""
        near = max(0, before - NAMED_WITHIN)
        for text, start, end in ((self.text, near, before), (self.context, 0, len(self.context))):
            found = [
                (m.end(), kind)
                for kind in kinds
                if kind in self.wanted
                for m in _CONTEXT[kind].finditer(text, start, end)
            ]
            if found:
                return max(found)[1]
        return None

    def named_here(self, before: int, kind: Kind) -> bool:
        """Whether this text's own words name `kind` shortly before `before`."""
        return _CONTEXT[kind].search(self.text, max(0, before - NAMED_WITHIN), before) is not None

    def add(self, start: int, end: int, kind: Kind) -> None:
        if kind in self.wanted or kind == "digits":
            self.spans.append((start, end, kind))

    def find(self, continues: Kind | None) -> list[tuple[int, int, Kind]]:
        text = self.text
        if "email" in self.wanted:
            for pattern in (_EMAIL, _SPOKEN_EMAIL):
                for m in pattern.finditer(text):
                    self.add(m.start(), m.end(), "email")
        for pattern, kinds in ((_DATE, _NAMED_DATES), (_MONTH_YEAR, ("expiry",))):
            for m in pattern.finditer(text):
                if (date := self.named(m.start(), _NAMED_DATES)) in kinds:
                    assert date is not None
                    self.add(m.start(), m.end(), date)
        for m in _SSN_WRITTEN.finditer(text):
            self.add(m.start(), m.end(), "ssn")
        taken = [(s, e) for s, e, _ in self.spans]
        for m in _DIGIT_RUN.finditer(text):
            if any(s <= m.start() < e or s < m.end() <= e for s, e in taken):
                continue
            if continues is not None and not text[: m.start()].strip(" ,.-"):
                kind: Kind | None = continues  # the digits go on from the last utterance
            else:
                kind = self.digit_kind(m)
            if kind is not None:
                self.add(m.start(), m.end(), kind)
            elif self.partial and sum(ch.isdigit() for ch in m[0]) >= PARTIAL_DIGITS:
                self.add(m.start(), m.end(), "digits")
        return self.spans

    def digit_kind(self, run: re.Match[str]) -> Kind | None:
        """What a run of digits is, if it is sensitive."""
        digits = "".join(ch for ch in run[0] if ch.isdigit())
        n, at = len(digits), run.start()
        if (
            "card" in self.wanted
            and (
                (13 <= n <= 19 and luhn_valid(digits))
                # run on into the next number ("… 1111, and my zip is 30301")
                or (n > 19 and any(luhn_valid(digits[i : i + 16]) for i in range(n - 15)))
            )
        ):
            return "card"
        named = self.named(at, _NAMED_BY_DIGITS)
        if named is None and _ORDINARY_NAME.search(self.text, max(0, at - NAMED_WITHIN), at):
            return None  # "the tracking number is …": what it is, is said
        if named == "card" and n >= CARD_NAMED_DIGITS:
            return "card"  # an engine drops and mishears digits of a long number
        if named == "card" and n >= CARD_PART_DIGITS and self.named_here(at, "card"):
            return "card"  # read out in parts ("my card is 4111 1111", and on next time)
        if (named == "ssn" and n == 9) or (named == "account" and 6 <= n <= 17):
            return named
        if named == "cvv" and 3 <= n <= 4:
            return "cvv"
        if (
            named is None
            and "card" in self.wanted
            and 12 <= n <= 19
            and _CARD_NETWORK.match(digits)
        ):
            return "card"  # a long number of a card network's range, a digit or two misheard
        before = self.text[max(0, at - 5) : at].rstrip().lower()
        if (
            "phone" in self.wanted
            and 7 <= n <= 15
            and _phone(digits, before.endswith(("+", "plus")))
        ):
            return "phone"
        return None


def _phone(digits: str, international: bool) -> bool:
    candidates: list[tuple[str, str | None]] = [(f"+{digits}", None)] if international else []
    candidates += [(digits, region) for region in PHONE_REGIONS]
    for candidate, region in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False
