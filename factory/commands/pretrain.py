"""`factory shards` and `factory pretrain`: token shards, then RTD + GDES pre-training on Accelerate."""

from __future__ import annotations

import json
from pathlib import Path

import click

from factory.commands import PRESET_NAMES, Number, layout_option


# ---- shards -------------------------------------------------------------------------------------
@click.command()
@click.option("--vocab", required=True, type=click.Path(path_type=Path), help="Vocabulary folder (spm.model).")
@click.option(
    "--corpus",
    required=True,
    multiple=True,
    help="Text source, repeatable: .txt (a document per line), .jsonl/.json/.parquet (text column), .gz, a folder, "
    "or hf:NAME[:CONFIG][@SPLIT] (streamed).",
)
@click.option("--seq-len", type=click.IntRange(min=8), default=512, show_default=True, help="Tokens per sequence.")
@click.option("--text-field", default="text", show_default=True, help="Column holding the text in jsonl/parquet/Hub.")
@click.option("--num-proc", type=click.IntRange(min=1), default=None, help="Tokeniser processes [default: all cores].")
@click.option(
    "--rows-per-shard", type=click.IntRange(min=1), default=16384, show_default=True, help="Sequences per file."
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--force", is_flag=True, help="Replace --out if it is not empty.")
def shards(
    vocab: Path,
    corpus: tuple[str, ...],
    seq_len: int,
    text_field: str,
    num_proc: int | None,
    rows_per_shard: int,
    out: Path,
    force: bool,
) -> None:
    """Tokenise a corpus and pack it into fixed-length sequences for `factory pretrain`.

    Every sequence is [CLS] + seq-len-2 tokens + [SEP], cut from the documents joined by [SEP], so there is no
    padding (only the last sequence is padded). Shards are uint32 Arrow files that pre-training memory-maps;
    factory.json records the vocabulary fingerprint, so shards and vocabulary cannot be mixed up.

    \b
    Example:
      factory shards --vocab vocab/32k --corpus data/ --seq-len 512 --out shards/32k-512
    """
    from factory.outputs import check_output
    from factory.shards import build_shards

    check_output(out, force)
    figures = build_shards(vocab, list(corpus), seq_len, out, force, num_proc, text_field, rows_per_shard)
    click.echo(
        f"wrote {out}: {figures['documents']:,} documents -> {figures['sequences']:,} sequences of {seq_len} "
        f"({figures['tokens']:,} tokens, {figures['padding']:,} padding) in {len(figures['shards'])} shard(s)"
    )


# ---- pretrain -----------------------------------------------------------------------------------
@click.command()
@click.option("--vocab", type=click.Path(path_type=Path), help="Vocabulary folder (spm.model) of the shards.")
@click.option("--shards", "shards_dir", type=click.Path(path_type=Path), help="Shards from `factory shards`.")
@click.option("--corpus", multiple=True, help="Build shards from this text first (into OUT/shards); repeatable.")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="base", show_default=True, help="Size preset.")
@click.option("--seq-len", type=click.IntRange(min=8), help="Sequence length [default: the shards'; 512 for --corpus].")
@click.option("--batch", type=click.IntRange(min=1), default=8192, show_default=True, help="Global batch (sequences).")
@click.option("--micro-batch", type=click.IntRange(min=1), help="Sequences per process per forward [default: <= 32].")
@click.option(
    "--lr", type=Number(0, low_open=True), help="Peak learning rate [default: 5e-4 base/small/xsmall, 3e-4 large]."
)
@click.option("--warmup", type=click.IntRange(min=0), help="Warm-up steps [default: 10k, at most 10% of the run].")
@click.option("--max-steps", type=click.IntRange(min=1), help="Optimizer steps [default: 500k, the paper's].")
@click.option("--tokens", type=Number(0, low_open=True), help="Train for this many tokens instead (e.g. 1e9).")
@click.option(
    "--rtd-lambda", type=Number(0), default=50.0, show_default=True, help="Weight of the RTD loss (paper 50)."
)
@click.option(
    "--sharing",
    type=click.Choice(["gdes", "es", "nes"]),
    default="gdes",
    show_default=True,
    help="Embedding sharing: gdes (DeBERTaV3), es (ELECTRA), nes (none).",
)
@click.option(
    "--mixed-precision",
    type=click.Choice(["auto", "bf16", "fp16", "no"]),
    default="auto",
    show_default=True,
    help="auto: bf16 on GPUs that have it, else fp32.",
)
@click.option("--dropout", type=click.FloatRange(0, 1), help="Dropout [default: 0.1, the configs'].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for weights, data order and masks.")
@layout_option
@click.option("--vocab-size", help="Vocabulary size for --dry-run without --vocab (e.g. 128k).")
@click.option(
    "--save-every", type=click.IntRange(min=1), default=1000, show_default=True, help="Checkpoint every N steps."
)
@click.option("--keep", type=click.IntRange(min=1), default=3, show_default=True, help="Checkpoints to keep.")
@click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True, help="Log every N steps.")
@click.option("--log-with", multiple=True, help="Accelerate tracker(s): tensorboard, wandb, ... (train.jsonl always).")
@click.option("--resume", help="auto (the latest checkpoint in --out, if any) or a checkpoint folder.")
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations in backward (large presets).")
@click.option("--compile", is_flag=True, help="torch.compile each layer (GPU; the first steps pay the compile time).")
@click.option(
    "--peak-tflops", type=Number(0, low_open=True), help="Peak TFLOP/s per device for MFU [default: from the GPU name]."
)
@click.option("--dry-run", is_flag=True, help="Print the plan (parameters, FLOPs, memory, time) and stop.")
@click.option(
    "--assume-tflops",
    type=Number(0, low_open=True),
    default=100.0,
    show_default=True,
    help="Dry run: achieved TFLOP/s.",
)
@click.option(
    "--assume-tokens-per-s",
    type=Number(0, low_open=True),
    help="Dry run: achieved tokens/s (instead of --assume-tflops).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder (checkpoints, logs, exports).")
