"""The training loop: `setup` builds the run, `train_step` does one optimizer step, `train` loops and logs.

Exactness. The global batch of step s is fixed by (seed, s) alone (batches.py: each process prepares only its
own rows, one step ahead, and a row's noise is a function of (seed, s, its place in the global batch); which
languages: mixing.py). Losses are sums divided by global counts (`factory.pretrain.rtd.rtd_loss`), so N processes x A
accumulation steps compute the same gradient as one process with the whole batch. Dropout uses torch's global
RNG, which `save_state` stores (checkpoint.py); so a resumed run repeats a straight run bit for bit on CPU.

Each logged step is one line of OUT/train.jsonl (`Meter` turns the window's sums into losses, accuracies,
tokens/s and MFU; `tokens_<lang>` are the tokens seen per language), the same record goes to the Accelerate
trackers (--log-with), and the progress bar shows it.
With --probe, the records of the probed steps also hold the discriminator's retrieval accuracy (probe.py, which
says why the probe moves no random stream and calls no wrapped forward).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.core.errors import ConfigError, TrainingError
from factory.core.launch import check_launch
from factory.core.outputs import fingerprint_file
from factory.core.progress import progress
from factory.model.presets import check_memory
from factory.model.tokenizer import Tokenizer
from factory.pretrain.backends import make_accelerator, prepare_backend
from factory.pretrain.batches import Feed
from factory.pretrain.checkpoint import (
    check_resume,
    check_start,
    clear_run,
    prepare_out,
    read_trainer_state,
    resumed_sessions,
    save_checkpoint,
    trainer_state,
)
from factory.pretrain.config import PretrainConfig
from factory.pretrain.mixing import Mix, build_mix, token_fields
from factory.pretrain.optim import clip_gradients, make_optimizer, make_schedule
from factory.pretrain.plan import Plan, make_plan, model_config
from factory.pretrain.probe import Probe, control_record, measure_record, open_probe
from factory.pretrain.probe import figures as probe_figures
from factory.pretrain.rtd import rtd_loss
from factory.pretrain.state import Run

if TYPE_CHECKING:
    from factory.pretrain.start import Start

log = logging.getLogger(__name__)
LOG_FILE = "train.jsonl"
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}  # dense bf16/fp16
STAT_KEYS = ("mlm_loss_sum", "rtd_loss_sum", "masked", "tokens", "replaced", "rtd_correct", "mlm_correct")
TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
            "comet_ml": ("comet_ml",), "aim": ("aim",), "clearml": ("clearml",), "dvclive": ("dvclive",),
            "swanlab": ("swanlab",), "trackio": ("trackio",)}  # fmt: skip



# ---- setup ---------------------------------------------------------------------------------------
@dataclass
class Inputs:
    """What `check_inputs` found: the shards, the plan, and the checkpoint to resume with its trainer state."""

    shards: Any
    plan: Plan
    vocab_fingerprint: str
    resume: Path | None
    state: dict[str, Any] | None
    mix: Mix
    probe: Probe | None = None


def check_trackers(names: tuple[str, ...]) -> None:
    """Accelerate only warns about a tracker that is not installed; a user asking for one wants to know."""
    import importlib.util

    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"--log-with {name} is not an Accelerate tracker; use one of {', '.join(TRACKERS)}")
        if not any(importlib.util.find_spec(module) for module in TRACKERS[name]):
            raise ConfigError(f"--log-with {name}: the package is not installed; pip install {TRACKERS[name][0]}")


def open_shards(config: PretrainConfig):
    """The shards of --shards, checked against the vocabulary and --seq-len."""
    from factory.shards.read import ShardSet

    if config.shards is None:
        raise ConfigError("give --shards (a folder made by `factory shards`) or --corpus to build them")
    shards = ShardSet(config.shards)
    shards.check_vocab(config.vocab)
    if config.seq_len is not None and config.seq_len != shards.seq_len:
        raise ConfigError(
            f"--seq-len {config.seq_len} but the shards in {config.shards} hold {shards.seq_len}-token sequences; "
            "drop --seq-len or rebuild the shards"
        )
    return shards


def check_inputs(config: PretrainConfig, start: Start | None = None) -> Inputs:
    """Every check of the user's input, before anything is written: vocabulary, trackers, shards, sizes, the
    run folder and the checkpoint to resume (which must come from the same run)."""
    if config.vocab is None:
        raise ConfigError("give --vocab (the folder with spm.model the shards were made with)")
    tokenizer = Tokenizer.from_folder(config.vocab)  # a missing or broken vocabulary: one line, before any writing
    check_trackers(config.log_with)
    probe = open_probe(config, tokenizer)  # a bad --probe too
    shards = open_shards(config)
    plan = make_plan(config, shards.seq_len, start=start)
    check_memory(plan.parameters["total"], 4, f"the RTD model ({plan.shape.describe()}) in fp32")  # built on the host
    mix = build_mix(config, shards, plan.batch, plan.steps)  # --alpha, the schedules and the shards' languages
    resume = prepare_out(config)
    fingerprint = fingerprint_file(Path(config.vocab) / "spm.model")
    state = read_trainer_state(resume) if resume else None
    if state:
        check_resume(state, config, plan, fingerprint, resume, mix)
    return Inputs(shards, plan, fingerprint, resume, state, mix, probe)


def resolve_precision(mixed_precision: str) -> str:
    """--mixed-precision auto: bf16 on a GPU that has it, else full precision."""
    import torch

    if mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return mixed_precision


def build_model(config: PretrainConfig, plan: Plan, start: Start | None = None):
    """A fresh RTD model (weights from --seed), or with --init-from the start's (factory/pretrain/start.py), with
    the speed options: gradient checkpointing, torch.compile."""
    from factory.pretrain.rtd import build_rtd_model

    if config.init_from:
        from factory.pretrain.start import build_start_model, open_start, start_config

        start = start or open_start(config)
        model = build_start_model(config, start, start_config(start, config.dropout))
    else:
        architecture = model_config(plan.shape, plan.vocab, config.dropout)  # make_plan's shape_of(config)
        model = build_rtd_model(architecture, plan.shape.generator_layers, config.sharing, config.seed,
                                emd=config.emd == "on")  # fmt: skip
    if config.gradient_checkpointing:
        model.generator.deberta.encoder.gradient_checkpointing = True
        model.discriminator.deberta.encoder.gradient_checkpointing = True
    if config.compile:
        from factory.model.encoder import compile_layers

        compile_layers(model)
    return model


def setup(config: PretrainConfig, start: Start | None = None) -> Run:
    """Check inputs, then build the Accelerator, model, optimizer and schedule; load a checkpoint to resume."""
    from accelerate.utils import set_seed

    if config.init_from:  # --vocab defaults to the starting model's own
        from factory.pretrain.start import open_start, replace_vocab

        start = start or open_start(config)  # run_pretrain's, or this setup's own
        config = replace_vocab(config, start)
    inputs = check_inputs(config, start)
    plan, resume, out = inputs.plan, inputs.resume, Path(config.out)
    accelerator = make_accelerator(config, plan, resolve_precision(config.mixed_precision), out / "logs")
    check_launch(accelerator.num_processes, "the pre-training")  # before anything is cleared or written
    if resume is None:  # a new run: prepare_out allowed clearing what is there (--force, or no checkpoint yet)
        clear_run(out)
    if accelerator.num_processes != plan.processes:
        plan = make_plan(config, inputs.shards.seq_len, accelerator.num_processes, start)
    set_seed(config.seed)
    model = build_model(config, plan, start)
    mask_id = model.config.factory["mask_token_id"]
    start_record = start.record(emd=bool(model.generator.config.emd)) if start else None
    prepare_backend(accelerator, model, plan, config.update_order)  # FSDP, DeepSpeed: their settings, or a refusal
    out.mkdir(parents=True, exist_ok=True)
    fused = accelerator.device.type == "cuda"
    model = model.to(accelerator.device)
    if config.update_order == "official":  # two optimizers, as the official decoupled trainers (loop.py: train_step)
        gen_params = {id(p) for p in model.generator.parameters()}
        optimizer = make_optimizer(model, plan.lr, fused, keep=lambda p: id(p) not in gen_params)
        gen_optimizer = make_optimizer(model, plan.lr, fused, keep=lambda p: id(p) in gen_params)
        schedule, gen_schedule = (make_schedule(o, plan.warmup, plan.steps, config.warmup_from_zero)
                                  for o in (optimizer, gen_optimizer))  # fmt: skip
        model, optimizer, gen_optimizer = accelerator.prepare(model, optimizer, gen_optimizer)
        accelerator.register_for_checkpointing(schedule, gen_schedule)
    else:
        optimizer = make_optimizer(model, plan.lr, fused)
        schedule, gen_optimizer, gen_schedule = make_schedule(optimizer, plan.warmup, plan.steps,
                                                              config.warmup_from_zero), None, None  # fmt: skip
        model, optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(schedule)
    order = inputs.mix.order(config.seed)
    feed = Feed.for_run(config, plan, accelerator, inputs.shards, order, mask_id)
    run = Run(config, plan, accelerator, model, optimizer, schedule, inputs.shards, order, mask_id,
              inputs.vocab_fingerprint, inputs.mix, feed, probe=inputs.probe, generator_optimizer=gen_optimizer,
              generator_schedule=gen_schedule, start=start_record)  # fmt: skip
    if resume is not None:
        check_start(inputs.state, run, resume)
        accelerator.load_state(str(resume))
        run.start_step, run.elapsed, run.last_checkpoint = inputs.state["step"], inputs.state["elapsed_s"], resume
        run.sessions = resumed_sessions(inputs.state, config)
    return run


# ---- the step and the loop -----------------------------------------------------------------------
def train_step(run: Run, step: int) -> dict[str, float]:
    """One optimizer step over the global batch; returns the global sums (reduced over processes).

    Every micro-batch runs under `accelerator.accumulate`, whose counter restarts here: the step's last
    micro-batch is its one boundary (sync_gradients: DDP and FSDP reduce there, DeepSpeed's engine steps there),
    whatever count a resumed checkpoint restored. The loss is a sum over the *global* counts; `backward` divides
    it by the accumulation count (DeepSpeed's engine likewise) and every backend averages over the processes, so
    it is multiplied by both: the gradient is that of one process holding the whole batch.

    --update-order official and the generator-only warm-up of --init-from run the two networks' halves apart
    (`split_step`); the default joint step runs them together.
    """
    batches, masked_total, tokens_total = run.feed.take(step)  # on the device; counts over every process
    generator_only = step < run.plan.generator_warmup
    if run.config.update_order == "official" or generator_only:
        return split_step(run, step, batches, masked_total, tokens_total, generator_only)
    stats, _ = accumulate(run, batches, "both", masked_total, tokens_total)
    return finish_step(run, step, stats, [(run.optimizer, run.schedule)])


def accumulate(run: Run, batches, part: str, masked_total, tokens_total, replaced=None):
    """Forward and backward of every micro-batch of one step (or of one network's half, `part`); returns the summed
    statistics (a float64 tensor in STAT_KEYS order) and, for the generator's half, the discriminator's inputs."""
    import torch

    acc = run.accelerator
    scale = acc.num_processes * acc.gradient_accumulation_steps
    lam = 0.0 if part == "generator" else run.config.rtd_lambda
    stats = torch.zeros(len(STAT_KEYS), dtype=torch.float64, device=acc.device)
    acc.step, outputs = 0, []
    for i, b in enumerate(batches):
        with acc.accumulate(run.model):
            r = replaced[i] if replaced is not None else None
            out = run.model(b.ids, b.masked, b.uniforms, part=part, replaced_ids=r)  # on the device already
            mlm = out.mlm_loss_sum if part != "discriminator" else 0.0
            loss = rtd_loss(mlm, out.rtd_loss_sum, masked_total, tokens_total, lam)
            acc.backward(loss * scale)
        stats += torch.stack([getattr(out, k).detach().double() for k in STAT_KEYS])
        outputs.append(out.replaced_ids)
    if len(batches) != acc.gradient_accumulation_steps or not acc.sync_gradients:
        raise RuntimeError(f"{len(batches)} micro-batches for an accumulation of {acc.gradient_accumulation_steps}")
    return stats, outputs


def split_step(run: Run, step: int, batches, masked_total, tokens_total, generator_only: bool):
    """The generator's half first, its update, then the discriminator's half on the same step's replacements: the
    official decoupled training (DeBERTa/apps/tasks/rtd_task.py: the generator's trainer steps, then its post-step
    hook trains the discriminator, whose forward hook reads E_G.detach() + delta with the updated E_G). In the
    generator-only warm-up of --init-from (`generator_only`) the discriminator's half is left out."""
    gen_opt = run.generator_optimizer or run.optimizer  # joint order: one optimizer, the other network's grads None
    gen_stats, replaced = accumulate(run, batches, "generator", masked_total, tokens_total)
    if generator_only:
        schedules = [run.schedule] + ([run.generator_schedule] if run.generator_schedule else [])
        return finish_step(run, step, gen_stats, [(gen_opt, None)], schedules)
    values = finish_step(run, step, gen_stats, [(gen_opt, run.generator_schedule)])
    disc_stats, _ = accumulate(run, batches, "discriminator", masked_total, tokens_total, replaced)
    disc = finish_step(run, step, disc_stats, [(run.optimizer, run.schedule)])
    keep = {"mlm_loss_sum", "mlm_correct", "masked"}  # the generator's figures from its half, the rest from this one
    values.update({k: disc[k] for k in STAT_KEYS if k not in keep})
    values["grad_norm"] = (values["grad_norm"] ** 2 + disc["grad_norm"] ** 2) ** 0.5
    return values


def finish_step(run: Run, step: int, stats, steps, schedules=None) -> dict[str, float]:
    """Clip, check, step each (optimizer, schedule) of `steps` (and every schedule of `schedules`), zero the grads;
    returns the global sums (reduced over processes) and the gradient norm."""
    acc = run.accelerator
    grad_norm = clip_gradients(acc, run.model, steps[0][0])
    stats = acc.reduce(stats, reduction="sum")
    values = dict(zip(STAT_KEYS, stats.tolist(), strict=True))
    values["grad_norm"] = grad_norm
    check_finite(run, step, values)
    for optimizer, schedule in steps:
        optimizer.step()  # AcceleratedOptimizer steps only at a boundary: here, once; fp16: through the scaler
        if schedule is not None:
            schedule.step()
        optimizer.zero_grad(set_to_none=True)
    for schedule in schedules or []:  # a network that waits (generator-only steps): its schedule moves on
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            schedule.step()
    return values


def check_finite(run: Run, step: int, values: dict[str, float]) -> None:
    """Stop before the optimizer steps on a non-finite loss or gradient. With fp16's loss scaling an inf/nan
    gradient is expected now and then: the scaler (Accelerate's, or DeepSpeed's own) skips that step and
    lowers the scale, and the unscaled, clipped gradients are never applied."""
    acc = run.accelerator
    scaled = acc.scaler is not None or acc.mixed_precision == "fp16"
    bad_grad = not math.isfinite(values["grad_norm"]) and not scaled
    if not (math.isfinite(values["mlm_loss_sum"]) and math.isfinite(values["rtd_loss_sum"])) or bad_grad:
        where = f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint else "no checkpoint yet"
        raise TrainingError(
            f"loss became non-finite at step {step + 1} (mlm {values['mlm_loss_sum']}, rtd {values['rtd_loss_sum']});"
            f" stopped without saving, {where}: lower --lr or use --mixed-precision bf16, then --resume"
        )


def train(run: Run) -> dict[str, Any]:
    """The loop: steps, logging, checkpoints. Returns the last logged record and totals."""
    acc, plan, config = run.accelerator, run.plan, run.config
    main = acc.is_main_process
    records = JsonlLog(Path(config.out) / LOG_FILE, main, run.start_step if run.start_step else None)
    peak = peak_tflops(hardware()["device"] if acc.device.type == "cuda" else None, config.peak_tflops)
    control = control_record(run, run.probe) if run.probe else {}  # before the clock starts
    pending = dict(control) if run.start_step == 0 else {}  # a fresh run's first record holds the control
    meter, last, shown, t0 = Meter(), {}, {}, time.perf_counter()
    # `with`: the bar ends its line on an error too, so the error is a line of its own
    with progress(total=plan.steps, initial=run.start_step, desc="pretrain", main=main) as bar:
        for step in range(run.start_step, plan.steps):
            meter.add(train_step(run, step))
            done = step + 1
            if done % config.log_every == 0 or done == plan.steps:
                last = meter.record(done, plan, run.schedule.get_last_lr()[0], peak, plan.processes)
                last.update(token_fields(run.mix, done, plan.seq_len))  # tokens_<lang>
                if run.probe and run.probe.due(done, plan.steps):
                    last.update(measure_record(run, run.probe))
                    meter.started = time.perf_counter()  # the probe's time is not the next window's
                    shown = {k: v for k, v in last.items() if k.startswith("probe")} or shown
                last.update(pending)
                pending = {}
                records.write(last)
                acc.log({k: v for k, v in last.items() if v is not None}, step=done)
                bar.set_postfix_str(status({**control, **shown, **last}, plan.steps - done))
            bar.update(1)
            if done % config.save_every == 0 or done == plan.steps:
                elapsed = run.elapsed + time.perf_counter() - t0
                state = trainer_state(run, done, elapsed)
                run.last_checkpoint = save_checkpoint(acc, Path(config.out), done, state, config.keep)
    if not last and records.path.is_file():  # resumed a finished run: nothing trained, report the logged end
        logged = read_records(records.path)
        last = logged[-1] if logged else {}
    session = time.perf_counter() - t0
    return {
        "last": last,
        "wall_time_s": run.elapsed + session,
        "session_tokens_per_s": (plan.steps - run.start_step) * plan.tokens_per_step / max(session, 1e-9),
        "probe": probe_figures(run.probe, last, control),
    }


def status(record: dict[str, Any], remaining_steps: int) -> str:
    """The progress bar's postfix: losses, RTD accuracy, throughput, MFU, the last probe (and the control's in
    brackets) and the time left."""
    eta = remaining_steps * record["step_time_s"]
    mfu = f"{100 * record['mfu']:.1f}%" if record["mfu"] is not None else "-"
    probe = ""
    if "probe" in record or "probe_control" in record:  # the control from the start, the probe once it ran
        control = f" (ctl {record['probe_control']:.1f})" if "probe_control" in record else ""
        probe = f" probe {record['probe']:.1f}{control}" if "probe" in record else f" probe -{control}"
    return (
        f"gen {record['mlm_loss']:.3f} disc {record['rtd_loss']:.4f} acc {record['rtd_accuracy']:.3f} "
        f"tok/s {record['tokens_per_s']:,.0f} mfu {mfu}{probe} eta {eta / 60:.1f}m"
    )


# ---- what is logged ------------------------------------------------------------------------------
class JsonlLog:
    """train.jsonl on the main process: one record per logged step; a resume drops records past the checkpoint
    (and a record torn by a kill in the middle of its write: `read_records`)."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None):
        self.path, self.enabled = path, enabled
        if enabled and resume_step is not None and path.is_file():
            kept = [r for r in read_records(path) if r["step"] <= resume_step]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        elif enabled and resume_step is None:
            path.write_text("")

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")  # one write of the whole line: a kill tears at most this one


def read_records(path: Path) -> list[dict]:
    """The records of a train.jsonl. A line that is not a whole record (a kill during its write leaves it cut
    off, without its newline) is dropped with one warning: the checkpoint it belonged after was never
    written, so resuming from the last checkpoint logs that step again."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            record = "torn"
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        elif record is not None:
            log.warning("%s line %d is not a whole record (cut off by an interrupted write?); dropped it", path, number)
    return records


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


def peak_tflops(device_name: str | None, given: float | None) -> float | None:
    """The dense bf16/fp16 peak MFU is measured against: --peak-tflops, else looked up by the GPU's name."""
    if given:
        return given
    for key, value in PEAK_TFLOPS.items():
        if device_name and key in device_name:
            return value
    return None


def hardware() -> dict[str, Any]:
    """What the run trained on, for factory.json and the model card."""
    import platform

    import torch

    if torch.cuda.is_available():
        name, count = torch.cuda.get_device_name(0), torch.cuda.device_count()
        return {"device": name, "count": count, "kind": "cuda", "hardware_summary": f"{count} x {name}"}
    name, count = platform.processor() or platform.machine(), os.cpu_count()
    return {"device": name, "count": count, "kind": "cpu", "hardware_summary": f"{count} CPU cores ({name})"}
