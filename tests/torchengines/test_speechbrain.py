"""SpeechBrain for real: ``bragi backend install speechbrain``, tiny random-weight models in
the hub's layout (an attention model like asr-crdnn-rnnlm-librispeech, pulled by its catalog
name from the stand-in hub, and a CTC-only one), workers started from that environment, and
``bragi serve`` answering the official openai client. The weights are random, so the text
is noise: these tests check the response structure, the segment times, the refusals and
where torch lives, never the words.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from bragi.backends.registry import BackendRegistry
from bragi.backends.speechbrain import BACKEND, card_languages, inspect_model
from bragi.errors import ModelUnavailableError
from cataloghub import catalog_hub
from livesupport import SEGMENT_FIELDS, LiveServer, start_server
from speech import SpeechSample
from tinymodels import write_paraformer
from tinymodels.speechbrain import CARD, CTC, SEQ2SEQ, write_speechbrain
from torchenvs import EngineEnv, child_pids, mapped_files

pytestmark = [
    pytest.mark.slow,
    # openai 3.x marks audio.translations.create as deprecated; servers still offer it.
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),
]

MODELS = ("sb-seq2seq", "sb-ctc")


# --- recognising a model from its files (no torch) -------------------------------------


def _fake_model(directory: Path, hyperparams: str, *files: str) -> Path:
    """A directory with the files detection reads: the hyperparams and checkpoint names."""
    directory.mkdir(parents=True)
    (directory / "hyperparams.yaml").write_text(hyperparams.format(vocabulary=40))
    for name in files:
        (directory / name).write_bytes(b"")
    return directory


def test_detect_reads_the_interface_and_languages_from_the_files(tmp_path: Path) -> None:
    seq2seq = _fake_model(tmp_path / "seq2seq", SEQ2SEQ, "asr.ckpt", "tokenizer.ckpt")
    (seq2seq / "README.md").write_text(CARD)
    ctc = _fake_model(tmp_path / "ctc", CTC, "asr.ckpt", "tokenizer.ckpt")
    registry = BackendRegistry.from_entry_points()
    for directory, interface, languages in [
        (seq2seq, "EncoderDecoderASR", {"en"}),
        (ctc, "EncoderASR", set()),
    ]:
        found = registry.detect(directory)
        assert found is not None and found.name == "speechbrain"
        spec = inspect_model(directory)
        assert spec.interface == interface and spec.languages == languages
        assert spec.sample_rate == 16_000
    # the hub's config.json names the interface; the interface option overrides both
    (ctc / "config.json").write_text(json.dumps({"speechbrain": {"interface": "EncoderASR"}}))
    assert inspect_model(ctc).interface == "EncoderASR"
    with pytest.raises(ModelUnavailableError, match=r"modules\.decoder"):
        inspect_model(ctc, "EncoderDecoderASR")
    (ctc / "README.md").write_text('---\nlanguage:\n- "fr-FR"\n- de\n- klingon\n---\n# card')
    assert card_languages(ctc) == {"fr", "de"}


def test_detect_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    # another SpeechBrain interface (Whisper, or a speaker model), by config.json
    whisper = _fake_model(tmp_path / "whisper", SEQ2SEQ, "whisper.ckpt")
    (whisper / "config.json").write_text(json.dumps({"speechbrain": {"interface": "WhisperASR"}}))
    # hyperparams without a tokenizer (a VAD or speaker model), or without checkpoints
    speaker = _fake_model(tmp_path / "speaker", "modules:\n  encoder: !ref <x>\n", "x.ckpt")
    empty = _fake_model(tmp_path / "no-checkpoints", CTC)
    broken = _fake_model(tmp_path / "not-yaml", "modules: [unclosed\n", "asr.ckpt")
    paraformer = write_paraformer(tmp_path / "paraformer")
    for directory in (whisper, speaker, empty, broken, paraformer, tmp_path / "missing"):
        assert not BACKEND.detect(directory), directory.name
    with pytest.raises(ModelUnavailableError, match="WhisperASR"):
        inspect_model(whisper)


# --- the real environment, worker and server -------------------------------------------


@pytest.fixture(scope="module")
def speechbrain_env(engine_env: Any) -> EngineEnv:
    env: EngineEnv = engine_env("speechbrain")
    return env


@pytest.fixture(scope="module")
def tiny_models(
    speechbrain_env: EngineEnv, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("speechbrain-models")
    return write_speechbrain(speechbrain_env, {"seq2seq": root / "seq2seq", "ctc": root / "ctc"})


@pytest.fixture(scope="module")
def live(
    speechbrain_env: EngineEnv,
    tiny_models: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("speechbrain-server")
    data = root / "data"
    data.mkdir()
    (data / "envs").symlink_to(speechbrain_env.data_dir / "envs")  # the installed environment
    broken = root / "no-asr-checkpoint"
    shutil.copytree(tiny_models["ctc"], broken)
    (broken / "asr.ckpt").unlink()
    config = {
        "models": {
            # the catalog's entry, pulled from the stand-in hub; English from its model card
            "sb-seq2seq": {"model": "speechbrain-crdnn-librispeech", "options": {"threads": 1}},
            # no card: the language comes from the options
            "sb-ctc": {
                "model": str(tiny_models["ctc"]),
                "backend": "speechbrain",
                "options": {"threads": 1, "language": "en", "max_chunk_seconds": 8},
            },
            "sb-broken": {"model": str(broken), "backend": "speechbrain"},
        }
    }
    (root / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    hub = catalog_hub({"speechbrain/asr-crdnn-rnnlm-librispeech": tiny_models["seq2seq"]})
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
    try:
        with start_server(data, root / "models", config=root / "config.yaml", env=env) as server:
            yield server
    finally:
        hub.stop()


@pytest.mark.parametrize("model", MODELS)
def test_verbose_json_has_timed_segments_from_pauses(
    live: LiveServer, speech: dict[str, SpeechSample], model: str
) -> None:
    sample = speech["two_cities"]
    verbose = live.client().audio.transcriptions.create(
        model=model, file=sample.path, response_format="verbose_json"
    )
    body = verbose.model_dump()
    assert abs(body["duration"] - sample.duration) < 0.1 and body["task"] == "transcribe"
    assert body["language"] == "english"
    assert "words" not in body or body["words"] is None  # SpeechBrain gives no token times
    segments = body["segments"]
    assert len(segments) >= 3  # 44 s of speech, cut at pauses (at most 20 s or 8 s each)
    previous_end = 0.0
    for index, segment in enumerate(segments):
        assert set(segment) == SEGMENT_FIELDS and segment["id"] == index
        assert previous_end <= segment["start"] < segment["end"] <= body["duration"] + 0.001
        assert isinstance(segment["text"], str) and segment["text"].strip()
        assert segment["tokens"] and all(isinstance(t, int) for t in segment["tokens"])
        previous_end = segment["end"]
    assert body["text"].strip() == " ".join(s["text"].strip() for s in segments)


@pytest.mark.parametrize("model", MODELS)
def test_text_formats(live: LiveServer, speech: dict[str, SpeechSample], model: str) -> None:
    client = live.client()
    path = speech["beckett"].path
    plain = client.audio.transcriptions.create(model=model, file=path)
    assert isinstance(plain.text, str) and plain.text.strip()
    text = client.audio.transcriptions.create(model=model, file=path, response_format="text")
    assert isinstance(text, str) and text.strip() == plain.text.strip()
    srt = client.audio.transcriptions.create(model=model, file=path, response_format="srt")
    vtt = client.audio.transcriptions.create(model=model, file=path, response_format="vtt")
    assert isinstance(srt, str) and srt.startswith("1\n00:00:") and " --> " in srt
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT") and " --> " in vtt


def test_streamed_transcription(live: LiveServer, speech: dict[str, SpeechSample]) -> None:
    stream = live.client().audio.transcriptions.create(
        model="sb-ctc", file=speech["two_cities"].path, stream=True
    )
    events = list(stream)
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert len(deltas) >= 3 and events[-1].type == "transcript.text.done"
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert done.text.strip() == "".join(e.delta for e in deltas).strip()


@pytest.mark.parametrize("model", MODELS)
def test_what_the_model_cannot_do_is_a_400(
    live: LiveServer, speech: dict[str, SpeechSample], model: str
) -> None:
    client = live.client()
    path = speech["beckett"].path
    with pytest.raises(openai.BadRequestError, match="translate") as translation:
        client.audio.translations.create(model=model, file=path)
    assert translation.value.status_code == 400
    with pytest.raises(openai.BadRequestError, match="'ja'") as japanese:
        client.audio.transcriptions.create(model=model, file=path, language="ja")
    assert japanese.value.param == "language"
    with pytest.raises(openai.BadRequestError, match="word timestamps"):
        client.audio.transcriptions.create(
            model=model,
            file=path,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    english = client.audio.transcriptions.create(model=model, file=path, language="en")
    assert english.text.strip()
    with live.http() as http:  # what /v1/models says, so clients need not learn it by a 400
        assert http.get(f"/v1/models/{model}").json()["word_timestamps"] is False
    live.assert_healthy()


def test_a_missing_checkpoint_fails_to_load_with_the_reason(
    live: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    with pytest.raises(openai.APIStatusError) as failed:
        live.client().audio.transcriptions.create(model="sb-broken", file=speech["beckett"].path)
    assert failed.value.status_code == 503
    assert "asr.ckpt" in failed.value.message and "local files" in failed.value.message
    live.assert_healthy()


def test_torch_is_in_the_workers_never_in_the_server(
    live: LiveServer, tiny_models: dict[str, Path], speech: dict[str, SpeechSample]
) -> None:
    before = {layout: sorted(p.name for p in d.iterdir()) for layout, d in tiny_models.items()}
    for model in MODELS:
        live.client().audio.transcriptions.create(model=model, file=speech["beckett"].path)
    server = live.process.pid
    workers = [pid for pid in child_pids(server) if "libtorch" in mapped_files(pid)]
    assert len(workers) == 2, "each model has a worker with torch loaded"
    assert "libtorch" not in mapped_files(server) and "torch" not in mapped_files(server)
    for pid in workers:
        interpreter = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert interpreter == str(live.data_dir / "envs" / "speechbrain" / "bin" / "python")
    # the checkpoints were read in place: nothing collected, linked or fetched beside them
    after = {layout: sorted(p.name for p in d.iterdir()) for layout, d in tiny_models.items()}
    assert after == before
