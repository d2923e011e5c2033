"""Telling a transcript's language among a model's languages (Paraformer, Parakeet)."""

from __future__ import annotations

import pytest

from bragi.backends.language_guess import guess_language
from bragi.models.catalog import Catalog

#: The 25 languages the catalog gives Parakeet v3.
PARAKEET_V3: list[str] = Catalog.builtin().get("parakeet-tdt-0.6b-v3").options["languages"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "languages", "expected"),
    [
        ("今天天气很好。我们去公园吧。", ["zh", "en"], "zh"),
        ("the weather is fine today", ["zh", "en"], "en"),
        ("我哋今日去唔去公園呀。佢話冇時間。", ["zh", "yue", "en"], "yue"),
        ("今天天气很好", ["zh", "yue", "en"], "zh"),
        ("Der Hund ist nicht in dem Garten, und die Katze schläft.", PARAKEET_V3, "de"),
        ("Le chat est sur la table et il ne dort pas.", PARAKEET_V3, "fr"),
        ("El perro no está en la casa de los vecinos.", PARAKEET_V3, "es"),
        ("Ever tried. Ever failed. No matter. Try again.", PARAKEET_V3, "en"),
        ("Het is niet de hond van de buren.", PARAKEET_V3, "nl"),
        ("Nie wiem, jak to się stało, że jest tak późno.", PARAKEET_V3, "pl"),
        ("Я не знаю, что это было. Это был сон.", PARAKEET_V3, "ru"),
        ("Я не знаю, що це було. Це їхній дім.", PARAKEET_V3, "uk"),
        ("Αυτό είναι ένα σπίτι.", PARAKEET_V3, "el"),
        ("Xyzzy plugh.", PARAKEET_V3, "en"),  # no evidence: English, which the model has
        ("Xyzzy plugh.", ["de", "fr"], "de"),  # ... else the model's first language
        ("안녕하세요", None, "ko"),  # no list: any language known here
    ],
)
def test_guesses(text: str, languages: list[str] | None, expected: str) -> None:
    assert guess_language(text, languages) == expected


def test_no_letters_or_no_language_in_that_script_is_no_guess() -> None:
    assert guess_language("", ["en"]) is None
    assert guess_language("  12, 3.  ", ["en", "zh"]) is None
    assert guess_language("今天天气很好", ["en", "de"]) is None
