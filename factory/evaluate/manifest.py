"""`factory eval SUITE`'s manifest (factory.json); the full numbers are in results.json beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from factory.core.manifest import Manifest, ModelSource


# ---- eval ----------------------------------------------------------------------------------------
@dataclass
class EvalInputs:
    model: str  # as given: a folder or a Hub id
    model_fingerprint: str | None = None  # of model.safetensors; None for other weight formats
    source: ModelSource | None = None  # the Hub repository and commit, for a Hub id (factory/core/sources.py)


@dataclass
class EvalFigures:
    average: dict[str, dict[str, Any]]  # split -> {"accuracy": ..., "std": ...}
    languages: list[str]
    splits: list[str]


@dataclass(kw_only=True)
class EvalManifest(Manifest):
    """`factory eval SUITE` (step "eval SUITE"); the full numbers are in results.json beside it."""

    STEP: ClassVar[str] = "eval"
    COMMAND: ClassVar[str] = "factory eval"

    inputs: EvalInputs
    figures: EvalFigures
