"""The one capability check every STT engine and the API share."""

from __future__ import annotations

import pytest

from bragi.backends.checks import check_transcription
from bragi.backends.protocol import SttCapabilities, TranscribeOptions
from bragi.errors import UnsupportedCapabilityError

ENGLISH = SttCapabilities(languages=frozenset({"en"}), word_timestamps=True)
MULTI = SttCapabilities(languages=None, translate=True, word_timestamps=True)
NO_WORDS = SttCapabilities(languages=frozenset({"en", "de"}))


def test_allowed_requests_return_the_language_code() -> None:
    assert check_transcription(TranscribeOptions(language="English"), ENGLISH, "M") == "en"
    assert check_transcription(TranscribeOptions(task="translate"), MULTI, "M") is None
    assert check_transcription(TranscribeOptions(language="de"), MULTI, "M") == "de"
    empty = SttCapabilities(languages=frozenset())  # empty means "any", like None
    assert check_transcription(TranscribeOptions(language="fr"), empty, "M") == "fr"


@pytest.mark.parametrize(
    ("options", "capabilities", "param", "words"),
    [
        (TranscribeOptions(task="translate"), ENGLISH, "model", "English-only"),
        (TranscribeOptions(language="de"), ENGLISH, "language", "'de'"),
        (TranscribeOptions(language="klingon"), NO_WORDS, "language", "supported: de, en"),
        (TranscribeOptions(word_timestamps=True), NO_WORDS, "timestamp_granularities", "word"),
    ],
)
def test_refusals_are_400s_naming_the_parameter(
    options: TranscribeOptions, capabilities: SttCapabilities, param: str, words: str
) -> None:
    with pytest.raises(UnsupportedCapabilityError, match=words) as caught:
        check_transcription(options, capabilities, "Model `m`")
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.message.startswith("Model `m`")
