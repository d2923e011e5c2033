"""The web page in a real headless Chromium (Debian's ``/usr/bin/chromium``), driven by
Playwright, with a fake microphone that plays a real recording.

Every page a test opens is watched: at the end it must have logged no console error and
thrown no exception, and no request it made (HTTP or WebSocket) may carry the API key in
its URL. Screenshots go to ``test-artifacts/web/`` (``$BRAGI_TEST_ARTIFACTS`` overrides).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from playwright import sync_api as playwright_api

from browser import (
    ARTIFACTS,
    CHROMIUM,
    FLAGS,
    MICROPHONE,
    OpenPage,
    WatchedPage,
    record_console,
)
from speech import speech_samples


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
