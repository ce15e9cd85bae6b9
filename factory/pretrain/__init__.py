"""RTD + GDES pre-training on Accelerate: plan, loop, checkpoints, exact resume, export.

    factory pretrain --vocab v/ --shards s/ --preset base --out runs/base            # one process
    accelerate launch -m factory pretrain --vocab v/ --shards s/ --preset base ...    # DDP / FSDP / DeepSpeed

Chain: `run(args)` -> `make_plan` (sizes, steps, FLOPs, memory; all `--dry-run` prints) -> `setup` (Accelerator,
model, optimizer, schedule, resume) -> `train_step` per optimizer step -> `save_checkpoint` every N steps ->
`export_networks` (discriminator + generator as deberta-v2 folders) -> factory.json with the figures.

Read in this order:
    args.py        TrainArgs and the paper's defaults
    plan.py        sizes, schedule, parameter counts, the FLOP formula, memory and time
    batches.py     which rows and which noise make up a step (the data half of exactness)
    optim.py       AdamW, the lr schedule, clipping per group; the standalone step for benchmarks
    loop.py        setup, train_step, the loop and what it logs (the other half of exactness)
    checkpoint.py  the run folder, save / keep / resume
    export.py      the two networks and the figures at the end
The names other modules use are re-exported here, so `from factory.pretrain import make_plan` works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.outputs import write_manifest
from factory.pretrain.args import TrainArgs
from factory.pretrain.checkpoint import save_checkpoint
from factory.pretrain.export import export_networks, run_figures
from factory.pretrain.loop import Run, peak_tflops, setup, train, train_step
from factory.pretrain.optim import build_rtd, make_optimizer, make_schedule, rtd_step
from factory.pretrain.plan import Plan, attention_flops, count_rtd_parameters, flops_per_step, make_plan, plan_time

__all__ = [
    "Plan",
    "Run",
    "TrainArgs",
    "attention_flops",
    "build_rtd",
    "count_rtd_parameters",
    "flops_per_step",
    "make_optimizer",
    "make_plan",
    "make_schedule",
    "peak_tflops",
    "plan_time",
    "rtd_step",
    "run",
    "save_checkpoint",
    "setup",
    "train",
    "train_step",
]


def run(args: TrainArgs) -> dict[str, Any]:
    """Train (or resume) to the planned step, export both networks, write factory.json; returns the figures."""
    training = setup(args)
    try:
        if args.log_with:
            training.accelerator.init_trackers("factory-pretrain", config=_flat(args.to_json()))
        result = train(training)
        figures = run_figures(training, result)
        export_networks(training, figures)
        if training.accelerator.is_main_process:
            write_manifest(Path(args.out), "pretrain", args.to_json(), **figures)
        training.accelerator.wait_for_everyone()
        return figures
    finally:
        training.accelerator.end_training()


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """Trackers take scalars only: anything else (paths, lists) as its string."""
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in d.items()}
