"""What several steps' configs share: the option names and help texts they have in common, and the check of a
vocabulary size. Each step's config (factory/*/config.py) imports these, never another step's code; no torch."""

from __future__ import annotations

LAYOUTS = ("official", "pad128")

LANGID_FILTERS = ("fasttext", "langdetect")  # == factory.corpus.langid.FILTERS

PIVOT = "en"  # the language retrieval matches every other one against (`eval retrieval --pivot`, `--probe-pivot`)


def size_problems(flag: str, text: str | None) -> list[str]:
    """A vocabulary size (32k, 128k, 128000) checked with the others, not when its step starts."""
    if text is None:
        return []
    from factory.core.errors import ConfigError
    from factory.core.vocab_sizes import VocabSize

    try:
        VocabSize.parse(text)
    except ConfigError as e:
        return [f"{flag}: {e}"]
    return []


LANGID_HELP = ("Language filter: fasttext (lid.176, 176 languages, as CC100) or langdetect (its 55 profiles); "
                "--no-langid: none (docs/data.md#language-filter).")


THRESHOLD_HELP = ("Minimum probability of the language filter [default: 0.5 for fasttext (CCNet's), 0.9 for "
                   "langdetect].")


SKIP_HELP = ("Languages whose LANG= sources the filter lets through unchecked (e.g. those lid.176 does not "
              "know: ha, zu, *_rom, ...).")


LAYOUT_HELP = "Embedding rows: as published (128k -> 128100) or padded to a multiple of 128 (faster on GPU)."

FORCE_HELP = "Replace --out if it is not empty."
