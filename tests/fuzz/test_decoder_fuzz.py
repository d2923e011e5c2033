"""The audio decoder, fuzzed: valid files in a dozen containers, mutated by Hypothesis
(cut short, bytes changed, header fields set to 0 or 2^32-1, another file spliced in,
regions repeated or dropped), plus hand-made lying headers and nested containers.

Every input must end in a clear outcome: audio (float32, finite, within [-1, 1], no
longer than the limit) or one of the decoder's 400s, with ``param: "file"``. Anything
else (another exception, a crash of the process, a hang past pytest's timeout) fails.
Seeded and bounded (:data:`EXAMPLES`; ``BRAGI_FUZZ_SCALE`` multiplies it by hand).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator

import av
import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appserver import AppServer, fake_settings, serve_app
from bragi.audio import Audio, decode_audio
from bragi.audio.decode import MIN_INPUT_RATE
from bragi.config import ModelConfig
from bragi.errors import AudioDecodeError, AudioTooLongError, EmptyAudioError
from budget import fuzz_settings
from fakes import FakeSttBackend, make_model_dir, sine

EXAMPLES = 400
RATE = 16_000
MAX_SECONDS = 30.0
CLEAR_ERRORS = (AudioDecodeError, EmptyAudioError, AudioTooLongError)

#: (container, codec, sample rate): what FFmpeg's own encoders make, in the containers
#: clients send (and a few they might).
FORMATS = {
    "wav": ("wav", "pcm_s16le", 16_000),
    "wav-float": ("wav", "pcm_f32le", 16_000),
    "flac": ("flac", "flac", 16_000),
    "mp3": ("mp3", "libmp3lame", 44_100),
    "ogg-opus": ("ogg", "libopus", 48_000),
    "webm": ("webm", "libopus", 48_000),
    "m4a": ("ipod", "aac", 44_100),
    "adts": ("adts", "aac", 24_000),
    "mkv-pcm": ("matroska", "pcm_s16le", 16_000),
    "aiff": ("aiff", "pcm_s16be", 16_000),
    "caf": ("caf", "pcm_s16le", 16_000),
    "mp2": ("mp2", "mp2", 32_000),
    "alaw": ("wav", "pcm_alaw", 8_000),
    "adpcm": ("wav", "adpcm_ima_wav", 16_000),
}


def encode(container: str, codec: str, rate: int, seconds: float = 0.5) -> bytes:
    """A tone, encoded with FFmpeg's own encoder into ``container``."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(
            sine(seconds, rate).samples[None, :], format="fltp", layout="mono"
        )
        frame.sample_rate = rate
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name,
            layout="mono",
            rate=rate,
            frame_size=stream.codec_context.frame_size or None,
        )
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            output.mux(stream.encode(piece))
        output.mux(stream.encode(None))
    return buffer.getvalue()


SEEDS = {name: encode(*spec) for name, spec in FORMATS.items()}


