"""`factory shards`: per-language token shards for pre-training, with budgets, tasks and resume."""

from __future__ import annotations

import click

from factory.core.options import click_options, from_flags, resolve
from factory.shards.config import ShardsConfig


@click.command()
@click_options(ShardsConfig)
def shards(**flags) -> None:
    """Tokenise a corpus per language and pack it into fixed-length sequences for `factory pretrain`.

    Every sequence is [CLS] + seq-len-2 tokens + [SEP] of one language, cut from its documents joined by
    [SEP]. Documents are cleaned, language-filtered and de-duplicated as `factory vocab` does (--no-clean,
    --no-langid, --no-dedupe turn each off). --tokens T stores T tokens split across languages by
    p ∝ corpus_tokens^alpha (--tokens-per-language N: N each); the mixing itself happens in pre-training.
    A killed build continues where it stopped when run again; --task I/N builds one part of N and --merge
    joins the parts. Shards are uint32 Arrow files that pre-training memory-maps (docs/data.md).

    \b
    Examples:
      factory shards --vocab vocab/32k --corpus data/ --seq-len 512 --out shards/32k-512
      factory shards --vocab v --corpus en=data/en --corpus pt=hf:allenai/c4:pt --tokens 2B --dry-run --out s
      factory shards --vocab v --corpus pt=data/pt --task 3/64 --out parts/3   # then: --merge parts/* --out s
    """
    from factory.core.outputs import check_output
    from factory.shards.run import build_shards

    config = resolve(ShardsConfig, [from_flags(flags)])
    if not config.dry_run:
        check_output(config.out, config.force)
    figures = build_shards(config)
    if config.dry_run:
        for line in figures["plan"]:
            click.echo(line)
        return
    langs = ", ".join(f"{k} {v['tokens']:,}" for k, v in figures["per_language"].items())
    click.echo(
        f"wrote {config.out}: {figures['documents']:,} documents -> {figures['sequences']:,} sequences of "
        f"{config.seq_len} ({figures['tokens']:,} tokens, {figures['padding']:,} padding) in "
        f"{len(figures['shards'])} shard(s); tokens per language: {langs}"
    )
