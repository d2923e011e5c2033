"""Cloning a voice from the page: recorded from the (fake) microphone, created, heard,
used on the Speak tab and deleted, with Coqui XTTS-v2 for real (a tiny random-weight
checkpoint in its own environment, as in tests/torchengines; its speech is noise).

This server runs with authentication disabled: the page must work without a key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from browser import REFUSED, OpenPage, WatchedPage
from livesupport import LiveServer, start_server
from tinymodels.xtts import build_tiny_xtts
from torchenvs import EngineEnv

pytestmark = pytest.mark.slow

MODEL = "xtts-tiny"
RECORD_SECONDS = 3.0  # "Ever tried. Ever failed." from the fake microphone


@pytest.fixture(scope="module")
def live(engine_env: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env: EngineEnv = engine_env("xtts")  # type: ignore[operator]
    root = tmp_path_factory.mktemp("web-clone")
    model_dir = build_tiny_xtts(env, root / "XTTS-v2")
    (root / "data").mkdir()
    (root / "data" / "envs").symlink_to(env.data_dir / "envs")  # the installed environment
    config = {"models": {MODEL: {"model": str(model_dir), "options": {"threads": 1}}}}
    (root / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    with start_server(
        root / "data", root / "models", config=root / "config.yaml", env={"BRAGI_AUTH": "disabled"}
    ) as server:
        yield server


def _cloned_rows(watched: WatchedPage) -> list[str]:
    return watched.page.eval_on_selector_all("#cl-list tr", "rows => rows.map(r => r.dataset.name)")


def test_without_auth_the_page_needs_no_key(open_page: OpenPage, live: LiveServer) -> None:
    me = httpx.get(f"{live.base_url}/v1/me", timeout=10).json()
    assert (me["auth"], me["admin"], me["key"]) == (False, True, None)
    with open_page(live.base_url) as watched:
        page = watched.page
        page.wait_for_selector("body[data-ready=transcribe]")
        assert page.is_hidden("#key-panel") and page.is_hidden("#forget-key")
        assert "Authentication is off" in page.inner_text("#who")
        assert page.is_visible("#tab-models")


def test_clone_a_voice_hear_it_use_it_and_delete_it(open_page: OpenPage, live: LiveServer) -> None:
    with open_page(f"{live.base_url}/#clone", allow=(f"{REFUSED} 409",)) as watched:
        page = watched.page
        page.wait_for_selector("body[data-ready=clone]")
        assert _cloned_rows(watched) == []
        page.click("#clone [data-role=record]")
        page.wait_for_selector("#clone [data-role=record][aria-pressed=true]")
        page.wait_for_timeout(RECORD_SECONDS * 1000)
        page.click("#clone [data-role=record]")
        page.wait_for_selector("#cl-audio:not([hidden])")
        page.fill("#cl-name", "beckett")
        assert page.is_disabled("#cl-create")  # not before the consent box is ticked
        page.check("#cl-consent")
        page.click("#cl-create:not([disabled])")
        page.wait_for_selector("#cl-status.ok")
        assert "Voice “beckett” created from" in page.inner_text("#cl-status")
        assert _cloned_rows(watched) == ["beckett"]

        page.fill("#cl-name", "Beckett")  # names are unique in any case
        page.click("#cl-create:not([disabled])")
        page.wait_for_selector("#cl-status.error")
        assert "already" in page.inner_text("#cl-status").lower()

        assert page.input_value("#cl-model") == MODEL
        page.click("#cl-list tr[data-name=beckett] button[data-act=hear]")
        page.wait_for_selector("#cl-list-status.ok", timeout=120_000)
        watched.wait_for("() => document.querySelector('#cl-hear').ended")
        watched.shoot("clone")

        watched.tab("speak")
        page.select_option("#sp-model", MODEL)
        group = "#sp-voice optgroup[label='Cloned voices'] option"
        cloned = page.eval_on_selector_all(group, "options => options.map(o => o.text)")
        assert cloned == ["beckett (cloned)"]
        page.select_option("#sp-voice", label="beckett (cloned)")
        page.fill("#sp-text", "Ever tried. Ever failed.")
        page.click("#sp-run")
        watched.wait_for("() => document.querySelector('#sp-audio').ended")
        assert "all of it after" in page.inner_text("#sp-status")

        watched.tab("clone")
        page.click("#cl-list tr[data-name=beckett] button[data-act=delete]")
        page.click("#cl-list tr[data-name=beckett] button[data-confirm=yes]")
        page.wait_for_selector("#cl-list tr[data-name=beckett]", state="detached")
        assert "Voice “beckett” deleted." in page.inner_text("#cl-list-status")
        watched.tab("speak")
        assert page.query_selector("#sp-voice optgroup[label='Cloned voices']") is None
    listed = httpx.get(f"{live.base_url}/v1/audio/voices", timeout=10).json()["data"]
    assert [v for v in listed if v["type"] == "audio_sample"] == []
    assert [p.name for p in (live.data_dir / "voices").iterdir()] == [".lock"]
