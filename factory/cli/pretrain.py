"""`factory pretrain`: RTD + GDES pre-training on Accelerate (`factory shards` is in cli/shards.py)."""

from __future__ import annotations

import click

from factory.core.options import click_options, from_flags, resolve
from factory.pretrain.config import PretrainConfig


# ---- pretrain -----------------------------------------------------------------------------------
@click.command()
@click_options(PretrainConfig)
def pretrain(**flags) -> None:
    """Pre-train a DeBERTa-v3 with replaced token detection and gradient-disentangled embedding sharing.

    A generator (half depth) fills 15% masked tokens; the discriminator spots the replaced ones; loss =
    MLM + lambda * RTD. Checkpoints (with data position and RNG state) land in OUT/checkpoints every
    --save-every steps; --resume auto continues exactly. At the end OUT/discriminator (the model to fine-tune,
    deberta-v2 format, with the tokenizer) and OUT/generator are written, with figures in factory.json.
    Multi-GPU, FSDP and DeepSpeed come from `accelerate config` + `accelerate launch -m factory pretrain ...`.
    --layers/--hidden/--heads/--ffn train a shape between the presets (the generator keeps half the depth);
    it is recorded as preset "custom" with its base preset, in the manifests and config.json.
    --init-from continues a published (or earlier) model instead, a folder or a Hub id: its config, weights, RTD
    head and spm.model, and the generator published beside it (or --init-generator, or one derived from it);
    docs/derive.md#continued-pre-training.

    \b
    Examples:
      factory pretrain --preset base --vocab-size 128k --dry-run --out runs/base
      factory pretrain --vocab v/ --shards s/ --preset xsmall --batch 256 --max-steps 100000 --out runs/xs
      factory pretrain --preset debug --layers 4 --hidden 128 --heads 4 --vocab-size 16k --dry-run --out r/
      factory pretrain --init-from microsoft/deberta-v3-xsmall --shards s/ --update-order official --out runs/xs
      accelerate launch -m factory pretrain --vocab v/ --shards s/ --preset base --out runs/base --resume auto
    """
    from factory.core.launch import is_main_process
    from factory.pretrain.plan import dry_run_lines
    from factory.pretrain.step import run_pretrain

    config = resolve(PretrainConfig, [from_flags(flags)])
    if config.dry_run:
        for line in dry_run_lines(config):
            click.echo(line)
        return
    figures = run_pretrain(config)
    if not is_main_process():  # N launched processes print what one prints
        return
    final = {k: (v if v is not None else float("nan")) for k, v in figures["final"].items()}
    click.echo(
        f"wrote {config.out}: {figures['steps']:,} steps, {figures['tokens']:,} tokens; generator loss "
        f"{final['mlm_loss']:.3f}, RTD loss {final['rtd_loss']:.4f}, RTD accuracy {final['rtd_accuracy']:.3f} "
        f"(all-original {final['rtd_baseline']:.3f}); {figures['tokens_per_s']:,.0f} tokens/s"
    )
