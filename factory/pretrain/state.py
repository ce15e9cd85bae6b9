"""`Run`: what `setup` builds (factory/pretrain/loop.py) and the loop, its checkpoints (checkpoint.py) and its probe
(probe.py) read. The order of the pre-training modules: state < checkpoint, probe < loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factory.pretrain.batches import Feed
    from factory.pretrain.config import PretrainConfig
    from factory.pretrain.mixing import BatchOrder, LanguageOrder, Mix
    from factory.pretrain.plan import Plan


@dataclass
class Run:
    """What `setup` builds and the loop uses."""

    config: PretrainConfig
    plan: Plan
    accelerator: Any
    model: Any
    optimizer: Any
    schedule: Any
    shards: Any
    order: BatchOrder | LanguageOrder  # which shard rows make up each step (mixing.py: one language or several)
    mask_id: int
    vocab_fingerprint: str
    mix: Mix  # the shards' languages and the sampling phases (tokens seen per language)
    feed: Feed  # this process's micro-batches, one step ahead (batches.py)
    start_step: int = 0
    elapsed: float = 0.0  # wall time of earlier sessions of this run (resume)
    last_checkpoint: Path | None = None
    probe: Any = None  # --probe: factory.pretrain.probe.Probe, or None
    generator_optimizer: Any = None  # --update-order official: the generator's own optimizer and schedule
    generator_schedule: Any = None
    start: dict[str, Any] | None = None  # --init-from: where the networks started (start.Start.record)
    sessions: list[dict[str, Any]] = field(default_factory=lambda: [{"from_step": 0, "changed": {}}])  # resumes
