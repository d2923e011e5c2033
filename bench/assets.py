"""What the benchmarks feed the engines: real recordings, reference texts, TTS texts."""

from __future__ import annotations

import importlib
import re
import sys
import wave
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "RECORDINGS",
    "TTS_LONG",
    "TTS_THREE_SENTENCES",
    "Recording",
    "asset_path",
    "from_tests",
    "normalize",
    "recording",
    "word_error_rate",
    "write_wav",
]


@dataclass(frozen=True, slots=True)
class Recording:
    name: str  # file name in moonshine_voice/assets
    seconds: float
    reference: str  # what the reader says (docs/test-models.md)

    @property
    def label(self) -> str:
        return f"{self.name.removesuffix('.wav')} {self.seconds:.0f} s"


RECORDINGS = {
    "beckett": Recording(
        "beckett.wav",
        10.0,
        "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.",
    ),
    "two_cities": Recording(
        "two_cities.wav",
        44.4,
        "It was the best of times, it was the worst of times, it was the age of wisdom, it "
        "was the age of foolishness, it was the epoch of belief, it was the epoch of "
        "incredulity, it was the season of Light, it was the season of Darkness, it was the "
        "spring of hope, it was the winter of despair, we had everything before us, we had "
        "nothing before us, we were all going direct to Heaven, we were all going direct the "
        "other way - in short, the period was so far like the present period, that some of "
        "its noisiest authorities insisted on its being received, for good or for evil, in "
        "the superlative degree of comparison only.",
    ),
}

#: P3: three sentences (Harvard sentences); the first one is what the engine times alone.
TTS_THREE_SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
)

#: P4: a paragraph of about 30 s of speech (ten Harvard sentences).
TTS_LONG = (
    *TTS_THREE_SENTENCES,
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
)


@cache
def _assets_dir() -> Path:
    spec = find_spec("moonshine_voice")  # located, not imported: the package is heavy
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "bench: the recordings come from moonshine-voice: pip install moonshine-voice==0.0.73"
            " (or pip install -e '.[test]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def recording(key: str) -> tuple[Recording, Path]:
    """The recording and its file on disk."""
    rec = RECORDINGS[key]
    return rec, asset_path(rec.name)


def asset_path(name: str) -> Path:
    """A file of moonshine-voice's assets (recordings: docs/test-models.md)."""
    path = _assets_dir() / name
    if not path.is_file():
        raise SystemExit(f"bench: {path} is missing; reinstall moonshine-voice==0.0.73")
    return path


def from_tests(module: str, suite: str) -> ModuleType:
    """One of the tests' helper packages (``tinymodels``, ``realmodels``), imported as a
    top-level module as the tests' conftest arranges, so one builder serves both."""
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    sys.path.insert(0, tests)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SystemExit(f"bench: {suite} builds its models with tests/{module}: {exc}") from exc
    finally:
        sys.path.remove(tests)


def write_wav(path: Path, samples: Any, rate: int = 16_000) -> Path:
    """float samples as a 16-bit mono WAV file (clipped to [-1, 1])."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


_NOT_WORD = re.compile(r"[^a-z0-9']+")


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces (as docs/test-models.md asks)."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER in percent, after :func:`normalize` on both sides."""
    import jiwer

    return 100.0 * float(jiwer.wer(normalize(reference), normalize(hypothesis) or "<empty>"))
