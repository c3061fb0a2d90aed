"""Redaction's own evaluation: card numbers and ordinary numbers as callers say them, scored on
the exact text and through the offline engine: `python -m bench.redaction_eval [--misses]`.

The set (`items()`) is generated from fixed seeds. Its test part was written, whole, before it
was first scored, and is scored only to report; the rules are tuned on the dev part (`--part
dev`: the same kinds, other numbers and voices). Each part has:
- 60 card numbers (Luhn-valid, of the test ranges of Visa, Mastercard, Amex and Discover), read
  out six ways: named ("my card number is …") or not, as single digits in groups, with "double",
  in pairs ("forty one, eleven"), and as a bare answer to the agent asking for the card;
- 60 ordinary numbers of six kinds: order numbers, amounts, times and dates, references,
  tracking numbers and counts.
A card is redacted when the text says `[card]` and no 4 of its digits in a row are left; an
ordinary number is redacted (wrongly) when anything in its text is.

Through the engine, each caller line is spoken by a neural voice varied per item (Piper or
Hibari, bench/dialogue_audio.py, phone band, no added noise) and transcribed by the server's
default engine (Whisper tiny.en, with its hotwords), the way the server hears an utterance;
the agent's question, where there is one, is given as text. Needs the eval extra
(`make eval-audio` installs it); the clips are cached in .voxsouth/eval-audio/clips.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from media.redaction import luhn_valid, redact

Kind = Literal["card", "ordinary"]
Part = Literal["dev", "test"]
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen")  # fmt: skip
CARD_RANGES = (("4", 16, (4, 4, 4, 4)), ("51", 16, (4, 4, 4, 4)), ("55", 16, (4, 4, 4, 4)),
               ("37", 15, (4, 6, 5)), ("6011", 16, (4, 4, 4, 4)))  # fmt: skip
ASKS_FOR_CARD = ("Can I take the long number on the card, please?", "And the card number?")
MONTHS = ("January", "March", "May", "July", "September", "November")


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    kind: Kind
    said: str
    """The caller's words."""
    asked: str = ""
    """The agent's question just before, if any."""
    digits: str = ""
    """The card's digits (cards only)."""


def items(part: Part = "test") -> list[Item]:
    """The test part (scored only to report) or the dev part (the same kinds, other numbers,
    phrasings' order and voices), which the rules may be tuned on."""
    prefix = "" if part == "test" else f"{part}-"
    return [_card(i, prefix) for i in range(60)] + [_ordinary(i, prefix) for i in range(60)]


def _card(i: int, prefix: str) -> Item:
    rng = random.Random(f"{prefix}card-{i}")
    network, length, groups = CARD_RANGES[i % len(CARD_RANGES)]
    body = network + "".join(rng.choice("0123456789") for _ in range(length - len(network) - 1))
    digits = body + next(d for d in "0123456789" if luhn_valid(body + d))
    parts, at = [], 0
    for size in groups:
        parts.append(digits[at : at + size])
        at += size
    style = i % 6
    if style == 4 and all(len(p) % 2 == 0 for p in parts):
        spoken = ", ".join(
            " ".join(_pair(p[k : k + 2]) for k in range(0, len(p), 2)) for p in parts
        )
    elif style == 3:
        spoken = ", ".join(_with_doubles(p) for p in parts)
    else:
        spoken = ", ".join(" ".join(DIGIT_WORDS[int(d)] for d in p) for p in parts)
    said, asked = {
        0: (f"My card number is {spoken}.", ""),
        1: (f"Yeah, it's {spoken}.", "What's the long number on the front?"),
        2: (f"{spoken.capitalize()}.", ASKS_FOR_CARD[0]),
        3: (f"It's {spoken}.", ASKS_FOR_CARD[1]),
        4: (f"Okay, {spoken}.", ASKS_FOR_CARD[i % 2]),
        5: (f"Okay, the number is {spoken}.", ""),
    }[style]
    return Item(f"{prefix}card-{i:02d}", "card", said, asked, digits)


def _ordinary(i: int, prefix: str) -> Item:
    rng = random.Random(f"{prefix}ordinary-{i}")

    def spelled(n: int) -> str:
        return " ".join(
            DIGIT_WORDS[int(d)] for d in "".join(rng.choice("0123456789") for _ in range(n))
        )

    style = i % 6
    if style == 0:
        said = f"My order number is {spelled(rng.randint(5, 8))}."
    elif style == 1:
        said = f"I paid {_number(rng.randint(12, 480))} pounds {_number(rng.randint(10, 99))}."
    elif style == 2:
        hour, month = _number(rng.randint(1, 12)), MONTHS[rng.randint(0, 5)]
        said = f"It came at half past {hour} on the {rng.randint(2, 28)}th of {month}."
    elif style == 3:
        letters = " ".join(rng.choice("ABCDEFGHJKLMNPRSTVWXY") for _ in range(2))
        said = f"The reference is {letters} {spelled(5)}."
    elif style == 4:
        said = f"The tracking number is {spelled(rng.randint(10, 12))}."
    else:
        said = (f"I've been with you {_number(rng.randint(2, 20))} years and called "
                f"{_number(rng.randint(2, 9))} times this week.")  # fmt: skip
    return Item(f"{prefix}ordinary-{i:02d}", "ordinary", said)


