"""The web page against a real ``bragi serve`` with the starter models, in Chromium.

The microphone is Chromium's fake capture device playing a human recording (Beckett);
speech is Piper's and Kokoro's; downloads come from a local stand-in for the hub.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from bragi.audio import decode_audio
from bragi.auth import KeyStore
from bragi.backends.protocol import Segment
from bragi.transcripts import to_srt, to_vtt
from browser import REFUSED, OpenPage, WatchedPage
from hubstub import WHISPER_REPO
from livesupport import LiveServer
from speech import SpeechSample, normalize, word_error_rate

pytestmark = pytest.mark.slow

SPOKEN = "The quick brown fox jumps over the lazy dog."
RECORD_SECONDS = 10.3  # the whole of beckett.wav (10 s), which the fake microphone plays


@pytest.fixture(scope="module")
def user_key(live: LiveServer) -> str:
    keys = KeyStore(live.data_dir / "keys.db")
    try:
        return keys.create("web-user", "user").key
    finally:
        keys.close()


def _texts(watched: WatchedPage, selector: str) -> list[str]:
    return watched.page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent)")


def test_a_wrong_key_gets_a_clear_message_and_the_right_one_opens_the_page(
    open_page: OpenPage, live: LiveServer
) -> None:
    with open_page(live.base_url, secrets=(live.api_key,), allow=(f"{REFUSED} 401",)) as watched:
        page = watched.page
        page.wait_for_selector("#key-panel:not([hidden])")
        assert page.is_hidden("#tabs")
        page.fill("#key-input", "sk-bragi-not-a-key-at-all-0000")
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#key-error:has-text('refused')")
        assert "The server refused this key: Incorrect API key" in page.inner_text("#key-error")
        watched.shoot("sign-in-refused")
        assert page.evaluate("() => localStorage.getItem('bragi.key')") is None
        page.fill("#key-input", live.api_key)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("body[data-ready=transcribe]")
        assert "an admin key" in page.inner_text("#who")
        assert page.is_visible("#tab-models")
        assert page.evaluate("() => localStorage.getItem('bragi.key')") == live.api_key
        # A key refused later (revoked) brings the sign-in back with the reason.
        page.evaluate("() => localStorage.setItem('bragi.key', 'sk-bragi-revoked-key-000000')")
        page.reload()
        page.wait_for_selector("#key-panel:not([hidden])")
        assert "The saved key was refused" in page.inner_text("#key-error")


def test_a_user_key_sees_no_model_administration(
    open_page: OpenPage, live: LiveServer, user_key: str
) -> None:
    with open_page(f"{live.base_url}/#models", key=user_key) as watched:
        page = watched.page
        page.wait_for_selector("body[data-ready=transcribe]")  # not the Models tab
        assert page.is_hidden("#tab-models") and page.is_hidden("#models")
        assert "a user key (no model administration)" in page.inner_text("#who")


def test_transcribe_from_the_microphone_follow_the_words_and_download(
    admin_page: WatchedPage, speech: dict[str, SpeechSample]
) -> None:
    page = admin_page.page
    page.select_option("#tr-model", "whisper-1")
    page.click("#transcribe [data-role=record]")
    page.wait_for_selector("#transcribe [data-role=record][aria-pressed=true]")
    page.wait_for_timeout(RECORD_SECONDS * 1000)
    page.click("#transcribe [data-role=record]")
    page.click("#tr-run:not([disabled])")
    page.wait_for_selector("#tr-status.ok", timeout=120_000)
    text = page.inner_text("#tr-text")
    assert word_error_rate(speech["beckett"].text, text) < 0.25, text
    words = page.eval_on_selector_all(
        "#tr-text .w", "spans => spans.map(s => [+s.dataset.start, +s.dataset.end])"
    )
    assert len(words) >= 10 and words == sorted(words)
    assert len(_texts(admin_page, "#tr-words tr")) == len(words)
    admin_page.shoot("transcribe")

    # Seeking lights the word spoken there; playing moves the light along.
    admin_page.wait_for("() => Number.isFinite(document.querySelector('#tr-audio').duration)")
    middle = len(words) // 2
    start, end = words[middle]
    seek = "t => { document.querySelector('#tr-audio').currentTime = t; }"
    page.evaluate(seek, (start + end) / 2)
    admin_page.wait_for(
        "i => document.querySelector('#tr-text .w.now')?.dataset.index === String(i)", middle
    )
    assert page.get_attribute("#tr-text .w.now", "aria-current") == "true"
    page.evaluate("() => document.querySelector('#tr-audio').play()")
    admin_page.wait_for(
        "i => Number(document.querySelector('#tr-text .w.now')?.dataset.index) > i", middle
    )
    page.evaluate("() => document.querySelector('#tr-audio').pause()")

    files = {}
    for name in ("txt", "srt", "vtt", "json"):
        with page.expect_download() as download:
            page.click(f"[data-download={name}]")
        assert download.value.suggested_filename == f"recording.{name}"
        files[name] = Path(download.value.path()).read_text()
    body = json.loads(files["json"])
    assert files["txt"] == body["text"] + "\n" and body["words"]
    segments = [Segment(s["id"], s["start"], s["end"], s["text"]) for s in body["segments"]]
    assert files["srt"] == to_srt(segments)  # written as the server writes them
    assert files["vtt"] == to_vtt(segments)


def test_transcribe_a_dropped_file(
    admin_page: WatchedPage, speech: dict[str, SpeechSample]
) -> None:
    page = admin_page.page
    sample = speech["beckett"]
    transfer = page.evaluate_handle(
        """bytes => {
            const transfer = new DataTransfer();
            const file = new File([new Uint8Array(bytes)], 'beckett.wav', {type: 'audio/wav'});
            transfer.items.add(file);
            return transfer;
        }""",
        list(sample.path.read_bytes()),
    )
    page.dispatch_event("#transcribe .drop", "drop", {"dataTransfer": transfer})
    page.select_option("#tr-model", "whisper-tiny.en")
    page.click("#tr-run:not([disabled])")
    page.wait_for_selector("#tr-status.ok", timeout=120_000)
    assert word_error_rate(sample.text, page.inner_text("#tr-text")) < 0.25
    assert "whisper-tiny.en" in page.inner_text("#tr-meta")


def _decoded(data: bytes, fmt: str) -> np.ndarray:
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768
    return decode_audio(data, 24_000).samples


@pytest.mark.parametrize("fmt", ["mp3", "opus", "pcm"])
def test_speak_plays_the_stream_to_its_end(
    admin_page: WatchedPage, live: LiveServer, fmt: str
) -> None:
    page = admin_page.page
    admin_page.tab("speak")
    page.select_option("#sp-model", "tts-1")
    page.fill("#sp-text", SPOKEN)
    page.select_option("#sp-format", fmt)
    # Played at 4x, to the same end: a test need not listen in real time.
    page.evaluate("() => { document.querySelector('#sp-audio').defaultPlaybackRate = 4; }")
    page.fill("#sp-speed", "1.25" if fmt == "opus" else "1")
    with page.expect_request("**/v1/audio/speech") as sent:
        page.click("#sp-run")
    body = sent.value.post_data_json
    assert body == {"model": "tts-1", "voice": "en_US-joe-medium", "input": SPOKEN} | (
        {"response_format": fmt, "speed": 1.25} if fmt == "opus" else {"response_format": fmt}
    )
    played = admin_page.wait_for(
        """() => {
            const audio = document.querySelector('#sp-audio');
            return audio.ended && [audio.duration, audio.currentTime, audio.src.slice(0, 5)];
        }"""
    )
    duration, position, source = played
    assert duration > 1.5 and position == pytest.approx(duration, abs=0.05)
    assert source == "blob:"
    status = page.inner_text("#sp-status")
    assert "First audio after" in status and "all of it after" in status
    # mp3 goes through a MediaSource as it arrives; these others play once complete.
    assert page.get_attribute("#sp-audio", "data-streamed") == str(fmt == "mp3").lower()
    with page.expect_download() as download:
        page.click("#sp-download")
    data = Path(download.value.path()).read_bytes()
    samples = _decoded(data, fmt)
    assert len(samples) / 24_000 == pytest.approx(duration, abs=0.1)
    assert float(np.sqrt(np.mean(samples**2))) > 0.01  # speech, not silence
    if fmt == "mp3":
        admin_page.shoot("speak")
        heard = live.client().audio.transcriptions.create(
            model="whisper-1", file=("speech.mp3", io.BytesIO(data))
        )
        assert word_error_rate(SPOKEN, heard.text) < 0.25, heard.text
    assert page.is_hidden("#sp-instructions-label")  # Piper follows no instructions


def test_compare_shows_one_result_per_model_and_per_voice(
    admin_page: WatchedPage, speech: dict[str, SpeechSample]
) -> None:
    page = admin_page.page
    admin_page.tab("compare")
    page.set_input_files("#compare input[type=file]", str(speech["beckett"].path))
    assert _texts(admin_page, "#cmp-stt-models label") == ["whisper-1", "whisper-tiny.en"]
    page.click("#cmp-stt-run:not([disabled])")
    page.wait_for_selector("#cmp-stt-status.ok", timeout=120_000)
    cards = page.query_selector_all("#cmp-stt-results .result")
    assert [card.get_attribute("data-name") for card in cards] == ["whisper-1", "whisper-tiny.en"]
    for card in cards:
        took, text = card.query_selector(".meta").inner_text(), card.query_selector("p + p")
        assert took.split(" ")[1] in {"ms", "s"}, took
        assert word_error_rate(speech["beckett"].text, text.inner_text()) < 0.25
    assert "reference" in cards[0].inner_text() and "% of words differ" in cards[1].inner_text()

    chosen = page.eval_on_selector_all(
        "#cmp-tts-voices input:checked", "boxes => boxes.map(b => b.value.replace('\\n', ' · '))"
    )
    assert chosen == ["tts-1 · en_US-joe-medium", "kokoro · jf_alpha"]
    page.click("#cmp-tts-run")
    page.wait_for_selector("#cmp-tts-status.ok", timeout=120_000)
    voices = page.query_selector_all("#cmp-tts-results .result")
    assert [v.get_attribute("data-name") for v in voices] == chosen
    for voice in voices:
        first = voice.query_selector(".meta").get_attribute("data-first-audio-ms")
        assert first is not None and int(first) > 0
        assert voice.query_selector("audio") is not None
    admin_page.wait_for(
        "() => [...document.querySelectorAll('#cmp-tts-results audio')].every(a => a.duration > 1)"
    )
    admin_page.shoot("compare")


def test_the_word_differences_are_counted_as_a_wer_scorer_counts_them(
    admin_page: WatchedPage,
) -> None:
    pairs = [
        ("Ever tried. Ever failed.", "ever tried, never failed"),
        ("it was the best of times", "it was best of the times"),
        ("no matter try again", "no matter try again fail again"),
        ("one two three", ""),
    ]
    found = admin_page.page.evaluate(
        """async pairs => {
            const base = document.querySelector('script[type=module]').src;
            const { wordDiff } = await import(new URL('diff.js', base));
            return pairs.map(([a, b]) => wordDiff(a, b));
        }""",
        pairs,
    )
    for (reference, hypothesis), result in zip(pairs, found, strict=True):
        expected = word_error_rate(reference, hypothesis) if hypothesis else 1.0
        assert result["wer"] == pytest.approx(expected)
        # Shown as written: the hypothesis's words, with the reference's where it lost some.
        kept = [o["word"] for o in result["ops"] if o["op"] != "del"]
        dropped = [o["word"] for o in result["ops"] if o["op"] != "ins"]
        assert kept == hypothesis.split()
        assert normalize(" ".join(dropped)) == normalize(reference)


def test_models_tab_pulls_with_a_progress_bar_unloads_and_removes(
    admin_page: WatchedPage, live: LiveServer, diarization_weights: Path | None
) -> None:
    page = admin_page.page
    admin_page.tab("models")
    served = _texts(admin_page, "#md-served th")
    starter = ["kokoro", "tts-1", "whisper-1", "whisper-tiny.en"]
    pulled = ["diarizer"] if diarization_weights is not None else []  # tests/web/conftest.py
    assert sorted(served) == sorted(starter + pulled)
    row = "#md-served tr[data-model='tts-1']"
    if page.inner_text(f"{row} td:nth-child(4)") != "loaded":
        page.click(f"{row} button[data-act=load]")
        page.wait_for_selector(f"{row} .state-loaded")
    assert page.inner_text(f"{row} td:nth-child(5)").endswith("MB")  # memory the load took
    page.click(f"{row} button[data-act=unload]")
    page.wait_for_selector(f"{row} .state-available")
    assert "tts-1 unloaded." in page.inner_text("#md-status")

    # Every value the bar takes is recorded, to see it move, not just end full.
    page.evaluate(
        """() => {
            window.barValues = [];
            const bar = document.querySelector('#md-progress-bar');
            new MutationObserver(() => window.barValues.push(bar.value))
                .observe(bar, { attributes: true, attributeFilter: ['value'] });
        }"""
    )
    page.fill("#md-pull-name", WHISPER_REPO)
    page.click("#md-pull")
    page.wait_for_selector("#md-progress-text.ok", timeout=120_000)
    assert page.inner_text("#md-progress-text") == f"{WHISPER_REPO} is downloaded."
    values = page.evaluate("() => window.barValues")
    assert values[-1] == 1 and any(0 < v < 1 for v in values), values
    assert values == sorted(values)
    downloaded = f"#md-downloads tr[data-model='{WHISPER_REPO}']"
    page.wait_for_selector(downloaded)
    admin_page.shoot("models")

    page.click(f"{downloaded} button[data-act=remove]")
    page.click(f"{downloaded} button[data-confirm=yes]")
    page.wait_for_selector(downloaded, state="detached")
    assert f"{WHISPER_REPO} removed from disk." in page.inner_text("#md-status")
    with live.http() as http:
        names = [d["name"] for d in http.get("/admin/downloads").json()["data"]]
    assert WHISPER_REPO not in names


# Checks run in the page: contrast(), unlabelled(), addSamples() (see the file).
CHECKS = (Path(__file__).parent / "accessibility.js").read_text()


def _check(page: object, name: str) -> object:
    return page.evaluate(f"() => ({CHECKS}).{name}()")  # type: ignore[attr-defined]


TABS = ("transcribe", "live", "speak", "clone", "compare", "models")


def test_keyboard_labels_and_contrast_in_light_and_dark(admin_page: WatchedPage) -> None:
    page = admin_page.page
    page.focus("#tab-transcribe")
    for key, tab in [("ArrowRight", "live"), ("End", "models"), ("ArrowRight", "transcribe")]:
        page.keyboard.press(key)
        page.wait_for_selector(f"body[data-ready={tab}]")
        assert page.evaluate("() => document.activeElement.id") == f"tab-{tab}"
        assert page.get_attribute(f"#tab-{tab}", "aria-selected") == "true"
        assert page.is_visible(f"#{tab}") and page.get_attribute(f"#tab-{tab}", "tabindex") == "0"
    _check(page, "addSamples")
    themes = []
    for theme in ("light", "dark"):
        while page.get_attribute("html", "data-theme") != theme:
            page.click("#theme")
        themes.append(theme)
        for tab in TABS:
            admin_page.tab(tab)
            assert _check(page, "unlabelled") == [], f"controls without a label on {tab}"
            low = [(text, round(r, 2)) for text, r in _check(page, "contrast") if r < 4.5]
            assert not low, f"{theme} {tab}: text below 4.5:1 contrast: {low}"
        admin_page.shoot(f"{theme}-models")
    assert themes == ["light", "dark"]
    assert page.evaluate("() => localStorage.getItem('bragi.theme')") == "dark"


def test_every_tab_fits_a_phone_screen(open_page: OpenPage, live: LiveServer) -> None:
    with open_page(live.base_url, key=live.api_key, viewport=(375, 740)) as watched:
        page = watched.page
        page.wait_for_selector("body[data-ready=transcribe]")
        for tab in TABS:
            watched.tab(tab)
            overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 0, f"{tab} is {overflow} px wider than the phone"
        watched.tab("speak")
        watched.shoot("phone-speak")
