"""Fake AssemblyAI Universal-Streaming (v3) and Deepgram live (v1/listen) servers on loopback.

Our cloud transcription adapters connect to these by configuration alone (base URL + API key),
in tests and in benchmarks. Each fake speaks its service's wire protocol as docs/protocols.md
(sections f and g) describes it, and its words come from a real `TranscriptionEngine` run on the
audio the fake received; nothing in a result is scripted text:

    decode (mu-law or 16-bit PCM) → `Segmenter` (voice detector + silence rule) → utterances
    → engine in a worker thread → the service's result messages, word times on the session's
    audio clock

Where the doc is silent, this fake decides (and the comments marked "doc silent" say so); each
module's docstring lists its decisions.

The modules, one job each:
- `segmenter`: finding utterances in the audio (`Segmenter`, `EnergyVoiceDetector`); pure.
- `words`: an engine's text as the words of a result, with times.
- `ears`: `PlaceholderEars`, for capacity benches (as many words as the speech is long, no
  CPU spent hearing); every test hears with a real engine.
- `service`: what both fakes share: the server (`FakeSpeechService`, its faults), one session's
  loops, and the `SessionRecord` a test reads.
- `assemblyai`, `deepgram`: each service's protocol, and a context manager that runs its fake.
- `__main__`: the command line, `python -m server.simulator.fake_stt` (`--ears placeholder`,
  `--report FILE`: each session's record, with the fake's own latency per final, on exit).
"""

from server.simulator.fake_stt.assemblyai import (
    ASSEMBLYAI_SPEECH_MODELS,
    FakeAssemblyAI,
    running_fake_assemblyai,
)
from server.simulator.fake_stt.deepgram import (
    DEFAULT_SILENCE_MS,
    MIN_ENDPOINTING_MS,
    FakeDeepgram,
    running_fake_deepgram,
)
from server.simulator.fake_stt.segmenter import (
    FRAME_MS,
    EnergyVoiceDetector,
    Segment,
    Segmenter,
)
from server.simulator.fake_stt.service import (
    SAMPLE_RATES,
    FakeSpeechService,
    Message,
    SessionRecord,
)

__all__ = [
    "ASSEMBLYAI_SPEECH_MODELS",
    "DEFAULT_SILENCE_MS",
    "FRAME_MS",
    "MIN_ENDPOINTING_MS",
    "SAMPLE_RATES",
    "EnergyVoiceDetector",
    "FakeAssemblyAI",
    "FakeDeepgram",
    "FakeSpeechService",
    "Message",
    "Segment",
    "Segmenter",
    "SessionRecord",
    "running_fake_assemblyai",
    "running_fake_deepgram",
]
