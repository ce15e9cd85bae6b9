"""Language identification for the corpus filter (`--langid fasttext|langdetect`, `--no-langid`): which
identifier, which of factory's language codes it knows, and the probability a document needs.

- `fasttext` (the default): fastText's lid.176, 176 languages (98 of CC100's 116 codes), the identifier CC100
  was built with (CCNet); factory/corpus/langid/lid176.py. Threshold 0.5, CCNet's.
- `langdetect`: factory's exact posterior over langdetect's 55 profiles, the filter factory had first (the design
  card names langdetect); factory/corpus/langid/profiles.py. Threshold 0.9.
Both give a `Guess` in factory's codes (factory/core/languages.py); Chinese is split into CC100's zh_hans/zh_hant
by script (factory/corpus/langid/chinese.py), and `zh` takes either. docs/data.md#language-filter says when each
filter is the better choice; bench/speed/langid.py measures both beside plain langdetect.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from factory.core.errors import FactoryError
from factory.corpus.langid.filters import DEFAULT, FILTERS, THRESHOLDS, Guess, filter_name, threshold_of

__all__ = ["DEFAULT", "FILTERS", "THRESHOLDS", "Guess", "check_codes", "filter_name", "identifier", "known_codes",
           "preload", "threshold_of"]  # fmt: skip

_CHINESE = ("zh", "zh_hans", "zh_hant")


@cache
def known_codes(name: str) -> frozenset[str]:
    """factory's codes the filter can recognise: its labels that are in the language table, and Chinese by script."""
    from factory.core.languages import NAMES

    if name == "fasttext":
        from factory.corpus.langid.lid176 import labels

        return frozenset(label for label in labels() if label in NAMES) | set(_CHINESE)
    from factory.corpus.langid.profiles import profile_codes

    return frozenset(profile_codes()) | set(_CHINESE)


def check_codes(codes: Iterable[str], name: str, option: str = "--langs", skip: Iterable[str] = ()) -> list[str]:
    """The codes, if the filter knows each one (or it is in `skip`, kept unchecked); else one line naming the
    codes it does not know, what it knows, and --no-langid / --langid-skip."""
    codes = list(codes)
    skipped = set(skip)
    bad = list(dict.fromkeys(c for c in codes if c not in known_codes(name) and c not in skipped))
    if bad:
        model = "lid.176" if name == "fasttext" else "langdetect's profiles"
        other = [f for f in FILTERS if f != name and not set(bad) - known_codes(f)]
        hint = f", --langid {other[0]} (it knows them)" if other else ""
        raise FactoryError(
            f"{option}: the {name} language filter ({model}) does not know {', '.join(map(repr, bad))}; pass "
            f"--no-langid (in a recipe `langid: false`) to keep all text unchecked, or --langid-skip "
            f"{','.join(bad)} to keep theirs unchecked{hint}; it knows: {' '.join(sorted(known_codes(name)))}"
        )
    return codes


def identifier(name: str):
    """The filter's identifier, loaded: `identify(text)` and `identify_batch(texts)` give `Guess`es."""
    if name == "fasttext":
        from factory.corpus.langid.lid176 import Lid176

        return Lid176()
    if name == "langdetect":
        from factory.corpus.langid.profiles import LanguageId

        return LanguageId()
    raise ValueError(f"unknown language filter {name!r}")


def preload(name: str, langs: Iterable[str] = _CHINESE) -> None:
    """Read the filter's model into this process (before forking workers, which then share it), and the Chinese
    script tables if `langs` has Chinese (a worker builds them at its first Chinese text otherwise)."""
    if set(langs) & set(_CHINESE):
        from factory.corpus.langid.chinese import script_variants

        script_variants("")
    if name == "fasttext":
        from factory.corpus.langid.lid176 import labels

        labels()
    else:
        from factory.corpus.langid.profiles import _profiles

        _profiles()
