"""The options of `factory presets` and `factory init`, and the model's shape options that `factory pretrain`
shares (ShapeOptions). No torch: `factory --help` builds the commands' options from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.options import option
from factory.core.step_options import (
    FORCE_HELP,
    LAYOUT_HELP,
    LAYOUTS,
    size_problems,
)
from factory.core.vocab_sizes import DEFAULT_VOCAB_SIZE

PRESET_NAMES = ("debug", "xsmall", "small", "base", "large", "xlarge", "xxlarge")  # == factory.model.presets.PRESETS

HEADS = ("none", "mlm", "rtd", "cls", "tokens", "qa")  # == factory.model.heads.HEADS


# ---- the model's shape (init, pretrain) ----------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ShapeOptions:
    """The size of the model `factory init` and `factory pretrain` build (and a recipe's `steps.pretrain`): a
    preset, or a shape between the presets with some of its sizes replaced (factory/model/presets.py `get_shape`).
    A shape that differs from its preset is recorded as "custom", never under the preset's name."""

    SCHEMA: ClassVar[int] = 1  # the configs that include it have their own

    preset: str = option("base", "Size preset (with --layers/--hidden/--heads/--ffn: the shape to start from).",
                         choices=PRESET_NAMES)  # fmt: skip
    layers: int | None = option(None, "Layers instead of the preset's (the RTD generator gets half, at least 1).",
                                low=1)  # fmt: skip
    hidden: int | None = option(None, "Hidden size instead of the preset's.", low=1)
    heads: int | None = option(None, "Attention heads instead of the preset's; they must divide the hidden size.",
                               low=1)  # fmt: skip
    ffn: int | None = option(None, "Feed-forward size [default: the preset's, 4 x --hidden when it is given].",
                             low=1)  # fmt: skip

    def problems(self) -> list[str]:
        if self.hidden is None and self.heads is None and self.layers is None and self.ffn is None:
            return []
        from factory.model.presets import shape_problems  # torch: only when a shape is given, so --help stays instant

        return shape_problems(self.preset, self.hidden, self.heads, self.layers, self.ffn)


# ---- init / presets ------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PresetsConfig:
    """`factory presets`."""

    SCHEMA: ClassVar[int] = 1

    vocab_size: str = option(DEFAULT_VOCAB_SIZE, "Vocabulary: 32k, 128k, 250k or a number.")
    json: bool = option(False, "Print JSON instead of a table.", secondary=False)

    def problems(self) -> list[str]:
        return size_problems("--vocab-size", self.vocab_size)


@dataclass(frozen=True, kw_only=True)
class InitConfig(ShapeOptions):
    """`factory init`: a randomly initialised model folder."""

    SCHEMA: ClassVar[int] = 1

    vocab_size: str = option(DEFAULT_VOCAB_SIZE, "Vocabulary: 32k, 128k, 250k or a number (ignored with --vocab).")
    vocab: Path | None = option(None, "Vocabulary folder: size the embedding to its spm.model and copy its tokenizer.")
    layout: str = option("official", LAYOUT_HELP, choices=LAYOUTS)
    head: str = option("none", "none: bare encoder (AutoModel); mlm: generator head; rtd: discriminator head; "
                       "cls: sequence classification; tokens: token classification; qa: extractive QA.",
                       choices=HEADS)  # fmt: skip
    num_labels: int = option(2, "Labels of --head cls.", low=1)
    seed: int = option(0, "Seed for the random weights.")
    out: Path = option(help="Folder to write.")
    force: bool = option(False, FORCE_HELP, secondary=False)

    def problems(self) -> list[str]:
        return super().problems() + ([] if self.vocab else size_problems("--vocab-size", self.vocab_size))
