"""The container image, run for real: first boot, STT and TTS through the openai client,
keys and models surviving a restart and a new container, a non-root server, a clean image.

Runs only with ``BRAGI_TEST_IMAGE=<tag>`` (an image with the starter models, e.g. the one
``scripts/build-image --target starter`` makes) and a working Docker engine: ``make
test-image`` builds the image and runs these. The container uses the host's network
(ports on 127.0.0.1) and a named volume at /data, as in ``docker run -v bragi_data:/data``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from livesupport import KEY_PATTERN, free_port
from speech import SpeechSample, word_error_rate

IMAGE = os.environ.get("BRAGI_TEST_IMAGE", "")
DOCKER = os.environ.get("DOCKER", "docker")
FIRST_BOOT = "First boot: created admin API key"
ASSEMBLING = "assembling "  # bragi.models.packaged logs this when it builds a model dir
READY_TIMEOUT = 240.0

pytestmark = [
    pytest.mark.slow,
    # Starting a container can take a minute on a busy machine: with Docker's vfs storage
    # driver (sandboxes without overlayfs) every `docker run` copies the whole image.
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not IMAGE,
        reason="container tests need an image: set BRAGI_TEST_IMAGE=<tag> "
        "(`make test-image` builds bragi:starter and runs them)",
    ),
]


def docker(command: str, *verbatim: str, check: bool = True, timeout: float = 120) -> str:
    """Run ``docker COMMAND VERBATIM...``: ``command`` is split as a shell would split it,
    the rest are passed as they are. Returns stdout and stderr together (the server logs
    to stderr).
    """
    args = (*shlex.split(command), *verbatim)
    result = subprocess.run(
        [DOCKER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {shlex.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}"
        )
    return result.stdout


@dataclass
class Container:
    name: str
    volume: str
    port: int
    options: str = ""  # more `docker run` options

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return docker(f"logs {self.name}", check=False)

    def client(self, api_key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=120)

    def run(self) -> None:
        docker(
            f"run --detach --name {self.name} --network host --env BRAGI_PORT={self.port} "
            f"--volume {self.volume}:/data {self.options} {IMAGE}"
        )
        self.wait_ready()

    def remove(self) -> None:
        docker(f"rm --force {self.name}", check=False)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            state = docker("inspect --format", "{{.State.Status}}", self.name).strip()
            if state not in ("created", "running", "restarting"):
                raise AssertionError(f"container {state}:\n{self.logs()[-4000:]}")
            try:
                response = httpx.get(f"{self.url}/health/ready", timeout=5)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise AssertionError(f"not ready after {READY_TIMEOUT} s ({last}):\n{self.logs()[-4000:]}")


@pytest.fixture(scope="module")
def container() -> Iterator[Container]:
    tag = uuid.uuid4().hex[:10]
    box = Container(name=f"bragi-test-{tag}", volume=f"bragi-test-{tag}", port=free_port())
    docker(f"volume create {box.volume}")
    try:
        box.run()
        yield box
    finally:
        box.remove()
        docker(f"volume rm --force {box.volume}", check=False)


@pytest.fixture(scope="module")
def api_key(container: Container) -> str:
    logs = container.logs()
    assert logs.count(FIRST_BOOT) == 1, logs[-3000:]
    found = KEY_PATTERN.search(logs)
    assert found, f"no first-boot key in the log:\n{logs[-3000:]}"
    return found.group(0)


def transcribe(client: openai.OpenAI, sample: SpeechSample) -> str:
    with sample.path.open("rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio)
    return result.text


def test_server_runs_as_non_root(container: Container) -> None:
    assert docker(f"exec {container.name} id -u").strip() != "0"
    status = docker(f"exec {container.name} cat /proc/1/status")
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert "0" not in uids, status  # real, effective, saved and filesystem uid of the server
    assert docker(f"exec {container.name} stat -c %U /data").strip() == "bragi"


def test_key_is_required(container: Container) -> None:
    response = httpx.get(f"{container.url}/v1/models", timeout=10)
    assert response.status_code == 401


def test_transcribes(container: Container, api_key: str, speech: dict[str, SpeechSample]) -> None:
    sample = speech["beckett"]
    text = transcribe(container.client(api_key), sample)
    assert word_error_rate(sample.text, text) <= 0.2, text


def test_synthesizes(container: Container, api_key: str) -> None:
    text = "Bragi speaks from inside a container."
    client = container.client(api_key)
    response = client.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    )
    assert response.headers["content-type"] == "audio/wav"
    audio = response.content
    assert audio[:4] == b"RIFF" and len(audio) > 22_050, len(audio)  # > 0.5 s at 22 kHz
    # Round trip: the container's Whisper understands the container's Piper.
    heard = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", audio))
    assert word_error_rate(text, heard.text) <= 0.4, heard.text


def test_healthcheck_passes(container: Container) -> None:
    check = json.loads(docker("inspect --format", "{{json .Config.Healthcheck}}", IMAGE))
    kind, *command = check["Test"]
    assert kind == "CMD", check
    docker(f"exec {container.name}", *command)  # exits 0, or docker() raises


def test_restart_keeps_keys_and_models(
    container: Container, api_key: str, speech: dict[str, SpeechSample]
) -> None:
    assembled = container.logs().count(ASSEMBLING)
    assert assembled >= 1, "the first start should have assembled the starter models"
    docker(f"restart --time 20 {container.name}")
    container.wait_ready()
    logs = container.logs()
    assert logs.count(FIRST_BOOT) == 1, "a restart must not create a new first-boot key"
    assert logs.count(ASSEMBLING) == assembled, "a restart must reuse the assembled models"
    sample = speech["beckett"]
    assert word_error_rate(sample.text, transcribe(container.client(api_key), sample)) <= 0.2


def test_new_container_on_the_same_volume(container: Container, api_key: str) -> None:
    """An upgrade replaces the container; keys and models live on the volume."""
    container.remove()
    container.run()
    logs = container.logs()
    assert FIRST_BOOT not in logs
    assert ASSEMBLING not in logs
    models = {model.id for model in container.client(api_key).models.list()}
    assert {"whisper-1", "tts-1"} <= models, models
    with pytest.raises(openai.AuthenticationError):
        container.client("sk-bragi-not-a-key").models.list()


def test_kubernetes_layout(tmp_path: Path, speech: dict[str, SpeechSample]) -> None:
    """What deploy/kubernetes does, with plain containers: keys made ahead of time and
    copied into an empty data dir, models pulled into a cache that the server mounts
    read-only, a config file at /etc/bragi/config.yaml, a read-only root filesystem."""
    tag = uuid.uuid4().hex[:10]
    cache, keys, data = (f"bragi-test-{tag}-{part}" for part in ("models", "keys", "data"))
    config = tmp_path / "config.yaml"
    config.write_text(
        "allow_downloads: false\n"
        "models:\n"
        "  whisper-1: {model: whisper-base}\n"
        "  tts-1: {model: 'piper:en_US-joe-medium'}\n"
    )
    config.chmod(0o644)
    run = "run --rm --network none"
    locked = "--read-only --tmpfs /tmp --env HF_HOME=/tmp/huggingface"
    server = Container(
        name=f"bragi-test-{tag}",
        volume=data,
        port=free_port(),
        options=f"{locked} --env BRAGI_MODEL_CACHE_DIR=/models --env HF_HUB_OFFLINE=1 "
        f"--volume {cache}:/models:ro "
        f"--volume {shlex.quote(str(config))}:/etc/bragi/config.yaml:ro",
    )
    try:
        # The Secret's keys.db, made ahead of time.
        created = docker(f"{run} --volume {keys}:/data {IMAGE} keys create admin --admin")
        found = KEY_PATTERN.search(created)
        assert found, created
        # The bragi-pull Job. A new volume's root belongs to root: Kubernetes hands it to
        # the pod's user through fsGroup, here a chown does.
        as_root = f"{run} --user 0 --volume {cache}:/models --entrypoint chown {IMAGE}"
        docker(f"{as_root} bragi:bragi /models")
        docker(
            f"{run} {locked} --env BRAGI_MODEL_CACHE_DIR=/models --volume {cache}:/models "
            f"--entrypoint sh {IMAGE} -ec",
            "bragi pull whisper-base && bragi pull piper:en_US-joe-medium",
            timeout=240,
        )
        # The init container.
        docker(
            f"{run} --read-only --volume {keys}:/keys:ro --volume {data}:/data "
            f"--entrypoint sh {IMAGE} -ec",
            "cp /keys/keys.db /data/keys.db && chmod 600 /data/keys.db",
        )
        server.run()
        logs = server.logs()
        assert FIRST_BOOT not in logs and ASSEMBLING not in logs, logs[-3000:]
        client = server.client(found.group(0))
        assert {model.id for model in client.models.list()} == {"whisper-1", "tts-1"}
        sample = speech["beckett"]
        assert word_error_rate(sample.text, transcribe(client, sample)) <= 0.2
        spoken = client.audio.speech.create(
            model="tts-1", voice="alloy", input="Hello there.", response_format="wav"
        )
        assert spoken.content[:4] == b"RIFF"
    finally:
        server.remove()
        for volume in (cache, keys, data):
            docker(f"volume rm --force {volume}", check=False)


def test_every_engine_is_in_the_image(container: Container) -> None:
    """Every registered backend is usable: a new engine's extra must join EXTRAS in the
    Dockerfile (the image carries every torch-free engine)."""
    check = (
        "from bragi.backends.registry import BackendRegistry as R; "
        "print(sorted(b.extra for b in R.from_entry_points() if not b.is_available()))"
    )
    missing = docker(f"exec {container.name} python3 -c", check)
    assert missing.strip() == "[]", f"engines missing from {IMAGE}: {missing}"


def test_image_is_clean(container: Container) -> None:
    config = json.loads(docker("image inspect --format", "{{json .Config}}", IMAGE))
    assert config["User"] == "bragi"
    assert config["Entrypoint"] == ["bragi"] and config["Cmd"] == ["serve"]
    assert "/data" in config["Volumes"] and "8000/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["BRAGI_DATA_DIR"] == "/data" and env["BRAGI_HOST"] == "0.0.0.0"
    assert not {"PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"} & env.keys(), env
    # Each line exits non-zero, naming what it found, when the image holds what it must not:
    # a compiler, a pip cache, the build's CA bundle, numpy's tests, the build's sources.
    probe = "\n".join(
        [
            "for tool in gcc cc c++ make; do command -v $tool && exit 1; done",
            "ls -d /root/.cache/pip /home/bragi/.cache/pip 2>/dev/null && exit 1",
            "find / -xdev \\( -name 'pip-ca*' -o -path '*/pip/http*' \\) -print | grep . && exit 1",
            "ls -d /opt/bragi/lib/python3*/site-packages/numpy/_core/tests 2>/dev/null && exit 1",
            "ls -d /src 2>/dev/null && exit 1",
            "exit 0",
        ]
    )
    docker(f"exec --user 0 {container.name} sh -c", probe)  # as root: it can look everywhere
