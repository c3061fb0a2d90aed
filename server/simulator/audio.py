"""Read a speech file for the call simulator: any common WAV in, 8 kHz mu-law tracks out.

The simulator plays a recorded call into the server the way SignalWire would: 20 ms frames of
8 kHz mu-law per track. A mono file is the caller alone (the inbound track); a stereo file is a
two-party call, left channel the caller (inbound), right channel the agent (outbound).

The RIFF/WAVE parser is our own because the stdlib `wave` module reads integer PCM only, and
recordings arrive as float, A-law, mu-law and WAVE_FORMAT_EXTENSIBLE too. Supported: PCM
8/16/24/32-bit, IEEE float 32/64-bit, A-law, mu-law, each directly or inside
WAVE_FORMAT_EXTENSIBLE; any sample rate; 1 or 2 channels.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from media.codecs import alaw_decode, ulaw_decode, ulaw_encode

FloatArray = npt.NDArray[np.float64]

OUTPUT_RATE: Final = 8000
FRAME_BYTES: Final = 160  # 20 ms of 8 kHz mu-law
ULAW_SILENCE: Final = 0xFF  # mu-law code for 0 (positive zero)

_PCM: Final = 0x0001
_IEEE_FLOAT: Final = 0x0003
_ALAW: Final = 0x0006
_MULAW: Final = 0x0007
_EXTENSIBLE: Final = 0xFFFE

# Sample sizes each format tag comes in, in bits (for EXTENSIBLE, the container size).
_BITS: Final[dict[int, frozenset[int]]] = {
    _PCM: frozenset((8, 16, 24, 32)),
    _IEEE_FLOAT: frozenset((32, 64)),
    _ALAW: frozenset((8,)),
    _MULAW: frozenset((8,)),
}
_FORMAT_NAMES: Final[dict[int, str]] = {
    _PCM: "PCM",
    _IEEE_FLOAT: "IEEE float",
    _ALAW: "A-law",
    _MULAW: "mu-law",
}

# Anti-alias filter for downsampling: pass up to 3400 Hz (the telephone band), stopped by
# 4000 Hz (8 kHz Nyquist), so e.g. a 6 kHz component cannot fold back to an audible 2 kHz.
_PASSBAND_HZ: Final = 3400.0
_STOPBAND_HZ: Final = 4000.0
_INTERP_HALF: Final = 16  # interpolation taps each side of an output sample
_BLOCK: Final = 1 << 15  # samples per filtering/interpolation block: bounds memory use


class AudioFileError(ValueError):
    """A file the simulator cannot read; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class CallAudio:
    """A call's audio as 8 kHz mu-law tracks, ready to send as SignalWire media frames.

    `caller` is the inbound track; `agent` the outbound track, or None when the file is mono.
    Both tracks have the same length (raises `ValueError` otherwise).
    """

    caller: bytes
    agent: bytes | None

    def __post_init__(self) -> None:
        if self.agent is not None and len(self.agent) != len(self.caller):
            raise ValueError(
                f"tracks differ in length: caller {len(self.caller)}, agent {len(self.agent)}"
            )

    @property
    def duration_ms(self) -> int:
        """Length of the audio in milliseconds (before frame padding), rounded down."""
        return len(self.caller) * 1000 // OUTPUT_RATE

    def frames(self) -> Iterator[tuple[bytes, bytes | None]]:
        """Yield one `(caller_frame, agent_frame)` pair per 20 ms, each frame 160 bytes.

        The last frame is padded with mu-law silence (0xFF); `agent_frame` is None for mono.
        """
        for start in range(0, len(self.caller), FRAME_BYTES):
            caller = _padded(self.caller[start : start + FRAME_BYTES])
            agent = None
            if self.agent is not None:
                agent = _padded(self.agent[start : start + FRAME_BYTES])
            yield caller, agent


def _padded(frame: bytes) -> bytes:
    if len(frame) == FRAME_BYTES:
        return frame
    return frame + bytes((ULAW_SILENCE,)) * (FRAME_BYTES - len(frame))


@dataclass(frozen=True, slots=True)
class _Format:
    tag: int  # after resolving WAVE_FORMAT_EXTENSIBLE to its subformat
    channels: int
    sample_rate: int
    bits: int  # container size per sample


