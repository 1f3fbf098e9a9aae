"""Whisper's languages: ISO 639-1 codes (as clients send them) and names (as OpenAI writes them)."""

from __future__ import annotations

from .errors import InvalidRequest, Unsupported

LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
    "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian",
    "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian",
    "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala",
    "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans",
    "oc": "occitan", "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi",
    "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
    "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian",
    "ln": "lingala", "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese",
    "yue": "cantonese",
}  # fmt: skip

# Names and other spellings clients send for the same language.
_ALIASES = {name: code for code, name in LANGUAGES.items()} | {
    "iw": "he", "jv": "jw", "nb": "no", "burmese": "my", "valencian": "ca", "flemish": "nl",
    "haitian": "ht", "letzeburgesch": "lb", "pushto": "ps", "panjabi": "pa", "moldavian": "ro",
    "moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}  # fmt: skip


def normalize_language(value: str | None, *, param: str = "language") -> str | None:
    """'en', 'EN', 'en-US', 'en_GB' or 'English' -> 'en'; None or '' or 'auto' -> None (detect).

    An unknown language is an InvalidRequest naming it.
    """
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("", "auto"):
        return None
    for candidate in (text, text.replace("_", "-").split("-")[0]):
        if candidate in LANGUAGES:
            return candidate
        if candidate in _ALIASES:
            return _ALIASES[candidate]
    raise InvalidRequest(
        f"Unsupported language '{value}'; use an ISO-639-1 code such as 'en' or 'de'",
        param=param,
        code="unsupported_language",
    )


def language_name(code: str) -> str:
    """OpenAI writes the language in full, lower case ('english') in verbose_json."""
    return LANGUAGES.get(code, code)


def model_languages(name: str) -> list[str]:
    """The languages a model serves, known from its name before it is loaded."""
    if name.endswith(".en") or name.rstrip("/").endswith((".en", "-en")):
        return ["en"]
    return list(LANGUAGES)


def check_language(
    model: str, language: str | None, task: str = "transcribe", *, english_only: bool | None = None
) -> None:
    """An English-only model can neither translate nor transcribe another language.

    Known by the model's name before it loads, or told (``english_only``) once it has.
    """
    if english_only is None:
        english_only = model_languages(model) == ["en"]
    if not english_only:
        return
    if task == "translate":
        raise Unsupported(
            f"model {model!r} is English-only and cannot translate; name a multilingual model",
            param="model",
        )
    if language not in (None, "en"):
        raise InvalidRequest(
            f"model {model!r} is English-only; it cannot transcribe language {language!r}",
            param="language",
            code="unsupported_language",
        )
