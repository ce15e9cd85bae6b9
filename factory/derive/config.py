"""The options of `factory trim` and `factory transplant`. No torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.options import option
from factory.core.step_options import (
    FORCE_HELP,
    LANGID_FILTERS,
    LAYOUT_HELP,
    LAYOUTS,
    THRESHOLD_HELP,
)

# ---- trim / transplant ---------------------------------------------------------------------------
_SOURCE_HELP = ("The model: a folder (factory's export, a published repository's files, a save_pretrained "
                "folder) or a Hub id org/name[@revision].")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TrimConfig:
    """`factory trim SRC`: a multilingual model cut down to the pieces its languages use (factory/derive/trim.py)."""

    SCHEMA: ClassVar[int] = 1

    source: str = option(help=_SOURCE_HELP, cli=False)
    langs: list[str] = option([], "Languages to keep, comma-separated (pt, or en,pt).", flags=("--langs", "--lang"),
                              aliases=("languages",))  # fmt: skip
    corpus: list[str] = option([], "Text of each language: LANG=FILE, LANG=FOLDER or LANG=hf:NAME[:CONFIG] "
                               "(a bare source belongs to the only language); repeatable.", repeat=True,
                               metavar="LANG=SOURCE")  # fmt: skip
    size: int | None = option(None, "Pieces to keep, specials included (a count: 64k, 32000): the most used ones.",
                              low=1)  # fmt: skip
    min_count: int | None = option(None, "Keep every piece the corpus uses at least this often [default: 1, "
                                   "without --size].", low=1)  # fmt: skip
    max_docs: int = option(100_000, "Documents read per language.", low=1)
    text_field: str = option("text", "Field/column of .jsonl/.parquet/hf: sources.")
    langid: str | None = option("fasttext", "Language check of each --corpus source (its first documents): fasttext "
                                "(lid.176) or langdetect, the filters of vocab and shards; a source mostly not in "
                                "its language is refused; --no-langid: none.", choices=LANGID_FILTERS,
                                switch=True)  # fmt: skip
    langid_threshold: float | None = option(None, THRESHOLD_HELP, low=0, high=1)
    langid_skip: list[str] = option([], "Languages whose sources are not checked (e.g. those lid.176 does not "
                                    "know: ha, zu, *_rom, ...).", metavar="LANG,...")  # fmt: skip
    out: Path = option(help="Folder to write (the same files as the source, with fewer pieces).")
    force: bool = option(False, FORCE_HELP, secondary=False)

    def problems(self) -> list[str]:
        problems = [] if self.langs else ["--langs is required: the language(s) to keep, e.g. --langs pt"]
        if self.size is not None and self.min_count is not None:
            problems.append("give --size or --min-count, not both")
        return problems


TRANSPLANT_INITS = ("mean", "random")


@dataclass(frozen=True, kw_only=True)
class TransplantConfig:
    """`factory transplant SRC --vocab V`: a model moved onto another vocabulary (factory/derive/transplant.py)."""

    SCHEMA: ClassVar[int] = 1

    source: str = option(help=_SOURCE_HELP, cli=False)
    vocab: str = option(help="The new vocabulary: a folder with spm.model (e.g. one `factory vocab` wrote), or a "
                        "model (folder or Hub id) whose tokenizer to take.")  # fmt: skip
    init: str = option("mean", "Rows of the new pieces: mean (of the rows of the piece's pieces under the old "
                       "tokenizer: FVT) or random (the baseline).", choices=TRANSPLANT_INITS)  # fmt: skip
    seed: int = option(0, "Seed of --init random.")
    layout: str = option("official", LAYOUT_HELP, choices=LAYOUTS)
    out: Path = option(help="Folder to write (the same files as the source, on the new vocabulary).")
    force: bool = option(False, FORCE_HELP, secondary=False)
