"""The worker runner with scripted engines in real child processes.

The engines report through an events file and wait on gate files (see ``childfakes``),
so the tests see what the worker did and hold it at chosen points without sleeping;
every wait is bounded. Only the hang test waits on purpose: for its short timeout.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bragi.backends.protocol import Segment, SynthesisRequest, TranscribeOptions, Word
from bragi.errors import (
    EngineError,
    ModelUnavailableError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)
from bragi.runners import WorkerSpeechToText, WorkerTextToSpeech
from childfakes import TTS, TTS_RATE, VOICES, Script
from fakes import sine
from runnerkit import SPEECH, THREE_SENTENCES, StartEngine, process_exists


def transcribe(engine: WorkerSpeechToText, prompt: str | None = None) -> list[Segment]:
    segments, _info = engine.transcribe(SPEECH, TranscribeOptions(prompt=prompt))
    return list(segments)


def test_segments_stream_from_the_worker_as_they_are_produced(
    start_engine: StartEngine, script: Script
) -> None:
    engine = start_engine(gate_at=1)
    assert isinstance(engine, WorkerSpeechToText) and engine.pid != os.getpid()
    assert engine.capabilities.languages == frozenset({"en", "de"})

    segments, info = engine.transcribe(SPEECH, TranscribeOptions(language="de"))
    assert (info.language, info.duration, info.language_probability) == ("de", 1.0, 0.75)
    assert "transcribe 16000 16000" in script.events()  # every sample reached the worker

    first = next(segments)
    assert first == Segment(
        0, 0.0, 0.5, " word0", tokens=(0, 7), words=(Word("word0", 0, 0.5, 0.5),)
    )
    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(next, segments)
        script.wait_for("waiting 1")  # the worker holds segment 1 at its gate ...
        assert "segment 1" not in script.events() and not second.done()
        script.open_gate(1)  # ... while segment 0 has already arrived
        assert second.result(timeout=30).text == " word1"
    assert [s.text for s in segments] == [" word2"]
    assert script.events()[-1] == "finished"


def test_audio_chunks_stream_from_the_worker(start_engine: StartEngine, script: Script) -> None:
    engine = start_engine(TTS, gate_at=2)
    assert isinstance(engine, WorkerTextToSpeech)
    assert list(engine.voices()) == list(VOICES)
    assert (engine.capabilities.sample_rate, engine.capabilities.max_native_speed) == (
        TTS_RATE,
        2.0,
    )

    chunks = engine.synthesize(SynthesisRequest(THREE_SENTENCES, "alba", speed=2.0))
    received = [next(chunks), next(chunks)]
    script.wait_for("chunk 1")
    assert "chunk 2" not in script.events()  # two chunks out, the third not made yet
    script.open_gate(2)
    received += list(chunks)
    assert len(received) == 3
    for index, chunk in enumerate(received):
        expected = sine(0.125, TTS_RATE, 200.0 + 100.0 * index)
        assert chunk.sample_rate == TTS_RATE and chunk.samples.dtype == np.float32
        np.testing.assert_array_equal(chunk.samples, expected.samples)  # bit for bit


def test_typed_errors_cross_the_boundary(start_engine: StartEngine) -> None:
    tts = start_engine(TTS)
    with pytest.raises(UnknownVoiceError) as unknown:
        tts.synthesize(SynthesisRequest("Hello.", "zed"))  # raised up front, not mid-stream
    assert (unknown.value.status_code, unknown.value.param) == (400, "voice")
    assert unknown.value.code == "voice_not_found" and "alba, bert" in unknown.value.message

    stt = start_engine()
    pid = stt.pid
    with pytest.raises(UnsupportedCapabilityError) as unsupported:
        stt.transcribe(SPEECH, TranscribeOptions(task="translate", language="de"))
    assert (unsupported.value.status_code, unsupported.value.param) == (400, "language")

    segments, _ = stt.transcribe(SPEECH, TranscribeOptions(prompt="fail@1"))
    assert next(segments).text == " word0"
    with pytest.raises(EngineError, match="failed at item 1") as failed:
        next(segments)
    assert failed.value.status_code == 500
    assert next(segments, None) is None  # the stream is over
    assert len(transcribe(stt)) == 3 and stt.pid == pid  # an engine error is not a crash


def test_failed_loads_leave_no_worker_behind(start_engine: StartEngine, script: Script) -> None:
    with pytest.raises(EngineError, match="RuntimeError: weights file is truncated"):
        start_engine(load="raise")
    with pytest.raises(ModelUnavailableError, match="exited with code 5 during 'load'"):
        start_engine(load="crash")
    pids = [int(event.split()[1]) for event in script.events() if event.startswith("load ")]
    assert len(pids) == 2 and not any(process_exists(pid) for pid in pids)


def test_closing_a_stream_stops_the_work_in_the_worker(
    start_engine: StartEngine, script: Script
) -> None:
    engine = start_engine(segments=5)
    segments, _ = engine.transcribe(SPEECH, TranscribeOptions())
    assert next(segments).text == " word0"
    segments.close()  # what the API does when the client leaves
    script.wait_for("closed 0")  # the engine's generator was closed, at once
    assert engine.ping()["streams"] == 0
    assert "segment 1" not in script.events()
    assert next(segments, None) is None

    abandoned, _ = engine.transcribe(SPEECH, TranscribeOptions())
    next(abandoned)
    del abandoned  # dropped without close(): closed in the worker with the next exchange
    gc.collect()
    assert engine.ping()["streams"] == 0 and script.events()[-2:] == ["segment 0", "closed 0"]
    assert len(transcribe(engine)) == 5


def test_closing_a_stream_never_waits_for_the_worker(
    start_engine: StartEngine, script: Script
) -> None:
    """close() runs on the event loop (a client left): it must return at once, even while
    the worker takes its time to close the engine's generator."""
    engine = start_engine(segments=5, close_gate=7)
    segments, _ = engine.transcribe(SPEECH, TranscribeOptions())
    next(segments)
    closing = threading.Thread(target=segments.close)
    closing.start()
    closing.join(5)
    returned = not closing.is_alive()
    script.open_gate(7)
    closing.join()
    assert returned, "close() waited for the worker's reply"
    script.wait_for("closed 0")
    assert engine.ping()["streams"] == 0
    assert len(transcribe(engine)) == 5


