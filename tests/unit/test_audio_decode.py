"""bragi.audio.decode and resample() on real speech, re-encoded in many containers."""

from __future__ import annotations

import io
import tempfile
import time
import tracemalloc
import wave
from importlib.resources import files

import av
import numpy as np
import numpy.typing as npt
import pytest

from bragi.audio import Audio, decode_audio, encode_audio, resample
from bragi.audio.decode import SILENCE_PEAK, is_silent
from bragi.errors import AudioDecodeError, BragiError, EmptyAudioError

ASSETS = files("moonshine_voice") / "assets"


@pytest.fixture(scope="module")
def two_cities() -> bytes:
    return (ASSETS / "two_cities.wav").read_bytes()  # 44.37 s, 48 kHz mono s16


@pytest.fixture(scope="module")
def beckett() -> bytes:
    return (ASSETS / "beckett.wav").read_bytes()  # 10 s, 16 kHz mono s16


@pytest.fixture(scope="module")
def beckett_16k(beckett: bytes) -> Audio:
    return decode_audio(beckett, 16_000)


def encode_with_pyav(
    channels: list[npt.NDArray[np.float32]] | list[npt.NDArray[np.int16]],
    rate: int,
    container: str,
    codec: str,
    sample_format: str = "fltp",
) -> bytes:
    """Write ``channels`` (equal-length arrays) with PyAV into an in-memory file."""
    layout = "mono" if len(channels) == 1 else "stereo"
    planar = np.stack(channels)
    if sample_format == "s16":
        if planar.dtype != np.int16:
            planar = np.round(np.clip(planar, -1, 1) * 32767).astype(np.int16)
        data = np.ascontiguousarray(planar.T.reshape(1, -1))
    elif sample_format == "flt":
        data = np.ascontiguousarray(planar.T.reshape(1, -1), dtype=np.float32)
    else:
        data = planar.astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        stream.codec_context.format = sample_format
        frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def envelope(samples: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float64]:
    """RMS per 20 ms window: compares audio across codecs that delay or filter it."""
    hop = rate // 50
    n = len(samples) // hop
    frames = samples[: n * hop].reshape(n, hop).astype(np.float64)
    rms: npt.NDArray[np.float64] = np.sqrt(np.mean(frames**2, axis=1))
    return rms


def assert_same_speech(got: Audio, ref: Audio) -> None:
    """The loudness contours match, allowing for up to 200 ms of codec delay."""
    assert got.sample_rate == ref.sample_rate
    a, b = envelope(got.samples, got.sample_rate), envelope(ref.samples, ref.sample_rate)
    n = min(len(a), len(b)) - 10
    best = max(np.corrcoef(a[lag : lag + n], b[:n])[0, 1] for lag in range(11))
    assert best > 0.95


def test_two_cities_decodes_to_16k_quickly(two_cities: bytes) -> None:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        audio = decode_audio(two_cities, 16_000)
        best = min(best, time.perf_counter() - start)
    assert audio.sample_rate == 16_000
    assert audio.samples.dtype == np.float32
    assert len(audio.samples) == round(44.374125 * 16_000)
    assert 0.1 < float(np.abs(audio.samples).max()) <= 1.0
    # About 25 ms on one core; the bound only catches a pathological regression.
    assert best < 0.5


@pytest.mark.parametrize(
    ("container", "codec", "rate", "sample_format"),
    [
        ("mp3", "libmp3lame", 44_100, "fltp"),
        ("ogg", "libopus", 48_000, "flt"),
        ("webm", "libopus", 48_000, "flt"),
        ("ipod", "aac", 44_100, "fltp"),  # .m4a
        ("mp4", "aac", 22_050, "fltp"),
        ("adts", "aac", 24_000, "fltp"),
        ("flac", "flac", 48_000, "s16"),
        ("wav", "pcm_s16le", 8_000, "s16"),
        ("wav", "pcm_f32le", 44_100, "flt"),
    ],
)
@pytest.mark.parametrize("target", [16_000, 24_000])
def test_reencoded_speech_decodes(
    beckett_16k: Audio, container: str, codec: str, rate: int, sample_format: str, target: int
) -> None:
    source = resample(beckett_16k, rate)
    blob = encode_with_pyav([source.samples], rate, container, codec, sample_format)

    audio = decode_audio(blob, target)

    assert audio.sample_rate == target
    assert audio.samples.dtype == np.float32
    # Lossy codecs add up to ~2 frames of priming and padding.
    assert audio.duration == pytest.approx(beckett_16k.duration, abs=0.12)
    assert_same_speech(resample(audio, 16_000), beckett_16k)


