from __future__ import annotations

import pytest

from bragi.languages import LANGUAGES, language_code, language_name


def test_table_is_whispers_hundred_languages() -> None:
    # Whisper's 99 languages plus Cantonese (large-v3); names unique, lowercase.
    assert len(LANGUAGES) == 100
    assert len(set(LANGUAGES.values())) == 100
    assert all(name == name.lower() for name in LANGUAGES.values())
    assert list(LANGUAGES)[:3] == ["en", "zh", "de"]  # token order


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("en", "english"),
        ("de", "german"),
        ("zh", "chinese"),
        ("he", "hebrew"),
        ("jw", "javanese"),
        ("ht", "haitian creole"),
        ("my", "myanmar"),
        ("haw", "hawaiian"),
        ("yue", "cantonese"),
        ("no", "norwegian"),
        ("nn", "nynorsk"),
    ],
)
def test_names_match_openai(code: str, name: str) -> None:
    assert language_name(code) == name
    assert language_code(name) == code


@pytest.mark.parametrize("value", ["en", "EN", " en ", "english", "English", "ENGLISH"])
def test_code_accepts_codes_and_names_in_any_case(value: str) -> None:
    assert language_code(value) == "en"


@pytest.mark.parametrize(
    ("alias", "code"),
    [
        ("castilian", "es"),
        ("mandarin", "zh"),
        ("burmese", "my"),
        ("haitian", "ht"),
        ("sinhalese", "si"),
        ("jv", "jw"),
        ("iw", "he"),
    ],
)
def test_aliases(alias: str, code: str) -> None:
    assert language_code(alias) == code


@pytest.mark.parametrize("value", ["xx", "", "klingon", "en-US"])
def test_unknown(value: str) -> None:
    assert language_code(value) is None
    assert language_name(value) == value


def test_name_of_a_name_or_alias_is_the_openai_name() -> None:
    assert language_name("German") == "german"
    assert language_name("jv") == "javanese"
