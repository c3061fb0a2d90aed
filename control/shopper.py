"""Scoring a secret-shopper call against its script, from the call's transcript. Pure.

A script is a list of moments: expected ones (the agent greets with the company's name, offers
the extended warranty, asks for the booking, says goodbye) and forbidden ones (the agent
promises a refund). A moment is met by the first final segment of its speaker whose words come
close to one of its phrases: rapidfuzz's `partial_ratio` over normalised text (case, punctuation)
of at least `MIN_SCORE`, so "thanks for calling Acme, this is Sam" meets "thank you for calling
Acme". The score is the share of the script's weight the call got right: expected moments met
and forbidden ones avoided, 0 to 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from rapidfuzz import fuzz, utils

MIN_SCORE: Final = 85.0
Speaker = Literal["agent", "caller", "any"]


@dataclass(frozen=True, slots=True)
class MomentResult:
    name: str
    kind: Literal["expected", "forbidden"]
    found: bool
    """Its words were said (for a forbidden moment, that is a fault)."""
    at_ms: int | None
    """Where in the call, on its clock."""
    evidence: str | None
    """The segment's words that matched."""
    weight: float

    @property
    def right(self) -> bool:
        return self.found == (self.kind == "expected")


def score_call(
    moments: Sequence[Mapping[str, Any]], segments: Sequence[Mapping[str, Any]]
) -> tuple[float, list[MomentResult]]:
    """(score 0-100, each moment's result) for a call's final segments (`speaker`, `start_ms`,
    `text`), in call order."""
    ordered = sorted(segments, key=lambda s: s["start_ms"])
    results = []
    for moment in moments:
        speaker = moment.get("speaker", "agent")
        phrases = [utils.default_process(p) for p in moment["phrases"]]
        hit = next(
            (s for s in ordered
             if (speaker == "any" or s["speaker"] == speaker)
             and _close(phrases, utils.default_process(s["text"]))),
            None,
        )  # fmt: skip
        results.append(MomentResult(
            name=moment["name"], kind=moment.get("kind", "expected"), found=hit is not None,
            at_ms=None if hit is None else hit["start_ms"],
            evidence=None if hit is None else hit["text"],
            weight=float(moment.get("weight", 1.0)),
        ))  # fmt: skip
    total = sum(r.weight for r in results)
    right = sum(r.weight for r in results if r.right)
    return (round(100.0 * right / total, 1) if total else 0.0), results


def _close(phrases: Sequence[str], text: str) -> bool:
    return any(fuzz.partial_ratio(p, text) >= MIN_SCORE for p in phrases if p)