def test_flac_round_trip_is_lossless(beckett_16k: Audio) -> None:
    int16 = np.round(beckett_16k.samples * 32768).astype(np.int16)
    assert np.array_equal(int16.astype(np.float32) / 32768, beckett_16k.samples)
    blob = encode_with_pyav([int16], 16_000, "flac", "flac", "s16")

    assert np.array_equal(decode_audio(blob, 16_000).samples, beckett_16k.samples)


def test_stereo_is_averaged_not_summed(beckett_16k: Audio) -> None:
    speech = beckett_16k.samples
    both = decode_audio(
        encode_with_pyav([speech, speech], 16_000, "wav", "pcm_f32le", "flt"), 16_000
    )
    left = decode_audio(
        encode_with_pyav([speech, np.zeros_like(speech)], 16_000, "wav", "pcm_f32le", "flt"), 16_000
    )

    np.testing.assert_allclose(both.samples, speech, atol=1e-6)
    np.testing.assert_allclose(left.samples, speech / 2, atol=1e-6)


def test_stereo_mp3_at_44k(beckett_16k: Audio) -> None:
    speech = resample(beckett_16k, 44_100).samples
    blob = encode_with_pyav([speech, speech * 0.5], 44_100, "mp3", "libmp3lame")

    audio = decode_audio(blob, 16_000)

    assert audio.duration == pytest.approx(10.0, abs=0.12)
    assert_same_speech(audio, beckett_16k)


def test_sample_rate_change_mid_stream(beckett_16k: Audio) -> None:
    # Two ADTS streams back to back is one valid ADTS stream whose rate changes.
    first = encode_with_pyav([beckett_16k.samples], 16_000, "adts", "aac")
    second = encode_with_pyav([resample(beckett_16k, 44_100).samples], 44_100, "adts", "aac")

    audio = decode_audio(first + second, 16_000)

    assert audio.duration == pytest.approx(20.0, abs=0.25)
    # Had the second half kept the first half's rate it would run 27.6 s.
    assert_same_speech(Audio(audio.samples[160_000:], 16_000), beckett_16k)


def test_over_range_and_nan_float_input_is_repaired(beckett_16k: Audio) -> None:
    loud = beckett_16k.samples * 4
    loud[1000] = np.nan
    blob = encode_with_pyav([loud], 16_000, "wav", "pcm_f32le", "flt")

    audio = decode_audio(blob, 16_000)

    assert np.isfinite(audio.samples).all()
    assert float(np.abs(audio.samples).max()) == pytest.approx(1.0)
    assert_same_speech(audio, beckett_16k)


def test_quiet_speech_is_not_silence(beckett_16k: Audio) -> None:
    quiet = beckett_16k.samples * (SILENCE_PEAK * 20 / float(np.abs(beckett_16k.samples).max()))
    blob = encode_with_pyav([quiet], 16_000, "wav", "pcm_f32le", "flt")

    assert decode_audio(blob, 16_000).duration == beckett_16k.duration


def test_empty_bytes() -> None:
    with pytest.raises(EmptyAudioError, match=r"^The audio file is empty\.$"):
        decode_audio(b"", 16_000)


def test_text_file_is_invalid_format() -> None:
    text = b"This is a plain text file, not audio.\n" * 50
    with pytest.raises(AudioDecodeError) as info:
        decode_audio(text, 16_000)
    assert info.value.message.startswith("Invalid file format. Supported formats: [")
    assert "'mp3'" in info.value.message and "'wav'" in info.value.message
    assert info.value.status_code == 400


def test_random_bytes_are_invalid() -> None:
    with pytest.raises(AudioDecodeError):
        decode_audio(np.random.default_rng(0).bytes(10_000), 16_000)


def test_subtitle_file_has_no_audio_stream() -> None:
    srt = b"1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nbye\n"
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        decode_audio(srt, 16_000)


def test_truncated_mp3_decodes_what_is_there(beckett_16k: Audio) -> None:
    source = resample(beckett_16k, 44_100)
    mp3 = encode_with_pyav([source.samples], 44_100, "mp3", "libmp3lame")

    audio = decode_audio(mp3[: int(len(mp3) * 0.3)], 16_000)

    assert audio.duration == pytest.approx(3.0, abs=0.2)
    assert_same_speech(audio, Audio(beckett_16k.samples[: len(audio.samples)], 16_000))
    with pytest.raises(AudioDecodeError):
        decode_audio(mp3[:100], 16_000)