def wav(
    *,
    rate: int = RATE,
    channels: int = 1,
    bits: int = 16,
    tag: int = 1,
    data: bytes | None = None,
    data_size: int | None = None,
    riff_size: int | None = None,
) -> bytes:
    """A WAV file whose header says whatever it is told to."""
    if data is None:
        data = (np.sin(np.arange(RATE) / 5) * 8000).astype("<i2").tobytes()
    align = (channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def box(kind: bytes, payload: bytes, size: int | None = None) -> bytes:
    """An ISO-BMFF (MP4) box; ``size`` may lie."""
    return struct.pack(">I", 8 + len(payload) if size is None else size) + kind + payload


def id3_tag(payload: bytes, declared: int | None = None) -> bytes:
    """An ID3v2.4 header (sync-safe size, which may lie) followed by ``payload``."""
    size = len(payload) if declared is None else declared
    syncsafe = bytes(((size >> shift) & 0x7F) for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + payload


def nested_mp4(depth: int) -> bytes:
    inner = box(b"mdat", b"\x00" * 64)
    for _ in range(depth):
        inner = box(b"moov", box(b"trak", inner))
    return box(b"ftyp", b"isom\x00\x00\x02\x00isom") + inner


def mkv_with_attachment(attached: bytes) -> bytes:
    """A Matroska file with an audio stream and ``attached`` as a file attachment."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as output:
        stream = output.add_stream("pcm_s16le", rate=RATE, layout="mono")
        assert isinstance(stream, av.AudioStream)
        attachment = output.add_attachment("inner.wav", "audio/wav", attached)
        assert attachment is not None
        samples = (sine(0.5, RATE).samples * 32767).astype("<i2")[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = RATE
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def zip_of(name: str, content: bytes) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def clear_outcome(data: bytes) -> str:
    """Decode ``data``; the outcome's name, after checking it is a clear one."""
    try:
        audio = decode_audio(data, RATE, MAX_SECONDS)
    except CLEAR_ERRORS as exc:
        assert exc.param == "file" and exc.message
        return type(exc).__name__
    assert isinstance(audio, Audio) and audio.sample_rate == RATE
    samples = audio.samples
    assert samples.dtype == np.float32
    assert len(samples) <= (MAX_SECONDS + 1) * RATE
    if len(samples):  # scalars first: a failed assert would print the whole array
        finite, peak = bool(np.isfinite(samples).all()), float(np.abs(samples).max())
        assert finite, "NaN or infinity in the decoded samples"
        assert peak <= 1.0, f"decoded peak {peak} is past full scale"
    return "decoded"


# --- Hypothesis mutations -----------------------------------------------------------

EXTREMES = (0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


class Mutant:
    """A mutated file, shown by how it was made (its bytes would be 100 kB of repr)."""

    def __init__(self, data: bytes, recipe: str):
        self.data = data
        self.recipe = recipe

    def __repr__(self) -> str:
        return f"Mutant({self.recipe!r}, {len(self.data)} bytes)"


@st.composite
def mutated(draw: st.DrawFn) -> Mutant:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    steps = [name]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("cut", "flip", "field", "splice", "repeat", "insert", "drop")))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "cut":
            del data[at:]
        elif kind == "flip":
            for position in draw(st.lists(st.integers(0, len(data)), min_size=1, max_size=16)):
                if position < len(data):
                    data[position] = draw(st.integers(0, 255))
        elif kind == "field":  # a length, rate or count in the first header bytes
            at = draw(st.integers(0, 256))
            width, order = draw(st.sampled_from([(2, "<"), (4, "<"), (4, ">"), (8, ">")]))
            value = draw(st.sampled_from(EXTREMES)) & ((1 << (8 * width)) - 1)
            code = {2: "H", 4: "I", 8: "Q"}[width]
            data[at : at + width] = struct.pack(order + code, value)
            kind = f"field{order}{8 * width}={value:#x}"
        elif kind == "splice":
            other = draw(st.sampled_from(sorted(SEEDS)))
            data[at:at] = SEEDS[other]
            kind = f"splice({other})"
        elif kind == "repeat":
            end = at + draw(st.integers(1, 4096))
            data[end:end] = data[at:end] * draw(st.integers(1, 40))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[at : at + draw(st.integers(1, 2048))]
        steps.append(f"{kind}@{at}")
    return Mutant(bytes(data), " ".join(steps))


@given(mutant=mutated())
@fuzz_settings(EXAMPLES)
def test_mutated_files_decode_or_fail_clearly(mutant: Mutant) -> None:
    clear_outcome(mutant.data)


@given(data=st.binary(max_size=4096))
@fuzz_settings(EXAMPLES // 4)
def test_random_bytes_decode_or_fail_clearly(data: bytes) -> None:
    clear_outcome(data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_decodes(name: str) -> None:
    """The mutations start from files that decode: a seed that did not would test less."""
    assert clear_outcome(SEEDS[name]) == "decoded"


# --- lying headers and nested containers ------------------------------------------

LYING = {
    "wav-data-size-4-GiB": wav(data_size=0xFFFFFFFF),
    "wav-riff-size-4-GiB": wav(riff_size=0xFFFFFFFF),
    "wav-data-size-0": wav(data_size=0),
    "wav-no-samples": wav(data=b""),
    "wav-rate-0": wav(rate=0),
    "wav-rate-4-GHz": wav(rate=0xFFFFFFFF),
    "wav-0-channels": wav(channels=0),
    "wav-65535-channels": wav(channels=65535),
    "wav-0-bits": wav(bits=0),
    "wav-65535-bits": wav(bits=65535),
    "wav-unknown-codec": wav(tag=0x1234),
    "wav-header-only": wav()[:44],
    "mp4-box-size-4-GiB": box(b"ftyp", b"isom", size=0xFFFFFFFF) + box(b"mdat", b"\0" * 64),
    "mp4-box-size-0": box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"moov", b"", size=0),
    "mp3-id3-size-256-MiB": id3_tag(SEEDS["mp3"], declared=(1 << 28) - 1),
    "flac-header-only": SEEDS["flac"][:42],
    "ogg-first-page-only": SEEDS["ogg-opus"][:64],
    "zero-bytes": b"",
    "one-byte": b"\0",
}
NESTED = {
    "mp3-inside-wav": wav(tag=0x55, bits=0, data=SEEDS["mp3"]),
    "wav-inside-wav": wav(data=SEEDS["wav"]),
    "mp3-inside-id3": id3_tag(b"APIC\x00\x01\x00\x00\x00" + SEEDS["mp3"]) + SEEDS["mp3"],
    "wav-attached-to-mkv": mkv_with_attachment(SEEDS["wav"]),
    "wav-inside-zip": zip_of("speech.wav", SEEDS["wav"]),
    "mp4-boxes-10000-deep": nested_mp4(10_000),
    "flac-after-ogg": SEEDS["ogg-opus"] + SEEDS["flac"],
}


@pytest.mark.parametrize("name", sorted(LYING))
def test_lying_headers_decode_or_fail_clearly(name: str) -> None:
    clear_outcome(LYING[name])


@pytest.mark.parametrize("name", sorted(NESTED))
def test_nested_containers_decode_or_fail_clearly(name: str) -> None:
    clear_outcome(NESTED[name])


def test_a_declared_size_past_the_data_decodes_what_is_there() -> None:
    audio = decode_audio(LYING["wav-data-size-4-GiB"], RATE, MAX_SECONDS)
    assert audio.duration == pytest.approx(1.0, abs=0.01)


def test_a_wav_claiming_1_hz_is_refused_before_it_is_resampled() -> None:
    """Regression (found by this fuzzing): 16,000 samples said to be at 1 Hz were
    resampled to 16 kHz, 256 million samples, half a gigabyte and seconds of CPU
    for a 32 KB upload, before the length limit could refuse them."""
    with pytest.raises(AudioDecodeError, match="sample rate"):
        decode_audio(wav(rate=1), RATE, 2 * 60 * 60)
    assert clear_outcome(wav(rate=MIN_INPUT_RATE)) == "decoded"  # 16 s at the floor


def test_a_sample_near_the_float32_maximum_is_scaled_into_full_scale() -> None:
    """Regression (found by this fuzzing): scaling by 1/peak, with peak near 3.4e38,
    multiplied by a subnormal float32 and left a sample at 1.0000001, outside the
    [-1, 1] that :class:`Audio` promises."""
    samples = np.full(1_600, 0.1, dtype="<f4")
    samples[100] = 3.4e38
    audio = decode_audio(wav(tag=3, bits=32, data=samples.tobytes()), RATE)
    assert float(np.abs(audio.samples).max()) == 1.0


# --- the same through HTTP ----------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("decoder-fuzz")
    models = {"stt": ModelConfig(model=str(make_model_dir(root, "fake-stt")))}
    settings_ = fake_settings(root / "data", models, max_audio_minutes=MAX_SECONDS / 60)
    with serve_app(settings_, [FakeSttBackend()]) as live:
        yield live


def test_hostile_uploads_get_openai_400s_and_the_server_still_serves(server: AppServer) -> None:
    uploads = {**LYING, **NESTED, "1-hz": wav(rate=1)}
    with server.http() as http:
        for name, data in uploads.items():
            response = http.post(
                "/v1/audio/transcriptions",
                data={"model": "stt"},
                files={"file": ("upload.bin", data, "application/octet-stream")},
            )
            assert response.status_code in (200, 400), (name, response.text)
            if response.status_code == 400:
                error = response.json()["error"]
                assert error["param"] == "file", (name, error)
                assert error["code"] in {"invalid_audio", "empty_audio", "audio_too_long"}
        check = http.post(
            "/v1/audio/transcriptions",
            data={"model": "stt"},
            files={"file": ("tone.wav", SEEDS["wav"], "audio/wav")},
        )
        assert check.status_code == 200 and check.json()["text"] == "word0 word1 word2"
    assert all(model.in_use == 0 for model in server.manager.models())
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
