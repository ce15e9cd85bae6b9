"""The three arms of one ladder cell, each finished arm recorded as ARM/done.json (so a killed ladder resumes).

    factory   RTD + GDES by the library (`factory.pretrain.run_pretrain`), for as many steps as fit in the
              cell's CPU budget (`calibrate` times a few steps first); its discriminator is evaluated.
    anchor    the same shape trained as plain MLM by `transformers` (`DebertaV2ForMaskedLM`, its own
              `DataCollatorForLanguageModeling`, 15% masked, 80/10/10), on the same shard rows in the same order
              (`BatchOrder(seed)`), the same batch, steps, peak lr, warm-up, schedule, AdamW and clip: the same
              tokens. It tells a scale effect (both lose to the control) from a factory bug (only factory does).
    control   the random-init control of the factory discriminator's config and tokenizer
              (`--control random` of the evaluations, factory/evaluate/control.py): what no pre-training gives.

Measured on parallel retrieval (`factory eval retrieval`'s protocol, acc@1 averaged over x->en and en->x) and
zero-shot topic classification (`factory eval classify`: fine-tune on English, test on the other languages).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench.studies.quality_data import PIVOT, Prepared

log = logging.getLogger(__name__)
DONE = "done.json"
ARMS = ("factory", "anchor", "control")


@dataclasses.dataclass(frozen=True)
class Cell:
    layers: int
    hidden: int
    heads: int
    seed: int = 0
    preset: str | None = None  # a published preset's shape (bench/device/gpu_proof.py: xsmall), else debug + overrides

    @property
    def name(self) -> str:
        return self.preset or f"{self.layers}x{self.hidden}"

    @property
    def folder(self) -> str:
        return f"{self.name}-s{self.seed}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every cell shares: pre-training sizes, the budget and the evaluations' settings."""

    budget_cpu_s: float
    batch: int
    lr: float | None
    langs: tuple[str, ...]
    finetune: tuple[str, ...]  # `--set` strings of the classification fine-tuning
    calibration_steps: int = 3
    precision: str = "no"  # pre-training's --mixed-precision (the GPU proof: bf16; the anchor autocasts to it)
    clock: str = "cpu"  # what the budget counts: "cpu" (process_time, this machine) or "wall" (a GPU's seconds)


def clock(kind: str) -> float:
    """Seconds on the budget's clock: this process's CPU time, or wall time after the GPU finished its queue."""
    import torch

    if kind == "cpu":
        return time.process_time()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def read_done(folder: Path) -> dict[str, Any] | None:
    path = folder / DONE
    return json.loads(path.read_text()) if path.is_file() else None


