"""Recording consent over one call: a request, then the other party's answer to it. Pure.

The call is a timeline of utterances on two tracks (agent = outbound, caller = inbound) and the
caller's key presses. Consent is an *answer to a consent request*:

- A request is a disclosure that asks: played by the platform before the stream (a `<Gather>`
  asking by voice or keypad) or said by the agent ("calls are recorded, is that okay with
  you?"; the question may follow the disclosure in the agent's next utterance). A disclosure
  that only tells ("calls are recorded for training. How can I help?") is a notice.
- The answer is the caller's next turn after the request, spoken or a key the request offered
  ("press 1 to agree"), within `window_ms`, until the agent asks something else: a "yes" to
  "do you have your order number?" answers that question, not the request.
- A request that asks for objections ("do you mind?", "any objection?") turns bare answers
  round: "no" grants, "yes" refuses. A caller's question ("is that the whole call?") leaves the
  request open for the answer that follows the agent's reply.
- Any other turn of the caller counts only if it speaks about recording ("actually, please
  don't record this"), and the latest such turn wins; the turn right after a notice may also
  object to it without naming it ("I'd rather you switched that off").
- A notice asks nothing, so it gets no spoken answer; where the org opts in to consent implied
  by notice (and the call's jurisdiction allows it), the notice itself gives the verdict
  (`implied_notice`), which the caller can still refuse.

Utterances are transcribed in parallel, so they arrive out of order. Decisions are made in call
order, over the part of the timeline that is settled: no utterance before it is still being
heard or transcribed. A caller's "yes" waits until the agent's words before it are known.
"""

from __future__ import annotations

import bisect
import re
import uuid
from dataclasses import dataclass, field
from typing import Literal

from media.detectors.text import (
    RECORDING_WORDS,
    asks_for_consent,
    asks_if_objecting,
    classify_consent,
    find_phrases,
    is_question,
    keypad_choices,
    names_recording,
    words,
)
from media.events import ConsentVerdict, Track

DISCLOSURE_PHRASES = (
    "call may be recorded", "call is being recorded", "call will be recorded",
    "call is recorded", "may be monitored or recorded", "may be recorded",
    "recorded for quality", "recorded for training", "recording this call",
    "this call is recorded", "we record our calls", "calls are recorded",
    "calls are monitored and recorded", "calls may be monitored", "are being recorded",
    "is being recorded", "will be recorded", "we record all calls", "we record calls",
    "recorded and monitored", "monitored and recorded", "recording the call",
    "record this call", "recording for quality", "recording for training",
    # "recorded" as a small engine often hears it; no agent says these of anything else.
    "call is reported", "calls are reported", "call may be reported", "calls may be reported",
    "we report calls", "we report call", "call will be reported",
)  # fmt: skip
PLAYED_KEYS: dict[str, ConsentVerdict] = {"1": "granted", "2": "refused"}
"""What the platform's consent `<Gather>` offers (control.webhooks says the same prompt)."""
SHORT_TURN_WORDS = 3
"""A caller's turn this short ("sorry?", "hello?") is not a turn away from the request."""
ASKING_BACK = RECORDING_WORDS | {"agree", "permission", "why", "mind"}
"""A turn with these words, or a question, is about the request ("why would I agree?"): it
stays open."""
STREAMED_START_SLACK_MS = 300
OPENING_MS = 15_000
"""The call's opening, where an agent discloses recording (before anything else is said, as
the law and scripts require): the agent's turns here may make the consent request."""
"""A streaming service times a turn from its first word; our endpointing starts an utterance up
to its pre-roll (200 ms) earlier, or a little later where the first word is soft."""
_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s+")
PlayedDisclosure = Literal["none", "notice", "question", "keypad"]
Detector = Literal["agent_speech", "caller_speech", "keypad", "implied_notice"]


@dataclass(frozen=True, slots=True)
class ConsentFinding:
    kind: Literal["disclosure", "answer"]
    detector: Detector
    verdict: ConsentVerdict | None
    track: Track
    offset_ms: int
    evidence: str
    segment_id: uuid.UUID | None


