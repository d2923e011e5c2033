"""bragi.audio.encode (the six speech formats) and StreamResampler, on real speech."""

from __future__ import annotations

import io
import struct
import time
import wave
from importlib.resources import files

import av
import numpy as np
import numpy.typing as npt
import pytest

from bragi.audio import (
    CONTENT_TYPES,
    OUTPUT_FORMATS,
    OUTPUT_SAMPLE_RATE,
    Audio,
    StreamEncoder,
    StreamResampler,
    decode_audio,
    encode_audio,
    resample,
)
from bragi.audio.encode import to_pcm16
from bragi.errors import InvalidRequestError

ASSETS = files("moonshine_voice") / "assets"

# Decoded length may exceed the input by codec priming and last-frame padding that
# the container cannot signal: lame ~1105 + up to 1151 samples, AAC 1024 + up to 1023.
TOLERANCE = {"mp3": 0.1, "aac": 0.09, "opus": 0.03, "flac": 0.0, "wav": 0.0}


@pytest.fixture(scope="module")
def speech() -> Audio:
    """10 s of real speech at 24 kHz."""
    return decode_audio((ASSETS / "beckett.wav").read_bytes(), OUTPUT_SAMPLE_RATE)


def decode_all(blob: bytes) -> tuple[Audio, av.AudioStream, str]:
    """Decode with plain PyAV (not bragi's decoder): samples, stream, container name."""
    with av.open(io.BytesIO(blob), mode="r") as container:
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="flt", layout="mono")  # converts, keeps the rate
        planes = [
            out.to_ndarray()[0]
            for frame in container.decode(stream)
            for out in to_float.resample(frame)
        ]
        return Audio(np.concatenate(planes), stream.rate), stream, container.format.name


def rms(samples: npt.NDArray[np.float32]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_content_types_cover_the_openai_formats() -> None:
    assert set(OUTPUT_FORMATS) == {"mp3", "opus", "aac", "flac", "wav", "pcm"}
    assert CONTENT_TYPES["mp3"] == "audio/mpeg"
    assert all(CONTENT_TYPES[f] == f"audio/{f}" for f in ("opus", "aac", "flac", "wav", "pcm"))
    assert OUTPUT_SAMPLE_RATE == 24_000


@pytest.mark.parametrize(
    ("fmt", "container", "codec"),
    [
        ("mp3", "mp3", "mp3"),
        ("opus", "ogg", "opus"),
        ("aac", "aac", "aac"),
        ("flac", "flac", "flac"),
        ("wav", "wav", "pcm_s16le"),
    ],
)
def test_round_trip(speech: Audio, fmt: str, container: str, codec: str) -> None:
    blob = encode_audio(speech, fmt)

    audio, stream, container_name = decode_all(blob)

    assert container_name == container
    assert stream.codec_context.name.startswith(codec)  # FFmpeg decodes mp3 with "mp3float"
    assert stream.codec_context.channels == 1
    # Opus always decodes at 48 kHz; the rate it was encoded at is in OpusHead.
    assert stream.rate == (48_000 if fmt == "opus" else OUTPUT_SAMPLE_RATE)
    assert speech.duration <= audio.duration + 0.001
    assert audio.duration <= speech.duration + TOLERANCE[fmt] + 0.001
    assert rms(audio.samples) == pytest.approx(rms(speech.samples), rel=0.15)


def test_container_headers_are_what_players_expect(speech: Audio) -> None:
    mp3 = encode_audio(speech, "mp3")
    # Bare MPEG-2 layer III frames (no ID3 tag): sync word, then 24 kHz in the header.
    assert mp3[0] == 0xFF and mp3[1] & 0xE0 == 0xE0
    assert (mp3[1] >> 3) & 0b11 == 0b10  # MPEG-2, the family 24 kHz belongs to
    with av.open(io.BytesIO(mp3), mode="r") as container:
        packets = [p for p in container.demux(audio=0) if p.size]
    assert len(packets) == pytest.approx(speech.duration * 24_000 / 576, abs=4)

    ogg = encode_audio(speech, "opus")
    assert ogg.startswith(b"OggS")
    head = ogg.index(b"OpusHead")
    version, channels, _pre_skip, rate = struct.unpack_from("<BBHI", ogg, head + 8)
    assert (version, channels, rate) == (1, 1, 24_000)
    assert b"OpusTags" in ogg

    aac = encode_audio(speech, "aac")
    assert aac[0] == 0xFF and aac[1] & 0xF6 == 0xF0  # ADTS sync, layer 0
    assert (aac[2] >> 2) & 0xF == 6  # sampling frequency index 6 = 24000 Hz

    assert encode_audio(speech, "flac").startswith(b"fLaC")


def test_flac_is_lossless_at_16_bits(speech: Audio) -> None:
    audio, _, _ = decode_all(encode_audio(speech, "flac"))
    expected = to_pcm16(speech.samples) / 32768
    np.testing.assert_array_equal(audio.samples, expected.astype(np.float32))


def test_pcm_is_headerless_s16le(speech: Audio) -> None:
    pcm = encode_audio(speech, "pcm")
    assert len(pcm) == 2 * len(speech.samples)  # 2 bytes x 24000 Hz x duration
    expected = np.clip(np.rint(speech.samples * 32768), -32768, 32767).astype("<i2")
    np.testing.assert_array_equal(np.frombuffer(pcm, dtype="<i2"), expected)


def test_wav_one_shot_has_real_sizes(speech: Audio) -> None:
    blob = encode_audio(speech, "wav")
    with wave.open(io.BytesIO(blob)) as reader:
        assert reader.getnchannels() == 1
        assert reader.getsampwidth() == 2
        assert reader.getframerate() == 24_000
        assert reader.getnframes() == len(speech.samples)
    assert blob[44:] == encode_audio(speech, "pcm")


def test_wav_stream_header_says_unknown_length(speech: Audio) -> None:
    encoder = StreamEncoder("wav")
    first = encoder.encode(speech.samples[:24_000])
    rest = encoder.encode(speech.samples[24_000:]) + encoder.finish()

    assert first[:4] == b"RIFF" and first[8:16] == b"WAVEfmt "
    assert struct.unpack_from("<I", first, 4)[0] == 0xFFFFFFFF
    assert first[36:40] == b"data" and struct.unpack_from("<I", first, 40)[0] == 0xFFFFFFFF
    fmt_tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", first, 20)
    assert (fmt_tag, channels, rate, byte_rate, align, bits) == (1, 1, 24_000, 48_000, 2, 16)
    assert len(first) == 44 + 48_000
    audio, _, _ = decode_all(first + rest)  # FFmpeg reads up to where the bytes end
    assert len(audio.samples) == len(speech.samples)


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_stream_emits_each_chunk_before_the_next(speech: Audio, fmt: str) -> None:
    encoder = StreamEncoder(fmt)
    pieces = []
    for chunk in np.array_split(speech.samples, 5):  # five 2-second "sentences"
        pieces.append(encoder.encode(chunk))
    pieces.append(encoder.finish())

    assert all(pieces[:5]), "every chunk must yield bytes before the next is fed"
    if fmt != "pcm":
        # What came out after the first sentence is already playable audio.
        first, _, _ = decode_all(pieces[0])
        assert first.duration > 1.5
    whole = b"".join(pieces)
    assert len(whole) >= 0.8 * len(encode_audio(speech, fmt))
    if fmt == "pcm":
        assert whole == encode_audio(speech, "pcm")
    else:
        audio, _, _ = decode_all(whole)
        assert audio.duration == pytest.approx(speech.duration, abs=TOLERANCE[fmt] + 0.001)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "wav"])
