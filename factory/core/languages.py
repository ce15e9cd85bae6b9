"""The language codes factory accepts, with their names: one table for `--langs`, `lang=` prefixes and specs.

The codes are those of the corpora the recipes use: the 116 CC100 configs of XLM-R/mDeBERTa (ISO 639-1
where one exists; CC100's own `ns` for Northern Sotho, `zh_hans`/`zh_hant` for the two Chinese scripts and
the romanised `*_rom` and Zawgyi `my_zaw` variants), the 55 langdetect profiles of the language filter
(`zh-cn`, `zh-tw`; `zh` is ours for both), and `und` (ISO 639-2 "undetermined") for text whose language
nobody declared. The language filter knows fewer (factory/corpus/langid/: lid.176's labels for `--langid
fasttext`, the langdetect profiles for `--langid langdetect`, `factory.corpus.langid.known_codes`); a table code
outside them can be used with the filter off, or let through unchecked with --langid-skip.

A YAML 1.1 reader turns a bare `no` (Norwegian) into False; tests/test_languages.py checks that every code
in vocab/*.yaml and recipes/*.yaml reads as a string of this table.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from factory.core.errors import FactoryError

UNDETERMINED = "und"

# code -> English name. CC100 first (statmt/cc100 configs), then the langdetect-only spellings.
NAMES: dict[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "br": "Breton", "bs": "Bosnian",
    "ca": "Catalan", "cs": "Czech", "cy": "Welsh", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish", "et": "Estonian",
    "eu": "Basque", "fa": "Persian", "ff": "Fulah", "fi": "Finnish", "fr": "French",
    "fy": "Western Frisian", "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician", "gn": "Guarani",
    "gu": "Gujarati", "ha": "Hausa", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian",
    "ht": "Haitian Creole", "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "ig": "Igbo",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "jv": "Javanese", "ka": "Georgian",
    "kk": "Kazakh", "km": "Khmer", "kn": "Kannada", "ko": "Korean", "ku": "Kurdish",
    "ky": "Kyrgyz", "la": "Latin", "lg": "Ganda", "li": "Limburgish", "ln": "Lingala",
    "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian", "mg": "Malagasy", "mk": "Macedonian",
    "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "my": "Burmese",
    "ne": "Nepali", "nl": "Dutch", "no": "Norwegian", "ns": "Northern Sotho", "om": "Oromo",
    "or": "Odia", "pa": "Punjabi", "pl": "Polish", "ps": "Pashto", "pt": "Portuguese",
    "qu": "Quechua", "rm": "Romansh", "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit",
    "sc": "Sardinian", "sd": "Sindhi", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian",
    "so": "Somali", "sq": "Albanian", "sr": "Serbian", "ss": "Swati", "su": "Sundanese",
    "sv": "Swedish", "sw": "Swahili", "ta": "Tamil", "te": "Telugu", "th": "Thai",
    "tl": "Tagalog", "tn": "Tswana", "tr": "Turkish", "ug": "Uyghur", "uk": "Ukrainian",
    "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "wo": "Wolof", "xh": "Xhosa",
    "yi": "Yiddish", "yo": "Yoruba", "zh_hans": "Chinese (Simplified)", "zh_hant": "Chinese (Traditional)",
    "zu": "Zulu",
    # CC100's romanised and Zawgyi-encoded variants
    "bn_rom": "Bengali (romanised)", "hi_rom": "Hindi (romanised)", "my_zaw": "Burmese (Zawgyi)",
    "ta_rom": "Tamil (romanised)", "te_rom": "Telugu (romanised)", "ur_rom": "Urdu (romanised)",
    # langdetect's profile names beyond CC100's spellings, and factory's alias for both Chinese profiles
    "zh": "Chinese", "zh-cn": "Chinese (Simplified, langdetect)", "zh-tw": "Chinese (Traditional, langdetect)",
    UNDETERMINED: "undetermined (no language declared)",
}  # fmt: skip
CC100 = tuple(code for code in NAMES if code not in ("zh", "zh-cn", "zh-tw", UNDETERMINED))


def name(code: str) -> str:
    """The language's English name (the code itself for an unknown one)."""
    return NAMES.get(code, code)


def check_languages(codes: Iterable[object], option: str = "--langs") -> list[str]:
    """The codes, each checked against the table; an unknown one is a one-line error with a suggestion.

    A boolean is named as such: it is what YAML makes of a bare `no`."""
    codes = list(codes)
    for code in codes:
        if isinstance(code, bool):
            raise FactoryError(f"{option}: {code!r} is a boolean, not a language code; quote 'no' in YAML")
    bad = list(dict.fromkeys(str(c) for c in codes if c not in NAMES))  # a code given twice is named once
    if not bad:
        return [str(c) for c in codes]
    meant = suggest(bad[0])
    hint = f" (did you mean {meant}?)" if meant else ""
    raise FactoryError(
        f"{option}: unknown language code {', '.join(map(repr, bad))}{hint}; factory knows: "
        f"{' '.join(sorted(NAMES))} (factory/core/languages.py)"
    )


def suggest(text: str) -> str | None:
    """The code meant by an unknown one: a language's English name (`portuguese`: pt), else the closest code, else
    the code of the closest name (`portugese`: pt); None when nothing is close."""
    key = text.lower().replace("-", "_")
    by_name = {n.lower(): code for code, n in reversed(NAMES.items())}  # a name given twice: its first code
    if key in by_name:
        return by_name[key]
    close = difflib.get_close_matches(key, list(NAMES), n=1, cutoff=0.5)
    if close:
        return close[0]
    close = difflib.get_close_matches(key, list(by_name), n=1, cutoff=0.8)
    return by_name[close[0]] if close else None
