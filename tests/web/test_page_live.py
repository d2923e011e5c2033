"""The Live tab against the real realtime endpoint of the starter server: the microphone
(the fake device playing Beckett) goes to ``/v1/realtime`` as 24 kHz PCM on a WebSocket
opened with a short-lived ``ek_`` key, never the API key, and each turn's text appears."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import WebSocket

from browser import WatchedPage
from livesupport import LiveServer
from speech import SpeechSample, word_error_rate

pytestmark = pytest.mark.slow

#: Speaking time before Stop: all of beckett.wav (its last word ends at 8.8 s, the file
#: at 10.0 s, when the fake device starts it again after 0.3 s of silence).
SPEAKING_SECONDS = 9.5
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


def test_live_transcribes_the_microphone_through_the_realtime_endpoint(
    admin_page: WatchedPage, live: LiveServer, speech: dict[str, SpeechSample]
) -> None:
    page = admin_page.page
    handshakes: list[dict[str, str]] = []  # what Chromium sent to open each socket
    devtools = page.context.new_cdp_session(page)
    devtools.on(
        "Network.webSocketWillSendHandshakeRequest",
        lambda event: handshakes.append(event["request"]["headers"]),
    )
    devtools.send("Network.enable")
    received: list[dict[str, Any]] = []

    def watch(socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: received.append(json.loads(payload)))

    page.on("websocket", watch)
    admin_page.tab("live")
    assert page.is_hidden("#live-absent") and page.is_enabled("#live-start")
    assert "while you speak" in page.inner_text("#live-hint")  # Whisper: redecode
    page.select_option("#live-model", "whisper-1")
    page.fill("#live-language", "en")
    page.select_option("#live-pause", "1000")  # phrases of Beckett's together: more context
    page.click("#live-start")
    page.wait_for_selector("#live[data-state=listening]", timeout=30_000)  # the microphone on
    page.wait_for_timeout(SPEAKING_SECONDS * 1000)
    page.click("#live-stop")
    page.wait_for_selector("#live[data-state=stopped]", timeout=60_000)
    assert page.is_enabled("#live-start") and page.is_disabled("#live-stop")
    admin_page.shoot("live")
    assert page.inner_text("#live-status") == "Stopped."
    shown = [
        p.strip()
        for p in page.eval_on_selector_all(
            "#live-text p", "nodes => nodes.map(n => n.className + '|' + n.textContent)"
        )
    ]

    # The key on the socket is a short-lived one, made for it; the API key never is.
    (headers,) = handshakes
    offered = {k.lower(): v for k, v in headers.items()}["sec-websocket-protocol"]
    realtime, key = (p.strip() for p in offered.split(","))
    assert realtime == "realtime" and key.startswith("openai-insecure-api-key.ek_")
    assert live.api_key not in json.dumps(headers)

    # Every turn the server finished is on the page as final text, in order.
    finals = [e["transcript"].strip() for e in received if e["type"] == COMPLETED]
    assert shown == [f"final|{text}" for text in finals if text]
    assert word_error_rate(speech["beckett"].text, " ".join(finals)) < 0.25, finals
    turns = {e["item_id"] for e in received if e["type"] == COMPLETED}
    deltas = [e for e in received if e["type"] == DELTA]
    assert deltas and {e["item_id"] for e in deltas} <= turns
    failed = [e for e in received if e["type"].endswith(("failed", "error"))]
    assert not failed, failed
