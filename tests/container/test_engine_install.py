"""The CPU image installs a torch engine's environment on demand: ``bragi:cpu`` with a
config naming a SpeechBrain model (a tiny random-weight one, written on the host) installs
the ``speechbrain`` environment into ``/data/envs`` at start-up, answers 503 meanwhile,
then serves it through the openai client; a restart on the same volume installs nothing;
the image stays within its size budget.

Runs only with ``BRAGI_TEST_CPU_IMAGE=<tag>`` (``scripts/build-image`` makes ``bragi:cpu``)
and a working Docker engine. Users' containers reach PyPI and the PyTorch index directly;
here pip inside the container is handed what this machine's pip uses, the way
``scripts/build-image`` hands the build its CA bundle (never stored in the image or the
repository): the CA bundle (``$PIP_CERT``, else pip's ``cert`` setting), mounted read-only
at ``/run/secrets/pip-ca``, and the directory of a local torch wheel
(``$BRAGI_TEST_TORCH_WHEELS``, else pip's ``find-links``), mounted at ``/wheels``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from test_image import DOCKER, Container, docker

from bragi.runners import EngineEnvs
from livesupport import KEY_PATTERN, free_port
from speech import SpeechSample
from tinymodels.speechbrain import write_speechbrain
from torchenvs import install_env

IMAGE = os.environ.get("BRAGI_TEST_CPU_IMAGE", "")
BUDGET_BYTES = 400_000_000  # scripts/build-image's budget for the cpu image, compressed
INSTALL_TIMEOUT = 1200.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(
        not IMAGE or shutil.which(DOCKER) is None,
        reason="needs Docker and BRAGI_TEST_CPU_IMAGE=<tag> (scripts/build-image makes bragi:cpu)",
    ),
]


def _pip_setting(name: str) -> str:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    found = re.findall(rf"^\S*\.{name}='(.*)'$", listed, flags=re.MULTILINE)
    return found[-1] if found else ""


def _handed_in(root: Path) -> tuple[list[str], list[str]]:
    """``docker run`` mounts and variables for pip: the CA bundle and a local torch wheel."""
    mounts: list[str] = []
    variables = ["BRAGI_TORCH_INDEX=pypi"]  # pip's index (PyPI), plus find-links below
    ca = os.environ.get("PIP_CERT") or _pip_setting("cert")
    if ca and Path(ca).is_file():
        copy = root / "pip-ca.pem"
        shutil.copyfile(ca, copy)
        copy.chmod(0o644)  # the server runs as uid 1000
        mounts.append(f"type=bind,src={copy},dst=/run/secrets/pip-ca,readonly")
        variables.append("PIP_CERT=/run/secrets/pip-ca")
    wheels = os.environ.get("BRAGI_TEST_TORCH_WHEELS") or _pip_setting("find-links")
    torch = sorted(Path(wheels).glob("torch-*.whl")) if wheels else []
    if torch:
        folder = root / "wheels"
        folder.mkdir()
        try:
            os.link(torch[-1], folder / torch[-1].name)
        except OSError:  # another file system
            shutil.copyfile(torch[-1], folder / torch[-1].name)
        mounts.append(f"type=bind,src={folder},dst=/wheels,readonly")
        variables.append("PIP_FIND_LINKS=/wheels")
    return mounts, variables


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory the container's user can read (pytest's own are the owner's only)."""
    root = Path(tempfile.mkdtemp(prefix="bragi-container-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def model_dir(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SpeechBrain CTC model, written by SpeechBrain in an environment on the host."""
    kept = os.environ.get("BRAGI_TEST_ENVS")
    data = Path(kept) if kept else tmp_path_factory.mktemp("engine-envs")
    data.mkdir(parents=True, exist_ok=True)
    env = install_env(EngineEnvs(data / "envs"), data, "speechbrain")
    written = write_speechbrain(env, {"ctc": tmp_path_factory.mktemp("sb") / "ctc"})["ctc"]
    target = shared / "models" / "sb"
    shutil.copytree(written, target)
    for path in [target.parent, target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@pytest.fixture(scope="module")
def container(shared: Path, model_dir: Path) -> Iterator[Container]:
    tag = uuid.uuid4().hex[:10]
    config = shared / "config.yaml"
    config.write_text(json.dumps({"models": {"sb": {"model": "/models/sb"}}}))
    config.chmod(0o644)
    mounts, variables = _handed_in(shared)
    options = [
        f"--mount type=bind,src={model_dir},dst=/models/sb,readonly",
        f"--mount type=bind,src={config},dst=/etc/bragi/config.yaml,readonly",
        *(f"--mount {mount}" for mount in mounts),
        *(f"--env {variable}" for variable in variables),
    ]
    box = Container(
        name=f"bragi-install-{tag}",
        volume=f"bragi-install-{tag}",
        port=free_port(),
        options=" ".join(options),
    )
    docker(f"volume create {box.volume}")
    try:
        docker(
            f"run --detach --name {box.name} --network host --env BRAGI_PORT={box.port} "
            f"--volume {box.volume}:/data {box.options} {IMAGE}"
        )
        yield box
    finally:
        box.remove()
        docker(f"volume rm --force {box.volume}", check=False)


def _ready(container: Container) -> tuple[int, dict[str, object]]:
    response = httpx.get(f"{container.url}/health/ready", timeout=5)
    return response.status_code, response.json()


def _wait(container: Container, done: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while done not in container.logs():
        state = docker("inspect --format", "{{.State.Status}}", container.name).strip()
        assert state == "running", container.logs()[-4000:]
        assert time.monotonic() < deadline, f"no {done!r} after {timeout:.0f} s"
        time.sleep(2)


def test_the_cpu_image_installs_a_torch_engine_into_data_and_serves_it(
    container: Container, speech: dict[str, SpeechSample], request: pytest.FixtureRequest
) -> None:
    _wait(container, "installing the speechbrain engine environment in /data/envs", 240)
    started = time.monotonic()
    key = KEY_PATTERN.search(container.logs())
    assert key, container.logs()[-3000:]
    client = container.client(key.group(0))
    request.addfinalizer(client.close)  # ResourceWarning is an error in the suite
    status, body = _ready(container)
    assert status == 503 and body["models"] == {"sb": "installing"}, body
    with pytest.raises(openai.APIStatusError) as refused:
        client.audio.transcriptions.create(model="sb", file=speech["beckett"].path)
    assert refused.value.status_code == 503
    assert refused.value.response.json()["error"]["code"] == "engine_installing"

    _wait(container, "installed the speechbrain engine environment in ", INSTALL_TIMEOUT)
    waited = time.monotonic() - started
    status, body = _ready(container)
    assert status == 200 and body["status"] == "ready", body
    result = client.audio.transcriptions.create(model="sb", file=speech["beckett"].path)
    assert isinstance(result.text, str)
    manifest = json.loads(
        docker(f"exec {container.name} cat /data/envs/speechbrain/bragi-env.json")
    )
    assert manifest["packages"]["speechbrain"] == "1.1.2" and manifest["device"] == "cpu"
    assert manifest["bragi_source"] == []  # the image's Bragi, copied (its source is gone)
    print(
        f"\ninstall in the container: {waited:.0f} s after the first request; "
        f"environment {manifest['size_bytes'] / 1e6:.0f} MB"
    )

    # the environment is on the volume: a restart serves at once, installing nothing
    docker(f"restart --time 20 {container.name}")
    container.wait_ready()
    assert container.logs().count("installing the speechbrain engine environment in") == 1
    client.audio.transcriptions.create(model="sb", file=speech["beckett"].path)


def test_the_image_is_still_within_its_budget() -> None:
    with subprocess.Popen([DOCKER, "save", IMAGE], stdout=subprocess.PIPE) as save:
        gzip = subprocess.run(["gzip", "-c"], stdin=save.stdout, capture_output=True, check=True)
    assert save.returncode == 0
    compressed = len(gzip.stdout)
    print(f"\n{IMAGE}: {compressed / 1e6:.1f} MB compressed")
    assert compressed <= BUDGET_BYTES
