"""The ``cpu`` image with its default configuration speaks out of the box: it has no weights,
so it pulls the starter set from the hub on first start (here the stand-in hub, serving
each catalog entry's repo in its real layout) and ``tts-1`` answers the openai client.

Runs only with ``BRAGI_TEST_CPU_IMAGE=<tag>`` (``scripts/build-image --target cpu``) and
a working Docker engine; the container uses the host's network, so it reaches the stand-in
hub on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from cataloghub import KOKORO_REPO, PIPER_REPO, WHISPER_BASE_REPO, catalog_hub
from hubstub import WHISPER_REPO, HubStub
from livesupport import KEY_PATTERN, free_port
from speech import SpeechSample, word_error_rate

IMAGE = os.environ.get("BRAGI_TEST_CPU_IMAGE", "")
DOCKER = os.environ.get("DOCKER", "docker")
READY_TIMEOUT = 600.0  # four models, 370 MB, into a new volume

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        not IMAGE,
        reason="needs the cpu image: set BRAGI_TEST_CPU_IMAGE=<tag> "
        "(scripts/build-image --target cpu)",
    ),
]


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        [DOCKER, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}:\n{result.stdout[-3000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def hub(
    whisper_base_dir: Path, whisper_repo_dir: Path, piper_voices_dir: Path, kokoro_onnx_dir: Path
) -> Iterator[HubStub]:
    """The starter set's repos: what the default configuration names, without PyPI's copies."""
    stub = catalog_hub(
        {
            WHISPER_BASE_REPO: whisper_base_dir,
            WHISPER_REPO: whisper_repo_dir,
            PIPER_REPO: piper_voices_dir,
            KOKORO_REPO: kokoro_onnx_dir,
        }
    )
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def server(hub: HubStub) -> Iterator[tuple[str, str]]:
    """The image run as documented (a volume at /data, no config), with HF_ENDPOINT set;
    yields its URL and the first-boot key."""
    tag, port = uuid.uuid4().hex[:10], free_port()
    name, volume = f"bragi-cpu-test-{tag}", f"bragi-cpu-test-{tag}"
    url = f"http://127.0.0.1:{port}"
    try:
        docker("run", "--detach", "--name", name, "--network", "host", "--volume",
               f"{volume}:/data", "--env", f"BRAGI_PORT={port}", "--env",
               f"HF_ENDPOINT={hub.url}", IMAGE)  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            state = docker("inspect", "--format", "{{.State.Status}}", name).strip()
            if state not in ("created", "running"):
                raise AssertionError(f"container {state}:\n{docker('logs', name)[-4000:]}")
            try:
                if httpx.get(f"{url}/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready:\n{docker('logs', name, check=False)[-4000:]}")
            time.sleep(1)
        found = KEY_PATTERN.search(docker("logs", name))
        assert found, "no first-boot key in the log"
        yield url, found.group(0)
    finally:
        docker("rm", "--force", name, check=False)
        docker("volume", "rm", "--force", volume, check=False)


def test_tts_1_speaks_out_of_the_box(
    server: tuple[str, str], hub: HubStub, speech: dict[str, SpeechSample]
) -> None:
    url, key = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
    described = client.models.retrieve("tts-1").model_dump()
    assert (described["backend"], described["source"]) == ("piper", "piper:en_US-joe-medium")
    text = speech["beckett"].text
    spoken = client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    ).content
    heard = client.audio.transcriptions.create(model="whisper-1", file=("joe.wav", spoken)).text
    assert word_error_rate(text, heard) < 0.3, heard
    assert hub.seen("GET", contains="joe/medium/en_US-joe-medium.onnx")  # pulled, not packaged
