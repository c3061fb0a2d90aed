"""Precision and recall of the consent and escalation detectors on the dialogue evaluation set.

    python -m bench.detector_eval --part dev|test [--playing neural|flite|espeak|exact]

Every call of tests/fixtures/dialogues (`--part`; figures are reported on `test`, tuning is
done on `dev`) is rendered (bench.dialogue_audio; `make eval-audio` renders them ahead) and
played, frame by frame with its key presses, through the same `CallSession` the media server
runs (decode, VAD and endpointing, the detectors), the real offline engine transcribing each
utterance as it ends. No sockets and no clock: the figures are those of the detection path.
`--playing exact` gives each utterance the words really said: the detectors alone.

It prints, over all calls of the part:
- consent: precision and recall for "granted" and for "refused" (a verdict on a call labelled
  "no verdict" counts against precision);
- each phrase rule (an intent family): expected escalations found;
- raised voice, dead air, talk-over and the operator key: recall over the calls that have them;
- false alerts: calm calls (no escalation of any kind expected) with any of those rules fired,
  per 10 calm calls.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.dialogue_audio import CACHE_DIR, PLAYINGS, Playing, RenderedCall, render
from bench.dialogues import Dialogue, load_part
from media.codecs import ulaw_encode
from media.detectors.consent import PlayedDisclosure
from media.detectors.rules import DEFAULT_RULES
from media.events import ConsentEvidence, EscalationRaised, MediaEvent, TranscriptSegment
from media.protocol import Dtmf, Media, Start
from media.session import CallPolicy, CallSession, SessionConfig, UtteranceReady
from media.transcription.engine import Transcription, TranscriptionEngine
from media.transcription.whisper import CONSENT_HOTWORDS, DEFAULT_WINDOW_S, WhisperEngine
from media.vad import EndpointerConfig, WebRtcVoiceDetector
from server.settings import PARTIAL_EVERY_MS

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
PHRASE_RULES = tuple(r.name for r in DEFAULT_RULES if r.kind == "phrase")
SIGNAL_RULES = {
    "raised_voice": "raised-voice", "dead_air": "dead-air", "talk_over": "talk-over",
    "operator_key": "operator-key",
}  # fmt: skip
"""Label in the set -> the default rule that should fire for it."""
LABELLED_RULES = (*PHRASE_RULES, *SIGNAL_RULES.values())
PLAYED: dict[str, PlayedDisclosure] = {
    "played_question": "question", "played_keypad": "keypad", "played_notice": "notice",
}  # fmt: skip


@dataclass
class CallResult:
    call: Dialogue
    consent: str | None = None
    escalations: list[str] = field(default_factory=list)
    heard: list[tuple[str, str]] = field(default_factory=list)
    """(speaker, text) of every transcript segment, for the misses report."""

    @property
    def expected_rules(self) -> set[str]:
        e = self.call.expect
        wanted: set[str] = set(e.escalations)
        wanted |= {rule for label, rule in SIGNAL_RULES.items() if getattr(e, label)}
        return wanted


def run_call(
    call: Dialogue,
    rendered: RenderedCall,
    engine: TranscriptionEngine | None,
    partials: bool = False,
) -> CallResult:
    """With no engine, every utterance is given the words of the turn it overlaps most.
    `partials`: phrase rules also read partial text before each final, as a cloud service's or
    the offline engine's would reach them: with an engine, its decodes of the caller's
    utterance so far every `PARTIAL_EVERY_MS` (the server's default; all of them, as the server
    makes when it has a worker to spare; the agent's are left out, since no default phrase rule
    reads the agent); in exact text, the final's words one more at a time."""
    inbound, outbound = ulaw_encode(rendered.inbound), ulaw_encode(rendered.outbound)
    start = Start(
        sequence_number=1, stream_sid=str(uuid.uuid4()), account_sid="eval", call_sid=call.id,
        tracks=("inbound", "outbound"), custom_parameters={}, encoding="audio/x-mulaw",
        sample_rate=8000, channels=1,
    )  # fmt: skip
    session = CallSession(
        start,
        org_id=uuid.uuid4(),
        call_id=uuid.uuid4(),
        config=SessionConfig(
            endpointer=EndpointerConfig(
                partial_every_ms=PARTIAL_EVERY_MS if partials and engine else None
            )
        ),
        vad_factory=lambda: WebRtcVoiceDetector(2),
        policy=CallPolicy(
            rules=DEFAULT_RULES, played_disclosure=PLAYED.get(call.consent_request, "none")
        ),
    )
    result = CallResult(call)

    def transcribe(ready: UtteranceReady) -> None:
        u = ready.utterance
        if u.kind == "partial" and engine is not None and ready.track == "inbound":
            so_far = engine.transcribe(u.pcm, u.sample_rate).text
            take(session.on_partial(ready.track, u.start_ms, u.end_ms, so_far))
        if not u.final:
            return  # an early decode only saves time, and this path has no clock
        if engine is None:
            text, name = exact_text(rendered, ready), "exact-text"
        else:
            text = engine.transcribe(ready.utterance.pcm, ready.utterance.sample_rate)
            name = engine.name
        if text.text:
            if partials and engine is None:
                words = text.text.split()
                for k in range(1, len(words) + 1):
                    end = u.start_ms + (u.end_ms - u.start_ms) * k // len(words)
                    take(session.on_partial(ready.track, u.start_ms, end, " ".join(words[:k])))
            take(session.on_transcript(ready, text, name))
        else:
            take(session.on_transcript_lost(ready, skipped=False))

    def take(events: Sequence[MediaEvent]) -> None:
        for e in events:
            if isinstance(e, TranscriptSegment):
                result.heard.append(("caller" if e.track == "inbound" else "agent", e.text))
            elif isinstance(e, ConsentEvidence) and e.verdict is not None:
                result.consent = e.verdict
            elif isinstance(e, EscalationRaised):
                result.escalations.append(e.rule_name)

    presses = sorted(rendered.presses, key=lambda p: p.offset_ms)
    take(session.outbox)
    session.outbox.clear()
    for chunk, offset in enumerate(range(0, len(inbound), FRAME_BYTES), start=1):
        now_ms = (chunk - 1) * 20
        while presses and presses[0].offset_ms <= now_ms:
            press = presses.pop(0)
            take(session.on_dtmf(Dtmf(None, press.track, press.digit, None)))
        for track, audio in (("inbound", inbound), ("outbound", outbound)):
            payload = audio[offset : offset + FRAME_BYTES]
            msg = Media(None, track, chunk, now_ms, payload)  # type: ignore[arg-type]
            for ready in session.on_media(msg, 0.0):
                transcribe(ready)
            take(session.outbox)
            session.outbox.clear()
    for ready in session.finish():
        transcribe(ready)
    take(session.settle())
    return result


