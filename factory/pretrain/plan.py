"""The plan of a run: sizes, schedule, parameters, FLOPs and memory, all resolved before any weight exists.

`make_plan` is everything `--dry-run` prints, and the same object the trainer runs from, so a dry run shows
exactly the run that would start (bad sizes are one-line ConfigErrors here, before anything is written).

FLOPs per optimizer step (printed by --dry-run; used for MFU):
    6 * T * (N_gen + N_disc)                      dense matmuls, T = tokens per step, N = non-embedding params
  + 12 * T * H * (L + 2 * span) * (layers_g + layers_d)   attention: QK^T, AV (L keys) + c2p, p2c (2*span rows)
  + 6 * T_masked * H * V                          the generator's tied output layer at masked positions only
(forward = 1/3 of it; the relative-embedding projections, LayerNorms and softmax are left out: < 2%).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.core.errors import ConfigError
from factory.core.vocab_sizes import DEFAULT_VOCAB_SIZE
from factory.model.presets import Shape, VocabSize, as_shape, layer_parameters, shape_of
from factory.pretrain.config import (
    CONTINUE_LR,
    DEFAULT_LR,
    MAX_MICRO_BATCH,
    PAPER_STEPS,
    PEAK_LR,
    WARMUP,
    PretrainConfig,
)
from factory.pretrain.rtd import max_predictions
from factory.shards.config import SEQ_LEN

if TYPE_CHECKING:
    from factory.pretrain.start import Start


@dataclass
class Plan:
    """Resolved sizes and schedule; `--dry-run` prints this and stops."""

    shape: Shape  # the preset's, or a custom shape from it (`preset` says which)
    vocab: VocabSize
    seq_len: int
    batch: int
    micro_batch: int
    processes: int
    accumulation: int
    steps: int
    warmup: int
    lr: float
    parameters: dict[str, int] = field(default_factory=dict)
    flops_per_step: float = 0.0
    memory_gib: dict[str, float] = field(default_factory=dict)
    generator_warmup: int = 0  # first steps that train the generator alone (--init-from, factory/pretrain/start.py)

    @property
    def preset(self) -> str:
        """The preset's name, or "custom" for a shape between the presets (as the manifests record it)."""
        return self.shape.name

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.seq_len

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preset"] = self.preset
        d["shape"] = {"base_preset": self.shape.base, **self.shape.sizes()}
        d["vocab"] = {"pieces": self.vocab.pieces, "rows": self.vocab.rows, "layout": self.vocab.layout}
        d["tokens_per_step"] = self.tokens_per_step
        d["tokens"] = self.tokens_per_step * self.steps
        return d


def model_config(shape: Shape | str, vocab: VocabSize, dropout: float | None = None):
    """The discriminator's config for a shape (or a preset's name) and vocabulary (the generator is derived from
    it), marked with the preset, or "custom" and its sizes, so the exports say what they were trained as."""
    config = as_shape(shape).config(vocab)
    if dropout is not None:
        config = config.replace(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return config


def count_rtd_parameters(shape: Shape | str, vocab: VocabSize, sharing: str = "gdes") -> dict[str, int]:
    """Parameters of generator, discriminator and their shared/own embedding tables: one layer of each network
    instantiated on the meta device (free) and counted once per layer (presets.count_parameters)."""
    import torch

    from factory.pretrain.rtd import RTDModel

    shape = as_shape(shape)
    config = model_config(shape, vocab)
    with torch.device("meta"):
        model = RTDModel(config.replace(num_hidden_layers=1), 1, sharing)
    gen = sum(p.numel() for p in model.generator.parameters())
    gen += (shape.generator_layers - 1) * layer_parameters(model.generator.deberta)
    disc = sum(p.numel() for p in model.discriminator.parameters())
    disc += (config.num_hidden_layers - 1) * layer_parameters(model.discriminator.deberta)
    emb = vocab.rows * config.hidden_size
    extra = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("generator.", "discriminator.")))
    disc_emb = emb if sharing == "nes" else 0
    return {
        "generator": gen,
        "discriminator": disc + extra,
        "embedding_tables": emb + disc_emb + extra,
        "generator_body": gen - emb,
        "discriminator_body": disc - disc_emb,
        "total": gen + disc + extra,
    }


def attention_flops(config, tokens: int, seq_len: int) -> int:
    """Forward FLOPs of one layer's score products: QKᵀ and PV over L keys, c2p and p2c over the 2·span
    relative rows (backward is twice this)."""
    terms = ("c2p" in config.pos_att_type) + ("p2c" in config.pos_att_type)
    return 2 * tokens * config.hidden_size * (2 * seq_len + terms * 2 * config.att_span)


