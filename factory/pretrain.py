"""RTD + GDES pre-training on Accelerate: plan, loop, checkpoints, exact resume, export.

    factory pretrain --vocab v/ --shards s/ --preset base --out runs/base            # one process
    accelerate launch -m factory pretrain --vocab v/ --shards s/ --preset base ...    # DDP / FSDP / DeepSpeed

Chain: `run(args)` -> `make_plan` (sizes, steps, FLOPs, memory; all `--dry-run` prints) -> `setup` (Accelerator,
model, optimizer, schedule, resume) -> `train_step` per optimizer step -> `save_checkpoint` every N steps ->
`export` (discriminator + generator as deberta-v2 folders) -> factory.json with the figures.

Exactness. The global batch of step s is fixed by (seed, s) alone: rows come from a seeded permutation of the
shards, masks and sampling uniforms from a generator seeded by (seed, s, micro-step) over the *global* micro
batch, and each process takes its slice. Losses are sums divided by global counts, so N processes x A
accumulation steps compute the same gradient as one process with the whole batch. Dropout uses torch's global
RNG, which `save_state` stores; so a resumed run repeats a straight run bit for bit on CPU.

FLOPs per optimizer step (printed by --dry-run; used for MFU):
    6 * T * (N_gen + N_disc)                      dense matmuls, T = tokens per step, N = non-embedding params
  + 12 * T * H * (L + 2 * span) * (layers_g + layers_d)   attention: QK^T, AV (L keys) + c2p, p2c (2*span rows)
  + 6 * T_masked * H * V                          the generator's tied output layer at masked positions only
(forward = 1/3 of it; the relative-embedding projections, LayerNorms and softmax are left out: < 2%).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import ConfigError, TrainingError
from factory.outputs import fingerprint_file, read_manifest, staged_output, write_manifest
from factory.presets import VocabSize, get_preset
from factory.rtd import DEFAULT_RTD_LAMBDA, max_predictions
from factory.tokenizer import TOKENIZER_FILES, Tokenizer

if TYPE_CHECKING:
    import torch

    from factory.rtd import RTDModel

# Paper defaults (SPEC.md §6): AdamW(0.9, 0.98), eps 1e-6, wd 0.01 (not bias/LayerNorm), clip 1.0, warm-up 10k.
PEAK_LR = {"large": 3e-4, "xlarge": 3e-4, "xxlarge": 3e-4}  # base/small 5e-4; xsmall (U): 5e-4 as small
DEFAULT_LR = 5e-4
BETAS = (0.9, 0.98)
EPS = 1e-6
WEIGHT_DECAY = 0.01
CLIP = 1.0
WARMUP = 10_000
PAPER_STEPS = 500_000
PAPER_BATCH = 8192
CHECKPOINTS = "checkpoints"
SHARDS = "shards"  # `factory pretrain --corpus` builds its shards here
LOG_FILE = "train.jsonl"
TRAINER_STATE = "trainer.json"
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}  # dense bf16/fp16


@dataclass
class TrainArgs:
    """Everything `factory pretrain` takes; the resolved copy is written into every checkpoint."""

    out: Path
    vocab: Path | None = None
    shards: Path | None = None
    preset: str = "base"
    seq_len: int | None = None  # None: the shards' length (512 for a dry run without shards)
    batch: int = PAPER_BATCH  # global batch, in sequences per optimizer step
    micro_batch: int | None = None  # sequences per process per forward; None: min(32, batch / processes)
    lr: float | None = None  # None: the paper's peak lr for the preset
    warmup: int | None = None  # None: 10k steps, at most 10% of the run
    max_steps: int | None = None
    tokens: int | None = None  # train for this many tokens instead of --max-steps
    rtd_lambda: float = DEFAULT_RTD_LAMBDA
    sharing: str = "gdes"
    mixed_precision: str = "auto"  # auto: bf16 on a GPU that has it, else no
    dropout: float | None = None  # None: the config's 0.1
    seed: int = 0
    layout: str = "official"
    vocab_size: str | None = None  # dry run without --vocab
    save_every: int = 1000
    keep: int = 3
    log_every: int = 10
    log_with: tuple[str, ...] = ()
    resume: str | None = None  # "auto" or a checkpoint folder
    force: bool = False
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile each layer (fullgraph)
    peak_tflops: float | None = None  # for MFU; None: from the GPU name
    assume_tflops: float = 100.0  # dry run: time at this achieved throughput
    assume_tokens_per_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(self).items()
        }


# ---- the plan ------------------------------------------------------------------------------------
@dataclass
class Plan:
    """Resolved sizes and schedule; `--dry-run` prints this and stops."""

    preset: str
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

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.seq_len

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["vocab"] = {"pieces": self.vocab.pieces, "rows": self.vocab.rows, "layout": self.vocab.layout}
        d["tokens_per_step"] = self.tokens_per_step
        d["tokens"] = self.tokens_per_step * self.steps
        return d


def model_config(preset: str, vocab: VocabSize, dropout: float | None = None):
    config = get_preset(preset).config(vocab)
    if dropout is not None:
        config = config.replace(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return config.replace(factory={**config.factory, "preset": preset})


def count_rtd_parameters(preset: str, vocab: VocabSize, sharing: str = "gdes") -> dict[str, int]:
    """Parameters of generator, discriminator and their shared/own embedding tables (meta device: free)."""
    import torch

    from factory.rtd import RTDModel

    config = model_config(preset, vocab)
    with torch.device("meta"):
        model = RTDModel(config, get_preset(preset).generator_layers, sharing)
    gen = sum(p.numel() for p in model.generator.parameters())
    disc = sum(p.numel() for p in model.discriminator.parameters())
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


def flops_per_step(preset: str, vocab: VocabSize, seq_len: int, batch: int, params: dict[str, int]) -> float:
    """The module docstring's formula: dense + attention + the generator's output layer at masked tokens."""
    p = get_preset(preset)
    config = p.config(vocab)
    tokens = batch * seq_len
    masked = batch * max_predictions(seq_len)
    dense = 6 * tokens * (params["generator_body"] + params["discriminator_body"])
    attention = 3 * attention_flops(config, tokens, seq_len) * (p.layers + p.generator_layers)
    output = 6 * masked * config.hidden_size * vocab.rows
    return float(dense + attention + output)


def memory_estimate(preset: str, params: dict[str, int], micro_batch: int, seq_len: int, mixed: bool) -> dict:
    """GiB per process: fp32 weights + grads + Adam (16 B/param) and activations (Korthikanti et al. 2022:
    s*b*h*(34 + 5*a*s/h) bytes per layer in 16-bit; doubled in fp32). A rough guide, not a promise."""
    p = get_preset(preset)
    states = 16 * params["total"]
    per_layer = seq_len * micro_batch * p.hidden * (34 + 5 * p.heads * seq_len / p.hidden)
    activations = per_layer * (p.layers + p.generator_layers) * (1 if mixed else 2)
    gib = 1024**3
    return {"states": states / gib, "activations": activations / gib, "total": (states + activations) / gib}


def world_size() -> int:
    """Processes of this launch (accelerate/torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_vocab(args: TrainArgs) -> VocabSize:
    if args.vocab is not None:
        from factory.tokenizer import Tokenizer

        return VocabSize.from_pieces(Tokenizer.from_folder(args.vocab).num_pieces, args.layout)
    return VocabSize.parse(args.vocab_size or "128k", args.layout)


def make_plan(args: TrainArgs, seq_len: int, processes: int | None = None) -> Plan:
    """Validate the sizes and resolve the schedule; every problem is a one-line ConfigError."""
    preset = get_preset(args.preset)
    vocab = resolve_vocab(args)
    config = preset.config(vocab)
    if seq_len > config.max_position_embeddings:
        raise ConfigError(
            f"--seq-len {seq_len} is above the model's {config.max_position_embeddings}: relative attention would run, "
            f"but the position buckets ({config.position_buckets}, up to {config.max_relative_span}) were set for "
            f"{config.max_position_embeddings} tokens and every v3 recipe trains at 512; rebuild the shards with "
            "--seq-len 512 or less"
        )
    processes = processes or world_size()
    if args.batch % processes:
        raise ConfigError(f"--batch {args.batch} is not divisible by the {processes} processes; pick a multiple")
    micro = args.micro_batch or min(32, args.batch // processes)
    if args.batch % (micro * processes):
        raise ConfigError(
            f"--batch {args.batch} is not a multiple of --micro-batch {micro} x {processes} processes; "
            "pick sizes that divide"
        )
    if args.max_steps is not None and args.tokens is not None:
        raise ConfigError("give --max-steps or --tokens, not both")
    if args.tokens is not None:
        steps = max(1, math.ceil(args.tokens / (args.batch * seq_len)))
    else:
        steps = args.max_steps if args.max_steps is not None else PAPER_STEPS
    if steps < 1:
        raise ConfigError(f"--max-steps {steps} must be at least 1")
    warmup = args.warmup if args.warmup is not None else min(WARMUP, steps // 10)
    lr = args.lr if args.lr is not None else PEAK_LR.get(args.preset, DEFAULT_LR)
    params = count_rtd_parameters(args.preset, vocab, args.sharing)
    mixed = args.mixed_precision not in ("no",)
    return Plan(
        preset=args.preset,
        vocab=vocab,
        seq_len=seq_len,
        batch=args.batch,
        micro_batch=micro,
        processes=processes,
        accumulation=args.batch // (micro * processes),
        steps=steps,
        warmup=warmup,
        lr=lr,
        parameters=params,
        flops_per_step=flops_per_step(args.preset, vocab, seq_len, args.batch, params),
        memory_gib=memory_estimate(args.preset, params, micro, seq_len, mixed),
    )


def plan_time(plan: Plan, assume_tflops: float, assume_tokens_per_s: float | None) -> float:
    """Seconds for the whole run at an achieved throughput (model TFLOP/s over all processes, or tokens/s)."""
    if assume_tokens_per_s:
        return plan.tokens_per_step * plan.steps / assume_tokens_per_s
    return plan.flops_per_step * plan.steps / (assume_tflops * 1e12)


# ---- data ----------------------------------------------------------------------------------------
class BatchOrder:
    """Which shard rows make up global step s: epoch e reads a permutation seeded by (seed, e)."""

    def __init__(self, n_rows: int, seed: int):
        self.n_rows, self.seed = n_rows, seed
        self._epoch, self._perm = -1, None

    def rows(self, start: int, count: int) -> torch.Tensor:
        """Row indices of global sequences [start, start + count) of the (infinite) stream."""
        import torch

        parts, g, end = [], start, start + count
        while g < end:
            epoch, offset = divmod(g, self.n_rows)
            if epoch != self._epoch:  # one int32/int64 tensor per epoch, not a Python list
                gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
                dtype = torch.int32 if self.n_rows < 2**31 else torch.int64
                self._epoch, self._perm = epoch, torch.randperm(self.n_rows, generator=gen, dtype=dtype)
            take = min(end - g, self.n_rows - offset)
            parts.append(self._perm[offset : offset + take])
            g += take
        return torch.cat(parts)


@dataclass
class MicroBatch:
    ids: torch.Tensor  # (micro, L) this process's rows
    masked: torch.Tensor  # (micro, L)
    uniforms: torch.Tensor  # (micro, L)


def step_batches(shards, order: BatchOrder, plan: Plan, step: int, rank: int, mask_id: int, seed: int):
    """This process's micro-batches of global step `step`, and the global counts the losses divide by.

    The whole global batch is read and its noise drawn at once, so row r of step s gets the same mask and
    sampling uniforms however the batch is split into processes and accumulation steps.
    """
    from factory.rtd import make_step_noise

    ids = shards.rows(order.rows(step * plan.batch, plan.batch))  # (batch, L)
    noise = make_step_noise(ids, mask_id, seed, step, 0)
    global_micro = plan.micro_batch * plan.processes
    batches = []
    for m in range(plan.accumulation):
        start = m * global_micro + rank * plan.micro_batch
        mine = slice(start, start + plan.micro_batch)
        batches.append(MicroBatch(ids[mine], noise.masked[mine], noise.uniforms[mine]))
    return batches, max(int(noise.masked.sum()), 1), max(int((ids != 0).sum()), 1)


# ---- model and optimizer -------------------------------------------------------------------------
def build_rtd(preset: str, vocab_pieces: int, sharing: str = "gdes", seed: int = 0, **config_overrides) -> RTDModel:
    """The RTD model (generator + discriminator) of a preset for a vocabulary of `vocab_pieces` pieces.

    For benchmarks (bench/step.py) and tests; `config_overrides` go to ModelConfig (e.g. num_hidden_layers).
    """
    from factory.rtd import build_rtd_model

    vocab = VocabSize.from_pieces(vocab_pieces)
    config = (
        model_config(preset, vocab).replace(**config_overrides) if config_overrides else model_config(preset, vocab)
    )
    return build_rtd_model(config, get_preset(preset).generator_layers, sharing, seed)


def make_optimizer(model: torch.nn.Module, lr: float, fused: bool | None = None):
    """AdamW(0.9, 0.98, eps 1e-6), weight decay 0.01 on matrices only (not biases, LayerNorms); fused on CUDA."""
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    if fused is None:
        fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS, fused=fused or None)


def make_schedule(optimizer, warmup: int, steps: int):
    """Linear warm-up to the peak lr, then linear decay to 0 at `steps`."""
    import torch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def rtd_step(model, optimizer, ids: torch.Tensor, rtd_lambda: float = DEFAULT_RTD_LAMBDA, step: int = 0, seed: int = 0):
    """One full training step on one batch of token ids (B, L): mask, generator + discriminator forward,
    backward, clip, AdamW step. For benchmarks (bench/step.py); returns (mlm_loss, rtd_loss) as floats."""
    import torch

    from factory.rtd import make_step_noise

    noise = make_step_noise(ids, model.mask_id, seed, step, 0)
    out = model(ids, noise.masked, noise.uniforms)
    mlm = out.mlm_loss_sum / out.masked.clamp(min=1)
    rtd = out.rtd_loss_sum / out.tokens.clamp(min=1)
    (mlm + rtd_lambda * rtd).backward()
    for group in model.clip_groups():
        torch.nn.utils.clip_grad_norm_(group, CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(mlm.detach()), float(rtd.detach())


# ---- checkpoints ---------------------------------------------------------------------------------
def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted save are ignored)."""
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return []
    done = [p for p in folder.glob("step-*") if (p / TRAINER_STATE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def find_resume(out: Path, resume: str | None) -> Path | None:
    if resume is None:
        return None
    if resume == "auto":
        found = checkpoint_dirs(out)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file():
        raise ConfigError(
            f"--resume {resume} is not a checkpoint (no {TRAINER_STATE}); use --resume auto or a step-* folder"
        )
    return path


def check_resume(state: dict, args: TrainArgs, plan: Plan, vocab_fingerprint: str | None, path: Path) -> None:
    """Refuse a checkpoint whose run does not match this one (another preset, vocabulary, sizes)."""
    mine = {
        "preset": args.preset,
        "sharing": args.sharing,
        "seq_len": plan.seq_len,
        "batch": plan.batch,
        "vocab_fingerprint": vocab_fingerprint,
        "vocab_rows": plan.vocab.rows,
    }
    for key, value in mine.items():
        if state.get(key) != value:
            raise ConfigError(
                f"checkpoint {path} is from another run ({key} {state.get(key)!r}, this run {value!r}); "
                f"resume with the same --{key.replace('_', '-').replace('-fingerprint', '')} or start a new --out"
            )


def save_checkpoint(accelerator, out: Path, step: int, state: dict, keep: int) -> Path:
    """`save_state` into a temporary folder, then rename: a checkpoint is complete or absent. Keeps the last `keep`."""
    folder = out / CHECKPOINTS
    final = folder / f"step-{step:08d}"
    tmp = folder / f".step-{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoint_dirs(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        print(f"checkpoint {final}", flush=True)
    accelerator.wait_for_everyone()
    return final


# ---- logging -------------------------------------------------------------------------------------
class JsonlLog:
    """train.jsonl on the main process: one record per logged step; a resume drops records past the checkpoint."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None):
        self.path, self.enabled = path, enabled
        if enabled and resume_step is not None and path.is_file():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        elif enabled and resume_step is None:
            path.write_text("")

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def peak_tflops(device_name: str | None, given: float | None) -> float | None:
    if given:
        return given
    for key, value in PEAK_TFLOPS.items():
        if device_name and key in device_name:
            return value
    return None


def hardware() -> dict[str, Any]:
    import platform

    import torch

    if torch.cuda.is_available():
        name, count = torch.cuda.get_device_name(0), torch.cuda.device_count()
        return {"device": name, "count": count, "kind": "cuda", "hardware_summary": f"{count} x {name}"}
    name, count = platform.processor() or platform.machine(), os.cpu_count()
    return {"device": name, "count": count, "kind": "cpu", "hardware_summary": f"{count} CPU cores ({name})"}


@dataclass
class Meter:
    """Sums over the last log window; `record` turns them into the logged figures."""

    sums: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1

    def record(self, step: int, plan: Plan, lr: float, peak: float | None, world: int) -> dict[str, Any]:
        s, elapsed = self.sums, time.perf_counter() - self.started
        step_time = elapsed / max(self.steps, 1)
        out = {
            "step": step,
            "tokens": step * plan.tokens_per_step,
            "lr": lr,
            "mlm_loss": s["mlm_loss_sum"] / s["masked"],
            "rtd_loss": s["rtd_loss_sum"] / s["tokens"],
            "rtd_accuracy": s["rtd_correct"] / s["tokens"],
            "rtd_baseline": 1 - s["replaced"] / s["tokens"],
            "mlm_accuracy": s["mlm_correct"] / s["masked"],
            "replaced": s["replaced"] / s["masked"],
            "grad_norm": s["grad_norm"] / self.steps,
            "tokens_per_s": plan.tokens_per_step / step_time,
            "step_time_s": step_time,
        }
        out["mfu"] = plan.flops_per_step / step_time / (peak * 1e12 * world) if peak else None
        self.sums, self.steps, self.started = {}, 0, time.perf_counter()
        return out


# ---- the run -------------------------------------------------------------------------------------
STAT_KEYS = ("mlm_loss_sum", "rtd_loss_sum", "masked", "tokens", "replaced", "rtd_correct", "mlm_correct")


@dataclass
class Run:
    """What `setup` builds and the loop uses."""

    args: TrainArgs
    plan: Plan
    accelerator: Any
    model: Any
    optimizer: Any
    schedule: Any
    shards: Any
    order: BatchOrder
    mask_id: int
    vocab_fingerprint: str
    start_step: int = 0
    elapsed: float = 0.0  # wall time of earlier sessions of this run (resume)
    last_checkpoint: Path | None = None


def open_shards(args: TrainArgs):
    from factory.shards import ShardSet

    if args.shards is None:
        raise ConfigError("give --shards (a folder made by `factory shards`) or --corpus to build them")
    shards = ShardSet(args.shards)
    shards.check_vocab(args.vocab)
    if args.seq_len is not None and args.seq_len != shards.seq_len:
        raise ConfigError(
            f"--seq-len {args.seq_len} but the shards in {args.shards} hold {shards.seq_len}-token sequences; "
            "drop --seq-len or rebuild the shards"
        )
    return shards


def prepare_out(args: TrainArgs) -> Path | None:
    """The run folder: new (or --force to start over), or resumed from a checkpoint in it."""
    out = Path(args.out)
    resume = find_resume(out, args.resume)
    earlier = [p for p in out.iterdir() if p.name != SHARDS] if out.is_dir() else []
    if resume is None and earlier and not args.force:
        raise ConfigError(f"--out {out} holds an earlier run; pass --resume auto to continue it or --force to restart")
    return resume


def clear_run(out: Path) -> None:
    """--force: remove an earlier run's checkpoints, logs and exports (shards built into the folder stay)."""
    for p in out.iterdir() if out.is_dir() else []:
        if p.name != SHARDS:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
            "comet_ml": ("comet_ml",), "aim": ("aim",), "clearml": ("clearml",), "dvclive": ("dvclive",),
            "swanlab": ("swanlab",), "trackio": ("trackio",)}  # fmt: skip


def check_trackers(names: tuple[str, ...]) -> None:
    """Accelerate only warns about a tracker that is not installed; a user asking for one wants to know."""
    import importlib.util

    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"--log-with {name} is not an Accelerate tracker; use one of {', '.join(TRACKERS)}")
        if not any(importlib.util.find_spec(module) for module in TRACKERS[name]):
            raise ConfigError(f"--log-with {name}: the package is not installed; pip install {TRACKERS[name][0]}")


