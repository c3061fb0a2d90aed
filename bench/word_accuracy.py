"""How well the server's offline engine hears a rendered dialogue: caller words right.

`python -m bench.dialogue_audio --check-words N` prints it for the first N calls of a part.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from rapidfuzz.distance import Levenshtein

from bench.dialogue_audio import SAMPLE_RATE, RenderedCall

BYTES_PER_MS = SAMPLE_RATE // 1000 * 2  # 16-bit PCM


def word_accuracy(reference: str, heard: str) -> tuple[int, int]:
    """(words of `reference`, word errors: substitutions + deletions + insertions), comparing
    lower-case words without punctuation."""
    ref, hyp = _words(reference), _words(heard)
    return len(ref), int(Levenshtein.distance(ref, hyp))  # over words, not letters


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def check_words(calls: Sequence[RenderedCall], model: str, models_dir: Path) -> str:
    """Transcribe every caller turn with the server's offline engine; a line of word accuracy."""
    from media.transcription.whisper import WhisperEngine  # heavy: only when asked for

    engine = WhisperEngine(model, models_dir, 1)
    words = errors = 0
    for call in calls:
        for turn in call.turns:
            if turn.who != "caller":
                continue
            pcm = call.inbound[turn.start_ms * BYTES_PER_MS : turn.end_ms * BYTES_PER_MS]
            heard = engine.transcribe(pcm, SAMPLE_RATE).text
            n, e = word_accuracy(turn.text, heard)
            words, errors = words + n, errors + e
            print(f"  {call.call_id} [{turn.start_ms / 1000:6.1f}s] {turn.text!r} -> {heard!r}")
    accuracy = 1 - errors / words if words else 0.0
    return f"word accuracy {accuracy:.3f} ({errors} errors in {words} words, {engine.name})"