def flops_per_step(shape: Shape | str, vocab: VocabSize, seq_len: int, batch: int, params: dict[str, int]) -> float:
    """The module docstring's formula: dense + attention + the generator's output layer at masked tokens."""
    p = as_shape(shape)
    config = p.config(vocab)
    tokens = batch * seq_len
    masked = batch * max_predictions(seq_len)
    dense = 6 * tokens * (params["generator_body"] + params["discriminator_body"])
    attention = 3 * attention_flops(config, tokens, seq_len) * (p.layers + p.generator_layers)
    output = 6 * masked * config.hidden_size * vocab.rows
    return float(dense + attention + output)


def memory_estimate(shape: Shape | str, params: dict[str, int], micro_batch: int, seq_len: int, mixed: bool) -> dict:
    """GiB per process: fp32 weights + grads + Adam (16 B/param) and activations (Korthikanti et al. 2022:
    s*b*h*(34 + 5*a*s/h) bytes per layer in 16-bit; doubled in fp32). A rough guide, not a promise."""
    p = as_shape(shape)
    states = 16 * params["total"]
    per_layer = seq_len * micro_batch * p.hidden * (34 + 5 * p.heads * seq_len / p.hidden)
    activations = per_layer * (p.layers + p.generator_layers) * (1 if mixed else 2)
    gib = 1024**3
    return {"states": states / gib, "activations": activations / gib, "total": (states + activations) / gib}


