"""The command line: `python -m server.simulator.fake_stt --service assemblyai|deepgram ...`
runs one fake on 127.0.0.1 until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from media.transcription.engine import TranscriptionEngine
from media.vad import VoiceDetector, WebRtcVoiceDetector
from server.simulator.fake_stt.assemblyai import running_fake_assemblyai
from server.simulator.fake_stt.deepgram import running_fake_deepgram
from server.simulator.fake_stt.ears import PlaceholderEars
from server.simulator.fake_stt.segmenter import EnergyVoiceDetector


def _interval(value: str) -> int | None:
    return None if value.lower() == "none" else int(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.simulator.fake_stt",
        description="Run a fake AssemblyAI or Deepgram streaming server on 127.0.0.1; "
        "prints its URL once listening.",
    )
    parser.add_argument("--service", choices=("assemblyai", "deepgram"), required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", required=True)
    parser.add_argument(
        "--ears",
        choices=("whisper", "placeholder"),
        default="whisper",
        help="what the fake hears with: the offline engine, or placeholder words as many as the "
        "speech is long (capacity benches: hundreds of sessions, no CPU for hearing)",
    )
    parser.add_argument("--model", default="bundled:tiny.en", help="WhisperEngine model spec")
    parser.add_argument("--workers", type=int, default=2, help="concurrent decodes")
    parser.add_argument("--vad", choices=("energy", "webrtc"), default="energy")
    parser.add_argument("--partial-interval-ms", type=_interval, default=1000, help="or none")
    parser.add_argument(
        "--report",
        type=Path,
        help="on exit, write each session's record (audio, results, its own latency per final) "
        "to this JSON file",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    engine: TranscriptionEngine = PlaceholderEars()
    if args.ears == "whisper":
        from media.transcription.whisper import WhisperEngine  # heavy: only when it hears

        engine = WhisperEngine(args.model, Path(".voxsouth/models"), workers=args.workers)
    detector: Callable[[], VoiceDetector] = (
        EnergyVoiceDetector if args.vad == "energy" else lambda: WebRtcVoiceDetector(2)
    )
    options: dict[str, Any] = {
        "api_key": args.api_key,
        "port": args.port,
        "partial_interval_ms": args.partial_interval_ms,
        "voice_detector": detector,
    }

    async def serve_until_signalled() -> None:
        running = running_fake_assemblyai if args.service == "assemblyai" else running_fake_deepgram
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with running(engine, **options) as fake:
            print(fake.url, flush=True)
            await stop.wait()
        if args.report is not None:
            sessions = [
                {
                    "handshake_status": r.handshake_status, "audio_bytes": r.audio_bytes,
                    "results": len(r.sent), "close_code": r.close_code,
                    "final_latency_s": r.final_latency_s,
                }
                for r in fake.sessions
            ]  # fmt: skip
            args.report.write_text(json.dumps({"sessions": sessions}))

    asyncio.run(serve_until_signalled())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
