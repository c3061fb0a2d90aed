"""How long the offline engine takes to decode one caller turn, per model:
`python -m bench.decode_time [--models bundled:tiny.en bundled:base] [--calls 8]`.

One worker, the server's decoding settings (beam, window, hints), the first caller turn (up to
4 s) of the first N calls of the dev part as the neural playing renders it, each decoded twice
after one warm-up decode; prints the median and the 90th percentile per model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from bench.dialogue_audio import render
from bench.dialogues import load_part
from media.transcription.whisper import WhisperEngine

RATE = 8000
TURN_BYTES = 4 * RATE * 2  # 4 s of 16-bit PCM


def caller_turns(calls: int) -> list[bytes]:
    turns = []
    for call in load_part("dev")[:calls]:
        rendered = render(call, "neural")
        first = next(t for t in rendered.turns if t.track == "inbound")
        start = first.start_ms * RATE // 1000 * 2
        turns.append(rendered.inbound[start : start + TURN_BYTES])
    return turns


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["bundled:tiny.en", "bundled:base"])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--models-dir", type=Path, default=Path(".voxsouth/models"))
    args = parser.parse_args(argv)
    turns = caller_turns(args.calls)
    for model in args.models:
        engine = WhisperEngine(model, args.models_dir, 1)
        engine.transcribe(turns[0], RATE)  # warm-up
        times = []
        for pcm in turns * 2:
            started = time.perf_counter()
            engine.transcribe(pcm, RATE)
            times.append(time.perf_counter() - started)
        p90 = sorted(times)[int(0.9 * len(times))]
        print(f"{model}: median {statistics.median(times):.2f} s, p90 {p90:.2f} s "
              f"over {len(times)} decodes of caller turns up to 4 s")  # fmt: skip


if __name__ == "__main__":
    main()
