"""RTD + GDES pre-training on Accelerate: plan, loop, checkpoints, exact resume, export.

    factory pretrain --vocab v/ --shards s/ --preset base --out runs/base            # one process
    accelerate launch -m factory pretrain --vocab v/ --shards s/ --preset base ...    # DDP / FSDP2 (/ DeepSpeed)

Chain: `run_pretrain(config)` (`--corpus`: shards first) -> `run(config)` -> `make_plan` (sizes, steps,
FLOPs, memory; all `--dry-run` prints) -> `setup` (Accelerator, model, optimizer, schedule, resume) ->
`train_step` per optimizer step -> `save_checkpoint` every N steps -> `export_networks` (discriminator +
generator as deberta-v2 folders) -> factory.json with the figures. `config` is factory.configs.PretrainConfig.

Read in this order:
    plan.py        sizes, schedule, parameter counts, the FLOP formula, memory and time
    batches.py     which rows and which noise make up a step (the data half of exactness), prefetched
    optim.py       AdamW, the lr schedule, unscaling and clipping per group; the standalone step for benchmarks
    backends.py    the Accelerator, and what FSDP and DeepSpeed need (wrap policy, sizes) or cannot do
    loop.py        setup, train_step, the loop and what it logs (the other half of exactness)
    checkpoint.py  the run folder, save / keep / resume
    export.py      the two networks and the figures at the end
The names other modules use are re-exported here, so `from factory.pretrain import make_plan` works.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from factory.configs import SEQ_LEN, PretrainConfig, ShardsConfig
from factory.core.errors import ManifestError
from factory.core.options import to_json
from factory.core.outputs import fingerprint_file
from factory.manifest import PretrainManifest, ShardsManifest, find_manifest, write_manifest
from factory.pretrain.checkpoint import SHARDS, save_checkpoint
from factory.pretrain.export import export_networks, run_figures
from factory.pretrain.loop import Run, peak_tflops, setup, train, train_step
from factory.pretrain.optim import build_rtd, make_optimizer, make_schedule, rtd_step
from factory.pretrain.plan import (
    Plan,
    attention_flops,
    count_rtd_parameters,
    dry_run_lines,
    flops_per_step,
    make_plan,
    plan_time,
)

__all__ = [
    "Plan",
    "Run",
    "PretrainConfig",
    "attention_flops",
    "build_rtd",
    "count_rtd_parameters",
    "dry_run_lines",
    "flops_per_step",
    "make_optimizer",
    "make_plan",
    "make_schedule",
    "peak_tflops",
    "plan_time",
    "rtd_step",
    "run",
    "run_pretrain",
    "save_checkpoint",
    "setup",
    "train",
    "train_step",
]


def run_pretrain(config: PretrainConfig) -> dict[str, Any]:
    """What `factory pretrain` and `factory run` call: `--corpus` builds the shards into OUT/shards first
    (reused when they fit), then `run`."""
    import dataclasses

    if config.init_from:  # --vocab defaults to the starting model's own (factory/pretrain/start.py)
        from factory.pretrain.start import open_start, replace_vocab

        config = replace_vocab(config, open_start(config))
    if config.corpus:
        config = dataclasses.replace(config, shards=corpus_shards(config))
    return run(config)


def corpus_shards(config: PretrainConfig) -> Path:
    """--corpus: shards into OUT/shards (reused when they exist for this vocabulary and length)."""
    from factory.shards import build_shards

    target = Path(config.out) / SHARDS
    try:
        manifest = find_manifest(target, ShardsManifest) if target.is_dir() else None
    except ManifestError:  # our own cache, from another version of factory: rebuilt
        manifest = None
    seq_len = config.seq_len or SEQ_LEN
    fits = manifest is not None and manifest.seq_len == seq_len
    if not (fits and manifest.vocab_fingerprint == fingerprint_file(Path(config.vocab) / "spm.model")):
        build_shards(ShardsConfig(vocab=config.vocab, corpus=config.corpus, seq_len=seq_len, out=target, force=True))
    return target


def run(args: PretrainConfig) -> dict[str, Any]:
    """Train (or resume) to the planned step, export both networks, write factory.json; returns the figures.
    The main process holds --out's lock throughout: a second run on the same folder stops at once."""
    from factory.core.launch import is_main_process
    from factory.core.outputs import check_target, output_lock

    check_target(Path(args.out))
    with output_lock(Path(args.out)) if is_main_process() else contextlib.nullcontext():
        return _run(args)


def _run(args: PretrainConfig) -> dict[str, Any]:
    training = setup(args)
    try:
        if args.log_with:
            training.accelerator.init_trackers("factory-pretrain", config=_flat(to_json(args)))
        result = train(training)
        figures = run_figures(training, result)
        export_networks(training, figures)
        if training.accelerator.is_main_process:
            write_manifest(Path(args.out), PretrainManifest(arguments=to_json(args), **figures))
        training.accelerator.wait_for_everyone()
        return figures
    finally:
        training.feed.close()
        training.accelerator.end_training()


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """Trackers take scalars only: anything else (paths, lists) as its string."""
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in d.items()}