def exact_text(rendered: RenderedCall, ready: UtteranceReady) -> Transcription:
    """The words of the turns that start in this utterance on its track (a turn the endpointer
    splits gives its words to its first part)."""
    u = ready.utterance
    said = [
        t.text
        for t in rendered.turns
        if t.track == ready.track and u.start_ms - 300 <= t.start_ms < u.end_ms
    ]
    return Transcription(" ".join(said), None)


def ratio(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.3f}" if denominator else "  n/a"


def report(results: list[CallResult]) -> list[str]:
    lines = [f"{'detector':<22} {'expected':>8} {'raised':>7} {'right':>6} "
             f"{'precision':>9} {'recall':>7}"]  # fmt: skip
    for verdict in ("granted", "refused"):
        want = sum(r.call.expect.consent == verdict for r in results)
        got = [r for r in results if r.consent == verdict]
        ok = sum(r.call.expect.consent == verdict for r in got)
        lines.append(
            f"{'consent ' + verdict:<22} {want:>8} {len(got):>7} {ok:>6} "
            f"{ratio(ok, len(got)):>9} {ratio(ok, want):>7}"
        )
    found_all = wanted_all = 0
    for rule in LABELLED_RULES:
        wanted = sum(rule in r.expected_rules for r in results)
        raised = [r for r in results if rule in r.escalations]
        hits = sum(rule in r.expected_rules for r in raised)
        if rule in PHRASE_RULES:
            found_all, wanted_all = found_all + hits, wanted_all + wanted
        lines.append(
            f"{rule:<22} {wanted:>8} {len(raised):>7} {hits:>6} {ratio(hits, len(raised)):>9} "
            f"{ratio(hits, wanted):>7}"
        )
    lines.append(f"{'all phrase rules':<22} {wanted_all:>8} {'':>7} {found_all:>6} "
                 f"{'':>9} {ratio(found_all, wanted_all):>7}")  # fmt: skip
    calm = [r for r in results if not r.expected_rules]
    alerted = [r for r in calm if set(r.escalations) & set(LABELLED_RULES)]
    lines.append(
        f"false alerts: {len(alerted)} of {len(calm)} calm calls "
        f"({10 * len(alerted) / max(len(calm), 1):.2f} per 10)"
    )
    for rule in (r.name for r in DEFAULT_RULES if r.name not in LABELLED_RULES):
        fired = sum(rule in r.escalations for r in results)
        lines.append(f"{rule + ' (unlabelled)':<34} fired in {fired} calls")
    return lines


def misses(results: list[CallResult]) -> list[str]:
    lines = []
    for r in results:
        wrong_consent = r.consent != r.call.expect.consent
        missing = r.expected_rules - set(r.escalations)
        extra = sorted({e for e in r.escalations if e in LABELLED_RULES} - r.expected_rules)
        if wrong_consent or missing or extra:
            what = []
            if wrong_consent:
                what.append(f"consent {r.consent} (want {r.call.expect.consent})")
            if missing:
                what.append(f"missed {sorted(missing)}")
            if extra:
                what.append(f"unwanted {extra}")
            said = " | ".join(f"{s}: {t}" for s, t in r.heard)
            lines.append(f"  {r.call.id}: {'; '.join(what)}\n      heard: {said}")
    return lines


