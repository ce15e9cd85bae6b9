"""The grammar of vocabulary sizes (`32k`, `128k`, `250k`, `128000`) and their embedding rows: below
the step configs (whose `problems()` check `--size`/`--vocab-size` with the other options, and whose defaults
name DEFAULT_VOCAB_SIZE) and factory.model.presets (the model sizes), so neither imports the other for it. No torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from factory.core.errors import ConfigError, short_value
from factory.core.options import whole_number

DEFAULT_VOCAB_SIZE = "128k"  # the v3 vocabulary, when a plan or a random model names none

# Published embedding layouts: SentencePiece pieces -> embedding rows. v3 keeps 100 spare rows after
# [MASK] (HF #12428, 128100 rows for 128k); DeBERTina's 32k follows v3; mDeBERTa has 251000 rows.
PUBLISHED_ROWS = {32_000: 32_100, 128_000: 128_100, 250_000: 251_000}
MIN_PIECES = 1000
MAX_PIECES = 2_000_000  # 8x mDeBERTa's 250k; beyond this an embedding table is a typo, not a vocabulary


@dataclass(frozen=True)
class VocabSize:
    """A vocabulary: `pieces` SentencePiece pieces (specials included), [MASK] at id `pieces`, and
    `rows` embedding rows (>= pieces + 1)."""

    pieces: int
    rows: int
    layout: str  # "official" (published rows) or "pad128" (rounded up to a multiple of 128 for GPUs)

    @classmethod
    def parse(cls, text: str | int, layout: str = "official") -> VocabSize:
        """'32k', '128k', '250k', '128000' or 128000 -> VocabSize."""
        match = re.fullmatch(r"\s*(\d+)\s*([kK]?)\s*", str(text))
        if not match:
            raise ConfigError(f"vocab size {short_value(text)} is not a size; write it like 32k, 128k, 250k or 128000")
        number = whole_number(match.group(1))
        pieces = None if number is None else number * (1000 if match.group(2) else 1)
        if pieces is not None and pieces < MIN_PIECES:
            raise ConfigError(f"vocab size {pieces} is too small; use at least {MIN_PIECES} (e.g. 2k for tests)")
        if pieces is None or pieces > MAX_PIECES:
            shown = short_value(str(text).strip(), quote=False) if pieces is None else f"{pieces:,}"
            raise ConfigError(f"vocab size {shown} is too large; use at most {MAX_PIECES:,} (mDeBERTa has 250k)")
        return cls.from_pieces(pieces, layout)

    @classmethod
    def from_pieces(cls, pieces: int, layout: str = "official") -> VocabSize:
        if layout == "official":
            rows = PUBLISHED_ROWS.get(pieces, pieces + 100)
        elif layout == "pad128":
            rows = -(-(pieces + 1) // 128) * 128
        else:
            raise ConfigError(f"embedding layout {layout!r} unknown; use 'official' or 'pad128'")
        return cls(pieces=pieces, rows=rows, layout=layout)

    def __str__(self) -> str:
        return f"{self.pieces // 1000}k" if self.pieces % 1000 == 0 else str(self.pieces)
