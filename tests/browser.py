"""Watching a page in Chromium: its console errors, exceptions and URLs, screenshots.

The fixtures that launch Chromium and open pages are in ``tests/web/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "FLAGS",
    "MICROPHONE",
    "REFUSED",
    "OpenPage",
    "WatchedPage",
    "record_console",
]

CHROMIUM = Path(os.environ.get("BRAGI_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(
    os.environ.get("BRAGI_TEST_ARTIFACTS") or Path(__file__).parents[1] / "test-artifacts"
)
#: Chromium on a machine without network or screen: no background traffic, no sandbox
#: (tests may run as root), the microphone a fake device playing MICROPHONE_FILE.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)
#: Each recording starts from the beginning of this file (Beckett, 10 s).
MICROPHONE = "beckett"
#: Chrome logs a refused request as a console error; a test that expects some says so.
REFUSED = "Failed to load resource: the server responded with a status of"


@dataclass
class WatchedPage:
    """A page, and what it did: console errors, uncaught exceptions, URLs requested."""

    page: Page
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def shoot(self, name: str) -> Path:
        """Write a full-page screenshot to the artifacts folder."""
        path = ARTIFACTS / "web" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def tab(self, name: str) -> None:
        """Open a tab by clicking it, and wait until it is ready."""
        self.page.click(f"#tab-{name}")
        self.page.wait_for_selector(f"body[data-ready={name}]")

    def wait_for(self, script: str, arg: object = None, timeout: float = 60_000) -> object:
        """Wait until the JavaScript function ``script`` returns something true (a function,
        not an expression: the page's CSP forbids eval)."""
        return self.page.wait_for_function(script, arg=arg, timeout=timeout).json_value()


OpenPage = Callable[..., AbstractContextManager[WatchedPage]]


def record_console(watched: WatchedPage, message: ConsoleMessage) -> None:
    if message.type == "error":
        watched.errors.append(message.text)