def write_done(folder: Path, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (DONE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(folder / DONE)  # atomic: a kill leaves no half-written done.json


# ---- factory: RTD + GDES ------------------------------------------------------------------------------
def pretrain_config(cell: Cell, prep: Prepared, settings: Settings, out: Path, steps: int):
    from factory.pretrain.config import PretrainConfig

    shape = {"preset": cell.preset} if cell.preset else {"preset": "debug", "layers": cell.layers,
                                                          "hidden": cell.hidden, "heads": cell.heads}  # fmt: skip
    return PretrainConfig(
        **shape, vocab=prep.vocab, shards=prep.shards, batch=settings.batch, lr=settings.lr, max_steps=steps,
        seed=cell.seed, mixed_precision=settings.precision, save_every=max(1, steps // 4), keep=1,
        log_every=max(1, min(10, steps)), resume="auto", force=True, out=out,
    )  # fmt: skip


def calibrate(cell: Cell, prep: Prepared, settings: Settings, folder: Path) -> dict[str, float]:
    """CPU seconds per RTD step, timed over a few steps after a warm-up step, and the steps the budget buys.
    Written to plan.json and reused, so a resumed cell trains for the same number of steps."""
    import torch

    from factory.pretrain.loop import setup, train_step

    plan_file = folder / "plan.json"
    if plan_file.is_file():
        plan = json.loads(plan_file.read_text())
        if (plan["budget_cpu_s"], plan["batch"]) != (settings.budget_cpu_s, settings.batch):
            raise SystemExit(f"{folder} was planned for --budget {plan['budget_cpu_s']:g} --batch {plan['batch']}; "
                             "give the same or another --out")  # fmt: skip
        return plan
    scratch = folder / "calibrate"
    run = setup(dataclasses.replace(pretrain_config(cell, prep, settings, scratch, 10_000), resume=None))
    try:
        train_step(run, 0)  # first touch of every buffer: not representative
        start = clock(settings.clock)
        for step in range(1, 1 + settings.calibration_steps):
            train_step(run, step)
        per_step = (clock(settings.clock) - start) / settings.calibration_steps
    finally:
        run.accelerator.end_training()
        shutil.rmtree(scratch, ignore_errors=True)
    plan = {"cpu_s_per_step": per_step, "steps": max(1, int(settings.budget_cpu_s / per_step)),
            "budget_cpu_s": settings.budget_cpu_s, "batch": settings.batch, "seq_len": run.plan.seq_len,
            "lr": run.plan.lr, "torch_threads": torch.get_num_threads(), "clock": settings.clock}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan, indent=2) + "\n")
    log.info("%s: %.2f CPU-s per step -> %d steps", cell.folder, per_step, plan["steps"])
    return plan


def train_factory(cell: Cell, prep: Prepared, settings: Settings, folder: Path, plan: dict) -> dict[str, Any]:
    """`run_pretrain` (resumes from its own checkpoints); returns what the cell records about it."""
    from factory.pretrain.checkpoint import checkpoint_dirs
    from factory.pretrain.step import run_pretrain

    config = pretrain_config(cell, prep, settings, folder / "run", plan["steps"])
    # A killed arm resumes from its last checkpoint: this process cannot time the steps an earlier one did, so
    # those are counted at the calibrated CPU-s per step (and the record says so).
    done_before = max((int(d.name.split("-")[-1]) for d in checkpoint_dirs(folder / "run")), default=0)
    start = clock(settings.clock)
    figures = run_pretrain(config)
    cpu = clock(settings.clock) - start + done_before * plan["cpu_s_per_step"]
    return {"cpu_s": round(cpu, 1), "cpu_s_estimated_steps": done_before, "steps": figures["steps"],
            "tokens": figures["tokens"], "warmup": figures["warmup"], "parameters": figures["parameters"],
            "final": figures["final"]}  # fmt: skip


# ---- anchor: plain MLM by transformers -----------------------------------------------------------------
def train_anchor(factory_model: Path, prep: Prepared, cell: Cell, plan: dict, warmup: int, out: Path,
                 settings: Settings) -> dict:  # fmt: skip
    """DebertaV2ForMaskedLM of the factory discriminator's config (transformers' own init, seed = the cell's),
    the same rows, batch, steps and optimiser; saved as a deberta-v2 folder with the tokenizer files."""
    import torch
    import transformers

    from factory.model.tokenizer import copy_tokenizer_files
    from factory.pretrain.mixing import BatchOrder
    from factory.pretrain.optim import CLIP, make_optimizer, make_schedule
    from factory.shards.read import ShardSet

    config = transformers.DebertaV2Config.from_pretrained(factory_model)
    pretraining = "mlm (transformers, bench.studies.quality anchor)"
    config.factory = {**getattr(config, "factory", {}), "pretraining": pretraining, "role": "anchor-mlm"}
    torch.manual_seed(cell.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = transformers.DebertaV2ForMaskedLM(config).train().to(device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.precision)  # factory's autocast too
    tokenizer = transformers.AutoTokenizer.from_pretrained(prep.vocab)
    collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt")
    shards, order = ShardSet(prep.shards), BatchOrder(len(ShardSet(prep.shards)), cell.seed)
    optimizer = make_optimizer(model, plan["lr"], fused=device.type == "cuda")
    schedule = make_schedule(optimizer, warmup, plan["steps"])
    batch, micro, losses, start = plan["batch"], min(32, plan["batch"]), [], clock(settings.clock)
    for step in range(plan["steps"]):
        rows = shards.rows(order.rows(step * batch, batch)).long()
        for part in rows.split(micro):
            masked = {k: v.to(device) for k, v in collator([{"input_ids": r} for r in part]).items()}
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = model(input_ids=masked["input_ids"], attention_mask=(part != 0).long().to(device),
                             labels=masked["labels"]).loss  # fmt: skip
            (loss * len(part) / batch).backward()
            losses.append(loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step(), schedule.step(), optimizer.zero_grad(set_to_none=True)
    cpu = clock(settings.clock) - start
    model.save_pretrained(out)
    copy_tokenizer_files(prep.vocab, out)
    tail = [float(x) for x in losses[-max(1, len(losses) // 10) :]]
    return {"cpu_s": round(cpu, 1), "steps": plan["steps"], "tokens": plan["steps"] * batch * plan["seq_len"],
            "warmup": warmup, "final": {"mlm_loss": statistics.fmean(tail)}}  # fmt: skip


# ---- the evaluations ---------------------------------------------------------------------------------------
def evaluate(model: Path, prep: Prepared, settings: Settings, out: Path, control: bool) -> dict[str, Any]:
    """Retrieval and zero-shot classification of `model` (and, `control`, of its random-init control)."""
    from factory.evaluate.config import ClassifyConfig, RetrievalConfig
    from factory.evaluate.entry import evaluate as classify
    from factory.evaluate.retrieval import run as retrieval

    ctl = "random" if control else None
    tests = ",".join(lang for lang in settings.langs if lang != PIVOT)
    r = retrieval(RetrievalConfig(model=model, data=str(prep.aligned), control=ctl, out=out / "retrieval", force=True))
    c = classify("classify", ClassifyConfig(model=model, train=prep.topic_train, test=prep.topic_test, langs=tests,
                                            set=list(settings.finetune), control=ctl, out=out / "classify",
                                            force=True))  # fmt: skip
    arms = {"pretrained": scores(r["results"], r["average"], c["results"], c["average"])}
    if control:
        arms["control"] = scores(r["control"], r["control_average"], c["control"], c["control_average"])
    return arms


def scores(r_results: dict, r_average: dict, c_results: dict, c_average: dict) -> dict[str, Any]:
    """The ladder's two numbers (and their per-language detail) from the two results.json shapes."""
    return {
        "retrieval": round(statistics.fmean(v["accuracy"] for v in r_average.values()), 2),
        "retrieval_by_lang": {
            lang: round(statistics.fmean(d["accuracy"] for d in v.values()), 2) for lang, v in r_results.items()
        },
        "zero_shot": c_average["test"]["accuracy"],
        "zero_shot_by_lang": {lang: v["test"]["accuracy"] for lang, v in c_results.items()},
    }


# ---- one cell ----------------------------------------------------------------------------------------------
def run_cell(cell: Cell, prep: Prepared, settings: Settings, root: Path) -> None:
    """The three arms of one cell; an arm with a done.json is skipped, so a killed cell continues."""
    folder = root / cell.folder
    base = {"cell": cell.name, "layers": cell.layers, "hidden": cell.hidden, "heads": cell.heads, "seed": cell.seed}
    if read_done(folder / "factory") is None or read_done(folder / "control") is None:
        plan = calibrate(cell, prep, settings, folder)
        trained = train_factory(cell, prep, settings, folder / "factory", plan)
        log.info("%s factory: %s", cell.folder, trained)
        measured = evaluate(folder / "factory" / "run" / "discriminator", prep, settings, folder / "factory" / "eval",
                            control=True)  # fmt: skip
        write_done(folder / "control", {**base, "arm": "control", "pretrain": None, **measured["control"]})
        write_done(folder / "factory", {**base, "arm": "factory", "pretrain": trained, **measured["pretrained"]})
        shutil.rmtree(folder / "factory" / "run" / "checkpoints", ignore_errors=True)  # the exports stay
    if read_done(folder / "anchor") is None:
        plan, factory_done = json.loads((folder / "plan.json").read_text()), read_done(folder / "factory")
        model = folder / "anchor" / "model"
        trained = train_anchor(folder / "factory" / "run" / "discriminator", prep, cell, plan,
                               factory_done["pretrain"]["warmup"], model, settings)  # fmt: skip
        log.info("%s anchor: %s", cell.folder, trained)
        measured = evaluate(model, prep, settings, folder / "anchor" / "eval", control=False)
        write_done(folder / "anchor", {**base, "arm": "anchor", "pretrain": trained, **measured["pretrained"]})


def collect(root: Path, cells: list[Cell]) -> dict[str, dict[str, list[dict]]]:
    """{cell name: {arm: [done.json per seed]}} for the cells asked for (missing arms are left out)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for cell in cells:
        for arm in ARMS:
            done = read_done(root / cell.folder / arm)
            if done is not None:
                out.setdefault(cell.name, {}).setdefault(arm, []).append(done)
    return out
