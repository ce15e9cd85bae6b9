"""RTD + GDES pre-training on Accelerate: plan, loop, checkpoints, exact resume, export.

    factory pretrain --vocab v/ --shards s/ --preset base --out runs/base            # one process
    accelerate launch -m factory pretrain --vocab v/ --shards s/ --preset base ...    # DDP / FSDP2 (/ DeepSpeed)

Chain: `run_pretrain(config)` (`--corpus`: shards first) -> `run(config)` -> `make_plan` (sizes, steps,
FLOPs, memory; all `--dry-run` prints) -> `setup` (Accelerator, model, optimizer, schedule, resume) ->
`train_step` per optimizer step -> `save_checkpoint` every N steps -> `export_networks` (discriminator +
generator as deberta-v2 folders) -> factory.json with the figures. `config` is factory.pretrain.config.PretrainConfig.

Read in this order:
    plan.py        sizes, schedule, parameter counts, the FLOP formula, memory and time
    batches.py     which rows and which noise make up a step (the data half of exactness), prefetched
    optim.py       AdamW, the lr schedule, unscaling and clipping per group; the standalone step for benchmarks
    backends.py    the Accelerator, and what FSDP and DeepSpeed need (wrap policy, sizes) or cannot do
    loop.py        setup, train_step, the loop and what it logs (the other half of exactness)
    checkpoint.py  the run folder, save / keep / resume
    export.py      the two networks and the figures at the end
    step.py        the step: --corpus shards, the lock, the manifest
    config.py      the options and the language mixing grammar; manifest.py: factory.json
The names other modules use are re-exported here, loaded on first use (this `__init__` imports nothing, so the
step's config loads without torch): `from factory.pretrain import make_plan` works.
"""

_HOMES = {
    "Plan": "factory.pretrain.plan",
    "Run": "factory.pretrain.loop",
    "PretrainConfig": "factory.pretrain.config",
    "attention_flops": "factory.pretrain.plan",
    "build_rtd": "factory.pretrain.optim",
    "count_rtd_parameters": "factory.pretrain.plan",
    "dry_run_lines": "factory.pretrain.plan",
    "flops_per_step": "factory.pretrain.plan",
    "make_optimizer": "factory.pretrain.optim",
    "make_plan": "factory.pretrain.plan",
    "make_schedule": "factory.pretrain.optim",
    "peak_tflops": "factory.pretrain.loop",
    "plan_time": "factory.pretrain.plan",
    "rtd_step": "factory.pretrain.optim",
    "run": "factory.pretrain.step",
    "run_pretrain": "factory.pretrain.step",
    "save_checkpoint": "factory.pretrain.checkpoint",
    "setup": "factory.pretrain.loop",
    "train": "factory.pretrain.loop",
    "train_step": "factory.pretrain.loop",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    """The step's names, from their modules on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'factory.pretrain' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
