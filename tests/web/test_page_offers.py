"""What the page offers follows what the server says, against fake engines (only the page
is under test): no Live tab without ``/v1/realtime``, words asked for only from models
that time them (``word_timestamps`` in ``/v1/models``), no "who spoke" switch without a
diarization model, and no alias listed beside the model it names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appserver import AppServer, fake_settings, serve_app
from bragi.config import ModelConfig
from browser import OpenPage
from fakes import FakeSttBackend, FakeWordlessSttBackend, make_model_dir, wav_bytes

TIMED = FakeSttBackend(words=True)  # what each backend was asked is in its .calls
WORDLESS = FakeWordlessSttBackend()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("web-offers")
    models = {
        "stt": ModelConfig(model=str(make_model_dir(root, "fake-stt"))),
        "wordless": ModelConfig(model=str(make_model_dir(root, "fake-stt-wordless"))),
    }
    settings = fake_settings(
        root / "data", models, realtime={"enabled": False}, aliases={"gpt-4o-transcribe": "stt"}
    )
    with serve_app(settings, [TIMED, WORDLESS]) as live:
        yield live


def test_live_says_the_server_has_no_realtime_endpoint(
    open_page: OpenPage, server: AppServer
) -> None:
    with open_page(f"{server.base_url}/#live", key=server.admin_key) as watched:
        page = watched.page
        page.wait_for_selector("body[data-ready=live]")
        assert page.is_visible("#live-absent") and page.is_disabled("#live-start")
        assert "not available on this server" in page.inner_text("#live-absent")
        watched.shoot("live-absent")


def test_words_are_asked_for_only_from_models_that_time_them(
    open_page: OpenPage, server: AppServer, tmp_path: Path
) -> None:
    clip = tmp_path / "tone.wav"
    clip.write_bytes(wav_bytes(2.0))
    with open_page(server.base_url, key=server.admin_key) as watched:
        page = watched.page
        page.wait_for_selector("body[data-ready=transcribe]")
        listed = page.eval_on_selector_all("#tr-model option", "os => os.map(o => o.value)")
        assert listed == ["stt", "wordless"]  # not gpt-4o-transcribe: it is stt
        assert page.is_hidden("#tr-speakers-label")  # no diarization model here
        page.set_input_files("#transcribe input[type=file]", str(clip))
        # wordless says no before it loads; fake-stt cannot say until loaded (null), so
        # the page asks it for segments, then for words once the loaded engine says yes
        for backend, model, words in (
            (WORDLESS, "wordless", False),
            (TIMED, "stt", False),
            (TIMED, "stt", True),
        ):
            page.select_option("#tr-model", model)
            before = len(backend.calls)
            page.click("#tr-run:not([disabled])")
            page.wait_for_selector("#tr-status.ok")
            (call,) = backend.calls[before:]
            assert call.options.word_timestamps is words, model
            shown = page.eval_on_selector_all("#tr-words tr", "rows => rows.length")
            table_hidden = page.get_attribute("#tr-words-table", "hidden") is not None
            assert shown == (3 if words else 0) and table_hidden is not words
        assert "3 words" in page.inner_text("#tr-meta")