@dataclass(frozen=True)
class EngineSpec:
    model: str
    models_dir: Path
    hotwords: str
    beam_size: int
    window_s: float
    reuse_transcripts: bool = False

    def key(self) -> str:
        hints = hashlib.sha1(self.hotwords.encode()).hexdigest()[:8]
        name = self.model.replace(":", "-").replace("/", "-")
        return f"{name}-beam{self.beam_size}-window{self.window_s:g}-hints{hints}"


TRANSCRIPTS_DIR = Path(".voxsouth/eval-transcripts")
"""What the engine heard for each utterance of each call, by the audio's hash: scoring the
detectors again after a change to them need not transcribe again (`--reuse-transcripts`)."""


class _RememberingEngine:
    """The worker's engine, with what it heard for one call kept and, when asked, reused."""

    def __init__(self, engine: TranscriptionEngine, path: Path, reuse: bool) -> None:
        self._engine, self._path = engine, path
        self.heard: dict[str, str] = {}
        if reuse and path.exists():
            self.heard = json.loads(path.read_text())

    @property
    def name(self) -> str:
        return self._engine.name

    def transcribe(self, pcm: bytes, sample_rate: int) -> Transcription:
        key = f"{sample_rate}:{hashlib.sha1(pcm).hexdigest()}"
        if key not in self.heard:
            self.heard[key] = self._engine.transcribe(pcm, sample_rate).text
        return Transcription(self.heard[key], None)

    def save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._path.write_text(json.dumps(self.heard))


_worker_engine: TranscriptionEngine | None = None
"""Each worker process's own engine (a model is not shared between processes)."""
_worker_spec: EngineSpec | None = None


def _start_worker(spec: EngineSpec | None) -> None:
    global _worker_engine, _worker_spec
    _worker_spec = spec
    if spec is not None:
        _worker_engine = WhisperEngine(
            spec.model,
            spec.models_dir,
            1,
            hotwords=spec.hotwords,
            beam_size=spec.beam_size,
            window_s=spec.window_s,
        )


def _score(call: Dialogue, playing: Playing, partials: bool) -> CallResult:
    if _worker_engine is None or _worker_spec is None:
        return run_call(call, render(call, playing), None, partials)
    path = TRANSCRIPTS_DIR / playing / _worker_spec.key() / f"{call.id}.json"
    engine = _RememberingEngine(_worker_engine, path, _worker_spec.reuse_transcripts)
    result = run_call(call, render(call, playing), engine, partials)
    engine.save()
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("dev", "test"), required=True)
    parser.add_argument("--playing", choices=(*PLAYINGS, "exact"), default="neural")
    parser.add_argument("--model", default="bundled:tiny.en")
    parser.add_argument("--models-dir", type=Path, default=Path(".voxsouth/models"))
    parser.add_argument("--hotwords", default=CONSENT_HOTWORDS, help="decoder hints ('' none)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument(
        "--window-s", type=float, default=DEFAULT_WINDOW_S, help="encoder window (30: Whisper's)"
    )
    parser.add_argument("--calls", help="only calls whose id starts with this")
    parser.add_argument("--misses", action="store_true", help="list every call scored wrong")
    parser.add_argument(
        "--rendered-only", action="store_true", help="skip calls whose audio is not rendered yet"
    )
    parser.add_argument("--jobs", type=int, default=2, help="calls scored in parallel")
    parser.add_argument(
        "--reuse-transcripts",
        action="store_true",
        help=f"take the engine's words from an earlier run with the same settings "
        f"({TRANSCRIPTS_DIR}); valid while the engine's code and model are unchanged",
    )
    parser.add_argument(
        "--partials",
        action="store_true",
        help="phrase rules read partials too: the engine's decodes of the caller's utterance so "
        "far (exact text: its words one at a time)",
    )
    args = parser.parse_args(argv)
    playing: Literal["neural", "flite", "espeak"] = (
        "neural" if args.playing == "exact" else args.playing
    )
    engine_spec = None
    if args.playing != "exact":
        engine_spec = EngineSpec(
            args.model, args.models_dir, args.hotwords, args.beam_size, args.window_s,
            args.reuse_transcripts,
        )  # fmt: skip
    calls = [c for c in load_part(args.part) if not args.calls or c.id.startswith(args.calls)]
    if args.rendered_only:
        calls = [c for c in calls if (CACHE_DIR / playing / f"{c.id}.wav").exists()]
    started = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=max(1, args.jobs), initializer=_start_worker, initargs=(engine_spec,)
    ) as pool:
        results = list(
            pool.map(_score, calls, [playing] * len(calls), [args.partials] * len(calls))
        )
    engine_name = args.model if engine_spec else "none (exact text)"
    print(f"{args.part} part: {len(calls)} calls, {args.playing} playing, "
          f"engine {engine_name}, beam {args.beam_size}, window {args.window_s:g} s, "
          f"{'partials, ' if args.partials else ''}"
          f"{'transcripts reused, ' if args.reuse_transcripts else ''}"
          f"{args.jobs} jobs, "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    print("\n".join(report(results)))
    if args.misses and (wrong := misses(results)):
        print("\nmisses:\n" + "\n".join(wrong))


if __name__ == "__main__":
    main()