def setup(args: TrainArgs) -> Run:
    """Check inputs, then build the Accelerator, model, optimizer and schedule; load a checkpoint to resume."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from factory.rtd import build_rtd_model

    if args.vocab is None:
        raise ConfigError("give --vocab (the folder with spm.model the shards were made with)")
    Tokenizer.from_folder(args.vocab)  # a missing or broken vocabulary: one line, before anything is written
    check_trackers(args.log_with)
    shards = open_shards(args)
    plan = make_plan(args, shards.seq_len)
    resume = prepare_out(args)
    fingerprint = fingerprint_file(Path(args.vocab) / "spm.model")
    state = json.loads((resume / TRAINER_STATE).read_text()) if resume else None
    if state:
        check_resume(state, args, plan, fingerprint, resume)
    mixed = args.mixed_precision
    if mixed == "auto":
        mixed = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    out = Path(args.out)
    if args.force and resume is None:
        clear_run(out)
    accelerator = Accelerator(
        mixed_precision=mixed, log_with=list(args.log_with) or None, project_dir=str(out / "logs")
    )
    if accelerator.num_processes != plan.processes:
        plan = make_plan(args, shards.seq_len, accelerator.num_processes)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)
    config = model_config(args.preset, plan.vocab, args.dropout)
    model = build_rtd_model(config, get_preset(args.preset).generator_layers, args.sharing, args.seed)
    if args.gradient_checkpointing:
        model.generator.deberta.encoder.gradient_checkpointing = True
        model.discriminator.deberta.encoder.gradient_checkpointing = True
    if args.compile:
        from factory.model.encoder import compile_layers

        compile_layers(model)
    optimizer = make_optimizer(model.to(accelerator.device), plan.lr, fused=accelerator.device.type == "cuda")
    schedule = make_schedule(optimizer, plan.warmup, plan.steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(schedule)
    run = Run(
        args,
        plan,
        accelerator,
        model,
        optimizer,
        schedule,
        shards,
        BatchOrder(len(shards), args.seed),
        config.factory["mask_token_id"],
        fingerprint,
    )
    if resume is not None:
        accelerator.load_state(str(resume))
        run.start_step, run.elapsed, run.last_checkpoint = state["step"], state["elapsed_s"], resume
    return run


def train_step(run: Run, step: int) -> dict[str, float]:
    """One optimizer step over the global batch; returns the global sums (reduced over processes)."""
    import torch

    acc, plan = run.accelerator, run.plan
    batches, masked_total, tokens_total = step_batches(
        run.shards, run.order, plan, step, acc.process_index, run.mask_id, run.args.seed
    )
    stats = torch.zeros(len(STAT_KEYS), dtype=torch.float64, device=acc.device)
    for m, b in enumerate(batches):
        sync = contextlib.nullcontext() if m == len(batches) - 1 else acc.no_sync(run.model)
        with sync:
            out = run.model(b.ids.to(acc.device), b.masked.to(acc.device), b.uniforms.to(acc.device))
            # sums / global counts, x processes because DDP averages gradients: the global batch's mean loss
            loss = out.mlm_loss_sum / masked_total + run.args.rtd_lambda * out.rtd_loss_sum / tokens_total
            acc.backward(loss * plan.processes)
        stats += torch.stack([getattr(out, k).detach().double() for k in STAT_KEYS])
    grad_norm = clip_gradients(acc, run.model)
    stats = acc.reduce(stats, reduction="sum")
    values = dict(zip(STAT_KEYS, stats.tolist(), strict=True))
    values["grad_norm"] = float(grad_norm)
    bad_grad = not math.isfinite(values["grad_norm"]) and acc.mixed_precision != "fp16"  # fp16: the scaler skips
    if not (math.isfinite(values["mlm_loss_sum"]) and math.isfinite(values["rtd_loss_sum"])) or bad_grad:
        where = f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint else "no checkpoint yet"
        raise TrainingError(
            f"loss became non-finite at step {step + 1} (mlm {values['mlm_loss_sum']}, rtd {values['rtd_loss_sum']});"
            f" stopped without saving, {where}: lower --lr or use --mixed-precision bf16, then --resume"
        )
    run.optimizer.step()
    run.schedule.step()
    run.optimizer.zero_grad(set_to_none=True)
    return values


def clip_gradients(acc, model) -> float:
    """Clip each of the RTD model's groups to CLIP on its own; returns the overall norm (for the log).
    FSDP can only clip the whole sharded model, so there it falls back to one global clip."""
    from accelerate.utils import DistributedType

    if acc.distributed_type == DistributedType.FSDP:
        return float(acc.clip_grad_norm_(model.parameters(), CLIP))
    norms = [float(acc.clip_grad_norm_(group, CLIP)) for group in acc.unwrap_model(model).clip_groups()]
    return math.sqrt(sum(n * n for n in norms))


def trainer_state(run: Run, step: int, elapsed: float) -> dict[str, Any]:
    """Stored with each checkpoint: where the data stream stands, and what the run was (checked on resume)."""
    return {
        "step": step,
        "sequences_seen": step * run.plan.batch,
        "tokens_seen": step * run.plan.tokens_per_step,
        "elapsed_s": elapsed,
        "preset": run.args.preset,
        "sharing": run.args.sharing,
        "seq_len": run.plan.seq_len,
        "batch": run.plan.batch,
        "vocab_fingerprint": run.vocab_fingerprint,
        "vocab_rows": run.plan.vocab.rows,
        "arguments": run.args.to_json(),
    }


def train(run: Run) -> dict[str, Any]:
    """The loop: steps, logging, checkpoints. Returns the last logged record and totals."""
    from tqdm.auto import tqdm

    acc, plan, args = run.accelerator, run.plan, run.args
    main = acc.is_main_process
    log = JsonlLog(Path(args.out) / LOG_FILE, main, run.start_step if run.start_step else None)
    peak = peak_tflops(hardware()["device"] if acc.device.type == "cuda" else None, args.peak_tflops)
    meter, last, t0 = Meter(), {}, time.perf_counter()
    bar = tqdm(total=plan.steps, initial=run.start_step, disable=not main, desc="pretrain", dynamic_ncols=True)
    for step in range(run.start_step, plan.steps):
        meter.add(train_step(run, step))
        done = step + 1
        if done % args.log_every == 0 or done == plan.steps:
            last = meter.record(done, plan, run.schedule.get_last_lr()[0], peak, plan.processes)
            log.write(last)
            acc.log({k: v for k, v in last.items() if v is not None}, step=done)
            eta = (plan.steps - done) * last["step_time_s"]
            mfu = f"{100 * last['mfu']:.1f}%" if last["mfu"] is not None else "-"
            bar.set_postfix_str(
                f"gen {last['mlm_loss']:.3f} disc {last['rtd_loss']:.4f} acc {last['rtd_accuracy']:.3f} "
                f"tok/s {last['tokens_per_s']:,.0f} mfu {mfu} eta {eta / 60:.1f}m"
            )
        bar.update(1)
        if done % args.save_every == 0 or done == plan.steps:
            elapsed = run.elapsed + time.perf_counter() - t0
            run.last_checkpoint = save_checkpoint(
                acc, Path(args.out), done, trainer_state(run, done, elapsed), args.keep
            )
    bar.close()
    if not last and log.path.is_file():  # resumed a finished run: nothing trained, report the logged end
        lines = log.path.read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
    wall = run.elapsed + time.perf_counter() - t0
    session_steps = plan.steps - run.start_step
    return {
        "last": last,
        "wall_time_s": wall,
        "session_tokens_per_s": session_steps * plan.tokens_per_step / max(time.perf_counter() - t0, 1e-9),
    }


def export(run: Run, figures: dict[str, Any]) -> None:
    """discriminator/ (deberta-v2, folded GDES embedding, tokenizer files) and generator/ beside the checkpoints."""
    from factory.export import save_model
    from factory.rtd import build_rtd_model, export_discriminator, export_generator

    acc = run.accelerator
    state = acc.get_state_dict(run.model)  # gathered from every process under FSDP / DeepSpeed ZeRO-3
    if not acc.is_main_process:
        return
    wrapped = acc.unwrap_model(run.model)
    model = build_rtd_model(wrapped.config, wrapped.generator.config.num_hidden_layers, wrapped.sharing)
    model.load_state_dict({k: v.float().cpu() for k, v in state.items()})
    out = Path(run.args.out)
    extra = {"pretraining": "rtd", "sharing": run.args.sharing, "rtd_lambda": run.args.rtd_lambda}
    extra.update(data_provenance(Path(run.args.vocab), Path(run.args.shards) if run.args.shards else None))
    for name, net in (("discriminator", export_discriminator(model)), ("generator", export_generator(model))):
        net.config = net.config.replace(factory={**net.config.factory, **extra, "role": f"rtd-{name}", "emd": False})
        with staged_output(out / name, force=True) as tmp:
            save_model(net, tmp)
            for file in TOKENIZER_FILES:
                if (Path(run.args.vocab) / file).is_file():
                    shutil.copy2(Path(run.args.vocab) / file, tmp / file)
            write_manifest(tmp, "pretrain", run.args.to_json(), role=name, **figures)


def data_provenance(vocab: Path, shards: Path | None) -> dict[str, Any]:
    """Languages (from the vocabulary's manifest) and corpus sources (from the shards'), for the model card."""
    out: dict[str, Any] = {}
    vocab_manifest = read_manifest(vocab) or {}
    langs = (vocab_manifest.get("arguments") or {}).get("langs")
    if langs:
        out["languages"] = [langs] if isinstance(langs, str) else list(langs)
    shards_manifest = read_manifest(shards) if shards is not None else None
    corpus = ((shards_manifest or {}).get("arguments") or {}).get("corpus")
    if corpus:
        out["corpus"] = list(corpus)
    return out


def run_figures(run: Run, result: dict[str, Any]) -> dict[str, Any]:
    """What the model card is built from (a later step reads these from factory.json)."""
    plan, last = run.plan, result["last"]
    return {
        "preset": plan.preset,
        "vocab_size": plan.vocab.pieces,
        "embedding_rows": plan.vocab.rows,
        "seq_len": plan.seq_len,
        "batch": plan.batch,
        "micro_batch": plan.micro_batch,
        "accumulation": plan.accumulation,
        "processes": plan.processes,
        "lr": plan.lr,
        "warmup": plan.warmup,
        "sharing": run.args.sharing,
        "rtd_lambda": run.args.rtd_lambda,
        "mixed_precision": run.accelerator.mixed_precision,
        "steps": plan.steps,
        "tokens": plan.steps * plan.tokens_per_step,
        "parameters": plan.parameters,
        "flops_per_step": plan.flops_per_step,
        "final": {k: last.get(k) for k in ("mlm_loss", "rtd_loss", "rtd_accuracy", "rtd_baseline", "mlm_accuracy")},
        "tokens_per_s": result["session_tokens_per_s"],
        "mfu": last.get("mfu"),
        "wall_time_s": result["wall_time_s"],
        "hardware": hardware(),
        "shards": str(run.args.shards),
        "vocab_fingerprint": run.vocab_fingerprint,
    }


def run(args: TrainArgs) -> dict[str, Any]:
    """Train (or resume) to the planned step, export both networks, write factory.json; returns the figures."""
    training = setup(args)
    try:
        if args.log_with:
            training.accelerator.init_trackers("factory-pretrain", config=_flat(args.to_json()))
        result = train(training)
        figures = run_figures(training, result)
        export(training, figures)
        if training.accelerator.is_main_process:
            write_manifest(Path(args.out), "pretrain", args.to_json(), **figures)
        training.accelerator.wait_for_everyone()
        return figures
    finally:
        training.accelerator.end_training()


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in d.items()}