def read_call_audio(path: Path) -> CallAudio:
    """Read a WAV file as a call: mono is the caller only; stereo left = caller, right = agent.

    Every channel is resampled to 8 kHz (band-limited: low-pass filtered first when the file's
    rate is higher, so nothing above 4 kHz folds back) and encoded as mu-law.

    Raises `AudioFileError` naming the file and the problem for anything it cannot read: a
    missing or unreadable file, not RIFF/WAVE, truncated, an unsupported format or sample size,
    more than two channels, or no samples at all.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    try:
        fmt, samples = _parse_wave(data)
        channels = _decode_channels(fmt, samples)
    except AudioFileError as exc:
        raise AudioFileError(f"{path}: {exc}") from None
    tracks = [ulaw_encode(_to_pcm16(_resample(ch, fmt.sample_rate))) for ch in channels]
    return CallAudio(caller=tracks[0], agent=tracks[1] if len(tracks) == 2 else None)


def _parse_wave(data: bytes) -> tuple[_Format, bytes]:
    """Return the format and the raw sample bytes (whole frames) of a RIFF/WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if data[:4] == b"RIFF" and len(data) < 12:
            raise AudioFileError("truncated: file ends inside the RIFF header")
        raise AudioFileError("not a WAV file (no RIFF/WAVE header)")

    fmt_chunk: bytes | None = None
    samples: bytes | None = None
    pos = 12
    # The RIFF size field is often wrong in files written by streaming recorders, so walk the
    # chunks to the end of the data actually present instead of trusting it.
    while pos + 8 <= len(data) and (fmt_chunk is None or samples is None):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id in (b"fmt ", b"data") and len(body) < size:
            name = chunk_id.decode().strip()
            raise AudioFileError(
                f"truncated: {name} chunk declares {size} bytes but only {len(body)} are present"
            )
        if chunk_id == b"fmt ":
            fmt_chunk = body
        elif chunk_id == b"data":
            samples = body
        pos += 8 + size + (size & 1)  # chunks are padded to an even length

    if fmt_chunk is None:
        raise AudioFileError("no fmt chunk (truncated or not a WAV file)")
    if samples is None:
        raise AudioFileError("no data chunk (truncated?)")

    fmt, block_align = _parse_fmt(fmt_chunk)
    frames, leftover = divmod(len(samples), block_align)
    if leftover:
        raise AudioFileError(
            f"truncated: data chunk of {len(samples)} bytes is not whole frames of {block_align}"
        )
    if frames == 0:
        raise AudioFileError("data chunk holds no samples")
    return fmt, samples


def _parse_fmt(chunk: bytes) -> tuple[_Format, int]:
    if len(chunk) < 16:
        raise AudioFileError(f"fmt chunk too short ({len(chunk)} bytes, need 16)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", chunk)
    if tag == _EXTENSIBLE:
        # WAVEFORMATEXTENSIBLE: cbSize, valid bits, channel mask, then the subformat GUID, whose
        # first two bytes are the plain format tag (KSDATAFORMAT_SUBTYPE_PCM = 0001..., etc.).
        if len(chunk) < 40:
            raise AudioFileError(f"WAVE_FORMAT_EXTENSIBLE fmt chunk too short ({len(chunk)} bytes)")
        (tag,) = struct.unpack_from("<H", chunk, 24)
    name = _FORMAT_NAMES.get(tag)
    if name is None:
        raise AudioFileError(
            f"unsupported format tag 0x{tag:04X} (supported: PCM, IEEE float, A-law, mu-law)"
        )
    if bits not in _BITS[tag]:
        supported = "/".join(str(b) for b in sorted(_BITS[tag]))
        raise AudioFileError(f"unsupported {name} sample size {bits} bits (supported: {supported})")
    if channels not in (1, 2):
        raise AudioFileError(f"{channels} channels: only mono or stereo files are supported")
    if rate <= 0:
        raise AudioFileError(f"invalid sample rate {rate}")
    if block_align != channels * bits // 8:
        raise AudioFileError(
            f"block align {block_align} does not match {channels} channels of {bits} bits"
        )
    return _Format(tag, channels, rate, bits), block_align


def _decode_channels(fmt: _Format, samples: bytes) -> list[FloatArray]:
    """Split interleaved sample bytes into one float array per channel, full scale ±1.0."""
    width = fmt.bits // 8
    raw = np.frombuffer(samples, dtype=np.uint8).reshape(-1, fmt.channels, width)
    return [_decode(fmt, np.ascontiguousarray(raw[:, c, :])) for c in range(fmt.channels)]


