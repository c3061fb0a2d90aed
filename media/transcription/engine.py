"""The one interface every transcription engine implements.

An engine turns one utterance (16-bit PCM, mono) into text. `transcribe` blocks and is called
from worker threads, never on the event loop; an engine must allow as many concurrent calls as
the workers it was loaded for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    confidence: float | None
    """0..1 where the engine reports one."""


class TranscriptionEngine(Protocol):
    @property
    def name(self) -> str:
        """Stored with every segment, e.g. `faster-whisper:tiny.en`."""
        ...

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription: ...
