"""The Live tab's realtime client, against a scripted realtime peer (tests/realtime_peer.py)
until Bragi has ``/v1/realtime``: the microphone (the fake device playing Beckett) goes
out as 24 kHz 16-bit PCM on a WebSocket opened with a short-lived key, never the API key,
and partial then final text appear. The engine behind the page is a fake: only the page
is under test here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from browser import OpenPage
from fakes import FakeSttBackend, make_model_dir
from realtime_peer import RATE, RealtimePeer

HEARD_SECONDS = 3  # stop once the peer has had this much audio


@pytest.fixture(scope="module")
def peer() -> RealtimePeer:
    return RealtimePeer()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, peer: RealtimePeer) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("web-live")
    models = {"whisper-1": ModelConfig(model=str(make_model_dir(root, "fake-stt")))}
    with serve_app(fake_settings(Path(root) / "data", models), [FakeSttBackend()]) as live:
        peer.install(live.app)
        yield live


def test_live_sends_the_microphone_with_a_short_lived_key_and_shows_the_text(
    open_page: OpenPage, server: AppServer, peer: RealtimePeer
) -> None:
    with open_page(f"{server.base_url}/#live", key=server.admin_key) as watched:
        page = watched.page
        page.wait_for_selector("body[data-ready=live]")
        assert page.is_hidden("#live-absent") and page.is_enabled("#live-start")
        page.fill("#live-language", "en")
        page.click("#live-start")
        heard = f"#live-text p.partial:has-text('second {HEARD_SECONDS},')"
        page.wait_for_selector(heard, timeout=60_000)
        assert page.inner_text("#live-text p.partial").startswith("second 1, second 2, ")
        page.click("#live-stop")
        page.wait_for_selector("#live-text p.final")
        page.wait_for_selector("#live-start:not([disabled])")
        watched.shoot("live-with-peer")
        final = page.inner_text("#live-text p.final")

    assert peer.authorizations == [f"Bearer {server.admin_key}"]
    assert peer.subprotocols == [["realtime", f"openai-insecure-api-key.{peer.secret}"]]
    session = peer.secret_requests[0]["session"]
    audio_in = session["audio"]["input"]
    assert audio_in["format"] == {"type": "audio/pcm", "rate": RATE}
    assert audio_in["transcription"] == {"model": "whisper-1", "language": "en"}
    kinds = [e["type"] for e in peer.events]
    assert kinds[0] == "session.update" and kinds[-1] == "input_audio_buffer.commit"
    assert set(kinds[1:-1]) == {"input_audio_buffer.append"}
    samples = peer.samples
    assert len(samples) / RATE >= HEARD_SECONDS
    assert float(np.sqrt(np.mean(samples**2))) > 0.02  # Beckett speaking, not silence
    assert final == f"{len(samples) / RATE:.1f} s heard, rms {np.sqrt(np.mean(samples**2)):.3f}"
