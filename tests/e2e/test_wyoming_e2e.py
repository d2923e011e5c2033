"""Wyoming end to end: a real ``bragi serve --wyoming`` subprocess with the starter models
(Whisper base and tiny.en, Piper, Kokoro) and a cloning engine, driven by the ``wyoming``
package's own client replaying Home Assistant (``hassclient``), by the official openai
client at the same time, and by the third-party ``wyoming-bench``.

The cloning engine is the scripted one from ``tests/runners/childfakes.py`` (no PyPI
package carries cloning weights), registered as a plugin's entry point; it logs the
reference each request carries.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from wyoming.info import Info

import hassclient
from appserver import Metrics
from bragi.audio import decode_audio
from bragi.audio.encode import to_pcm16
from fakes import make_model_dir, wait_until
from livesupport import LiveServer, free_port, start_server
from speech import SpeechSample, espeak, word_error_rate

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent.parent
HOST = "127.0.0.1"


@dataclass
class Deployment:
    server: LiveServer
    port: int  # Wyoming's
    workdir: Path  # the scripted cloner's event log

    def clones(self) -> list[str]:
        events = self.workdir / "events"
        lines = events.read_text().splitlines() if events.exists() else []
        return [line for line in lines if line.startswith("clone ")]


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, models_cache: Path
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("wyoming-e2e")
    info = root / "site" / "bragi_wyomingfakes-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bragi-wyomingfakes\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text("[bragi.backends]\nscript-clone = childfakes:CLONE\n")
    workdir = root / "work"
    workdir.mkdir()
    port = free_port()
    config = {
        "models": {
            "whisper-1": {"model": "whisper-base"},
            "whisper-tiny.en": {"model": "whisper-tiny.en"},
            "tts-1": {"model": "piper:en_US-joe-medium"},
            "kokoro": {"model": "kokoro-int8-ja"},
            "cloner": {
                "model": str(make_model_dir(root / "models", "script-clone", "cloner")),
                "backend": "script-clone",
                "runner": "process",
                "options": {"workdir": str(workdir)},
            },
            # Used by one test only, so it is not loaded before that test starts.
            "shared": {"model": "whisper-tiny.en"},
        },
        "wyoming": {
            "enabled": True,
            "port": port,
            "stt_model": "whisper-tiny.en",  # English commands: the small English model
            "stt_models": {"de": "whisper-1"},
        },
    }
    path = root / "config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    pythonpath = ":".join(str(p) for p in (root / "site", TESTS, TESTS / "runners"))
    with start_server(
        root / "data", models_cache, config=path, env={"PYTHONPATH": pythonpath}
    ) as live:
        yield Deployment(live, port, workdir)


def pcm_of(audio_bytes: bytes, rate: int = 16_000, channels: int = 1) -> bytes:
    """Any audio file as interleaved 16-bit PCM at ``rate``."""
    samples = to_pcm16(decode_audio(audio_bytes, rate).samples)
    return np.repeat(samples, channels).tobytes()


def requests(deployment: Deployment, route: str, model: str) -> float:
    """Successful requests to ``route`` on ``model``, from the server's /metrics."""
    with deployment.server.http() as http:
        metrics = Metrics(http.get("/metrics").text)
    return metrics.value("bragi_requests_total", route=route, model=model, status="200")


def voice_names(deployment: Deployment) -> set[str]:
    return {voice.name for voice in describe(deployment).tts[0].voices}


def describe(deployment: Deployment) -> Info:
    info, seconds = asyncio.run(hassclient.describe(HOST, deployment.port))
    assert seconds < hassclient.DESCRIBE_TIMEOUT
    return info


def test_home_assistant_sees_one_stt_and_one_tts_service(deployment: Deployment) -> None:
    info = describe(deployment)
    view = hassclient.home_assistant_view(info)
    assert view.stt_name == view.tts_name == "bragi"
    assert [m.name for m in info.asr[0].models] == [
        "whisper-tiny.en",  # the default first
        "whisper-1",
        "shared",
    ]
    assert {"en", "de", "fr", "ja"} <= view.stt_languages  # Whisper base is multilingual
    english = dict(view.tts_voices["en_US"])
    assert english["tts-1/en_US-joe-medium"] == "en_US-joe-medium (tts-1)"
    assert english["kokoro/jf_alpha"] == "jf_alpha (kokoro, female)"
    assert view.tts_streaming


def test_a_recording_in_10_ms_chunks_as_home_assistant_sends_it(
    deployment: Deployment, speech: dict[str, SpeechSample]
) -> None:
    beckett = speech["beckett"]
    reply = asyncio.run(
        hassclient.transcribe(
            HOST, deployment.port, pcm_of(beckett.path.read_bytes()), until="transcript-stop"
        )
    )
    assert reply.text is not None and word_error_rate(beckett.text, reply.text) < 0.15
    types = reply.types()
    assert types[0] == "transcript-start" and types[-2:] == ["transcript", "transcript-stop"]
    chunks = [e.data["text"] for e in reply.events if e.type == "transcript-chunk"]
    assert chunks and "".join(chunks).strip() == reply.text
    assert reply.events[-2].data["language"] == "en"


def test_44_1_khz_stereo_is_heard(deployment: Deployment, speech: dict[str, SpeechSample]) -> None:
    beckett = speech["beckett"]
    stereo = pcm_of(beckett.path.read_bytes(), rate=44_100, channels=2)
    reply = asyncio.run(
        hassclient.transcribe(HOST, deployment.port, stereo, rate=44_100, channels=2)
    )
    assert reply.text is not None and word_error_rate(beckett.text, reply.text) < 0.15