@dataclass(slots=True)
class _Event:
    """One utterance or key press on the call's timeline."""

    track: Track
    start_ms: int
    text: str | None = None
    """None while it is still being transcribed; "" when it was never heard."""
    segment_id: uuid.UUID | None = None
    digit: str | None = None
    judged: bool = False
    skipped: bool = False
    """Never transcribed for want of time: what was said is unknown, not nothing."""

    @property
    def settled(self) -> bool:
        return self.text is not None or self.digit is not None


@dataclass(slots=True)
class _Request:
    at_ms: int
    keys: dict[str, ConsentVerdict] = field(default_factory=dict)
    inverted: bool = False
    """It asked whether the caller objects ("do you mind?"): a bare "no" grants."""
    open: bool = True
    """The caller's answer may still come (the agent has not asked something else)."""


class ConsentTracker:
    def __init__(
        self,
        *,
        played: PlayedDisclosure = "none",
        implied_by_notice: bool = False,
        window_ms: int = 30_000,
        decided: ConsentVerdict | None = None,
    ) -> None:
        """`decided`: the call's verdict, when this tracker takes over a call already under
        way elsewhere (a stream restarted on another node): it stays the verdict, and the
        call's opening (the platform's request, a notice's implied consent) is not judged
        again. Only later turns that speak about recording can change it, as on any call."""
        self._window_ms = window_ms
        self._implied_by_notice = implied_by_notice
        self._timeline: list[_Event] = []
        self._judged_until = 0
        """Index of the first event not yet judged: everything before it is settled."""
        self._request: _Request | None = None
        self._recording_question: str | None = None
        """The caller's question in this turn that named recording ("do you record these
        calls?"): what they go on to say in the turn ("honestly, I'd be glad if you did") is
        about recording too."""
        self._disclosed = False
        """The agent has spoken of recording (a request or a notice)."""
        self._asked_at: list[int] = []
        """Where the agent's words asked for consent, as soon as they are heard (judging them
        may wait for earlier turns): the turns after them rank as ones that may decide it."""
        self._disclosure_without_question: _Event | None = None
        """The agent's latest disclosure, until the caller speaks: a question that follows
        it ("…is that okay?") makes it a request."""
        self.verdict: ConsentVerdict | None = None
        self.opening: list[ConsentFinding] = []
        """What the call's start decides: a played notice, where it implies consent."""
        if decided is not None:
            self.verdict = decided
            self._disclosed = played != "none"
        elif played in ("question", "keypad"):
            # The platform's `<Gather>` takes keys whether it asked by voice or by keypad.
            self._request = _Request(0, dict(PLAYED_KEYS))
        elif played == "notice":
            self.opening = self._notice(0, "played notice", None)

    # --- the timeline -------------------------------------------------------------------------

    def expect(self, track: Track, start_ms: int) -> None:
        """An utterance ended and is being transcribed: nothing after it is decided until its
        text (or its loss) arrives."""
        self._insert(_Event(track, start_ms))

    def on_text(
        self,
        track: Track,
        start_ms: int,
        text: str,
        segment_id: uuid.UUID | None,
        open_since: dict[Track, int | None],
    ) -> list[ConsentFinding]:
        """The words of an utterance (`expect`ed or not). `open_since` is, per track, where an
        utterance still being heard began (None if none): nothing after it is decided yet."""
        event = self._pending(track, start_ms)
        if event is None:
            event = self._insert(_Event(track, start_ms))
        event.text, event.segment_id = text, segment_id
        self._note_asking(event)
        return self._judge(open_since)

    def on_streamed_text(
        self,
        track: Track,
        start_ms: int,
        end_ms: int,
        text: str,
        segment_id: uuid.UUID | None,
        open_since: dict[Track, int | None],
    ) -> list[ConsentFinding]:
        """Words a streaming service finalized, spoken from `start_ms` to `end_ms`. Its turns
        need not match the utterances `expect`ed from our own endpointing: every one of the
        track that began by `end_ms` is settled by them. The words go to the one that was open
        when they began (or the first, where our endpointing started late); the others were
        noise the service did not transcribe, or pieces of the same turn."""
        pending = [
            e
            for e in self._timeline[self._judged_until :]
            if e.track == track and not e.settled and e.start_ms <= end_ms
        ]
        if not pending:
            return self.on_text(track, start_ms, text, segment_id, open_since)
        begun = [e for e in pending if e.start_ms <= start_ms + STREAMED_START_SLACK_MS]
        owner = begun[-1] if begun else pending[0]
        for event in pending:
            event.text = ""
        owner.text, owner.segment_id = text, segment_id
        self._note_asking(owner)
        return self._judge(open_since)

    def on_lost(
        self,
        track: Track,
        start_ms: int,
        open_since: dict[Track, int | None],
        *,
        skipped: bool = False,
    ) -> list[ConsentFinding]:
        """An `expect`ed utterance that will never be transcribed: heard as nothing, or
        `skipped` (overload, stream end), when it may have said anything."""
        if (event := self._pending(track, start_ms)) is not None:
            event.text, event.skipped = "", skipped
        return self._judge(open_since)

    def on_digit(
        self, track: Track, digit: str, offset_ms: int, open_since: dict[Track, int | None]
    ) -> list[ConsentFinding]:
        if track == "inbound":
            self._insert(_Event(track, offset_ms, digit=digit))
        return self._judge(open_since)

    def bears_on_consent(self, track: Track, offset_ms: int) -> bool:
        """Whether a turn starting at `offset_ms` may decide consent, while it is undecided:
        any turn inside an open request's answer window (the caller's answer; the agent's
        words before it, which decide what a "yes" answers), and the agent's turns in the
        call's opening until the agent has disclosed recording (or while a disclosure may yet
        be turned into a request by a question), where disclosures are made. As few turns as
        that, so that under overload they still fit in what transcription can do."""
        if self.verdict is not None:
            return False
        if self._answering(offset_ms) is not None:
            return True
        if any(at <= offset_ms <= at + self._window_ms for at in self._asked_at):
            return True  # a request heard but not judged yet: it waits for earlier turns
        undisclosed = not self._disclosed or self._disclosure_without_question is not None
        return (
            track == "outbound"
            and self._request is None
            and undisclosed
            and offset_ms <= OPENING_MS
        )

    def flush(self) -> list[ConsentFinding]:
        """Stream end: what is still pending will not arrive; decide on the rest."""
        for event in self._timeline[self._judged_until :]:
            if not event.settled:
                event.text = ""
        return self._judge({})

    def _note_asking(self, event: _Event) -> None:
        if event.track == "outbound" and event.text and asks_for_consent(event.text):
            self._asked_at.append(event.start_ms)

    def _insert(self, event: _Event) -> _Event:
        # Agent before caller at the same offset: a question and its answer can't start at once.
        keys = [(e.start_ms, e.track == "inbound") for e in self._timeline]
        at = bisect.bisect_right(keys, (event.start_ms, event.track == "inbound"))
        at = max(at, self._judged_until)  # the past is decided; a late arrival joins the present
        self._timeline.insert(at, event)
        return event

    def _pending(self, track: Track, start_ms: int) -> _Event | None:
        for event in self._timeline[self._judged_until :]:
            if event.track == track and event.start_ms == start_ms and not event.settled:
                return event
        return None

    def _judge(self, open_since: dict[Track, int | None]) -> list[ConsentFinding]:
        found: list[ConsentFinding] = []
        opens = [s for s in open_since.values() if s is not None]
        horizon = min(opens) if opens else None
        timeline = self._timeline
        while self._judged_until < len(timeline):
            event = timeline[self._judged_until]
            if not event.settled or (horizon is not None and event.start_ms > horizon):
                break
            self._judged_until += 1
            found += self._agent(event) if event.track == "outbound" else self._caller(event)
        # Judged events are only needed for their place: keep the list short on long calls.
        if self._judged_until > 256:
            del timeline[: self._judged_until]
            self._judged_until = 0
        return found

    # --- decisions, in call order -------------------------------------------------------------

    def _agent(self, event: _Event) -> list[ConsentFinding]:
        text = event.text or ""
        if not text:
            if event.skipped:
                # Words never heard may have asked something else: a "yes" after them cannot
                # be taken as the answer to the request.
                self._close()
            return []  # heard as nothing: mostly a breath or a click, which asks nothing
        self._recording_question = None
        disclosure = next(
            (m for m in find_phrases(text, DISCLOSURE_PHRASES) if not m.negated), None
        )
        asks = asks_for_consent(text)
        # "Do you agree to this call being recorded?" discloses by asking.
        about_recording = disclosure is not None or names_recording(words(text))
        found: list[ConsentFinding] = []
        if about_recording:
            self._disclosed = True
            evidence = disclosure.phrase if disclosure is not None else "asked about recording"
            found.append(
                ConsentFinding(
                    "disclosure", "agent_speech", None, "outbound", event.start_ms, evidence,
                    event.segment_id,
                )
            )  # fmt: skip
        if asks and (about_recording or self._disclosure_without_question is not None):
            self._open(event, text)
        elif about_recording:
            # A notice asks nothing else either: a request it follows stays open.
            self._disclosure_without_question = event
            if disclosure is not None:
                found += self._notice(event.start_ms, disclosure.phrase, event.segment_id)
        elif is_question(text) or "?" in text:
            self._close()  # the agent asks something else: the next "yes" answers that
        return found

    def _open(self, disclosure: _Event, text: str) -> None:
        keys = keypad_choices(text)
        if self._request is not None and self._request.keys and self._request.open:
            # The platform's prompt, heard on the line: what it offered is known, not heard.
            keys = {**keys, **self._request.keys}
        self._request = _Request(disclosure.start_ms, keys, asks_if_objecting(text))
        self._disclosure_without_question = None

    def _close(self) -> None:
        if self._request is not None:
            self._request.open = False

    def _notice(
        self, offset_ms: int, evidence: str, segment_id: uuid.UUID | None
    ) -> list[ConsentFinding]:
        if not self._implied_by_notice or self.verdict is not None:
            return []
        self.verdict = "granted"
        return [
            ConsentFinding(
                "answer", "implied_notice", "granted", "outbound", offset_ms,
                f"implied by notice: {evidence}", segment_id,
            )
        ]  # fmt: skip

    def _answering(self, offset_ms: int) -> _Request | None:
        request = self._request
        if request is None or not request.open:
            return None
        if not request.at_ms <= offset_ms <= request.at_ms + self._window_ms:
            return None
        return request

    def _caller(self, event: _Event) -> list[ConsentFinding]:
        after_notice = self._disclosure_without_question is not None
        self._disclosure_without_question = None
        request = self._answering(event.start_ms)
        if event.digit is not None:
            verdict = request.keys.get(event.digit) if request is not None else None
            if verdict is None:
                return []
            return self._decide(verdict, "keypad", event, f"digit {event.digit}")
        text = event.text or ""
        if not text:
            return []
        heard = words(text)
        judged = text
        if self._recording_question is not None and not names_recording(heard):
            # One turn with the question before it, whose own words answered nothing.
            judged = f"{self._recording_question} {text}"
        answer = classify_consent(
            judged,
            about_recording=request is None,
            inverted=request is not None and request.inverted,
        )
        if answer is None and request is None and after_notice:
            # The turn right after a notice may object to it without naming it ("I'd rather
            # you switched that off"), in words that say so and before anything else: a bare
            # "no" answers whatever else the agent asked, agreeing only acknowledges ("okay,
            # so my bill…"), and "I don't want it open" later on is about something else.
            objection = classify_consent(_FIRST_SENTENCE.split(text.strip(), 1)[0])
            if objection and objection.verdict == "refused" and len(words(objection.evidence)) > 1:
                answer = objection
        if answer is not None:
            return self._decide(answer.verdict, "caller_speech", event, answer.evidence)
        asks_back = ASKING_BACK.intersection(heard) or "?" in text or is_question(text)
        if asks_back and names_recording(heard):
            self._recording_question = text
        if len(heard) > SHORT_TURN_WORDS and not asks_back:
            # The caller's turn went elsewhere ("Hi, I'm calling about my bill"): a bare "okay"
            # later answers whatever came next, not the request. "Sorry?", "is that for the
            # whole call?" or "why do you record?" asks about it and leaves it open.
            self._close()
        return []

    def _decide(
        self, verdict: ConsentVerdict, detector: Detector, event: _Event, evidence: str
    ) -> list[ConsentFinding]:
        self._close()
        self.verdict = verdict
        return [
            ConsentFinding(
                "answer", detector, verdict, "inbound", event.start_ms, evidence,
                event.segment_id,
            )
        ]  # fmt: skip