def test_stream_resamples_engine_rate_to_24k(speech: Audio, fmt: str) -> None:
    engine = resample(speech, 22_050)
    encoder = StreamEncoder(fmt, sample_rate=22_050)
    blob = b"".join(encoder.encode(c) for c in np.array_split(engine.samples, 7))
    blob += encoder.finish()

    audio, stream, _ = decode_all(blob)

    assert stream.rate == (48_000 if fmt == "opus" else 24_000)
    assert speech.duration - 0.001 <= audio.duration <= speech.duration + TOLERANCE[fmt] + 0.001
    assert rms(audio.samples) == pytest.approx(rms(speech.samples), rel=0.15)


def test_out_of_range_samples_are_clipped_not_wrapped() -> None:
    loud = np.array([0.0, 2.0, -2.0, 1.0, -1.0, 0.5, np.nan, np.inf], dtype=np.float32)
    pcm = encode_audio(Audio(loud, 24_000), "pcm")
    assert np.frombuffer(pcm, "<i2").tolist() == [0, 32767, -32768, 32767, -32768, 16384, 0, 32767]
    assert np.isnan(loud[6])  # the caller's array is left alone


def test_finish_without_audio() -> None:
    assert StreamEncoder("pcm").finish() == b""
    header = StreamEncoder("wav").finish()
    assert len(header) == 44 and header.startswith(b"RIFF")
    encoder = StreamEncoder("mp3")
    assert encoder.encode(np.zeros(0, dtype=np.float32)) == b""
    encoder.finish()
    assert encoder.finish() == b""  # finishing twice is harmless


def test_misuse_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        StreamEncoder("ogg")
    assert info.value.param == "response_format"
    encoder = StreamEncoder("flac")
    encoder.finish()
    with pytest.raises(RuntimeError):
        encoder.encode(np.zeros(10, dtype=np.float32))


def test_close_releases_an_unfinished_stream(speech: Audio) -> None:
    encoder = StreamEncoder("opus")
    assert encoder.encode(speech.samples[:48_000])
    encoder.close()
    with pytest.raises(RuntimeError):
        encoder.encode(speech.samples[:10])
    assert encoder.finish() == b""
    encoder.close()  # the API closes in a finally block, after finish() or not


def test_encoders_run_far_faster_than_real_time(speech: Audio) -> None:
    # Each takes 2-40 ms for these 10 s on one core; TTS must not wait on them.
    for fmt in OUTPUT_FORMATS:
        start = time.perf_counter()
        encode_audio(speech, fmt)
        assert time.perf_counter() - start < 0.5, fmt


def test_stream_resampler_matches_one_shot(speech: Audio) -> None:
    resampler = StreamResampler(24_000, 22_050)
    parts = [resampler.process(c) for c in np.array_split(speech.samples, 9)]
    parts.append(resampler.flush())
    streamed = np.concatenate(parts)
    one_shot = resample(speech, 22_050).samples

    assert streamed.dtype == np.float32
    assert abs(len(streamed) - len(one_shot)) <= 1
    n = min(len(streamed), len(one_shot))
    np.testing.assert_allclose(streamed[:n], one_shot[:n], atol=1e-3)


def test_stream_resampler_passes_through_at_equal_rates(speech: Audio) -> None:
    resampler = StreamResampler(24_000, 24_000)
    assert resampler.process(speech.samples) is speech.samples
    assert len(resampler.flush()) == 0


def test_16_bit_samples_survive_the_trip_through_float() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    as_float = (every.astype(np.float32) / 32768.0).astype(np.float32)
    np.testing.assert_array_equal(to_pcm16(as_float), every)
    loud = np.array([1.5, -1.5, np.nan, 1.0], dtype=np.float32)
    assert to_pcm16(loud).tolist() == [32767, -32768, 0, 32767]