def world_size() -> int:
    """Processes of this launch (accelerate/torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_vocab(config: PretrainConfig) -> VocabSize:
    """The vocabulary's size from --vocab's spm.model, or from --vocab-size for a dry run without one."""
    if config.vocab is not None:
        from factory.model.tokenizer import Tokenizer

        return VocabSize.from_pieces(Tokenizer.from_folder(config.vocab).num_pieces, config.layout)
    return VocabSize.parse(config.vocab_size or DEFAULT_VOCAB_SIZE, config.layout)


def make_plan(config: PretrainConfig, seq_len: int, processes: int | None = None, start: Start | None = None) -> Plan:
    """Validate the sizes and resolve the schedule; every problem is a one-line ConfigError. The model's shape
    is `shape_of(config)` (the preset with --layers/--hidden/--heads/--ffn), which the trainer builds from, or with
    --init-from the starting model's (factory/pretrain/start.py: `start`, opened here when not given)."""
    if config.init_from and start is None:
        from factory.pretrain.start import open_start

        start = open_start(config)
    shape = start.shape if start else shape_of(config)
    vocab = start.vocab_size if start else resolve_vocab(config)
    architecture = start.config if start else shape.config(vocab)
    if seq_len > architecture.max_position_embeddings:
        raise ConfigError(
            f"--seq-len {seq_len} is above the model's {architecture.max_position_embeddings}: relative attention "
            f"would run, but the position buckets ({architecture.position_buckets}, up to "
            f"{architecture.max_relative_span}) were set for {architecture.max_position_embeddings} tokens and every "
            "v3 recipe trains at 512; rebuild the shards with --seq-len 512 or less"
        )
    processes = processes or world_size()
    if config.batch % processes:
        raise ConfigError(f"--batch {config.batch} is not divisible by the {processes} processes; pick a multiple")
    micro = config.micro_batch or min(MAX_MICRO_BATCH, config.batch // processes)
    if config.batch % (micro * processes):
        raise ConfigError(
            f"--batch {config.batch} is not a multiple of --micro-batch {micro} x {processes} processes; "
            "pick sizes that divide"
        )
    if config.tokens is not None:
        steps = max(1, math.ceil(config.tokens / (config.batch * seq_len)))
    else:
        steps = config.max_steps if config.max_steps is not None else PAPER_STEPS
    warmup = config.warmup if config.warmup is not None else min(WARMUP, steps // 10)
    lr = config.lr if config.lr is not None else PEAK_LR.get(shape.base, DEFAULT_LR)  # a custom shape: its preset's
    if config.lr is None and start is not None:
        lr = CONTINUE_LR
    generator_warmup = config.generator_warmup
    if generator_warmup >= steps:
        raise ConfigError(f"--generator-warmup {generator_warmup} leaves none of the {steps} steps for the "
                          "discriminator; give fewer")  # fmt: skip
    params = count_rtd_parameters(shape, vocab, config.sharing)
    mixed = config.mixed_precision not in ("no",)
    return Plan(
        shape=shape,
        vocab=vocab,
        seq_len=seq_len,
        batch=config.batch,
        micro_batch=micro,
        processes=processes,
        accumulation=config.batch // (micro * processes),
        steps=steps,
        warmup=warmup,
        lr=lr,
        parameters=params,
        flops_per_step=flops_per_step(shape, vocab, seq_len, config.batch, params),
        memory_gib=memory_estimate(shape, params, micro, seq_len, mixed),
        generator_warmup=generator_warmup,
    )


def plan_time(plan: Plan, assume_tflops: float, assume_tokens_per_s: float | None) -> float:
    """Seconds for the whole run at an achieved throughput (model TFLOP/s over all processes, or tokens/s)."""
    if assume_tokens_per_s:
        return plan.tokens_per_step * plan.steps / assume_tokens_per_s
    return plan.flops_per_step * plan.steps / (assume_tflops * 1e12)


# ---- what --dry-run prints -----------------------------------------------------------------------
def dry_run_seq_len(config: PretrainConfig) -> int:
    """The length a dry run plans for: --seq-len, else the shards', else 512."""
    from factory.core.manifest import find_manifest
    from factory.shards.manifest import ShardsManifest

    if config.seq_len is not None:
        return config.seq_len
    manifest = find_manifest(config.shards, ShardsManifest) if config.shards and Path(config.shards).is_dir() else None
    return manifest.seq_len if manifest is not None else SEQ_LEN


def shape_line(shape: Shape) -> str:
    """ "preset debug (2 layers, generator 1, ...)" or "custom shape from debug (3 layers, ...)": the sizes always."""
    what = f"custom shape from {shape.base}" if shape.custom else f"preset {shape.base}"
    return (
        f"{what} ({shape.layers} layers, generator {shape.generator_layers}, hidden {shape.hidden}, "
        f"{shape.heads} heads, FFN {shape.ffn})"
    )


def start_lines(config: PretrainConfig, plan: Plan, start: Start | None) -> list[str]:
    """--init-from: where the two networks start (`start`, the plan's), and the update order."""
    if not config.init_from or start is None:
        return []
    gen = start.generator
    where = {"given": f"--init-generator {config.init_generator}", "published": "the published generator beside it",
             "folder": f"the generator in {gen.folder}",
             "derived": f"derived by the {gen.rule} rule"}[gen.kind]  # fmt: skip
    warm = f", {plan.generator_warmup:,} generator-only steps first" if plan.generator_warmup else ""
    cached = f" (files in {start.source.path})" if start.source.is_hub else ""
    depth = start.generator_config.num_hidden_layers
    return [
        f"continue from {start.source}{cached}; generator: {where} ({depth} layer{'s' * (depth != 1)}, EMD "
        f"{config.emd}){warm}; update order {config.update_order}",
    ]


def dry_run_lines(config: PretrainConfig) -> list[str]:
    """Sizes, batch, schedule, FLOPs, memory, time at the assumed throughput and the language mix (p per phase),
    then the plan as JSON."""
    from factory.pretrain.mixing import dry_run_mix

    start = None
    if config.init_from:
        from factory.pretrain.start import open_start

        start = open_start(config)  # once: the plan and the lines below read it
    plan = make_plan(config, dry_run_seq_len(config), start=start)
    seconds = plan_time(plan, config.assume_tflops, config.assume_tokens_per_s)
    p, m = plan.parameters, plan.memory_gib
    rate = f"{config.assume_tokens_per_s:,.0f} tokens/s" if config.assume_tokens_per_s else (
        f"{config.assume_tflops:g} TFLOP/s achieved")  # fmt: skip
    return [
        *start_lines(config, plan, start),
        f"{shape_line(plan.shape)}: vocabulary {plan.vocab.pieces:,} pieces ({plan.vocab.rows:,} rows), "
        f"seq_len {plan.seq_len}",
        f"parameters: generator {p['generator'] / 1e6:.1f}M + discriminator {p['discriminator'] / 1e6:.1f}M "
        f"= {p['total'] / 1e6:.1f}M (bodies {p['generator_body'] / 1e6:.1f}M + {p['discriminator_body'] / 1e6:.1f}M)",
        f"batch {plan.batch} sequences = {plan.tokens_per_step:,} tokens/step: micro-batch {plan.micro_batch} x "
        f"{plan.processes} process(es) x {plan.accumulation} accumulation step(s)",
        f"schedule: {plan.steps:,} steps ({plan.steps * plan.tokens_per_step:,} tokens), "
        f"warm-up {plan.warmup:,}, peak lr {plan.lr:g}",
        f"FLOPs/step {plan.flops_per_step:.3e} (6*N*T + attention + generator output layer; see "
        f"factory/pretrain/plan.py), total {plan.flops_per_step * plan.steps:.3e}",
        f"memory/process ~{m['total']:.1f} GiB (weights+grads+Adam {m['states']:.1f}, "
        f"activations {m['activations']:.1f})",
        f"time at {rate}: {seconds / 3600:.1f} h ({seconds / 86400:.2f} days)",
        *dry_run_mix(config, plan.batch, plan.steps, plan.seq_len),
        json.dumps(plan.as_dict(), default=str),
    ]