def _pair(two: str) -> str:
    n = int(two)
    if two[0] == "0":
        return f"oh {DIGIT_WORDS[n]}"
    return _number(n)


def _number(n: int) -> str:
    if n < 10:
        return DIGIT_WORDS[n]
    if n < 20:
        return TEENS[n - 10]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else f"-{DIGIT_WORDS[n % 10]}")
    rest = n % 100
    return f"{DIGIT_WORDS[n // 100]} hundred" + (f" and {_number(rest)}" if rest else "")


def _with_doubles(group: str) -> str:
    words, k = [], 0
    while k < len(group):
        if k + 1 < len(group) and group[k] == group[k + 1]:
            words.append(f"double {DIGIT_WORDS[int(group[k])]}")
            k += 2
        else:
            words.append(DIGIT_WORDS[int(group[k])])
            k += 1
    return " ".join(words)


def redacted_right(item: Item, text: str) -> bool:
    """A card: `[card]` said and no 4 of its digits in a row left. Ordinary: nothing redacted."""
    result = redact(text, context=item.asked)
    if item.kind == "ordinary":
        return not result.changed
    left = "".join(re.findall(r"\d", result.text))
    runs = {item.digits[k : k + 4] for k in range(len(item.digits) - 3)}
    return "[card]" in result.text and not any(run in left for run in runs)


@dataclass
class Score:
    right: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.right += ok
        self.total += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redaction_eval", description=__doc__)
    parser.add_argument("--part", choices=("dev", "test"), default="test")
    parser.add_argument("--misses", action="store_true", help="list every item scored wrong")
    parser.add_argument("--exact-only", action="store_true", help="skip the engine")
    parser.add_argument("--model", default="bundled:tiny.en")
    parser.add_argument("--models-dir", type=Path, default=Path(".voxsouth") / "models")
    args = parser.parse_args(argv)
    chosen = items(args.part)
    exact: dict[Kind, Score] = {"card": Score(), "ordinary": Score()}
    heard: dict[Kind, Score] = {"card": Score(), "ordinary": Score()}
    misses: list[str] = []
    for item in chosen:
        ok = redacted_right(item, item.said)
        exact[item.kind].add(ok)
        if not ok:
            misses.append(_miss("exact", item, item.said))
    began = time.monotonic()
    if not args.exact_only:
        from bench.dialogue_audio import call_voices, synthesize
        from media.transcription.whisper import WhisperEngine

        engine = WhisperEngine(args.model, args.models_dir, 1)
        for item in chosen:
            clip = synthesize(call_voices(item.id, "neural").caller, item.said)
            pcm = (np.clip(clip, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            text = engine.transcribe(pcm, 8_000).text
            ok = redacted_right(item, text)
            heard[item.kind].add(ok)
            if not ok:
                misses.append(_miss("heard", item, text))
    engine_note = (
        "" if args.exact_only else f"; engine {args.model}, {time.monotonic() - began:.0f} s"
    )
    print(f"redaction evaluation, {args.part} part: {exact['card'].total} card numbers, "
          f"{exact['ordinary'].total} ordinary numbers{engine_note}")  # fmt: skip
    print(f"{'':34}{'exact text':>14}{'' if args.exact_only else 'through the engine':>22}")
    rows: tuple[tuple[Kind, str], ...] = (
        ("card", "card numbers redacted (recall)"),
        ("ordinary", "ordinary numbers left alone"),
    )
    for kind, label in rows:
        row = f"{label:34}{_cell(exact[kind]):>14}"
        if not args.exact_only:
            row += f"{_cell(heard[kind]):>22}"
        print(row)
    if args.misses and misses:
        print("misses:", *misses, sep="\n")
    return 0


def _miss(how: str, item: Item, text: str) -> str:
    return f"  {how:6} {item.id}: {text!r} -> {redact(text, context=item.asked).text!r}"


def _cell(score: Score) -> str:
    return f"{score.right}/{score.total} {score.right / max(score.total, 1):.3f}"


if __name__ == "__main__":
    sys.exit(main())
