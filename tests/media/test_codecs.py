"""media.codecs: what each SignalWire media format decodes to, frame by frame."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from media.codecs import (
    L16,
    MULAW,
    AudioFormat,
    Decoder,
    UnsupportedFormat,
    alaw_decode,
    parse_format,
    ulaw_decode,
    ulaw_encode,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _sine(freq: float, rate: int, seconds: float, amplitude: float = 12000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _as_int16(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16)


def _frames(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "rate", "canonical", "width"),
    [
        ("audio/x-mulaw", 8000, MULAW, 1),
        ("AUDIO/X-MULAW", 8000, MULAW, 1),
        ("audio/x-L16", 16000, L16, 2),
        ("audio/x-l16", 24000, L16, 2),
    ],
)
def test_parse_format_accepts_signalwire_codecs(
    encoding: str, rate: int, canonical: str, width: int
) -> None:
    fmt = parse_format(encoding, rate)
    assert fmt == AudioFormat(canonical, rate, big_endian=True)
    assert fmt.bytes_per_sample == width


def test_parse_format_passes_l16_byte_order() -> None:
    assert parse_format("audio/x-L16", 16000, l16_big_endian=False).big_endian is False


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [
        ("audio/x-alaw", 8000),
        ("audio/opus", 48000),
        ("", 8000),
        ("audio/x-mulaw", 16000),
        ("audio/x-L16", 8000),
        ("audio/x-L16", 48000),
    ],
)
def test_unsupported_formats_raise(encoding: str, rate: int) -> None:
    with pytest.raises(UnsupportedFormat):
        parse_format(encoding, rate)
    # Also a ValueError, so callers that validate input generically catch it.
    with pytest.raises(ValueError):
        parse_format(encoding, rate)


def test_audio_format_cannot_be_built_invalid() -> None:
    with pytest.raises(UnsupportedFormat):
        AudioFormat("audio/x-mulaw", 16000)
    with pytest.raises(UnsupportedFormat):
        AudioFormat("audio/x-l16", 16000)  # only parse_format folds case


# --- mu-law ---------------------------------------------------------------------------------


def test_known_mulaw_values() -> None:
    decoder = Decoder(parse_format("audio/x-mulaw", 8000))
    assert decoder.output_rate == 8000
    assert _as_int16(decoder.decode(b"\xff\x00\x7f\x80")).tolist() == [0, -32124, 0, 32124]


def test_mulaw_round_trip_stays_within_mulaw_error() -> None:
    sine = _sine(440, 8000, 1.0)
    encoded = ulaw_encode(sine.tobytes())
    assert len(encoded) == len(sine)  # one byte per sample: 160 bytes per 20 ms frame

    decoder = Decoder(parse_format("audio/x-mulaw", 8000))
    decoded = _as_int16(b"".join(decoder.decode(f) for f in _frames(encoded, 160)))
    assert len(decoded) == len(sine)
    error = np.abs(decoded.astype(np.int32) - sine.astype(np.int32))
    # mu-law keeps about 13 bits near zero and its step grows with the magnitude; at most half
    # a step (≤ 1/32 of the magnitude, plus the smallest step near zero) is lost.
    assert np.all(error <= np.abs(sine.astype(np.int32)) // 32 + 8)
    assert error.max() > 0  # it is a lossy codec, so the bound above is what matters


def test_ulaw_encode_rejects_odd_length() -> None:
    with pytest.raises(ValueError):
        ulaw_encode(b"\x00\x00\x00")


def test_g711_decoders_match_known_values() -> None:
    assert _as_int16(ulaw_decode(b"\xff\x00")).tolist() == [0, -32124]
    # A-law 0xD5 and 0x55 are the two smallest magnitudes (+8 and -8); 0xAA is +32256.
    assert _as_int16(alaw_decode(b"\xd5\x55\xaa")).tolist() == [8, -8, 32256]


# --- L16 ------------------------------------------------------------------------------------


def test_l16_big_and_little_endian_decode_to_the_same_samples() -> None:
    sine = _sine(300, 16000, 0.02)  # one 20 ms frame: 320 samples
    big = Decoder(parse_format("audio/x-L16", 16000, l16_big_endian=True))
    little = Decoder(parse_format("audio/x-L16", 16000, l16_big_endian=False))
    assert big.output_rate == little.output_rate == 16000

    assert _as_int16(big.decode(sine.astype(">i2").tobytes())).tolist() == sine.tolist()
    assert _as_int16(little.decode(sine.astype("<i2").tobytes())).tolist() == sine.tolist()


def test_l16_byte_order_is_explicit() -> None:
    # 0x0102 = 258 on the wire, big-endian; the same bytes read as little-endian are 0x0201.
    big = Decoder(parse_format("audio/x-L16", 16000, l16_big_endian=True))
    little = Decoder(parse_format("audio/x-L16", 16000, l16_big_endian=False))
    assert _as_int16(big.decode(b"\x01\x02")).tolist() == [258]
    assert _as_int16(little.decode(b"\x01\x02")).tolist() == [513]


def test_l16_24k_is_resampled_to_16k_across_frames() -> None:
    decoder = Decoder(parse_format("audio/x-L16", 24000))
    assert decoder.output_rate == 16000
    sine = _sine(1000, 24000, 1.0)
    frames = _frames(sine.astype(">i2").tobytes(), 960)  # 20 ms at 24 kHz
    assert len(frames) == 50

    outputs = [decoder.decode(f) for f in frames]
    assert {len(o) for o in outputs} == {640}  # 20 ms at 16 kHz, every frame
    out = _as_int16(b"".join(outputs)).astype(np.float64)
    assert len(out) == 16000

    # Still a 1 kHz tone at about the same level.
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(int(np.argmax(spectrum)) - 1000) <= 1  # 1 Hz bins over one second
    assert np.sqrt(np.mean(out[100:] ** 2)) == pytest.approx(12000 / np.sqrt(2), rel=0.05)

    # The resampler keeps its state across frames: decoding frame by frame gives exactly what
    # decoding the whole second at once gives, so frame joins add no clicks or lost samples.
    whole = Decoder(parse_format("audio/x-L16", 24000)).decode(b"".join(frames))
    assert b"".join(outputs) == whole


def test_l16_24k_state_carries_across_uneven_frames() -> None:
    # Frame sizes that are not a multiple of 3 samples leave the 3:2 resampler mid-cycle; its
    # state must carry over, or every frame gains a sample.
    sine = _sine(440, 24000, 1.0).astype(">i2").tobytes()
    frames = _frames(sine, 962)  # 481 samples each
    decoder = Decoder(parse_format("audio/x-L16", 24000))
    joined = b"".join(decoder.decode(f) for f in frames)

    assert joined == Decoder(parse_format("audio/x-L16", 24000)).decode(sine)
    assert abs(len(joined) // 2 - 16000) <= 1


@pytest.mark.parametrize("rate", [16000, 24000])
def test_odd_length_l16_payload_raises(rate: int) -> None:
    decoder = Decoder(parse_format("audio/x-L16", rate))
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        decoder.decode(bytes(641))
    # The decoder still works for the next, well-formed frame.
    assert len(decoder.decode(bytes(960 if rate == 24000 else 640))) == 640


def test_empty_payload_decodes_to_nothing() -> None:
    for fmt in (parse_format(MULAW, 8000), parse_format(L16, 16000), parse_format(L16, 24000)):
        assert Decoder(fmt).decode(b"") == b""


def test_import_is_warning_free() -> None:
    # Python 3.12 deprecates audioop on import; media.codecs must not pass that warning on.
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import media.codecs"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
