"""Which of a model's languages a transcript is in, for engines that do not say.

Paraformer and Parakeet decode several languages but report none. When a request names
no language and the model speaks more than one, the text of the first piece decoded is
judged: by its script first (Han, Hangul, Cyrillic, Greek, ... or Latin), among the
languages the model speaks in that script; then, where a script leaves several (Latin for
Parakeet v3's 21, Cyrillic for Russian, Ukrainian and Bulgarian), by letters only one of
them uses and by its most common words. Where the evidence is even (or there is none) it
answers English when the model speaks it (these models learnt from English first), else
the model's first language; with no letters at all, None.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

__all__ = ["guess_language"]

#: Scripts by the first word of the Unicode character name; Latin is the rest.
_SCRIPTS = {
    "CJK": "han",
    "HIRAGANA": "kana",
    "KATAKANA": "kana",
    "HANGUL": "hangul",
    "CYRILLIC": "cyrillic",
    "GREEK": "greek",
    "ARABIC": "arabic",
    "HEBREW": "hebrew",
    "DEVANAGARI": "devanagari",
    "THAI": "thai",
}
_LANGUAGE_SCRIPTS = {
    "zh": "han",
    "yue": "han",
    "ja": "kana",
    "ko": "hangul",
    "ru": "cyrillic",
    "uk": "cyrillic",
    "bg": "cyrillic",
    "be": "cyrillic",
    "sr": "cyrillic",
    "mk": "cyrillic",
    "kk": "cyrillic",
    "el": "greek",
    "ar": "arabic",
    "fa": "arabic",
    "ur": "arabic",
    "he": "hebrew",
    "hi": "devanagari",
    "mr": "devanagari",
    "ne": "devanagari",
    "th": "thai",
}
#: Characters of written Cantonese that Mandarin does not use.
_CANTONESE = frozenset("嘅咗係唔佢冇啲喺嗰哋")
#: Letters one Cyrillic language has and the others here do not.
_LETTERS = {"uk": frozenset("іїєґ"), "ru": frozenset("ыэё"), "bg": frozenset("ъ")}
#: The most common words of each Latin-script language Parakeet v3 speaks.
_COMMON = {
    language: frozenset(words.split())
    for language, words in {
        "en": "the and of to is in that it you was i he we not this no be have for with",
        "de": "der die und das ist nicht ich zu den mit sie es ein auf",
        "fr": "le la les et est des une que pas je il vous en un",
        "es": "el la de que y en los es no por un se las una",
        "it": "il di che la è non e per un sono una mi si ho",
        "pt": "o de que e não um uma os para é com se do da",
        "nl": "de het een en van is niet dat ik op je zijn met",
        "sv": "och att det är en som på inte jag för med har",
        "da": "og det er at en til ikke på jeg som med har",
        "pl": "nie i w się na jest to że z do jak tak",
        "cs": "a je to se na že v jsem ne jako by ale",
        "sk": "a je to sa na že v som nie ako by ale",
        "sl": "in je da se na v ne za so pa bi kot",
        "hr": "i je da se u na ne za su što sam kao",
        "ro": "și de în este nu că la o un pe cu ce",
        "hu": "a az és hogy nem is egy van meg de már",
        "fi": "ja on ei se että hän oli mutta en ole kun",
        "et": "ja on ei et see ta oli kui aga ma mis",
        "lv": "un ir ka ar no uz es par tas nav bet",
        "lt": "ir yra kad ne su į aš tai bet jis kaip",
        "mt": "il u ta li fil hu ma jien din minn",
    }.items()
}
_WORD = re.compile(r"\w+")


def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    return _SCRIPTS.get(name.split(" ", 1)[0], "latin")


def guess_language(text: str, languages: Sequence[str] | None) -> str | None:
    """The ISO 639-1 code, among ``languages`` (None: any this module knows), that
    ``text`` is most likely in; None when the text has no letters, or no such language
    is written in its script."""
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return None
    script = Counter(_script(char) for char in letters).most_common(1)[0][0]
    known = languages if languages is not None else [*_LANGUAGE_SCRIPTS, *_COMMON]
    pool = [code for code in known if _LANGUAGE_SCRIPTS.get(code, "latin") == script]
    if len(pool) <= 1:
        return pool[0] if pool else None
    if script == "han":
        cantonese = "yue" in pool and any(char in _CANTONESE for char in text)
        return "yue" if cantonese else ("zh" if "zh" in pool else pool[0])
    marked = [code for code in pool if _LETTERS.get(code, frozenset()) & set(text.lower())]
    if len(marked) == 1:
        return marked[0]
    words = _WORD.findall(text.lower())
    scores = {code: sum(word in _COMMON.get(code, ()) for word in words) for code in pool}
    best = max(scores.values())
    leaders = [code for code in pool if scores[code] == best]
    return "en" if "en" in leaders else leaders[0]
