"""`factory pretrain`'s manifest (factory.json): the figures of the run, where it started, its sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from factory.core.manifest import Manifest, ModelSource
from factory.model.manifest import ModelShape


@dataclass
class BaseModel:
    """The Hub model a derived one descends from (the card's `base_model`)."""

    repo_id: str
    revision: str | None = None


@dataclass
class InitFrom:
    """`factory pretrain --init-from`: where the two networks started (factory/pretrain/start.py)."""

    source: ModelSource  # the discriminator
    generator: str  # given / published / folder / derived
    generator_source: ModelSource | None = None  # --init-generator
    generator_rule: str | None = None  # derived: lower-half / fresh
    emd: bool | None = None  # the generator's enhanced mask decoder
    base_model: BaseModel | None = None  # the Hub model it descends from (itself, or the one its folder records)


# ---- pretrain ------------------------------------------------------------------------------------
@dataclass
class Losses:
    """The last logged window of the run (None when nothing was logged, e.g. a finished run resumed)."""

    mlm_loss: float | None = None
    rtd_loss: float | None = None
    rtd_accuracy: float | None = None
    rtd_baseline: float | None = None
    mlm_accuracy: float | None = None


@dataclass
class Hardware:
    device: str
    count: int | None
    kind: str  # "cuda" or "cpu"
    hardware_summary: str  # "2 x NVIDIA H100" / "16 CPU cores (x86_64)", as the card shows it


@dataclass
class ProbeArm:
    """One model's parallel-sentence retrieval accuracy@1 (%) in a --probe (factory/pretrain/probe.py)."""

    to_pivot: float  # averages over the languages
    from_pivot: float
    average: float  # of the two directions
    languages: dict[str, float]  # each language's two directions averaged


@dataclass
class ProbeFigures:
    """`factory pretrain --probe`: the last probe of the discriminator, and the random-init control's."""

    data: str
    pivot: str
    step: int  # the step of the last probe (the run's last step)
    every: int
    pretrained: ProbeArm
    control: ProbeArm | None = None


@dataclass
class SamplingPhase:
    """A phase of pre-training's language mix (factory/pretrain/mixing.py): from `start_step` on, each row of a
    batch is language i with probability p[i] = n_i^alpha / sum_j n_j^alpha over the languages in by then."""

    start_step: int
    alpha: float
    p: dict[str, float]


@dataclass
class Session:
    """One session of a pre-training run: from which step it trained, and the arguments it was given that differ
    from the session before (those a resume may change: more steps, another micro-batch or precision, ...)."""

    from_step: int
    changed: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class PretrainManifest(Manifest):
    """`factory pretrain`: the run folder's manifest, and (with `role`) each exported network's.

    The plan's sizes are required; what a run measures or where it ran may be absent (None), and the
    card then leaves that row out rather than guess it.
    """

    STEP: ClassVar[str] = "pretrain"
    COMMAND: ClassVar[str] = "factory pretrain"

    role: str | None = None  # None: the run folder; "discriminator" / "generator": an exported model folder
    preset: str  # the preset's name, or "custom"
    base_preset: str | None = None  # the preset the shape started from (factory writes it; None: not recorded)
    shape: ModelShape | None = None  # the sizes (factory writes them; None: not recorded)
    vocab_size: int  # SentencePiece pieces
    embedding_rows: int
    seq_len: int
    batch: int  # sequences per optimizer step, all processes
    micro_batch: int
    accumulation: int
    processes: int
    lr: float
    warmup: int | None = None
    sharing: str  # gdes / es / nes
    rtd_lambda: float
    mixed_precision: str | None = None
    steps: int
    tokens: int
    parameters: dict[str, int]
    flops_per_step: float
    final: Losses = field(default_factory=Losses)
    tokens_per_s: float | None = None
    mfu: float | None = None
    wall_time_s: float | None = None
    hardware: Hardware | None = None
    shards: str
    vocab_fingerprint: str
    probe: ProbeFigures | None = None  # --probe only
    language_sampling: list[SamplingPhase] | None = None  # shards with several languages only
    tokens_seen_per_language: dict[str, int] | None = None  # rows x seq_len per language over the run
    sessions: list[Session] | None = None  # one per start or resume (None: not recorded)
    init_from: InitFrom | None = None  # --init-from: the model the run continued (None: from scratch)
    update_order: str | None = None  # joint / official (None: not recorded, joint)
