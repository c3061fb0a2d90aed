"""Recording consent over one call: the disclosure, then the other party's answer. Pure.

A disclosure opens a window (`window_ms` of call audio after it ends) in which the caller's
answer counts: spoken (`classify_consent`) or, when the call flow asks for it, a keypad digit
(1 accepts, 2 declines). The disclosure is either played by the platform before the stream
starts (the window then opens at 0) or spoken by the agent and heard on the agent's track.

Segments are transcribed in parallel, so the caller's answer can be transcribed before the
agent's disclosure that preceded it: recent caller segments are kept and judged again when a
disclosure turns up. A later answer in the window replaces an earlier one only when it says so
in more than one word ("yes… actually no, don't record this"): a stray "no" or "okay" later in
the conversation is talk, not a change of mind. After the window nothing spoken changes the
verdict.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from typing import Literal

from media.detectors.text import classify_consent, find_phrases
from media.events import ConsentVerdict, Track

DISCLOSURE_PHRASES = (
    "call may be recorded", "call is being recorded", "call will be recorded",
    "call is recorded", "may be monitored or recorded", "may be recorded",
    "recorded for quality", "recorded for training", "recording this call",
    "this call is recorded", "we record our calls", "calls are recorded",
)  # fmt: skip
KEYPAD_ANSWERS: dict[str, ConsentVerdict] = {"1": "granted", "2": "refused"}
RECENT_CALLER_SEGMENTS = 8


@dataclass(frozen=True, slots=True)
class ConsentFinding:
    kind: Literal["disclosure", "answer"]
    detector: Literal["agent_speech", "caller_speech", "keypad"]
    verdict: ConsentVerdict | None
    track: Track
    offset_ms: int
    evidence: str
    segment_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class _Heard:
    start_ms: int
    text: str
    segment_id: uuid.UUID | None


class ConsentTracker:
    def __init__(
        self, *, disclosure_played: bool, keypad_answers: bool, window_ms: int = 30_000
    ) -> None:
        self._window_ms = window_ms
        self._keypad = keypad_answers
        # The window opens where the disclosure ended; a played disclosure ends before audio.
        self._disclosed_at: int | None = 0 if disclosure_played else None
        self._answered_at: int | None = None
        self.verdict: ConsentVerdict | None = None
        self._recent: deque[_Heard] = deque(maxlen=RECENT_CALLER_SEGMENTS)

    def _in_window(self, offset_ms: int) -> bool:
        d = self._disclosed_at
        return d is not None and d <= offset_ms <= d + self._window_ms

    def on_agent_text(
        self, start_ms: int, text: str, segment_id: uuid.UUID | None
    ) -> list[ConsentFinding]:
        matches = [m for m in find_phrases(text, DISCLOSURE_PHRASES) if not m.negated]
        if not matches:
            return []
        found = [
            ConsentFinding(
                "disclosure", "agent_speech", None, "outbound", start_ms, matches[0].phrase,
                segment_id,
            )
        ]  # fmt: skip
        if self._disclosed_at is None or start_ms > self._disclosed_at + self._window_ms:
            # A first disclosure, or a repeat after the window closed: (re)open the window
            # from its start, since a caller often answers before the agent has finished.
            self._disclosed_at = start_ms
            for heard in sorted(self._recent, key=lambda h: h.start_ms):
                found += self._answer(heard)
        return found

    def on_caller_text(
        self, start_ms: int, text: str, segment_id: uuid.UUID | None
    ) -> list[ConsentFinding]:
        heard = _Heard(start_ms, text, segment_id)
        self._recent.append(heard)
        return self._answer(heard)

    def _answer(self, heard: _Heard) -> list[ConsentFinding]:
        if not self._in_window(heard.start_ms):
            return []
        if self._answered_at is not None and heard.start_ms < self._answered_at:
            return []  # an older answer arriving late does not undo a newer one
        answer = classify_consent(heard.text)
        if answer is None:
            return []
        if self._answered_at is not None and " " not in answer.evidence:
            return []
        self._answered_at = heard.start_ms
        self.verdict = answer.verdict
        return [
            ConsentFinding(
                "answer", "caller_speech", answer.verdict, "inbound", heard.start_ms,
                answer.evidence, heard.segment_id,
            )
        ]  # fmt: skip

    def on_digit(self, track: Track, digit: str, offset_ms: int) -> list[ConsentFinding]:
        verdict = KEYPAD_ANSWERS.get(digit)
        if not self._keypad or track != "inbound" or verdict is None:
            return []
        if not self._in_window(offset_ms):
            return []
        self._answered_at = offset_ms
        self.verdict = verdict
        return [
            ConsentFinding(
                "answer", "keypad", verdict, "inbound", offset_ms, f"digit {digit}", None
            )
        ]
