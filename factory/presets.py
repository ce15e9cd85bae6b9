"""Size presets of the DeBERTa-v3 architecture, in one table, and vocabulary sizes.

The vocabulary is independent of the preset: `PRESETS["base"].config(VocabSize.parse("32k"))` is a
DeBERTina-base, `...parse("250k")` an mDeBERTa-base. Parameter counts are always computed from an
instantiated model (`count_parameters`), never typed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from factory.errors import ConfigError
from factory.model.config import ModelConfig


@dataclass(frozen=True)
class Preset:
    """One row of the size table (docs/architecture.md#presets); head size is 64 everywhere but `debug`."""

    layers: int
    hidden: int
    heads: int
    conv: bool = False  # v2 xlarge/xxlarge: nGiE conv layer after layer 0
    source: str = ""

    @property
    def ffn(self) -> int:
        return 4 * self.hidden

    @property
    def generator_layers(self) -> int:
        """RTD generator: same width, half the depth (docs/pretraining.md#rtd-and-gdes)."""
        return max(1, self.layers // 2)

    def config(self, vocab: VocabSize | None = None, **overrides) -> ModelConfig:
        vocab = vocab or VocabSize.parse("128k")
        cfg = ModelConfig(
            vocab_size=vocab.rows,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=self.ffn,
            conv_kernel_size=3 if self.conv else 0,
            conv_act="gelu",
            factory={"vocab_pieces": vocab.pieces, "mask_token_id": vocab.pieces, "embedding_layout": vocab.layout},
        )
        return cfg.replace(**overrides) if overrides else cfg


PRESETS: dict[str, Preset] = {
    # debug: not a published size; the micro model tests and CI use (docs/architecture.md#presets).
    "debug": Preset(layers=2, hidden=64, heads=2, source="factory test size"),
    "xsmall": Preset(layers=12, hidden=384, heads=6, source="[MS] rtd_xsmall.json; 22M backbone"),
    "small": Preset(layers=6, hidden=768, heads=12, source="[MS] rtd_small.json; 44M backbone"),
    "base": Preset(layers=12, hidden=768, heads=12, source="[MS] rtd_base.json; 86M backbone"),
    "large": Preset(layers=24, hidden=1024, heads=16, source="[MS] rtd_large.json; 304M backbone"),
    "xlarge": Preset(layers=24, hidden=1536, heads=24, conv=True, source="[MS] deberta_xlarge.json (v2); 710M"),
    "xxlarge": Preset(layers=48, hidden=1536, heads=24, conv=True, source="[MS] deberta_xxlarge.json (v2); 1320M"),
}

# Published backbone sizes in millions ([MS] README), for tests and for the `presets` table.
PUBLISHED_BACKBONE_M = {"xsmall": 22, "small": 44, "base": 86, "large": 304, "xlarge": 710, "xxlarge": 1320}

# Published embedding layouts: SentencePiece pieces -> embedding rows. v3 keeps 100 spare rows after
# [MASK] (HF #12428, 128100 rows for 128k); DeBERTina's 32k follows v3; mDeBERTa has 251000 rows.
PUBLISHED_ROWS = {32_000: 32_100, 128_000: 128_100, 250_000: 251_000}
MIN_PIECES = 1000
MAX_PIECES = 2_000_000  # 8x mDeBERTa's 250k; beyond this an embedding table is a typo, not a vocabulary


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


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
            raise ConfigError(f"vocab size {text!r} is not a size; write it like 32k, 128k, 250k or 128000")
        pieces = int(match.group(1)) * (1000 if match.group(2) else 1)
        if pieces < MIN_PIECES:
            raise ConfigError(f"vocab size {pieces} is too small; use at least {MIN_PIECES} (e.g. 2k for tests)")
        if pieces > MAX_PIECES:
            raise ConfigError(f"vocab size {pieces:,} is too large; use at most {MAX_PIECES:,} (mDeBERTa has 250k)")
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


def count_parameters(config: ModelConfig) -> dict[str, int]:
    """Backbone / embedding / total parameters of the bare encoder, counted on a meta-device model."""
    import torch

    from factory.model.encoder import DebertaModel

    with torch.device("meta"):
        model = DebertaModel(config)
    total = sum(p.numel() for p in model.parameters())
    embedding = model.embeddings.word_embeddings.weight.numel()
    return {"backbone": total - embedding, "embedding": embedding, "total": total}


def preset_table(vocab: VocabSize) -> list[dict]:
    """One row per preset, as `factory presets` prints it."""
    rows = []
    for name, preset in PRESETS.items():
        counts = count_parameters(preset.config(vocab))
        rows.append(
            {
                "preset": name,
                "layers": preset.layers,
                "hidden": preset.hidden,
                "heads": preset.heads,
                "ffn": preset.ffn,
                "generator_layers": preset.generator_layers,
                "vocab_pieces": vocab.pieces,
                "embedding_rows": vocab.rows,
                **counts,
                "published_backbone_m": PUBLISHED_BACKBONE_M.get(name),
            }
        )
    return rows
