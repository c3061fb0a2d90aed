"""Per-frame audio decoding for media-stream payloads: bytes in, 16-bit PCM bytes out.

SignalWire sends PCMU (`audio/x-mulaw`, 8000 Hz, the default) or L16 (`audio/x-L16`, 16000 or
24000 Hz), mono, base64 inside each `media` message (docs/protocols.md section a). A `Decoder`
turns one track's payloads into 16-bit signed PCM in native byte order (little-endian on every
platform we run on) at a rate a VAD accepts: 8000 Hz for mu-law, 16000 Hz for L16.

This is the hot path (50 frames a second per track per call), so each call is one or two C
calls into `audioop` with no numpy and no per-frame allocation beyond the output.

`audioop` is the stdlib module before Python 3.13; from 3.13 the `audioop-lts` package provides
the same module name (DESIGN decision). This module is the one place the project imports it.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from typing import Final, TypeAlias

with warnings.catch_warnings():
    # Python 3.12 warns on import (PEP 594); the warning is about 3.13, where audioop-lts
    # takes over the name, so importing this module stays warning-free.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

MULAW: Final = "audio/x-mulaw"
L16: Final = "audio/x-L16"

# The rates SignalWire's `codec` attribute allows for each encoding (PCMU@8000h, L16@16000h,
# L16@24000h).
_RATES: Final[dict[str, frozenset[int]]] = {
    MULAW: frozenset((8000,)),
    L16: frozenset((16000, 24000)),
}
_CANONICAL: Final[dict[str, str]] = {name.lower(): name for name in _RATES}

# webrtcvad accepts 8, 16, 32 and 48 kHz; 24 kHz L16 is brought down to 16 kHz.
_L16_OUTPUT_RATE: Final = 16000

_RatecvState: TypeAlias = tuple[int, tuple[tuple[int, int], ...]] | None


class UnsupportedFormat(ValueError):
    """A media format (encoding and sample rate) this server cannot decode."""


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """One stream's media format, as announced in `start.mediaFormat`.

    `encoding` is the canonical spelling (`MULAW` or `L16`); `sample_rate` must be one SignalWire
    allows for it, otherwise construction raises `UnsupportedFormat`. `big_endian` is the L16
    byte order and is ignored for mu-law.
    """

    encoding: str
    sample_rate: int
    # RTP L16 is big-endian (RFC 3551); what SignalWire sends is UNCONFIRMED, so configurable.
    big_endian: bool = True

    def __post_init__(self) -> None:
        rates = _RATES.get(self.encoding)
        if rates is None:
            raise UnsupportedFormat(f"unsupported encoding {self.encoding!r}")
        if self.sample_rate not in rates:
            raise UnsupportedFormat(
                f"unsupported sample rate {self.sample_rate} for {self.encoding}"
            )

    @property
    def bytes_per_sample(self) -> int:
        """Bytes per sample on the wire: 1 for mu-law, 2 for L16."""
        return 1 if self.encoding == MULAW else 2


def parse_format(encoding: str, sample_rate: int, *, l16_big_endian: bool = True) -> AudioFormat:
    """Build the `AudioFormat` for a `start` message's encoding and sample rate.

    The encoding matches case-insensitively (`audio/x-l16` is `audio/x-L16`) and is stored in
    its canonical spelling. Raises `UnsupportedFormat` for any other encoding, or a rate the
    encoding does not come in.
    """
    canonical = _CANONICAL.get(encoding.lower())
    if canonical is None:
        raise UnsupportedFormat(f"unsupported encoding {encoding!r}")
    return AudioFormat(canonical, sample_rate, big_endian=l16_big_endian)


class Decoder:
    """Decodes one track's payloads to 16-bit native-endian (little-endian) PCM at `output_rate`.

    `output_rate` is 8000 for mu-law and 16000 for L16: L16 at 16000 Hz is only byte-swapped if
    needed, L16 at 24000 Hz is resampled to 16000 Hz with `audioop.ratecv`, whose filter state is
    kept across frames so frame boundaries leave no clicks and no samples are lost or repeated.
    Use one decoder per track; it is not thread-safe.
    """

    __slots__ = ("output_rate", "_mulaw", "_swap", "_input_rate", "_resample", "_state")

    def __init__(self, fmt: AudioFormat) -> None:
        self._mulaw = fmt.encoding == MULAW
        # audioop works in native byte order; swap when the wire order differs from it.
        self._swap = not self._mulaw and fmt.big_endian != (sys.byteorder == "big")
        self._input_rate = fmt.sample_rate
        self._resample = not self._mulaw and fmt.sample_rate != _L16_OUTPUT_RATE
        self._state: _RatecvState = None
        self.output_rate: int = fmt.sample_rate if self._mulaw else _L16_OUTPUT_RATE

    def decode(self, payload: bytes) -> bytes:
        """Return `payload` as 16-bit PCM at `output_rate`.

        Raises `ValueError` for an L16 payload of odd length (not a whole number of samples);
        the decoder's state is unchanged then, so the next frame decodes normally.
        """
        if self._mulaw:
            return audioop.ulaw2lin(payload, 2)
        if len(payload) % 2:
            raise ValueError(f"L16 payload of {len(payload)} bytes is not whole 16-bit samples")
        pcm = audioop.byteswap(payload, 2) if self._swap else payload
        if self._resample:
            pcm, self._state = audioop.ratecv(
                pcm, 2, 1, self._input_rate, _L16_OUTPUT_RATE, self._state
            )
        return pcm


def ulaw_encode(pcm16: bytes) -> bytes:
    """Encode 16-bit native-endian PCM to G.711 mu-law, one byte per sample.

    Raises `ValueError` if `pcm16` has an odd length.
    """
    if len(pcm16) % 2:
        raise ValueError(f"PCM of {len(pcm16)} bytes is not whole 16-bit samples")
    return audioop.lin2ulaw(pcm16, 2)


def ulaw_decode(ulaw: bytes) -> bytes:
    """Decode G.711 mu-law to 16-bit native-endian PCM (two bytes per input byte)."""
    return audioop.ulaw2lin(ulaw, 2)


def alaw_decode(alaw: bytes) -> bytes:
    """Decode G.711 A-law to 16-bit native-endian PCM (two bytes per input byte)."""
    return audioop.alaw2lin(alaw, 2)


def level_dbfs(pcm16: bytes) -> float:
    """RMS level of 16-bit PCM in dB relative to full scale (-120 for digital silence)."""
    rms = audioop.rms(pcm16, 2) if pcm16 else 0
    return 20 * math.log10(rms / 32768) if rms else -120.0
