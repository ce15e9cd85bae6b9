"""The options of `factory vocab` and `factory vocab report`. No torch: `factory --help` builds the commands'
options from them (factory/core/options.py says how)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.options import option
from factory.core.step_options import (
    FORCE_HELP,
    LANGID_FILTERS,
    LANGID_HELP,
    SKIP_HELP,
    THRESHOLD_HELP,
    size_problems,
)

MAX_LANGID_WORKERS = 8  # language-id processes when --workers is not given


# ---- vocab ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class VocabConfig:
    """`factory vocab`: defaults < a `vocab/*.yaml` spec < a recipe's `steps.vocab` < flags."""

    SCHEMA: ClassVar[int] = 1

    corpus: list[str] = option(
        [], "Text: FILE, FOLDER, hf:REPO:CONFIG, or LANG=any of those. Repeatable.", repeat=True, metavar="SOURCE"
    )
    langs: list[str] = option(
        [],
        "Language(s) to keep: pt, or several comma-separated (en,pt,ru,zh) sampled with --alpha.",
        flags=("--langs", "--lang"),
        aliases=("languages",),
    )
    spec: Path | None = option(None, "A vocab/*.yaml spec, or the name of a bundled one (e.g. cc100).")
    size: str = option("32k", "SentencePiece pieces, specials included: 32k, 128k, 250k or a number.")
    alpha: float = option(0.3, "Language sampling p_i ∝ n_i^alpha (XLM-R, mT5).", low=0, high=1)
    max_sentences: int = option(10_000_000, "Documents fed to SentencePiece (a count: 10M, 1e7).", low=1)
    model_type: str = option("unigram", "SentencePiece model.", choices=("unigram", "bpe"))
    character_coverage: float = option(
        0.9995, "Share of characters covered; 1.0 for small alphabets.", low=0.9, high=1.0
    )
    byte_fallback: bool = option(False, "Unknown characters as byte pieces (sentencepiece only; HF gives [UNK]).")
    text_field: str = option("text", "Field/column of .jsonl/.parquet/.arrow/hf: sources.")
    min_chars: int = option(20, "Drop shorter documents.", low=0)
    max_chars: int = option(20000, "Drop longer documents.", low=1)
    dedupe: bool = option(True, "Drop exact duplicates.")
    langid: str | None = option("fasttext", LANGID_HELP, choices=LANGID_FILTERS, switch=True)
    langid_threshold: float | None = option(None, THRESHOLD_HELP, low=0, high=1)
    langid_skip: list[str] = option([], SKIP_HELP, metavar="LANG,...")
    workers: int | None = option(
        None, f"Language-id processes [default: the cores, at most {MAX_LANGID_WORKERS}].", low=1
    )
    report_docs: int = option(2000, "Documents per language for the report.", low=1, cli=False)
    seed: int = option(0, "Seed of the sampling.")
    out: Path = option(help="Folder to write.")
    force: bool = option(False, FORCE_HELP, secondary=False)

    def problems(self) -> list[str]:
        problems = size_problems("--size", self.size)
        if self.min_chars > self.max_chars:
            problems.append(f"--min-chars {self.min_chars} is larger than --max-chars {self.max_chars}")
        return problems


@dataclass(frozen=True, kw_only=True)
class VocabReportConfig:
    """`factory vocab report FOLDER...`: vocabularies side by side on the same text."""

    SCHEMA: ClassVar[int] = 1

    folders: list[Path] = option(help="Vocabulary folders (spm.model) to compare.", cli=False)
    corpus: list[str] = option([], "Text to evaluate on: FILE or LANG=FILE. Repeatable.", repeat=True)
    text_field: str = option(VocabConfig.text_field, "Field/column of .jsonl/.parquet/.arrow.")
    max_docs: int = option(VocabConfig.report_docs, "Documents per language.", low=1)
    out: Path | None = option(None, "Write report.json and report.md into this folder.")
    json: bool = option(False, "Print JSON instead of tables.", secondary=False)

    def problems(self) -> list[str]:
        return [] if self.corpus else ["--corpus is required (FILE or LANG=FILE)"]
