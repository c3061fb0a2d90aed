"""Real speech encoded as the audio files people upload (WAV, MP3, OGG/Opus, M4A/AAC), with
PyAV's encoders, and a reader for the telephony WAV the server makes of them."""

from __future__ import annotations

import io
import struct
import wave
from functools import cache
from pathlib import Path
from typing import Final, cast

import av
import numpy as np
import numpy.typing as npt

SPEECH: Final = Path(__file__).parent.parent / "fixtures" / "speech" / "caller_mono.wav"
"""9.2 s: "Hello, I am calling about my account balance. Can you tell me when my payment is
due?" (tests/fixtures/speech/texts.json)."""
FORMATS: Final = ("wav", "mp3", "ogg", "m4a")
_ENCODING: Final = {  # container, codec, sample rate: as such files usually come
    "wav": ("wav", "pcm_s16le", 44_100),
    "mp3": ("mp3", "libmp3lame", 44_100),
    "ogg": ("ogg", "libopus", 48_000),
    "m4a": ("ipod", "aac", 44_100),
}


@cache
def encoded_speech(kind: str, seconds: float | None = None) -> bytes:
    """The speech fixture (repeated to `seconds` when given) encoded as a `kind` file."""
    with wave.open(str(SPEECH)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        rate = w.getframerate()
    if seconds is not None:
        pcm = np.resize(pcm, int(seconds * rate))
    return encode(pcm, rate, *_ENCODING[kind])


def encode(pcm: npt.NDArray[np.int16], rate: int, fmt: str, codec: str, out_rate: int) -> bytes:
    """16-bit mono samples at `rate` as a `fmt` file of `codec` audio at `out_rate`."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = cast(av.AudioStream, container.add_stream(codec, rate=out_rate, layout="mono"))
        source = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        source.sample_rate = rate
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout="mono", rate=out_rate,
            frame_size=stream.codec_context.frame_size or None,
        )  # fmt: skip
        for frame in [*resampler.resample(source), *resampler.resample(None)]:
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def telephony_header(wav: bytes) -> tuple[int, int, int]:
    """A WAV file's (format tag, channels, sample rate): (7, 1, 8000) is 8 kHz mono mu-law."""
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    at = 12
    while at + 8 <= len(wav):
        chunk, size = wav[at : at + 4], struct.unpack("<I", wav[at + 4 : at + 8])[0]
        if chunk == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", wav[at + 8 : at + 16])
            return tag, channels, rate
        at += 8 + size + (size & 1)
    raise AssertionError("no fmt chunk")


def mulaw_samples(wav: bytes) -> bytes:
    """The audio bytes of a mu-law WAV (its data chunk)."""
    at = 12
    while at + 8 <= len(wav):
        chunk, size = wav[at : at + 4], struct.unpack("<I", wav[at + 4 : at + 8])[0]
        if chunk == b"data":
            return wav[at + 8 : at + 8 + size]
        at += 8 + size + (size & 1)
    raise AssertionError("no data chunk")
