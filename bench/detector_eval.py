"""Precision and recall of the consent and escalation detectors on the labelled evaluation set.

    python -m bench.detector_eval [--model bundled:tiny.en] [--disclosure spoken|played]

Every call of tests/fixtures/eval is played, frame by frame, through the same `CallSession`
the media server runs (decode, VAD and endpointing, the detectors), with the real offline
transcription engine transcribing each utterance as it ends. No sockets and no clock: the
figures are those of the detection path itself, and the same on every run. `--exact-text`
gives each utterance what was really said instead: the detectors without transcription errors.

Per detector it prints what was expected, what was raised and what was right:
- consent: the call's final verdict against the label (precision over the calls given a
  verdict, recall over the calls whose label has one; a question or a mixed answer is labelled
  "no verdict", so a verdict there counts against precision);
- disclosure: the agent's spoken disclosure heard on the agent's track (`--disclosure spoken`,
  the default; with `played` the platform's own disclosure opens the answer window instead);
- each phrase rule: expected escalations found, and false alerts per 10 calls with none;
- the acoustic, sentiment and composite rules: the set has no labels for them, so every alert
  is counted as a false one (the calls are calm).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.eval_set import EvalCall, load, render_call
from media.codecs import ulaw_encode
from media.detectors.rules import DEFAULT_RULES
from media.events import ConsentEvidence, EscalationRaised, MediaEvent, TranscriptSegment
from media.protocol import Media, Start
from media.session import CallPolicy, CallSession, SessionConfig, UtteranceReady
from media.transcription.engine import Transcription, TranscriptionEngine
from media.transcription.whisper import CONSENT_HOTWORDS, WhisperEngine
from media.vad import WebRtcVoiceDetector

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
PHRASE_RULES = tuple(r.name for r in DEFAULT_RULES if r.kind == "phrase")
UNLABELLED_RULES = tuple(r.name for r in DEFAULT_RULES if r.kind != "phrase")


@dataclass
class CallResult:
    call: EvalCall
    consent: str | None = None
    disclosure_heard: bool = False
    escalations: list[str] = field(default_factory=list)
    heard: list[tuple[str, str]] = field(default_factory=list)
    """(speaker, text) of every transcript segment, for the misses report."""


def exact_text(call: EvalCall, ready: UtteranceReady) -> Transcription:
    """What the utterance's speaker actually said: the text of the turn that starts nearest to
    it (every turn of the set is one utterance to the endpointer)."""
    turns = call.caller if ready.track == "inbound" else call.agent
    turn = min(turns, key=lambda t: abs(t.at_ms - ready.utterance.start_ms))
    return Transcription(turn.text, None)


def run_call(
    call: EvalCall, engine: TranscriptionEngine | None, disclosure_played: bool
) -> CallResult:
    """With no engine, every utterance is given its exact text: the detectors alone."""
    inbound, outbound = (ulaw_encode(pcm) for pcm in render_call(call))
    start = Start(
        sequence_number=1, stream_sid=str(uuid.uuid4()), account_sid="eval", call_sid=call.id,
        tracks=("inbound", "outbound"), custom_parameters={}, encoding="audio/x-mulaw",
        sample_rate=8000, channels=1,
    )  # fmt: skip
    session = CallSession(
        start,
        org_id=uuid.uuid4(),
        call_id=uuid.uuid4(),
        config=SessionConfig(),
        vad_factory=lambda: WebRtcVoiceDetector(2),
        policy=CallPolicy(
            rules=DEFAULT_RULES, played_disclosure="question" if disclosure_played else "none"
        ),
    )
    result = CallResult(call)

    def transcribe(ready: UtteranceReady) -> None:
        if engine is None:
            text, name = exact_text(call, ready), "exact-text"
        else:
            text = engine.transcribe(ready.utterance.pcm, ready.utterance.sample_rate)
            name = engine.name
        if text.text:
            take(session.on_transcript(ready, text, name))

    def take(events: list[MediaEvent]) -> None:
        for e in events:
            if isinstance(e, TranscriptSegment):
                result.heard.append(("caller" if e.track == "inbound" else "agent", e.text))
            elif isinstance(e, ConsentEvidence):
                if e.kind == "disclosure":
                    result.disclosure_heard = True
                elif e.verdict is not None:
                    result.consent = e.verdict
            elif isinstance(e, EscalationRaised):
                result.escalations.append(e.rule_name)

    for chunk, offset in enumerate(range(0, len(inbound), FRAME_BYTES), start=1):
        for track, audio in (("inbound", inbound), ("outbound", outbound)):
            msg = Media(None, track, chunk, (chunk - 1) * 20, audio[offset : offset + FRAME_BYTES])  # type: ignore[arg-type]
            for ready in session.on_media(msg, 0.0):
                transcribe(ready)
            take(session.outbox)
            session.outbox.clear()
    for ready in session.finish():
        transcribe(ready)
    return result


def ratio(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.3f}" if denominator else "  n/a"


@dataclass(frozen=True)
class Targets:
    """The figures the issue's targets are about, for one group of calls."""

    consent_expected: int
    consent_decided: int
    consent_right: int
    phrases_wanted: int
    phrases_found: int
    calm_calls: int
    calm_alerted: int

    @classmethod
    def of(cls, results: list[CallResult]) -> Targets:
        decided = [r for r in results if r.consent is not None]
        calm = [r for r in results if not r.call.expect.escalations]
        return cls(
            consent_expected=sum(r.call.expect.consent is not None for r in results),
            consent_decided=len(decided),
            consent_right=sum(r.consent == r.call.expect.consent for r in decided),
            phrases_wanted=sum(len(r.call.expect.escalations) for r in results),
            phrases_found=sum(
                len(set(r.call.expect.escalations) & set(r.escalations)) for r in results
            ),
            calm_calls=len(calm),
            calm_alerted=sum(any(e in PHRASE_RULES for e in r.escalations) for r in calm),
        )

    @property
    def false_alerts_per_10(self) -> float:
        return 10 * self.calm_alerted / max(self.calm_calls, 1)


