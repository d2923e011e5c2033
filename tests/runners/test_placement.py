"""Choosing where an engine runs, and finding its backend from inside a worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from bragi.backends.faster_whisper import BACKEND as FASTER_WHISPER
from bragi.backends.protocol import (
    IsolatedBackend,
    ModelKind,
    SynthesisRequest,
    TranscribeOptions,
)
from bragi.config import ModelConfig, Settings
from bragi.errors import BackendUnavailableError
from bragi.models.manager import runner_config
from bragi.runners import RunnerConfig, backend_reference, create_engine, runs_in_worker
from bragi.runners.proxy import WorkerSpeechToText
from childfakes import ISOLATED, STT, TTS, ScriptedBackend, ScriptOptions
from runnerkit import SPEECH, THREE_SENTENCES, StartEngine


def test_auto_runs_isolated_backends_in_workers_and_the_rest_in_process() -> None:
    assert isinstance(ISOLATED, IsolatedBackend) and not isinstance(STT, IsolatedBackend)
    assert runs_in_worker(ISOLATED, "auto") and not runs_in_worker(STT, "auto")
    assert runs_in_worker(STT, "worker") and not runs_in_worker(ISOLATED, "process")


def test_the_runner_config_comes_from_the_model_config(tmp_path: Path) -> None:
    config = ModelConfig(model="m", runner="worker", worker_timeout="2m", worker_load_timeout=90)
    runner = runner_config("alias", config, Settings(data_dir=tmp_path))
    assert runner == RunnerConfig("worker", "alias", 120.0, 90.0, tmp_path / "envs")
    with pytest.raises(ValueError, match="greater than 0"):
        ModelConfig(model="m", worker_timeout=0)


def test_the_worker_finds_a_backend_by_entry_point_or_by_module_attribute() -> None:
    assert backend_reference(FASTER_WHISPER) is None  # looked up by name in the worker's env
    assert backend_reference(STT) == "childfakes:STT"
    with pytest.raises(BackendUnavailableError, match="cannot run in a worker"):
        backend_reference(ScriptedBackend("script-local", ModelKind.STT))


def test_a_missing_environment_names_the_install_command(tmp_path: Path) -> None:
    config = RunnerConfig(envs_dir=tmp_path / "envs")
    with pytest.raises(BackendUnavailableError) as missing:
        create_engine(ISOLATED, tmp_path, "cpu", ScriptOptions(), config)
    assert "run `bragi backend install script-isolated`" in missing.value.message


@pytest.mark.parametrize("runner", ["process", "worker"])
def test_both_runners_give_the_same_results(start_engine: StartEngine, runner: str) -> None:
    stt = start_engine(STT, runner=runner)
    assert isinstance(stt, WorkerSpeechToText) == (runner == "worker")
    segments, info = stt.transcribe(SPEECH, TranscribeOptions(language="en"))
    texts = [segment.text for segment in segments]
    assert (texts, info.language) == ([" word0", " word1", " word2"], "en")

    tts = start_engine(TTS, runner=runner)
    chunks = list(tts.synthesize(SynthesisRequest(THREE_SENTENCES, "bert")))
    assert [round(chunk.duration, 3) for chunk in chunks] == [0.25] * 3
    assert [v.id for v in tts.voices()] == ["alba", "bert"]
