"""`factory shards`' manifest (factory.json): factory/core/manifest.py says what every manifest holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from factory.core.manifest import Manifest, ModelSource


# ---- shards --------------------------------------------------------------------------------------
@dataclass
class ShardFile:
    file: str
    sequences: int
    language: str = "und"  # every row of a file holds one language


@dataclass
class LanguageFigures:
    """One language of a shard set. `tokens`: what the shards store ([CLS]/[SEP] included, padding not);
    `corpus_tokens`: what the language has in the corpus (its documents' ids and [SEP]s after cleaning and
    filtering), counted, or estimated (`corpus_tokens_estimated`) when a budget stopped the build before the
    end: text bytes in the sources x tokens per byte measured on what was read. `rows`: [start, stop) of the
    language's rows in the shard set (languages are contiguous, in sorted order)."""

    documents: int
    tokens: int
    corpus_tokens: int
    corpus_tokens_estimated: bool
    rows: list[int]
    budget: int | None = None  # stored tokens asked for (--tokens split by alpha, or --tokens-per-language)
    source_bytes: int | None = None  # text bytes of the sources feeding the language (None: not known)


@dataclass
class TaskPart:
    """`factory shards --task I/N`: which part of the whole build this folder holds (`--merge` joins them)."""

    index: int  # 1-based
    count: int
    units: list[int]  # [first, stop) of the build's units (files or stream shards) this task read
    build: str  # the whole build's fingerprint: the same in every task of one build


@dataclass(kw_only=True)
class ShardsManifest(Manifest):
    """`factory shards`: packed token sequences, tied to the vocabulary they were tokenised with.

    Version 3: one language per row and per file (`shard-LANG-NNNNN.arrow`), `per_language`, budgets, tasks."""

    STEP: ClassVar[str] = "shards"
    COMMAND: ClassVar[str] = "factory shards"
    VERSION: ClassVar[int] = 3

    vocab_fingerprint: str  # of spm.model: pre-training refuses shards of another vocabulary
    vocab_pieces: int
    mask_token_id: int
    seq_len: int
    documents: int
    sequences: int
    tokens: int
    padding: int
    shards: list[ShardFile]  # in row order: languages sorted, each language's files in order
    corpus: list[str]  # the --corpus sources, as given
    per_language: dict[str, LanguageFigures] = field(default_factory=dict)
    alpha: float | None = None  # the budget split's exponent (None: no total budget)
    counts: dict[str, Any] = field(default_factory=dict)  # documents read and dropped (factory.corpus)
    build: str = ""  # fingerprint of settings + vocabulary + local inputs: a rebuild of the same is skipped
    task: TaskPart | None = None  # a --task part, not a whole shard set
    vocab_source: ModelSource | None = None  # --vocab as given (a published model's Hub id: its commit)
