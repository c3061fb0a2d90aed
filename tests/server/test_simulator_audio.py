"""server.simulator.audio: WAV files of every supported kind become 8 kHz mu-law call tracks."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.codecs import alaw_decode, ulaw_decode
from server.simulator.audio import AudioFileError, CallAudio, read_call_audio

FloatArray = npt.NDArray[np.float64]

PCM, IEEE_FLOAT, ALAW, MULAW, EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
# KSDATAFORMAT_SUBTYPE_* GUIDs: the format tag, then a fixed tail.
GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


# --- building WAV files ---------------------------------------------------------------------


def chunk(chunk_id: bytes, body: bytes) -> bytes:
    pad = b"\x00" if len(body) % 2 else b""
    return chunk_id + struct.pack("<I", len(body)) + body + pad


def wav_bytes(
    tag: int,
    rate: int,
    bits: int,
    data: bytes,
    *,
    channels: int = 1,
    extensible: bool = False,
    before_data: bytes = b"",
) -> bytes:
    block_align = channels * bits // 8
    header_tag = EXTENSIBLE if extensible else tag
    fmt = struct.pack("<HHIIHH", header_tag, channels, rate, rate * block_align, block_align, bits)
    if extensible:
        mask = 0x4 if channels == 1 else 0x3
        fmt += struct.pack("<HHI", 22, bits, mask) + struct.pack("<H", tag) + GUID_TAIL
    body = b"WAVE" + chunk(b"fmt ", fmt) + before_data + chunk(b"data", data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _nearest_code(table: npt.NDArray[np.int16], signal: FloatArray) -> bytes:
    """Encode with a G.711 decode table by picking the closest code for each sample."""
    target = signal * 32768.0
    codes: npt.NDArray[np.intp] = np.abs(table[None, :] - target[:, None]).argmin(axis=1)
    return codes.astype(np.uint8).tobytes()


ALAW_TABLE = np.frombuffer(alaw_decode(bytes(range(256))), dtype=np.int16)
ULAW_TABLE = np.frombuffer(ulaw_decode(bytes(range(256))), dtype=np.int16)


def encode(tag: int, bits: int, signal: FloatArray) -> bytes:
    """Samples in full scale ±1.0 to the bytes of one channel in the given format."""
    if tag == IEEE_FLOAT:
        return signal.astype("<f4" if bits == 32 else "<f8").tobytes()
    if tag == ALAW:
        return _nearest_code(ALAW_TABLE, signal)
    if tag == MULAW:
        return _nearest_code(ULAW_TABLE, signal)
    scale = 2.0 ** (bits - 1)
    ints = np.clip(np.round(signal * scale), -scale, scale - 1).astype(np.int64)
    if bits == 8:
        return (ints + 128).astype(np.uint8).tobytes()
    if bits == 16:
        return ints.astype("<i2").tobytes()
    if bits == 24:
        as_bytes = ints.astype("<i4").view(np.uint8).reshape(-1, 4)
        return as_bytes[:, :3].tobytes()  # low three bytes, little-endian
    return ints.astype("<i4").tobytes()


def interleave(left: bytes, right: bytes, width: int) -> bytes:
    a = np.frombuffer(left, dtype=np.uint8).reshape(-1, width)
    b = np.frombuffer(right, dtype=np.uint8).reshape(-1, width)
    return np.concatenate([a, b], axis=1).tobytes()


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> FloatArray:
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def write(tmp_path: Path, content: bytes, name: str = "call.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def track_samples(track: bytes | None) -> FloatArray:
    assert track is not None
    return np.frombuffer(ulaw_decode(track), dtype=np.int16) / 32768.0


def peak_hz(samples: FloatArray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


def rms(samples: FloatArray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


# --- every supported format -----------------------------------------------------------------

FORMATS = [
    pytest.param(PCM, 8, False, id="pcm8"),
    pytest.param(PCM, 16, False, id="pcm16"),
    pytest.param(PCM, 24, False, id="pcm24"),
    pytest.param(PCM, 32, False, id="pcm32"),
    pytest.param(IEEE_FLOAT, 32, False, id="float32"),
    pytest.param(IEEE_FLOAT, 64, False, id="float64"),
    pytest.param(ALAW, 8, False, id="alaw"),
    pytest.param(MULAW, 8, False, id="mulaw"),
    pytest.param(PCM, 16, True, id="extensible-pcm16"),
    pytest.param(PCM, 24, True, id="extensible-pcm24"),
    pytest.param(IEEE_FLOAT, 32, True, id="extensible-float32"),
    pytest.param(MULAW, 8, True, id="extensible-mulaw"),
]


@pytest.mark.parametrize(("tag", "bits", "extensible"), FORMATS)
def test_every_supported_format_reads_as_the_same_sound(
    tmp_path: Path, tag: int, bits: int, extensible: bool
) -> None:
    # A tone that swings negative and positive, so sign and scale errors show.
    signal = sine(440, 8000, 1.0)
    path = write(
        tmp_path, wav_bytes(tag, 8000, bits, encode(tag, bits, signal), extensible=extensible)
    )

    audio = read_call_audio(path)

    assert audio.agent is None
    assert len(audio.caller) == 8000  # one second of 8 kHz mu-law
    # Within the error of two G.711 stages (the file's, if any, and ours): < 3.5 % full scale.
    assert np.max(np.abs(track_samples(audio.caller) - signal)) < 0.035


def test_mulaw_8k_file_passes_through_unchanged(tmp_path: Path) -> None:
    codes = bytes(range(0, 256)) * 40  # every mu-law code but -0 (0x7F) maps to itself
    audio = read_call_audio(write(tmp_path, wav_bytes(MULAW, 8000, 8, codes)))
    expected = codes.replace(b"\x7f", b"\xff")
    assert audio.caller == expected


# --- duration and frames ---------------------------------------------------------------------


def test_duration_and_frames(tmp_path: Path) -> None:
    signal = sine(300, 16000, 2.5)
    audio = read_call_audio(write(tmp_path, wav_bytes(PCM, 16000, 16, encode(PCM, 16, signal))))

    assert audio.duration_ms == 2500
    assert len(audio.caller) == 20000
    frames = list(audio.frames())
    assert len(frames) == 125  # 2.5 s of 20 ms frames
    assert all(len(c) == 160 and a is None for c, a in frames)
    assert b"".join(c for c, _ in frames) == audio.caller


def test_last_frame_is_padded_with_mulaw_silence(tmp_path: Path) -> None:
    signal = sine(300, 8000, 0.125)  # 1000 samples: six whole frames and 40 samples
    audio = read_call_audio(write(tmp_path, wav_bytes(PCM, 8000, 16, encode(PCM, 16, signal))))

    frames = [c for c, _ in audio.frames()]
    assert len(frames) == 7
    assert frames[-1] == audio.caller[960:] + b"\xff" * 120
    assert ulaw_decode(b"\xff") == b"\x00\x00"  # 0xFF really is silence


# --- channels -------------------------------------------------------------------------------


def test_stereo_left_is_caller_right_is_agent(tmp_path: Path) -> None:
    left = sine(440, 8000, 1.0)
    right = sine(1000, 8000, 1.0, amplitude=0.25)
    data = interleave(encode(PCM, 16, left), encode(PCM, 16, right), 2)
    audio = read_call_audio(write(tmp_path, wav_bytes(PCM, 8000, 16, data, channels=2)))

    assert audio.agent is not None
    assert len(audio.caller) == len(audio.agent) == 8000
    caller, agent = track_samples(audio.caller), track_samples(audio.agent)
    assert peak_hz(caller) == pytest.approx(440, abs=1)
    assert peak_hz(agent) == pytest.approx(1000, abs=1)
    assert rms(caller) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)
    assert rms(agent) == pytest.approx(0.25 / np.sqrt(2), rel=0.03)

    pairs = list(audio.frames())
    assert len(pairs) == 50
    assert pairs[0] == (audio.caller[:160], audio.agent[:160])


def test_stereo_silent_channel_stays_silent(tmp_path: Path) -> None:
    talk = sine(440, 8000, 0.5)
    data = interleave(encode(PCM, 16, np.zeros_like(talk)), encode(PCM, 16, talk), 2)
    audio = read_call_audio(write(tmp_path, wav_bytes(PCM, 8000, 16, data, channels=2)))
    assert set(audio.caller) == {0xFF}
    assert rms(track_samples(audio.agent)) > 0.3


def test_stereo_float_24bit_extensible(tmp_path: Path) -> None:
    left, right = sine(500, 48000, 0.5), sine(1500, 48000, 0.5)
    data = interleave(encode(PCM, 24, left), encode(PCM, 24, right), 3)
    content = wav_bytes(PCM, 48000, 24, data, channels=2, extensible=True)
    audio = read_call_audio(write(tmp_path, content))
    assert peak_hz(track_samples(audio.caller)) == pytest.approx(500, abs=2)
    assert peak_hz(track_samples(audio.agent)) == pytest.approx(1500, abs=2)


# --- resampling -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [6000, 8000, 11025, 16000, 22050, 44100, 48000, 44101])
def test_resampled_to_8k_keeping_pitch_level_and_length(tmp_path: Path, rate: int) -> None:
    signal = sine(1000, rate, 2.0)
    audio = read_call_audio(write(tmp_path, wav_bytes(PCM, rate, 16, encode(PCM, 16, signal))))

    out = track_samples(audio.caller)
    assert abs(len(out) - 16000) <= 1
    assert peak_hz(out) == pytest.approx(1000, abs=1)
    # Level kept (1 kHz is well inside the telephone band), ignoring the filter's edges.
    assert rms(out[200:-200]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_tones_above_4khz_are_removed_not_folded(tmp_path: Path, rate: int) -> None:
    # Without a low-pass, 6 kHz sampled at 8 kHz comes back as a loud 2 kHz tone.
    signal = sine(6000, rate, 1.0)
    audio = read_call_audio(write(tmp_path, wav_bytes(PCM, rate, 16, encode(PCM, 16, signal))))
    assert rms(track_samples(audio.caller)[200:-200]) < 0.005  # > 37 dB down from 0.35


def test_resampling_keeps_timing(tmp_path: Path) -> None:
    # A tone burst starting at exactly 0.5 s in a 44.1 kHz file starts at sample 4000 at 8 kHz:
    # the filter's delay is compensated, so tracks stay aligned with the simulator's clock.
    rate = 44100
    signal = np.zeros(rate)
    burst = sine(800, rate, 0.25)
    signal[rate // 2 : rate // 2 + len(burst)] = burst
    audio = read_call_audio(write(tmp_path, wav_bytes(PCM, rate, 16, encode(PCM, 16, signal))))

    envelope = np.abs(track_samples(audio.caller))
    loud = np.flatnonzero(envelope > 0.1)
    assert abs(int(loud[0]) - 4000) <= 8  # within 1 ms
    assert abs(int(loud[-1]) - 6000) <= 8


# --- RIFF structure ---------------------------------------------------------------------------


def test_unknown_chunks_with_odd_sizes_are_skipped(tmp_path: Path) -> None:
    signal = sine(440, 8000, 0.5)
    extra = chunk(b"LIST", b"INFOxyz") + chunk(b"fact", struct.pack("<I", 4000))
    content = wav_bytes(PCM, 8000, 16, encode(PCM, 16, signal), before_data=extra)
    audio = read_call_audio(write(tmp_path, content))
    assert len(audio.caller) == 4000


def test_wrong_riff_size_field_is_tolerated(tmp_path: Path) -> None:
    # Streaming recorders often leave the RIFF size at 0 or 0xFFFFFFFF.
    content = bytearray(wav_bytes(PCM, 8000, 16, encode(PCM, 16, sine(440, 8000, 0.5))))
    content[4:8] = b"\xff\xff\xff\xff"
    assert len(read_call_audio(write(tmp_path, bytes(content))).caller) == 4000


# --- errors -----------------------------------------------------------------------------------


def _valid_wav() -> bytes:
    return wav_bytes(PCM, 8000, 16, encode(PCM, 16, sine(440, 8000, 1.0)))


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (10, "truncated"),  # inside the RIFF header
        (30, "truncated: fmt chunk declares 16 bytes but only 10"),
        (44 + 4001, "truncated: data chunk declares 16000 bytes but only 4001"),
        (44 + 4000, "truncated: data chunk declares 16000 bytes but only 4000"),
        (36, "no data chunk"),
    ],
)
def test_truncated_files_raise_clear_errors(tmp_path: Path, cut: int, message: str) -> None:
    path = write(tmp_path, _valid_wav()[:cut], "cut.wav")
    with pytest.raises(AudioFileError, match=message) as info:
        read_call_audio(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(100),
        b"hello, world\n",
        b"RIFF\x00\x00\x00\x00AVI ",
    ],
)
def test_non_riff_files_raise(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(AudioFileError, match="not a WAV file"):
        read_call_audio(write(tmp_path, content))


def test_three_channels_raise(tmp_path: Path) -> None:
    data = encode(PCM, 16, sine(440, 8000, 0.3)) * 3  # length is whole 3-channel frames
    path = write(tmp_path, wav_bytes(PCM, 8000, 16, data, channels=3))
    with pytest.raises(AudioFileError, match="3 channels: only mono or stereo"):
        read_call_audio(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (wav_bytes(0x0055, 8000, 16, bytes(320)), "unsupported format tag 0x0055"),  # MP3
        (wav_bytes(PCM, 8000, 12, bytes(300)), "unsupported PCM sample size 12 bits"),
        (wav_bytes(IEEE_FLOAT, 8000, 16, bytes(320)), "unsupported IEEE float sample size 16"),
        (wav_bytes(0x0002, 8000, 16, bytes(320), extensible=True), "format tag 0x0002"),
        (wav_bytes(PCM, 8000, 16, b""), "no samples"),
        (wav_bytes(PCM, 0, 16, bytes(320)), "invalid sample rate 0"),
    ],
)
def test_unsupported_content_raises(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(AudioFileError, match=message):
        read_call_audio(write(tmp_path, content))


def test_missing_file_raises_audio_file_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioFileError, match="cannot read file") as info:
        read_call_audio(path)
    assert str(path) in str(info.value)


def test_call_audio_tracks_must_match_in_length() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        CallAudio(caller=b"\xff" * 160, agent=b"\xff" * 80)


# --- the committed speech fixtures ------------------------------------------------------------

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"


def test_fixture_texts_cover_every_fixture() -> None:
    texts = json.loads((SPEECH / "texts.json").read_text())
    assert set(texts) == {p.name for p in SPEECH.glob("*.wav")}
    assert [u["track"] for u in texts["two_party.wav"]] == [
        "outbound",
        "inbound",
        "outbound",
        "inbound",
    ]
    assert {u["track"] for u in texts["caller_mono.wav"]} == {"inbound"}
    assert texts["silence_5s.wav"] == []


def test_two_party_fixture_takes_turns() -> None:
    audio = read_call_audio(SPEECH / "two_party.wav")
    assert audio.agent is not None
    caller, agent = track_samples(audio.caller), track_samples(audio.agent)
    # 100 ms windows: who is talking in each.
    windows = len(caller) // 800
    caller_on = np.abs(caller[: windows * 800]).reshape(windows, 800).max(axis=1) > 0.01
    agent_on = np.abs(agent[: windows * 800]).reshape(windows, 800).max(axis=1) > 0.01
    assert not np.any(caller_on & agent_on)  # never both at once
    # The agent speaks first; then the turns alternate: agent, caller, agent, caller.
    speaker = [
        "agent" if a else "caller" for a, c in zip(agent_on, caller_on, strict=True) if a or c
    ]
    turns = [s for i, s in enumerate(speaker) if i == 0 or s != speaker[i - 1]]
    assert turns == ["agent", "caller", "agent", "caller"]


def test_mono_and_silence_fixtures() -> None:
    mono = read_call_audio(SPEECH / "caller_mono.wav")
    assert mono.agent is None
    assert 5000 < mono.duration_ms < 15000
    assert rms(track_samples(mono.caller)) > 0.01

    silence = read_call_audio(SPEECH / "silence_5s.wav")
    assert silence.duration_ms == 5000
    assert silence.agent is None
    assert set(silence.caller) == {0xFF}
    assert len(list(silence.frames())) == 250
