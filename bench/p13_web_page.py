"""P13: the web page at ``/``, in headless Chromium (Debian's, driven by Playwright).

- weight: every file the page loads (the HTML, CSS, JavaScript modules, icon), as sent
  gzipped, from the browser's own resource timing (bodies, without headers);
- time to interactive: navigation start to the first tab usable (its model list filled
  from ``/v1/models``), the page's ``bragi-interactive`` mark; median of 5 loads in a fresh
  profile (nothing cached), and of 5 reloads in the same profile (files from the cache,
  the page revalidated with a 304).

Reported, not judged: no target was set for either (docs/benchmarks.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.context import Context
from bench.measure import median
from bench.report import NO_TARGET, Figure, value_figure

__all__ = ["run"]

LOADS = 5  # --quick: 3
CHROMIUM = Path(os.environ.get("BRAGI_TEST_CHROMIUM", "/usr/bin/chromium"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_READY = "body[data-ready]"
_TIMES = """() => ({
    interactive: performance.getEntriesByName('bragi-interactive')[0].startTime,
    files: [performance.getEntriesByType('navigation')[0],
            ...performance.getEntriesByType('resource').filter((e) => e.name.includes('/web/'))]
        .map((e) => [e.name, e.encodedBodySize, e.decodedBodySize]),
})"""


def _measure(base_url: str, api_key: str, loads: int) -> tuple[list[float], list[float], dict]:
    from playwright.sync_api import sync_playwright

    cold, warm, files = [], [], {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(FLAGS))
        try:
            for _ in range(loads):
                context = browser.new_context()
                context.add_init_script(f"localStorage.setItem('bragi.key', {api_key!r})")
                page = context.new_page()
                page.goto(f"{base_url}/")
                page.wait_for_selector(_READY)
                first = page.evaluate(_TIMES)
                cold.append(first["interactive"] / 1000)
                files = {name: (sent, size) for name, sent, size in first["files"]}
                page.reload()
                page.wait_for_selector(_READY)
                warm.append(page.evaluate(_TIMES)["interactive"] / 1000)
                context.close()
        finally:
            browser.close()
    return cold, warm, files


def run(ctx: Context) -> list[Figure]:
    if not CHROMIUM.exists():
        note = f"{CHROMIUM} is missing (make system-deps installs chromium)"
        name = "web page, time to interactive"
        return [value_figure("P13", name, "s", None, NO_TARGET, note=note)]
    client = ctx.instance(0).client
    loads = 3 if ctx.options.quick else LOADS
    ctx.log(f"P13 loading the web page {loads} times in Chromium")
    cold, warm, files = _measure(client.base_url, str(client.openai.api_key), loads)
    sent = sum(s for s, _ in files.values()) / 1024
    size = sum(d for _, d in files.values()) / 1024
    weight = f"{len(files)} files: {sent:.1f} KB gzipped ({size:.1f} KB as written)"
    again = f"reloaded with a warm cache: {median(warm):.3f} s"
    return [
        value_figure("P13", "web page, weight gzipped", "KB", sent, NO_TARGET, note=weight),
        value_figure(
            "P13",
            "web page, time to interactive",
            "s",
            median(cold),
            NO_TARGET,
            {"cold": cold, "warm": warm},
            again,
        ),
    ]
