"""The manifests of `factory trim` and `factory transplant`: what the model was derived from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from factory.core.manifest import Manifest, ModelSource


# ---- trim / transplant ---------------------------------------------------------------------------
@dataclass(kw_only=True)
class DerivedManifest(Manifest):
    """A model made from another by changing its vocabulary (`factory trim`, `factory transplant`): what it came
    from, and its size before and after. `base_manifest` is the source folder's own factory.json, kept as it was
    (how the weights were pre-trained), or None."""

    base: ModelSource  # the source: a folder, or a Hub id and the commit its files came from
    base_manifest: dict[str, Any] | None = None
    pieces_before: int
    pieces_after: int
    rows_before: int
    rows_after: int
    parameters_before: dict[str, int]  # the model's (bare encoder): backbone, embedding, total
    parameters_after: dict[str, int]
    seconds: float  # wall time of the command


@dataclass
class TrimLanguage:
    """One language's text under the model's tokenizer before and after trimming (the first documents)."""

    documents: int
    words: int
    unchanged: float  # share of the words cut into the same pieces
    fertility_before: float  # pieces per word
    fertility_after: float


@dataclass(kw_only=True)
class TrimManifest(DerivedManifest):
    """`factory trim`: the pieces the languages use, the rest removed."""

    STEP: ClassVar[str] = "trim"
    COMMAND: ClassVar[str] = "factory trim"

    languages: list[str]
    scripts: list[str]  # the languages' scripts, whose single characters were kept
    always_kept: int  # pieces kept whatever the corpus (specials, bytes, user-defined, characters, ...)
    used: int  # other pieces the corpus used
    per_language: dict[str, TrimLanguage]


@dataclass(kw_only=True)
class TransplantManifest(DerivedManifest):
    """`factory transplant`: the model moved onto another vocabulary."""

    STEP: ClassVar[str] = "transplant"
    COMMAND: ClassVar[str] = "factory transplant"

    vocab: ModelSource  # the new vocabulary: a folder, or a model's tokenizer (a Hub id)
    vocab_manifest: dict[str, Any] | None = None  # its factory.json, as it was
    init: str  # mean (FVT) or random: how the new pieces' rows were made
    shared: int  # pieces of both vocabularies: rows copied
    new: int  # pieces only the new vocabulary has: rows made by `init`
    pieces_per_new: float | None = None  # mean: old pieces averaged per new piece (None: random, or no new piece)
    unknown_in_new: int | None = None  # mean: new pieces whose old segmentation holds [UNK]