def test_streams_open_at_once_interleave_in_one_worker(start_engine: StartEngine) -> None:
    engine = start_engine(segments=4)
    first, _ = engine.transcribe(SPEECH, TranscribeOptions())
    second, _ = engine.transcribe(SPEECH, TranscribeOptions())
    pairs = list(zip(first, second, strict=True))
    assert [(a.id, b.id) for a, b in pairs] == [(i, i) for i in range(4)]


def test_a_crash_fails_the_requests_in_flight_with_503_and_the_next_one_restarts_it(
    start_engine: StartEngine, script: Script
) -> None:
    engine = start_engine()
    crashed_pid = engine.pid
    doomed, _ = engine.transcribe(SPEECH, TranscribeOptions(prompt="crash@1"))
    bystander, _ = engine.transcribe(SPEECH, TranscribeOptions())
    assert next(doomed).text == " word0" and next(bystander).text == " word0"

    with pytest.raises(ModelUnavailableError, match="exited with code 3 during 'next'") as crash:
        next(doomed)
    assert crash.value.status_code == 503
    with pytest.raises(ModelUnavailableError, match="stopped while this request"):
        next(bystander)  # in flight on the same worker: lost too
    assert not process_exists(crashed_pid)

    assert [s.text for s in transcribe(engine)] == [" word0", " word1", " word2"]
    assert engine.pid != crashed_pid and process_exists(engine.pid)
    assert sum(event.startswith("load ") for event in script.events()) == 2


def test_a_hung_worker_is_killed_after_its_timeout_and_restarted(
    start_engine: StartEngine, script: Script
) -> None:
    engine = start_engine(timeout=3.0)
    hung_pid = engine.pid
    segments, _ = engine.transcribe(SPEECH, TranscribeOptions(prompt="hang@1"))
    assert next(segments).text == " word0"
    with pytest.raises(ModelUnavailableError, match="did not answer 'next' within 3 s") as hang:
        next(segments)
    assert hang.value.status_code == 503
    assert "hang 1" in script.events() and not process_exists(hung_pid)
    assert len(transcribe(engine)) == 3 and engine.pid != hung_pid


def test_closing_the_engine_ends_the_worker_and_its_memory(
    start_engine: StartEngine, script: Script
) -> None:
    engine = start_engine(ballast_mb=64)
    health = engine.ping()
    pid = health["pid"]
    assert pid == engine.pid and process_exists(pid)
    assert health["rss"] > 64 * 1024 * 1024  # the model's memory is the worker's
    engine.close()  # what unloading a model does
    assert not process_exists(pid)
    assert script.events()[-1] == "engine closed"
    with pytest.raises(ModelUnavailableError, match="unloaded"):
        engine.transcribe(SPEECH, TranscribeOptions())


def test_the_server_process_never_imports_torch(
    start_engine: StartEngine, script: Script, tmp_path: Path
) -> None:
    stand_in = tmp_path / "site" / "torch"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text(
        "import os\n"
        f"with open({str(script.dir / 'events')!r}, 'a') as f:\n"
        "    f.write(f'torch imported in {os.getpid()}\\n')\n"
    )
    engine = start_engine(path=[str(stand_in.parent)], imports=["torch"])
    assert len(transcribe(engine)) == 3
    assert f"torch imported in {engine.pid}" in script.events()
    assert "torch" not in sys.modules
