"""Sensitive data found in what a speaker said, and replaced before it leaves memory. Pure.

`redact(text)` returns the text with each sensitive span replaced by its kind in brackets
(`[card]`, `[ssn]`…) and how many of each it replaced, never what they were. Speakers say numbers
as words, and engines write them either way, so number words are first turned into digits
(text2num's `alpha2digit`, plus what it leaves: "oh" for zero between digits, "double four"),
and the spans are looked for in that form; a text with nothing to redact is returned exactly as
it came.

What counts as sensitive:
- `card`: 13–19 digits passing the Luhn check, said or written in any grouping; or 13–19
  digits at all where the words say it is a card (a misheard digit fails the check).
- `ssn`: 9 digits written 3-2-4 (`123-45-6789`), or 9 digits where the words name a social
  security number.
- `account`: 6–17 digits where the words name an account, routing or sort code.
- `cvv`: 3–4 digits where the words name the card's security code.
- `expiry`: a month and year where the words name an expiry date.
- `dob`: a date where the words name a date of birth.
- `phone`: a number the `phonenumbers` library takes as a valid phone number (US by default,
  or international with its country code).
- `email`: an address, written or spoken ("jane dot doe at example dot com").
"where the words say" means in the same text, before the number.

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

Kind: TypeAlias = Literal[
    "card", "ssn", "account", "cvv", "expiry", "dob", "phone", "email", "digits"
]
KINDS: Final[frozenset[Kind]] = frozenset(
    {"card", "ssn", "account", "cvv", "expiry", "dob", "phone", "email"}
)
"""Every kind an org may choose to redact (`digits` is partials' own)."""
PARTIAL_DIGITS: Final = 8
PHONE_REGIONS: Final = ("US", "GB")
"""Where a number said without its country code is read as a phone number."""

_DIGIT_WORD = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|\d)"
_REPEATED = re.compile(rf"\b(double|triple)\s+({_DIGIT_WORD})\b", re.IGNORECASE)
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
        r"\b(?:card|visa|master ?card|amex|american express|discover|long number)\b", re.I
    ),
    "ssn": re.compile(r"\b(?:social security|social|ssn|s s n)\b", re.I),
    "account": re.compile(
        r"\b(?:account|acct|routing|sort code|iban|bank number|member number)\b", re.I
    ),
    "cvv": re.compile(
        r"\b(?:security code|cvv|cvc|cv2|three digits|3 digits|four digits|4 digits|"
        r"back of the card)\b",
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

    @property
    def changed(self) -> bool:
        return bool(self.counts)


def redact(text: str, kinds: Iterable[Kind] = KINDS, *, partial: bool = False) -> Redacted:
    """`text` with the sensitive spans of `kinds` replaced (see the module's docstring)."""
    wanted = frozenset(kinds)
    if not wanted:
        return Redacted(text, Counter())
    spoken = _digits(text)
    spans: list[tuple[int, int, Kind]] = []
    _find(spoken, wanted, partial, spans)
    if not spans:
        return Redacted(text, Counter())
    out, counts, at = [], Counter[Kind](), 0
    for start, end, kind in sorted(spans):
        if start < at:
            continue  # inside a span already replaced
        out += [spoken[at:start], f"[{kind}]"]
        counts[kind] += 1
        at = end
    out.append(spoken[at:])
    return Redacted("".join(out), counts)


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


def _said(text: str, kind: Kind, before: int) -> bool:
    """Whether the words before `before` name `kind` ("my card number is …")."""
    return _CONTEXT[kind].search(text, 0, before) is not None


def _find(
    text: str, wanted: frozenset[Kind], partial: bool, spans: list[tuple[int, int, Kind]]
) -> None:
    def add(start: int, end: int, kind: Kind) -> None:
        if kind in wanted or kind == "digits":
            spans.append((start, end, kind))

    if "email" in wanted:
        for pattern in (_EMAIL, _SPOKEN_EMAIL):
            for m in pattern.finditer(text):
                add(m.start(), m.end(), "email")
    if "dob" in wanted:
        for m in _DATE.finditer(text):
            if _said(text, "dob", m.start()):
                add(m.start(), m.end(), "dob")
    if "expiry" in wanted:
        for m in _MONTH_YEAR.finditer(text):
            if _said(text, "expiry", m.start()) and not _said(text, "dob", m.start()):
                add(m.start(), m.end(), "expiry")
    if "ssn" in wanted:
        for m in _SSN_WRITTEN.finditer(text):
            add(m.start(), m.end(), "ssn")
    taken = [(s, e) for s, e, _ in spans]
    for m in _DIGIT_RUN.finditer(text):
        if any(s <= m.start() < e or s < m.end() <= e for s, e in taken):
            continue
        kind = _digit_kind(text, m)
        if kind is not None:
            add(m.start(), m.end(), kind)
        elif partial and sum(ch.isdigit() for ch in m[0]) >= PARTIAL_DIGITS:
            add(m.start(), m.end(), "digits")


def _digit_kind(text: str, run: re.Match[str]) -> Kind | None:
    """What a run of digits is, if it is sensitive (what is said before it may tell)."""
    digits = "".join(ch for ch in run[0] if ch.isdigit())
    n, at = len(digits), run.start()
    if 13 <= n <= 19 and (luhn_valid(digits) or _said(text, "card", at)):
        return "card"
    if n > 19 and any(luhn_valid(digits[i : i + 16]) for i in range(n - 15)):
        return "card"  # run on into the next number ("… 1111, and my zip is 30301")
    if n == 9 and _said(text, "ssn", at):
        return "ssn"
    if 6 <= n <= 17 and _said(text, "account", at):
        return "account"
    if 3 <= n <= 4 and _said(text, "cvv", at):
        return "cvv"
    international = text[max(0, at - 5) : at].rstrip().lower().endswith(("+", "plus"))
    if 7 <= n <= 15 and _phone(digits, international):
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
