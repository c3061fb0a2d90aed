"""Words: an engine's transcription as the words of a result message, with times."""

from __future__ import annotations

import string
from collections.abc import Sequence

from media.transcription.engine import Transcription


def _plain(token: str) -> str:
    """A word as unformatted transcripts spell it: lower case, no punctuation around it."""
    return token.strip(string.punctuation).lower()


def _spread(tokens: Sequence[str], start_s: float, end_s: float) -> list[tuple[str, float, float]]:
    """(token, start, end) per word. The engine gives no word times, so the voiced span is
    shared out evenly among the words."""
    if not tokens:
        return []
    step = (end_s - start_s) / len(tokens)
    return [(t, start_s + i * step, start_s + (i + 1) * step) for i, t in enumerate(tokens)]


def _tokens(transcription: Transcription) -> list[str]:
    return [t for t in transcription.text.split() if _plain(t)]