def test_the_language_map_sends_german_to_the_multilingual_model(deployment: Deployment) -> None:
    german = pcm_of(espeak("Schalte bitte das Licht in der Küche ein.", "de"))
    before = requests(deployment, "wyoming/transcribe", "whisper-1")
    reply = asyncio.run(hassclient.transcribe(HOST, deployment.port, german, language="de"))
    assert reply.text is not None
    assert "Licht" in reply.text and "Küche" in reply.text, reply.text
    assert reply.events[-1].data["language"] == "de"
    assert requests(deployment, "wyoming/transcribe", "whisper-1") == before + 1


def test_piper_streams_speech_that_whisper_understands(deployment: Deployment) -> None:
    text = ["Turn on the ", "kitchen light, ", "please. Then close ", "the garage door."]
    reply = asyncio.run(
        hassclient.synthesize_streaming(HOST, deployment.port, text, voice="tts-1/en_US-joe-medium")
    )
    assert reply.error is None and reply.types()[-1] == "synthesize-stopped"
    assert reply.formats() == {(22_050, 2, 1)}  # one format for the whole reply
    assert reply.types().count("audio-start") == 2  # a block per sentence
    assert reply.first_audio is not None and reply.first_audio < reply.total
    # Home Assistant writes one WAV from the first audio-start and every chunk after it.
    heard = asyncio.run(
        hassclient.transcribe(HOST, deployment.port, reply.pcm, rate=22_050, chunk_seconds=0.1)
    )
    expected = "Turn on the kitchen light, please. Then close the garage door."
    assert heard.text is not None and word_error_rate(expected, heard.text) < 0.2, heard.text


def test_kokoro_speaks_in_one_block(deployment: Deployment) -> None:
    reply = asyncio.run(
        hassclient.synthesize_once(
            HOST, deployment.port, "It is sunny. Tomorrow it rains.", voice="kokoro/jm_kumo"
        )
    )
    assert reply.error is None
    types = reply.types()
    assert types[0] == "audio-start" and types[-1] == "audio-stop"
    assert types.count("audio-start") == 1 and set(types[1:-1]) == {"audio-chunk"}
    assert reply.formats() == {(24_000, 2, 1)}
    samples = np.frombuffer(reply.pcm, "<i2").astype(np.float32) / 32768
    assert reply.seconds > 1.0 and float(np.sqrt(np.mean(samples**2))) > 0.01


def test_a_cloned_voice_is_listed_and_spoken(
    deployment: Deployment, speech: dict[str, SpeechSample]
) -> None:
    client = deployment.server.client()
    with speech["beckett"].path.open("rb") as recording:
        voice = client.audio.voices.create(  # shared: Wyoming has no keys to own a voice
            name="ada",
            audio_sample=recording,
            consent="mine",
            model="cloner",
            extra_body={"shared": "true"},
        )
    try:
        wait_until(lambda: "ada" in voice_names(deployment), what="the new voice in the info")
        names = {v.name: v for v in describe(deployment).tts[0].voices}
        assert names["ada"].description == "ada (cloned voice, cloner)"
        text = ["Ever tried. ", "Ever failed."]
        reply = asyncio.run(
            hassclient.synthesize_streaming(HOST, deployment.port, text, voice="ada")
        )
        assert reply.error is None and reply.types()[-1] == "synthesize-stopped"
        assert reply.formats() == {(22_050, 2, 1)}
        assert [line.split()[1] for line in deployment.clones()] == [voice.id, voice.id]
        # Once loaded, the cloning model's own voices are listed too.
        wait_until(
            lambda: {"cloner/alba", "cloner/bert", "ada"} <= voice_names(deployment),
            what="the cloning model's voices",
        )
    finally:
        client.audio.voices.delete(voice.id)
    wait_until(lambda: "ada" not in voice_names(deployment), what="the voice to go")


def test_wyoming_and_openai_requests_share_one_load(
    deployment: Deployment, speech: dict[str, SpeechSample]
) -> None:
    beckett = speech["beckett"]
    client = deployment.server.client()

    def over_http() -> str:
        with beckett.path.open("rb") as audio:
            return client.audio.transcriptions.create(model="shared", file=audio).text

    with ThreadPoolExecutor(1) as pool:
        http_text = pool.submit(over_http)
        reply = asyncio.run(
            hassclient.transcribe(
                HOST, deployment.port, pcm_of(beckett.path.read_bytes()), name="shared"
            )
        )
        assert word_error_rate(beckett.text, http_text.result(timeout=120)) < 0.15
    assert reply.text is not None and word_error_rate(beckett.text, reply.text) < 0.15
    assert deployment.server.log().count("loaded shared in") == 1
    assert requests(deployment, "wyoming/transcribe", "shared") == 1
    assert requests(deployment, "/v1/audio/transcriptions", "shared") == 1


def test_wyoming_bench_runs_info_stt_and_tts(deployment: Deployment, tmp_path: Path) -> None:
    server = f"{HOST}:{deployment.port}"

    def bench(*args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("wyoming-bench")), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "tts  bragi (synthesize streaming)" in bench("info", server)
    corpus = tmp_path / "corpus"
    made = bench("generate-corpus", server, "--out", str(corpus), "--texts", "What time is it?")
    assert "[ok]" in made and (corpus / "sample_01.wav").exists()
    heard = bench("stt", server, "--corpus", str(corpus), "--rounds", "1", "--warmup", "0")
    assert heard.count("ok=1 fail=0") == 2  # non-streaming and streaming
    rates = [float(rate) for rate in re.findall(r"WER=([\d.]+)%", heard)]
    assert len(rates) == 2 and max(rates) <= 25.0, heard  # at most one word of four
    spoken = bench("tts", server, "--rounds", "1", "--warmup", "0", "--texts", "Hi. Bye now.")
    assert spoken.count("ok=1 fail=0") == 2
