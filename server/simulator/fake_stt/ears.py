"""Ears for a fake that must keep up with hundreds of sessions: capacity benches measure the
server's work per call, not what the fake hears, and an offline engine on the same machine
could not hear that many calls in real time."""

from __future__ import annotations

from media.transcription.engine import Transcription

WORDS_PER_SECOND = 2.5
"""About how fast people speak, so results carry as many words as speech of that length."""


class PlaceholderEars:
    """A `TranscriptionEngine` that hears "word1 word2 …", as many as the audio's length holds:
    the protocol, timing and volume of real results, no words worth reading."""

    name = "placeholder"

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        seconds = len(pcm16) / 2 / sample_rate
        count = max(1, round(seconds * WORDS_PER_SECOND))
        return Transcription(" ".join(f"word{n}" for n in range(1, count + 1)), 0.9)
