"""Whisper's languages: ISO 639-1 codes and the lowercase English names OpenAI reports.

OpenAI's ``verbose_json`` gives ``language`` as a full name (``"english"``), requests
carry a code (``"en"``). The table is Whisper's own (``openai/whisper``
``whisper/tokenizer.py``: ``LANGUAGES`` and the aliases of ``TO_LANGUAGE_CODE``), so
the names are exactly the ones OpenAI's API returns. Whisper keeps two non-ISO codes:
``jw`` for Javanese (ISO ``jv``) and ``haw`` / ``yue`` (ISO 639-3); ``jv`` and the old
Hebrew code ``iw`` are accepted as aliases.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["LANGUAGES", "language_code", "language_name"]

#: code ─▶ name, in Whisper's order (the order of its language tokens).
LANGUAGES: MappingProxyType[str, str] = MappingProxyType(
    {
        "en": "english",
        "zh": "chinese",
        "de": "german",
        "es": "spanish",
        "ru": "russian",
        "ko": "korean",
        "fr": "french",
        "ja": "japanese",
        "pt": "portuguese",
        "tr": "turkish",
        "pl": "polish",
        "ca": "catalan",
        "nl": "dutch",
        "ar": "arabic",
        "sv": "swedish",
        "it": "italian",
        "id": "indonesian",
        "hi": "hindi",
        "fi": "finnish",
        "vi": "vietnamese",
        "he": "hebrew",
        "uk": "ukrainian",
        "el": "greek",
        "ms": "malay",
        "cs": "czech",
        "ro": "romanian",
        "da": "danish",
        "hu": "hungarian",
        "ta": "tamil",
        "no": "norwegian",
        "th": "thai",
        "ur": "urdu",
        "hr": "croatian",
        "bg": "bulgarian",
        "lt": "lithuanian",
        "la": "latin",
        "mi": "maori",
        "ml": "malayalam",
        "cy": "welsh",
        "sk": "slovak",
        "te": "telugu",
        "fa": "persian",
        "lv": "latvian",
        "bn": "bengali",
        "sr": "serbian",
        "az": "azerbaijani",
        "sl": "slovenian",
        "kn": "kannada",
        "et": "estonian",
        "mk": "macedonian",
        "br": "breton",
        "eu": "basque",
        "is": "icelandic",
        "hy": "armenian",
        "ne": "nepali",
        "mn": "mongolian",
        "bs": "bosnian",
        "kk": "kazakh",
        "sq": "albanian",
        "sw": "swahili",
        "gl": "galician",
        "mr": "marathi",
        "pa": "punjabi",
        "si": "sinhala",
        "km": "khmer",
        "sn": "shona",
        "yo": "yoruba",
        "so": "somali",
        "af": "afrikaans",
        "oc": "occitan",
        "ka": "georgian",
        "be": "belarusian",
        "tg": "tajik",
        "sd": "sindhi",
        "gu": "gujarati",
        "am": "amharic",
        "yi": "yiddish",
        "lo": "lao",
        "uz": "uzbek",
        "fo": "faroese",
        "ht": "haitian creole",
        "ps": "pashto",
        "tk": "turkmen",
        "nn": "nynorsk",
        "mt": "maltese",
        "sa": "sanskrit",
        "lb": "luxembourgish",
        "my": "myanmar",
        "bo": "tibetan",
        "tl": "tagalog",
        "mg": "malagasy",
        "as": "assamese",
        "tt": "tatar",
        "haw": "hawaiian",
        "ln": "lingala",
        "ha": "hausa",
        "ba": "bashkir",
        "jw": "javanese",
        "su": "sundanese",
        "yue": "cantonese",
    }
)

# Whisper's TO_LANGUAGE_CODE aliases, plus the ISO code Whisper does not use for Javanese
# and the pre-1989 code for Hebrew that older Whisper releases used.
_ALIASES: dict[str, str] = {
    "burmese": "my",
    "valencian": "ca",
    "flemish": "nl",
    "haitian": "ht",
    "letzeburgesch": "lb",
    "pushto": "ps",
    "panjabi": "pa",
    "moldavian": "ro",
    "moldovan": "ro",
    "sinhalese": "si",
    "castilian": "es",
    "mandarin": "zh",
    "jv": "jw",
    "iw": "he",
}

_TO_CODE: dict[str, str] = {
    **{code: code for code in LANGUAGES},
    **{name: code for code, name in LANGUAGES.items()},
    **_ALIASES,
}


def language_code(name_or_code: str) -> str | None:
    """The Whisper code for a code or a name in any case (``"EN"``, ``"English"``); else None."""
    return _TO_CODE.get(name_or_code.strip().lower())


def language_name(code: str) -> str:
    """The lowercase English name OpenAI reports (``"en"`` ─▶ ``"english"``); else the input."""
    normalized = language_code(code)
    return LANGUAGES[normalized] if normalized is not None else code
