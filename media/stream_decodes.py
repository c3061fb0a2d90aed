"""One stream's transcriptions in flight, for the media server (media.server): what its events
wait for, each track's early decode, and the partial decodes asked."""

from __future__ import annotations

import asyncio
import collections

from media import metrics
from media.events import Track
from media.session import UtteranceReady
from media.streamed import StreamedTranscription
from media.transcription.engine import Transcription
from media.vad import Utterance


class StreamDecodes:
    """One stream's transcriptions in flight: those its events wait for (`pending`), each
    track's early decode, held until that track's next utterance takes it or makes it void, and
    which partial decode of each track is the latest."""

    def __init__(self) -> None:
        self.streamed: StreamedTranscription | None = None
        """The stream's cloud transcription, when a cloud engine is configured."""
        self.pending: dict[asyncio.Future[Transcription | None], UtteranceReady] = {}
        self._early: dict[Track, tuple[Utterance, asyncio.Future[Transcription | None]]] = {}
        self.partials_asked: collections.Counter[Track] = collections.Counter()

    def final_pending(self, track: Track) -> bool:
        return any(ready.track == track for ready in self.pending.values())

    def hold_early(
        self,
        track: Track,
        utterance: Utterance,
        future: asyncio.Future[Transcription | None] | None,
    ) -> None:
        """`future` None: no decode started (no worker to spare); the final one will ask."""
        self._void(track)  # the speaker went on after the last one
        if future is not None:
            self._early[track] = (utterance, future)

    def take_early(
        self, track: Track, utterance: Utterance
    ) -> asyncio.Future[Transcription | None] | None:
        """The early decode of exactly this utterance's audio, if there is one."""
        early = self._early.get(track)
        if early is None or (early[0].start_sample, early[0].end_sample) != (
            utterance.start_sample,
            utterance.end_sample,
        ):
            self._void(track)
            return None
        del self._early[track]
        metrics.EARLY_DECODES.labels("used").inc()
        return early[1]

    def void_early(self) -> None:
        for track in list(self._early):
            self._void(track)

    def _void(self, track: Track) -> None:
        if (early := self._early.pop(track, None)) is not None:
            early[1].cancel()  # skipped if still queued; a decode under way runs to its end
            metrics.EARLY_DECODES.labels("void").inc()