@click.option("--force", is_flag=True, help="Start over in an --out that holds an earlier run.")
def pretrain(shards_dir: Path | None, corpus: tuple[str, ...], dry_run: bool, **options) -> None:
    """Pre-train a DeBERTa-v3 with replaced token detection and gradient-disentangled embedding sharing.

    A generator (half depth) fills 15% masked tokens; the discriminator spots the replaced ones; loss =
    MLM + lambda * RTD. Checkpoints (with data position and RNG state) land in OUT/checkpoints every
    --save-every steps; --resume auto continues exactly. At the end OUT/discriminator (the model to fine-tune,
    deberta-v2 format, with the tokenizer) and OUT/generator are written, with figures in factory.json.
    Multi-GPU, FSDP and DeepSpeed come from `accelerate config` + `accelerate launch -m factory pretrain ...`.

    \b
    Examples:
      factory pretrain --preset base --vocab-size 128k --dry-run --out runs/base
      factory pretrain --vocab v/ --shards s/ --preset xsmall --batch 256 --max-steps 100000 --out runs/xs
      accelerate launch -m factory pretrain --vocab v/ --shards s/ --preset base --out runs/base --resume auto
    """
    from factory.pretrain import TrainArgs, make_plan, plan_time, run

    options["log_with"] = tuple(options["log_with"])
    options["tokens"] = int(options["tokens"]) if options["tokens"] is not None else None
    assume = options.pop("assume_tflops"), options.pop("assume_tokens_per_s")
    args = TrainArgs(shards=shards_dir, **options)
    if dry_run:
        _print_plan(
            make_plan(args, _dry_seq_len(args)), plan_time(make_plan(args, _dry_seq_len(args)), *assume), assume
        )
        return
    if corpus:
        args.shards = _build_corpus_shards(args, corpus)
    figures = run(args)
    final = {k: (v if v is not None else float("nan")) for k, v in figures["final"].items()}
    click.echo(
        f"wrote {args.out}: {figures['steps']:,} steps, {figures['tokens']:,} tokens; generator loss "
        f"{final['mlm_loss']:.3f}, RTD loss {final['rtd_loss']:.4f}, RTD accuracy {final['rtd_accuracy']:.3f} "
        f"(all-original {final['rtd_baseline']:.3f}); {figures['tokens_per_s']:,.0f} tokens/s"
    )


def _dry_seq_len(args) -> int:
    if args.seq_len is not None:
        return args.seq_len
    if args.shards is not None:
        from factory.outputs import read_manifest

        manifest = read_manifest(args.shards) or {}
        return int(manifest.get("seq_len", 512))
    return 512


def _build_corpus_shards(args, corpus: tuple[str, ...]) -> Path:
    """--corpus: shards into OUT/shards (reused when they exist for this vocabulary and length)."""
    from factory.errors import ConfigError
    from factory.outputs import fingerprint_file, read_manifest
    from factory.shards import build_shards

    if args.vocab is None:
        raise ConfigError("--corpus needs --vocab to tokenise with")
    target = Path(args.out) / "shards"
    manifest = read_manifest(target) if target.is_dir() else None
    seq_len = args.seq_len or 512
    fits = manifest and manifest.get("seq_len") == seq_len
    if not (fits and manifest.get("vocab_fingerprint") == fingerprint_file(Path(args.vocab) / "spm.model")):
        build_shards(args.vocab, list(corpus), seq_len, target, force=True)
    return target


def _print_plan(plan, seconds: float, assume: tuple[float, float | None]) -> None:
    p = plan.parameters
    click.echo(
        f"preset {plan.preset}: vocabulary {plan.vocab.pieces:,} pieces ({plan.vocab.rows:,} rows), "
        f"seq_len {plan.seq_len}"
    )
    click.echo(
        f"parameters: generator {p['generator'] / 1e6:.1f}M + discriminator {p['discriminator'] / 1e6:.1f}M "
        f"= {p['total'] / 1e6:.1f}M (bodies {p['generator_body'] / 1e6:.1f}M + {p['discriminator_body'] / 1e6:.1f}M)"
    )
    click.echo(
        f"batch {plan.batch} sequences = {plan.tokens_per_step:,} tokens/step: micro-batch {plan.micro_batch} x "
        f"{plan.processes} process(es) x {plan.accumulation} accumulation step(s)"
    )
    click.echo(
        f"schedule: {plan.steps:,} steps ({plan.steps * plan.tokens_per_step:,} tokens), "
        f"warm-up {plan.warmup:,}, peak lr {plan.lr:g}"
    )
    click.echo(
        f"FLOPs/step {plan.flops_per_step:.3e} (6*N*T + attention + generator output layer; see "
        f"factory/pretrain/plan.py), total {plan.flops_per_step * plan.steps:.3e}"
    )
    m = plan.memory_gib
    click.echo(
        f"memory/process ~{m['total']:.1f} GiB (weights+grads+Adam {m['states']:.1f}, "
        f"activations {m['activations']:.1f})"
    )
    rate = f"{assume[1]:,.0f} tokens/s" if assume[1] else f"{assume[0]:g} TFLOP/s achieved"
    click.echo(f"time at {rate}: {seconds / 3600:.1f} h ({seconds / 86400:.2f} days)")
    click.echo(json.dumps(plan.as_dict(), default=str))
