"""Audio as telephony plays it: 8 kHz mono μ-law WAV, from what people upload or a voice renders.

What a file is comes from its first bytes, never its name: WAV (RIFF/WAVE), MP3 (an ID3 tag or
an MPEG audio frame), OGG (OggS) and M4A (an ISO media `ftyp` box). Each is opened with that
one demuxer of FFmpeg (through PyAV), so a file cannot steer FFmpeg into another format's
parser, and decoded, resampled to 8 kHz mono and encoded as μ-law in a WAV container, which
SignalWire's `<Play>` takes. Decoding stops at `max_seconds`, so a small file that decodes to
hours is refused before it is held in memory.

CPU-bound and blocking: callers run it in a thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Final, Literal

import av
import numpy as np
import numpy.typing as npt

from media.codecs import ulaw_decode

Kind = Literal["wav", "mp3", "ogg", "m4a"]
RATE: Final = 8000
_DEMUXER: Final[dict[Kind, str]] = {"wav": "wav", "mp3": "mp3", "ogg": "ogg", "m4a": "mov"}


class AudioRejected(Exception):
    """The audio cannot be played: `code` names why for the API's error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Telephony:
    wav: bytes
    """8 kHz mono μ-law WAV."""
    duration_ms: int
    kind: Kind | None = None
    """What the source was, when it was a file."""


def sniff(data: bytes) -> Kind | None:
    """The kind of audio file `data` begins as, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or _mpeg_audio_frame(data[:4]):
        return "mp3"
    if data[:4] == b"OggS":
        return "ogg"
    if data[4:8] == b"ftyp":
        return "m4a"
    return None


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG-1/2 layer III frame header: 11 sync bits, a valid version, layer III, and a
    bitrate and sample rate that are not the reserved values."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def to_telephony(data: bytes, max_seconds: float) -> Telephony:
    """`data` (an audio file) decoded and converted; raises AudioRejected when it is none of
    the four kinds, cannot be decoded, holds no audio, or plays longer than `max_seconds`."""
    kind = sniff(data)
    if kind is None:
        raise AudioRejected(
            "UNSUPPORTED_AUDIO", "the file is not WAV, MP3, OGG or M4A audio (by its content)"
        )
    limit = int(max_seconds * RATE)
    chunks: list[npt.NDArray[np.int16]] = []
    held = 0
    try:
        with av.open(io.BytesIO(data), "r", format=_DEMUXER[kind]) as container:
            if not container.streams.audio:
                raise AudioRejected("NO_AUDIO", f"the {kind} file holds no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    held += _take(out, chunks)
                if held > limit:
                    raise AudioRejected(
                        "AUDIO_TOO_LONG", f"the audio plays longer than {max_seconds:g} s"
                    )
            for out in resampler.resample(None):
                held += _take(out, chunks)
    except av.FFmpegError as exc:
        raise AudioRejected("UNREADABLE_AUDIO", f"the {kind} file cannot be decoded") from exc
    if held > limit:
        raise AudioRejected("AUDIO_TOO_LONG", f"the audio plays longer than {max_seconds:g} s")
    if held == 0:
        raise AudioRejected("NO_AUDIO", f"the {kind} file holds no audio")
    return replace(pcm16_to_telephony(np.concatenate(chunks)), kind=kind)


def _take(frame: av.AudioFrame, into: list[npt.NDArray[np.int16]]) -> int:
    samples = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
    into.append(samples)
    return len(samples)


def pcm16_to_telephony(samples: npt.NDArray[np.int16]) -> Telephony:
    """8 kHz mono 16-bit samples encoded as μ-law in a WAV container."""
    out = io.BytesIO()
    with av.open(out, "w", format="wav") as container:
        stream = container.add_stream("pcm_mulaw", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return Telephony(out.getvalue(), len(samples) * 1000 // RATE)


def float_to_telephony(samples: npt.NDArray[np.float32], rate: int) -> Telephony:
    """Float samples in [-1, 1] at `rate` (a synthesizer's output) resampled and converted."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
    )
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    chunks: list[npt.NDArray[np.int16]] = []
    for out in [*resampler.resample(frame), *resampler.resample(None)]:
        _take(out, chunks)
    return pcm16_to_telephony(np.concatenate(chunks) if chunks else np.zeros(0, np.int16))


def mulaw_to_telephony(mulaw: bytes) -> Telephony:
    """Raw 8 kHz μ-law bytes (a voice service's `ulaw_8000`) put in a WAV container."""
    return pcm16_to_telephony(np.frombuffer(ulaw_decode(mulaw), dtype=np.int16))
