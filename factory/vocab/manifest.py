"""`factory vocab`'s manifest (factory.json): factory/core/manifest.py says what every manifest holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from factory.core.manifest import Manifest


# ---- vocab ---------------------------------------------------------------------------------------
@dataclass
class CorpusCounts:
    """Documents read and kept while building the vocabulary's sample (`counts` in the manifest)."""

    read: int
    kept: int
    kept_per_language: dict[str, int]
    chars_per_language: dict[str, int]
    dropped: dict[str, int]
    sample: dict[str, int]  # documents per language in the SentencePiece sample
    sample_lines: int


@dataclass
class VocabShape:
    """The sizes a model needs: SentencePiece pieces, the [MASK] id after them, and the embedding rows."""

    pieces: int
    mask_id: int
    embedding_rows: int


@dataclass(kw_only=True)
class VocabManifest(Manifest):
    """`factory vocab`: a SentencePiece vocabulary with the Hugging Face tokenizer files."""

    STEP: ClassVar[str] = "vocab"
    COMMAND: ClassVar[str] = "factory vocab"

    inputs: dict[str, Any]  # corpus source -> sha256 prefix (a folder: one per file)
    counts: CorpusCounts
    vocab: VocabShape
    languages: list[str]  # the languages it was built for (--langs, or the corpus' lang= prefixes)
    corpus: list[str]  # the --corpus sources, as given
    alpha: float  # language sampling exponent