def _decode(fmt: _Format, raw: npt.NDArray[np.uint8]) -> FloatArray:
    """Decode one channel's samples (shape: frames x bytes per sample) to float64."""
    flat = raw.reshape(-1)
    if fmt.tag == _IEEE_FLOAT:
        dtype = "<f4" if fmt.bits == 32 else "<f8"
        values = flat.view(dtype).astype(np.float64)
        # NaN/inf in a damaged float file would poison the filter; treat them as silence/peak.
        return np.clip(np.nan_to_num(values, nan=0.0), -1.0, 1.0)
    if fmt.tag in (_ALAW, _MULAW):
        decode = alaw_decode if fmt.tag == _ALAW else ulaw_decode
        return np.frombuffer(decode(flat.tobytes()), dtype=np.int16) / 32768.0
    if fmt.bits == 8:  # 8-bit PCM is unsigned, centred on 128
        return (flat.astype(np.float64) - 128.0) / 128.0
    if fmt.bits == 16:
        return flat.view("<i2") / 32768.0
    if fmt.bits == 24:
        # Put each 3-byte sample in the top of a 4-byte little-endian int to keep its sign.
        padded = np.zeros((raw.shape[0], 4), dtype=np.uint8)
        padded[:, 1:] = raw
        return padded.reshape(-1).view("<i4") / 2147483648.0
    return flat.view("<i4") / 2147483648.0


def _resample(signal: FloatArray, rate: int) -> FloatArray:
    """Resample to 8 kHz: anti-alias low-pass when downsampling, then sinc interpolation."""
    if rate == OUTPUT_RATE:
        return signal
    if rate > OUTPUT_RATE:
        signal = _lowpass(signal, rate)
    return _interpolate(signal, rate)


def _interpolate(signal: FloatArray, rate: int) -> FloatArray:
    """Band-limited interpolation of `signal` (at `rate`) at the 8 kHz sample instants.

    A Blackman-windowed sinc over `_INTERP_HALF` input samples each side: flat to about 0.41 of
    the input rate, so the telephone band survives any input rate from 8.3 kHz up, and an
    upsampled file keeps its level (linear interpolation would lose ~10 % at 1 kHz from 6 kHz).
    Output sample k sits at input position k * rate / 8000 exactly (integer arithmetic, no
    drift); where that is a whole input sample, the sample is returned unchanged.
    """
    common = math.gcd(rate, OUTPUT_RATE)
    up, down = OUTPUT_RATE // common, rate // common
    count = max(1, round(len(signal) * up / down))
    # The fractional part of an output's position takes only `up` values (its phase), so the
    # weights are computed once per phase rather than once per output sample.
    offsets = np.arange(1 - _INTERP_HALF, _INTERP_HALF + 1)
    distance = (np.arange(up) / up)[:, None] - offsets  # (phases, taps)
    angle = np.pi * distance / _INTERP_HALF
    weights = np.sinc(distance) * (0.42 + 0.5 * np.cos(angle) + 0.08 * np.cos(2 * angle))
    # Normalise each phase so a constant stays exactly constant despite the window.
    weights /= weights.sum(axis=1, keepdims=True)

    padded = np.concatenate((np.zeros(_INTERP_HALF), signal, np.zeros(_INTERP_HALF + 1)))
    out = np.empty(count)
    for start in range(0, count, _BLOCK):
        base, phase = np.divmod(np.arange(start, min(start + _BLOCK, count)) * down, up)
        taps = padded[base[:, None] + (offsets + _INTERP_HALF)]
        out[start : start + len(base)] = np.einsum("ij,ij->i", taps, weights[phase])
    return out


def _lowpass(signal: FloatArray, rate: int) -> FloatArray:
    """Windowed-sinc (Blackman) low-pass at the telephone band edge, zero phase.

    Applied by FFT overlap-add in fixed blocks, so memory stays bounded for long recordings.
    """
    cutoff = (_PASSBAND_HZ + _STOPBAND_HZ) / 2 / rate  # cycles per input sample
    transition = (_STOPBAND_HZ - _PASSBAND_HZ) / rate
    taps = int(np.ceil(5.5 / transition)) | 1  # Blackman: ~74 dB stopband over this width
    n = np.arange(taps) - (taps - 1) / 2
    kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    kernel /= kernel.sum()

    fft_size = 1 << int(np.ceil(np.log2(_BLOCK + taps - 1)))
    kernel_fft = np.fft.rfft(kernel, fft_size)
    out = np.zeros(len(signal) + taps - 1)
    for start in range(0, len(signal), _BLOCK):
        segment = signal[start : start + _BLOCK]
        filtered = np.fft.irfft(np.fft.rfft(segment, fft_size) * kernel_fft, fft_size)
        length = len(segment) + taps - 1
        out[start : start + length] += filtered[:length]
    delay = (taps - 1) // 2  # the kernel is symmetric: undo its delay to keep timing exact
    return out[delay : delay + len(signal)]


def _to_pcm16(signal: FloatArray) -> bytes:
    """Float (full scale ±1.0) to 16-bit native-endian PCM, rounded and clipped."""
    return np.clip(np.round(signal * 32768.0), -32768, 32767).astype(np.int16).tobytes()
