"""Speech to text end to end: the official openai client, a real server, real speech."""

from __future__ import annotations

import av
import openai
import pytest

from livesupport import SEGMENT_FIELDS, LiveServer
from speech import SpeechSample, espeak, reencode, word_error_rate

pytestmark = [
    pytest.mark.slow,
    # openai 3.x marks audio.translations.create as deprecated; servers still offer it.
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),
]


def test_json_transcribes_real_speech(server: LiveServer, speech: dict[str, SpeechSample]) -> None:
    sample = speech["two_cities"]
    with sample.path.open("rb") as audio:
        result = server.client().audio.transcriptions.create(model="whisper-1", file=audio)
    assert word_error_rate(sample.text, result.text) < 0.08


@pytest.mark.parametrize(
    ("name", "container", "codec", "options"),
    [
        ("beckett.mp3", "mp3", "libmp3lame", {}),
        ("beckett.ogg", "ogg", "libopus", {"rate": 48000}),
        ("beckett.webm", "webm", "libopus", {"rate": 48000}),
        ("beckett.m4a", "ipod", "aac", {}),
        ("beckett-8k.wav", "wav", "pcm_s16le", {"rate": 8000}),
        ("beckett-stereo.wav", "wav", "pcm_s16le", {"channels": 2}),
    ],
)
def test_every_input_encoding(
    server: LiveServer,
    speech: dict[str, SpeechSample],
    name: str,
    container: str,
    codec: str,
    options: dict[str, int],
) -> None:
    sample = speech["beckett"]
    data = reencode(sample.path, container, codec, **options)
    result = server.client().audio.transcriptions.create(model="whisper-1", file=(name, data))
    assert word_error_rate(sample.text, result.text) < 0.25


def test_format_is_read_from_the_bytes_not_the_name(
    server: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    sample = speech["beckett"]
    data = reencode(sample.path, "mp3", "libmp3lame")
    result = server.client().audio.transcriptions.create(
        model="whisper-1", file=("recording.wav", data)
    )
    assert word_error_rate(sample.text, result.text) < 0.25


def test_text_srt_vtt_are_plain_text(server: LiveServer, speech: dict[str, SpeechSample]) -> None:
    sample = speech["beckett"]
    with server.http() as http:
        bodies = {}
        for fmt in ("text", "srt", "vtt"):
            response = http.post(
                "/v1/audio/transcriptions",
                data={"model": "whisper-1", "response_format": fmt},
                files={"file": ("beckett.wav", sample.path.read_bytes(), "audio/wav")},
            )
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            bodies[fmt] = response.text
    assert word_error_rate(sample.text, bodies["text"]) < 0.25
    assert bodies["srt"].startswith("1\n00:00:")
    assert " --> " in bodies["srt"] and "," in bodies["srt"].splitlines()[1]
    assert bodies["vtt"].startswith("WEBVTT")
    assert "." in bodies["vtt"].split("\n\n")[1].splitlines()[0]
    client_text = server.client().audio.transcriptions.create(
        model="whisper-1", file=sample.path, response_format="text"
    )
    assert isinstance(client_text, str) and word_error_rate(sample.text, client_text) < 0.25


def test_verbose_json_with_words(server: LiveServer, speech: dict[str, SpeechSample]) -> None:
    sample = speech["beckett"]
    result = server.client().audio.transcriptions.create(
        model="whisper-1",
        file=sample.path,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.language == "english"
    assert result.duration == pytest.approx(sample.duration, abs=0.1)
    assert result.segments and result.words
    for index, segment in enumerate(result.segments):
        data = segment.model_dump()
        assert all(data.get(field) is not None for field in SEGMENT_FIELDS), data
        assert segment.id == index
        assert 0 <= segment.start < segment.end <= sample.duration + 0.5
    starts = [word.start for word in result.words]
    assert starts == sorted(starts)
    assert all(word.end <= sample.duration + 0.5 for word in result.words)
    assert word_error_rate(sample.text, " ".join(w.word for w in result.words)) < 0.25


def test_long_recording_is_batched_with_the_same_shapes(
    server: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    """two_cities (44 s) is past the batching threshold: segments still come in order,
    inside the audio, with words; srt has timed cues in order."""
    sample = speech["two_cities"]
    result = server.client().audio.transcriptions.create(
        model="whisper-1",
        file=sample.path,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert word_error_rate(sample.text, result.text) < 0.08
    assert result.segments and len(result.segments) > 5 and result.words
    previous_end = 0.0
    for index, segment in enumerate(result.segments):
        data = segment.model_dump()
        assert all(data.get(field) is not None for field in SEGMENT_FIELDS), data
        assert segment.id == index
        assert previous_end <= segment.start + 0.01 and segment.end <= sample.duration + 0.5
        previous_end = segment.end
    starts = [word.start for word in result.words]
    assert starts == sorted(starts) and result.words[-1].end <= sample.duration + 0.5
    srt = server.client().audio.transcriptions.create(
        model="whisper-1", file=sample.path, response_format="srt"
    )
    assert isinstance(srt, str)
    cues = [line.split(" --> ")[0] for line in srt.splitlines() if " --> " in line]
    assert len(cues) > 1 and cues == sorted(cues)


def test_verbose_json_without_words_has_no_words(
    server: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    result = server.client().audio.transcriptions.create(
        model="whisper-1", file=speech["beckett"].path, response_format="verbose_json"
    )
    assert result.segments
    assert result.words is None


def test_streaming_sends_deltas_while_decoding(
    server: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    sample = speech["two_cities"]
    stream = server.client().audio.transcriptions.create(
        model="whisper-1", file=sample.path, stream=True
    )
    deltas, done = [], None
    for event in stream:
        if event.type == "transcript.text.delta":
            assert done is None, "delta after done"
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done = event.text
    assert len(deltas) > 1
    assert done == "".join(deltas)
    assert word_error_rate(sample.text, done) < 0.08


def test_language_hint(server: LiveServer, speech: dict[str, SpeechSample]) -> None:
    result = server.client().audio.transcriptions.create(
        model="whisper-1",
        file=speech["beckett"].path,
        language="en",
        response_format="verbose_json",
    )
    assert result.language == "english"


def test_translation_to_english(server: LiveServer) -> None:
    german = espeak("Guten Morgen. Ich trinke jeden Tag eine Tasse Kaffee.", "de")
    result = server.client().audio.translations.create(
        model="whisper-1", file=("german.wav", german), response_format="verbose_json"
    )
    assert result.language == "english"
    words = set(result.text.lower().replace(".", " ").replace(",", " ").split())
    assert words & {"morning", "coffee", "cup", "day", "drink"}, result.text
    assert not words & {"ich", "trinke", "kaffee"}, result.text


def test_translation_refused_by_english_only_model(
    server: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().audio.translations.create(
            model="whisper-tiny.en", file=speech["beckett"].path
        )
    assert "translat" in caught.value.message.lower()
    server.assert_healthy()


def test_second_model_serves(server: LiveServer, speech: dict[str, SpeechSample]) -> None:
    sample = speech["beckett"]
    result = server.client().audio.transcriptions.create(model="whisper-tiny.en", file=sample.path)
    assert word_error_rate(sample.text, result.text) < 0.3


def test_decoded_reencodings_keep_duration(speech: dict[str, SpeechSample]) -> None:
    # Guards the test helper itself: a broken re-encode would make the tests above vacuous.
    import io

    data = reencode(speech["beckett"].path, "mp3", "libmp3lame")
    with av.open(io.BytesIO(data)) as container:
        assert container.duration is not None
        assert abs(container.duration / 1e6 - speech["beckett"].duration) < 0.2
