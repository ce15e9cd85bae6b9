"""The options of `factory shards` and the grammar of its budgets and tasks (`--tokens`,
`--tokens-per-language`, `--task`), which the plan (plan.py) reads too. No torch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.errors import short_value
from factory.core.options import option, parse_count, whole_number
from factory.core.step_options import (
    LANGID_FILTERS,
    LANGID_HELP,
    SKIP_HELP,
    THRESHOLD_HELP,
)
from factory.vocab.config import VocabConfig

SEQ_LEN = 512


# ---- shards --------------------------------------------------------------------------------------
SHARD_ALPHA = 0.3  # XLM-R's p_i ∝ n_i^0.3 (docs/data.md#budgets)


@dataclass(frozen=True, kw_only=True)
class ShardsConfig:
    """`factory shards`: tokenised, packed Arrow shards for pre-training, one language per row
    (docs/data.md)."""

    SCHEMA: ClassVar[int] = 2

    vocab: Path | None = option(None, "Vocabulary folder (spm.model), or a model's folder or Hub id (e.g. "
                                "microsoft/deberta-v3-xsmall) to tokenise with its spm.model; required unless "
                                "--merge.")  # fmt: skip
    corpus: list[str] = option(
        [],
        "Text source, repeatable: .txt (a document per line), .jsonl/.json/.parquet (text column), .gz, a folder, "
        "or hf:NAME[:CONFIG][@SPLIT] (streamed; NAME may be a local folder of data files); LANG=any of those.",
        repeat=True,
        metavar="SOURCE",
    )
    langs: list[str] = option(
        [],
        "Languages to keep, comma-separated [default: the corpus' LANG= prefixes; none: one language, und].",
        flags=("--langs", "--lang"),
        aliases=("languages",),
    )
    seq_len: int = option(SEQ_LEN, "Tokens per sequence.", low=8)
    tokens: str | None = option(None, "Tokens to store in all, split across languages by --alpha (1e9, 500M, 2B).")
    tokens_per_language: str | None = option(None, "Tokens to store per language (1e9, 500M, 2B).")
    alpha: float = option(SHARD_ALPHA, "Budget split of --tokens: p_i ∝ corpus_tokens_i^alpha.", low=0,
                          low_open=True, high=1)  # fmt: skip
    text_field: str = option("text", "Column holding the text in jsonl/parquet/Hub.")
    clean: bool = option(True, "Clean documents as `factory vocab` does: NFKC, whitespace, --min-chars/--max-chars.")
    min_chars: int = option(VocabConfig.min_chars, "Drop shorter documents (with --clean).", low=0)
    max_chars: int = option(1_000_000, "Drop longer documents (with --clean; pre-training keeps long ones).", low=1)
    dedupe: bool = option(True, "Drop exact duplicates.")
    langid: str | None = option("fasttext", LANGID_HELP, choices=LANGID_FILTERS, switch=True)
    langid_threshold: float | None = option(None, THRESHOLD_HELP, low=0, high=1)
    langid_skip: list[str] = option([], SKIP_HELP, metavar="LANG,...")
    num_proc: int | None = option(None, "Workers [default: all cores]: processes, or threads when only tokenising "
                                  "(the filters off).", low=1)  # fmt: skip
    rows_per_shard: int = option(16384, "Sequences per file (16384 x 512 tokens = 32 MiB).", low=1)
    task: str | None = option(None, "I/N: build only part I of N (over input files); join them with --merge.",
                              metavar="I/N")  # fmt: skip
    merge: list[Path] = option([], "Join the folders of --task I/N builds into --out (no tokenising).", repeat=True,
                               metavar="DIR")  # fmt: skip
    dry_run: bool = option(False, "Print the plan (per-language budget, expected rows, disk) and stop.",
                           secondary=False)  # fmt: skip
    out: Path = option(help="Folder to write.")
    force: bool = option(False, "Replace --out if it holds other files (shards of these very inputs and settings "
                         "are kept, as `factory run` relies on).", secondary=False)  # fmt: skip

    def problems(self) -> list[str]:
        problems = config_problems(self)
        if self.seq_len > SEQ_LEN:
            problems.append(
                f"--seq-len {self.seq_len} is over {SEQ_LEN}, the longest sequence every v3 preset is built for "
                f"(its relative position buckets span {SEQ_LEN} tokens), so `factory pretrain` would refuse these "
                f"shards; use {SEQ_LEN} or less"
            )
        return problems


def parse_task(text: str) -> tuple[int, int]:
    """'3/64' -> (3, 64): part 3 of 64, 1-based."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    part, parts = (whole_number(n) for n in match.groups()) if match else (None, None)
    if part is None or parts is None or not 1 <= part <= parts:  # None: more digits than any I/N has
        raise ValueError(f"{short_value(text)} is not I/N with 1 <= I <= N (e.g. 3/64)")
    return part, parts


def config_problems(config) -> list[str]:
    """ShardsConfig's cross-field checks (the resolver reports them with the other bad values)."""
    problems = []
    for flag, value in (("--tokens", config.tokens), ("--tokens-per-language", config.tokens_per_language)):
        if value is not None:
            try:
                parse_count(value)
            except ValueError as e:
                problems.append(f"{flag}: {e}")
    if config.tokens is not None and config.tokens_per_language is not None:
        problems.append("give --tokens or --tokens-per-language, not both")
    if config.task is not None:
        try:
            parse_task(config.task)
        except ValueError as e:
            problems.append(f"--task: {e}")
    if config.merge:
        if config.task is not None or config.dry_run:
            problems.append("--merge joins finished tasks; it takes no --task or --dry-run")
        return problems
    if not config.corpus:
        problems.append("--corpus is required (a file, a folder or hf:NAME)")
    if config.vocab is None:
        problems.append("--vocab is required (the folder with spm.model)")
    if config.clean and config.min_chars > config.max_chars:
        problems.append(f"--min-chars {config.min_chars} is larger than --max-chars {config.max_chars}")
    return problems