def test_zero_length_wav_has_no_samples() -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:  # a valid header with an empty data chunk
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
    blob = buf.getvalue()
    assert blob.startswith(b"RIFF") and len(blob) == 44
    audio = decode_audio(blob, 16_000)  # valid audio, of no length: the caller decides
    assert audio.duration == 0 and is_silent(audio)


def test_all_zero_wav_is_silent() -> None:
    blob = encode_with_pyav([np.zeros(16_000, dtype=np.float32)], 16_000, "wav", "pcm_s16le", "s16")
    audio = decode_audio(blob, 16_000)
    assert audio.duration == 1.0 and is_silent(audio)
    assert not is_silent(Audio(np.full(10, SILENCE_PEAK * 2, dtype=np.float32), 16_000))


def test_a_long_file_is_decoded_from_its_file_holding_its_samples_once() -> None:
    """Five minutes, read from a file object as the API reads an upload: decoding
    allocates little beyond the decoded samples (no chunks, no concatenated copy)."""
    rate, seconds = 16_000, 300
    tone = (0.3 * np.sin(np.arange(rate * seconds) * 2 * np.pi * 440 / rate)).astype(np.float32)
    with tempfile.TemporaryFile() as upload:
        upload.write(encode_audio(Audio(tone, rate), "wav"))
        del tone
        tracemalloc.start()
        try:
            audio = decode_audio(upload, rate)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert audio.duration == pytest.approx(seconds, abs=0.05)
    assert peak < 1.2 * audio.samples.nbytes, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize(
    ("container", "codec", "rate", "sample_format"),
    [
        ("mp3", "libmp3lame", 44_100, "fltp"),
        ("ogg", "libopus", 48_000, "flt"),
        ("ipod", "aac", 44_100, "fltp"),
        ("flac", "flac", 16_000, "s16"),
    ],
)
def test_damaged_files_only_raise_bragi_errors(
    beckett_16k: Audio, container: str, codec: str, rate: int, sample_format: str
) -> None:
    blob = encode_with_pyav(
        [resample(beckett_16k, rate).samples[: rate * 3]], rate, container, codec, sample_format
    )
    rng = np.random.default_rng(7)
    outcomes = set()
    for i in range(24):
        damaged = bytearray(blob)
        if i % 3 == 0:
            damaged = damaged[: int(rng.integers(1, len(blob)))]
        elif i % 3 == 1:
            for pos in rng.integers(0, len(blob), size=int(rng.integers(1, 40))):
                damaged[pos] = int(rng.integers(0, 256))
        else:
            damaged = damaged[int(rng.integers(1, len(blob) - 1)) :]
        try:
            audio = decode_audio(bytes(damaged), 16_000)
        except BragiError as exc:  # anything else fails the test
            outcomes.add(type(exc).__name__)
        else:
            assert audio.duration <= 3.2
            outcomes.add("decoded")
    assert "decoded" in outcomes


def test_resample_same_rate_is_the_same_object(beckett_16k: Audio) -> None:
    assert resample(beckett_16k, 16_000) is beckett_16k


def test_resample_changes_rate_and_keeps_duration(beckett_16k: Audio) -> None:
    up = resample(beckett_16k, 24_000)
    assert up.sample_rate == 24_000
    assert up.samples.dtype == np.float32
    assert len(up.samples) == len(beckett_16k.samples) * 3 // 2
    assert_same_speech(resample(up, 16_000), beckett_16k)
    assert resample(Audio.empty(16_000), 8_000).duration == 0


def test_decoded_length_is_bounded() -> None:
    from bragi.errors import AudioTooLongError

    rate = 16_000
    tone = (0.3 * np.sin(np.arange(rate * 3) * 2 * np.pi * 440 / rate)).astype(np.float32)
    from bragi.audio import encode_audio

    wav = encode_audio(Audio(tone, rate), "wav")
    assert decode_audio(wav, rate, max_seconds=5).duration == pytest.approx(3.0, abs=0.05)
    with pytest.raises(AudioTooLongError, match="limit"):
        decode_audio(wav, rate, max_seconds=1)
