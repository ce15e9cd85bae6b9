"""The options of `factory run RECIPE` (the recipe's own steps are resolved from its sections). No torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from factory.core.options import option


# ---- run / publish -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """`factory run RECIPE`: the recipe's own steps are resolved from its sections (see factory/recipe/run.py)."""

    SCHEMA: ClassVar[int] = 1

    recipe: str = option(help="A recipe name (demo, debertina-base, ...) or a .yaml file.", cli=False)
    set: list[str] = option([], "Override a recipe value, e.g. --set steps.pretrain.max_steps=100 (repeatable).",
                            repeat=True, metavar="KEY=VALUE")  # fmt: skip
    run_dir: Path | None = option(None, "Where the steps write [default: the recipe's run_dir, else runs/NAME].")
    dry_run: bool = option(False, "Print the plan (commands, parameters, tokens, FLOPs, time, disk).", secondary=False)
    resume: bool = option(False, "Continue the pre-training in the run folder although the recipe's settings or "
                          "its inputs changed since it started (pretrain refuses what a checkpoint cannot continue, "
                          "e.g. another batch). Without it such a run is refused; an interrupted one whose settings "
                          "did not change always continues, and none is deleted.", secondary=False)  # fmt: skip
    publish: bool = option(False, "Upload to the Hub at the end (otherwise the card and folder are only staged).",
                           secondary=False)  # fmt: skip
