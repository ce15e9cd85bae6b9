"""`factory pretrain`, the step: `run_pretrain(config)` (`--corpus`: shards first) -> `run(config)` -> setup, the
loop, the export and factory.json (the chain is in factory/pretrain/__init__.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.core.errors import ManifestError
from factory.core.manifest import find_manifest, write_manifest
from factory.core.options import to_json
from factory.core.outputs import fingerprint_file
from factory.pretrain.checkpoint import SHARDS
from factory.pretrain.config import PretrainConfig
from factory.pretrain.export import export_networks, run_figures
from factory.pretrain.loop import setup, train
from factory.pretrain.manifest import PretrainManifest
from factory.shards.config import SEQ_LEN, ShardsConfig
from factory.shards.manifest import ShardsManifest

if TYPE_CHECKING:
    from factory.pretrain.start import Start


def run_pretrain(config: PretrainConfig) -> dict[str, Any]:
    """What `factory pretrain` and `factory run` call: `--corpus` builds the shards into OUT/shards first
    (reused when they fit), then `run`."""
    import dataclasses

    start = None
    if config.init_from:  # --vocab defaults to the starting model's own (factory/pretrain/start.py)
        from factory.pretrain.start import open_start, replace_vocab

        start = open_start(config)
        config = replace_vocab(config, start)
    if config.corpus:
        config = dataclasses.replace(config, shards=corpus_shards(config))
    return run(config, start)


def corpus_shards(config: PretrainConfig) -> Path:
    """--corpus: shards into OUT/shards (reused when they exist for this vocabulary and length)."""
    from factory.shards.run import build_shards

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


def run(config: PretrainConfig, start: Start | None = None) -> dict[str, Any]:
    """Train (or resume) to the planned step, export both networks, write factory.json; returns the figures.
    The main process holds --out's lock throughout: a second run on the same folder stops at once."""
    from factory.core.launch import is_main_process
    from factory.core.outputs import check_target, output_lock

    check_target(Path(config.out))
    with output_lock(Path(config.out)) if is_main_process() else contextlib.nullcontext():
        return _run(config, start)


def _run(config: PretrainConfig, start: Start | None) -> dict[str, Any]:
    training = setup(config, start)
    try:
        if config.log_with:
            training.accelerator.init_trackers("factory-pretrain", config=_flat(to_json(config)))
        result = train(training)
        figures = run_figures(training, result)
        export_networks(training, figures)
        if training.accelerator.is_main_process:
            write_manifest(Path(config.out), PretrainManifest(arguments=to_json(config), **figures))
        training.accelerator.wait_for_everyone()
        return figures
    finally:
        training.feed.close()
        training.accelerator.end_training()


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """Trackers take scalars only: anything else (paths, lists) as its string."""
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in d.items()}
