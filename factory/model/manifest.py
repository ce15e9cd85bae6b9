"""`factory init`'s manifest and the model shape that pre-training's records too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from factory.core.manifest import Manifest


@dataclass
class ModelShape:
    """The sizes of the model a step built (`factory.model.presets.Shape.sizes()`); `preset` beside it is the preset's
    name only when these are that preset's sizes, else "custom" (and `base_preset` the one it came from)."""

    layers: int
    hidden: int
    heads: int
    ffn: int
    generator_layers: int  # of the RTD pair (half the depth, at least 1); `factory init` writes one network


# ---- init ----------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class InitManifest(Manifest):
    """`factory init`: a randomly initialised model folder."""

    STEP: ClassVar[str] = "init"
    COMMAND: ClassVar[str] = "factory init"

    parameters: dict[str, int]
    preset: str | None = None  # the preset's name, or "custom" (factory writes it; None: not recorded)
    base_preset: str | None = None
    shape: ModelShape | None = None
