"""What prompts and uploads cost: `python -m bench.audio [--repeat N]`.

Prints the offline voice's (Piper) time to load and render the default disclosure, then its
render time per prompt (median of `--repeat`), and the time to convert a minute of real speech
uploaded as WAV, MP3, OGG/Opus and M4A/AAC to telephony WAV (control.audio_convert), with the
sizes in and out. No network; stops by itself in a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from control.audio_convert import to_telephony
from control.voices import Piper
from server.settings import Settings
from tests.support.audio_files import FORMATS, encoded_speech


async def _voice(repeat: int) -> None:
    text = Settings.model_fields["disclosure_text"].default
    piper = Piper()
    started = time.perf_counter()
    clip = await piper.render(text, None)
    print(f"piper: load + first render {time.perf_counter() - started:.2f} s "
          f"({clip.duration_ms / 1000:.1f} s of speech)")  # fmt: skip
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await piper.render(text, None)
        times.append(time.perf_counter() - started)
    print(f"piper: render {statistics.median(times) * 1000:.0f} ms (median of {repeat})")


def _uploads(repeat: int) -> None:
    print(f"{'upload (60 s)':<14}{'in KiB':>8}{'out KiB':>9}{'convert ms':>12}")
    for kind in FORMATS:
        data = encoded_speech(kind, 60.0)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            converted = to_telephony(data, 600)
            times.append(time.perf_counter() - started)
        print(f"{kind:<14}{len(data) // 1024:>8}{len(converted.wav) // 1024:>9}"
              f"{statistics.median(times) * 1000:>12.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(_voice(args.repeat))
    _uploads(args.repeat)


if __name__ == "__main__":
    main()