def report(results: list[CallResult], disclosure_played: bool) -> list[str]:
    t = Targets.of(results)
    lines = [f"{'detector':<22} {'expected':>8} {'raised':>7} {'right':>6} "
             f"{'precision':>9} {'recall':>7}  false alerts"]  # fmt: skip
    lines.append(
        f"{'consent verdict':<22} {t.consent_expected:>8} {t.consent_decided:>7} "
        f"{t.consent_right:>6} {ratio(t.consent_right, t.consent_decided):>9} "
        f"{ratio(t.consent_right, t.consent_expected):>7}  "
        f"{t.consent_decided - t.consent_right} wrong or unwanted"
    )
    for verdict in ("granted", "refused"):
        want = [r for r in results if r.call.expect.consent == verdict]
        got = [r for r in results if r.consent == verdict]
        ok = [r for r in got if r.call.expect.consent == verdict]
        lines.append(
            f"{'  ' + verdict:<22} {len(want):>8} {len(got):>7} {len(ok):>6} "
            f"{ratio(len(ok), len(got)):>9} {ratio(len(ok), len(want)):>7}"
        )
    if not disclosure_played:
        heard = sum(r.disclosure_heard for r in results)
        lines.append(
            f"{'disclosure (agent)':<22} {len(results):>8} {heard:>7} {heard:>6} "
            f"{'':>9} {ratio(heard, len(results)):>7}"
        )
    for rule in PHRASE_RULES:
        wanted = sum(rule in r.call.expect.escalations for r in results)
        raised = [r for r in results if rule in r.escalations]
        hits = sum(rule in r.call.expect.escalations for r in raised)
        lines.append(
            f"{rule:<22} {wanted:>8} {len(raised):>7} {hits:>6} {ratio(hits, len(raised)):>9} "
            f"{ratio(hits, wanted):>7}  {len(raised) - hits}"
        )
    lines.append(
        f"{'all phrase rules':<22} {t.phrases_wanted:>8} {'':>7} {t.phrases_found:>6} "
        f"{'':>9} {ratio(t.phrases_found, t.phrases_wanted):>7}  {t.calm_alerted} of "
        f"{t.calm_calls} calm calls alerted ({t.false_alerts_per_10:.2f} per 10)"
    )
    for rule in UNLABELLED_RULES:
        raised_calls = sum(rule in r.escalations for r in results)
        lines.append(f"{rule:<22} {0:>8} {raised_calls:>7} {0:>6} {'':>9} {'':>7}  {raised_calls}")
    return lines


def headline(results: list[CallResult]) -> str:
    t = Targets.of(results)
    return (
        f"consent precision {ratio(t.consent_right, t.consent_decided)} "
        f"recall {ratio(t.consent_right, t.consent_expected)}, "
        f"phrase recall {ratio(t.phrases_found, t.phrases_wanted)}, "
        f"{t.false_alerts_per_10:.2f} false phrase alerts per 10 calm calls"
    )


def misses(results: list[CallResult]) -> list[str]:
    lines = []
    for r in results:
        wrong_consent = r.consent != r.call.expect.consent
        missing = set(r.call.expect.escalations) - set(r.escalations)
        extra = [e for e in r.escalations if e not in r.call.expect.escalations]
        if wrong_consent or missing or extra:
            what = []
            if wrong_consent:
                what.append(f"consent {r.consent} (want {r.call.expect.consent})")
            if missing:
                what.append(f"missed {sorted(missing)}")
            if extra:
                what.append(f"unwanted {extra}")
            caller = " | ".join(t for s, t in r.heard if s == "caller")
            lines.append(f"  {r.call.id}: {'; '.join(what)}\n      caller heard: {caller}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bundled:tiny.en")
    parser.add_argument("--models-dir", type=Path, default=Path(".voxsouth/models"))
    parser.add_argument("--disclosure", choices=("spoken", "played"), default="spoken")
    parser.add_argument("--hotwords", default=CONSENT_HOTWORDS, help="decoder hints ('' none)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument(
        "--exact-text", action="store_true", help="skip transcription: the detectors alone"
    )
    parser.add_argument("--calls", help="only calls whose id starts with this")
    args = parser.parse_args()
    engine = None
    if not args.exact_text:
        engine = WhisperEngine(
            args.model, args.models_dir, 1, hotwords=args.hotwords, beam_size=args.beam_size
        )
    calls = [c for c in load() if not args.calls or c.id.startswith(args.calls)]
    played = args.disclosure == "played"
    started = time.perf_counter()
    results = [run_call(c, engine, played) for c in calls]
    kinds = Counter(
        "escalation" if c.expect.escalations else f"consent {c.expect.consent}" for c in calls
    )
    print(f"{len(calls)} calls ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), "
          f"engine {engine.name if engine else 'none (exact text)'}, "
          f"beam {args.beam_size}, disclosure {args.disclosure}, "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    print("\n".join(report(results, played)))
    # The set plays every call twice: the caller in an espeak-ng voice, then in a flite one.
    flite = [r for r in results if r.call.id.endswith("-flite")]
    espeak = [r for r in results if not r.call.id.endswith("-flite")]
    for name, group in (("espeak-ng callers", espeak), ("flite callers", flite)):
        if group:
            print(f"{name + ':':<19} {len(group)} calls, {headline(group)}")
    if wrong := misses(results):
        print("\nmisses:\n" + "\n".join(wrong))


if __name__ == "__main__":
    main()
