"""The step registry: each step of the pipeline by name, with its config, the function that runs it and the
manifest it writes. `factory run` plans and runs a recipe's steps through it, and asks it which manifest says a
step's output is complete; adding a step is one entry here (and its package: config, manifest, run).

Entries name their parts as "module:attribute" and load them on use, so the registry imports no step's code
(and no torch) until a step runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StepSpec:
    """One step: its config class, its run function (`run(config)`, or `run(suite, config)` for a suite's
    evaluation) and its manifest schema (None: publish, whose output is its staged card)."""

    config: str
    run: str
    manifest: str | None
    per_suite: bool = False  # `eval SUITE`: the function takes the suite's name first

    def config_class(self) -> type:
        return _load(self.config)

    def manifest_class(self) -> type | None:
        return _load(self.manifest) if self.manifest else None

    def run_with(self, config: Any, suite: str | None = None) -> Any:
        function = _load(self.run)
        return function(suite, config) if self.per_suite else function(config)


STEPS: dict[str, StepSpec] = {
    "vocab": StepSpec("factory.vocab.config:VocabConfig", "factory.vocab.train:build",
                      "factory.vocab.manifest:VocabManifest"),
    "trim": StepSpec("factory.derive.config:TrimConfig", "factory.derive.trim:trim",
                     "factory.derive.manifest:TrimManifest"),
    "transplant": StepSpec("factory.derive.config:TransplantConfig", "factory.derive.transplant:transplant",
                           "factory.derive.manifest:TransplantManifest"),
    "shards": StepSpec("factory.shards.config:ShardsConfig", "factory.shards.run:build_shards",
                       "factory.shards.manifest:ShardsManifest"),
    "pretrain": StepSpec("factory.pretrain.config:PretrainConfig", "factory.pretrain.step:run_pretrain",
                         "factory.pretrain.manifest:PretrainManifest"),
    "eval": StepSpec("factory.evaluate.config:EvalConfig", "factory.evaluate.entry:evaluate",
                     "factory.evaluate.manifest:EvalManifest", per_suite=True),
    "eval.retrieval": StepSpec("factory.evaluate.config:RetrievalConfig", "factory.evaluate.retrieval:run",
                               "factory.evaluate.manifest:EvalManifest"),
    "publish": StepSpec("factory.publish.config:PublishConfig", "factory.publish.hub:publish", None),
}  # fmt: skip
INIT_MANIFEST = "factory.model.manifest:InitManifest"  # `factory init`: a model folder, no recipe step


def spec_of(name: str) -> StepSpec:
    """A plan step's entry: "eval.xnli" -> STEPS["eval"], "eval.retrieval" its own."""
    return STEPS[name] if name in STEPS else STEPS[name.split(".", 1)[0]]


def schemas() -> tuple[type, ...]:
    """Every manifest schema factory writes (the steps' and `factory init`'s)."""
    found = [spec.manifest_class() for spec in STEPS.values() if spec.manifest]
    return tuple(dict.fromkeys([*found, _load(INIT_MANIFEST)]))


def schema_for(step: str) -> type | None:
    """The schema a step writes ("eval xnli" -> EvalManifest); None for a step that writes none (publish)."""
    return next((s for s in schemas() if s.owns(step)), None)


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
