"""The language filters' names, defaults and the answer they give, below both identifiers and the package face.

Thresholds: 0.5 for fastText is CCNet's (`lang_threshold: float = 0.5` in cc_net/mine.py's Config; the
pipeline CC100 was built with, Wenzek et al. 2019 / XLM-R, Conneau et al. 2020 §3). 0.9 for the langdetect
profiles is what factory's filter used before (its posterior is sharper: an exact naive-Bayes product over
every n-gram, close to 0 or 1, where fastText's softmax spreads mass over neighbours like pt/gl or da/no).
"""

from __future__ import annotations

from typing import NamedTuple

FILTERS = ("fasttext", "langdetect")  # == factory.core.step_options.LANGID_FILTERS
DEFAULT = "fasttext"
THRESHOLDS = {"fasttext": 0.5, "langdetect": 0.9}


class Guess(NamedTuple):
    """A text's language: `lang` our code ("" when the text has no letters to go by), `prob` the filter's
    probability for it, `variants` the more specific codes it also is (zh_hans/zh_hant for Chinese, by script;
    both when its characters are common to the two scripts). A named tuple: one is made per document."""

    lang: str
    prob: float
    variants: tuple[str, ...] = ()

    @property
    def codes(self) -> tuple[str, ...]:
        """Every code the text counts as, the most specific first (routing takes the first one wanted)."""
        return self.variants + ((self.lang,) if self.lang else ())


def filter_name(value: object) -> str | None:
    """The filter a config asks for: a name, True (the default filter: older configs and recipes) or
    False/None (no filter)."""
    if value is True:
        return DEFAULT
    if not value:
        return None
    if value not in FILTERS:
        raise ValueError(f"unknown language filter {value!r}; one of {', '.join(FILTERS)}")
    return str(value)


def threshold_of(name: str | None, given: float | None) -> float:
    """The probability a document needs: the one given, else the filter's default."""
    if given is not None:
        return given
    return THRESHOLDS[name or DEFAULT]
