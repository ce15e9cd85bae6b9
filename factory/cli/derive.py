"""`factory trim` and `factory transplant`: a model derived from another by changing its vocabulary."""

from __future__ import annotations

import click

from factory.core.options import click_options, from_flags, resolve
from factory.derive.config import TransplantConfig, TrimConfig


@click.command()
@click.argument("source", metavar="SRC")
@click_options(TrimConfig)
def trim(source: str, **flags) -> None:
    """Cut a multilingual model down to the pieces its languages use.

    SRC's tokenizer cuts each language's --corpus; the pieces it uses are kept (all those used --min-count
    times, or the most used up to --size), with the pieces every text may need: specials, byte pieces,
    user-defined pieces and the single characters of the languages' scripts (so no new [UNK]). spm.model is
    rewritten without the others (order, scores and types kept), and every per-vocabulary tensor of every
    network (the embedding table, the GDES delta, the generator's table, the MLM bias) is sliced with the same
    index, [MASK] last. A text whose pieces are all kept gets the same pieces, the same ids one to one and the
    same hidden states. --out gets the same files as SRC (a generator too), the tokenizer files and
    factory.json with the report: parameters, share of words cut as before, fertility, time.

    \b
    Examples:
      factory trim microsoft/mdeberta-v3-base --langs pt --corpus pt=hf:allenai/c4:pt --size 64k --out mdeberta-pt
      factory trim runs/demo/pretrain --langs pt,es --corpus pt=pt.txt --corpus es=es.txt --out demo-pt-es
    """
    from factory.derive.trim import trim as run

    config = resolve(TrimConfig, [from_flags(flags)], fixed={"source": source}, wired_by="the SRC argument")
    for line in run(config).summary:
        click.echo(line)


@click.command()
@click.argument("source", metavar="SRC")
@click_options(TransplantConfig)
def transplant(source: str, **flags) -> None:
    """Move a model onto another vocabulary (e.g. one `factory vocab --lang pt` made).

    A piece both vocabularies have keeps its rows exactly; a new piece gets, with --init mean, the mean of the
    rows of the pieces SRC's tokenizer cuts it into (FVT), and with --init random fresh rows (the baseline).
    Every per-vocabulary tensor of every network is built this way (the embedding table, the GDES delta, the
    generator's table, the MLM bias), [MASK] keeps its row. --out gets the same files as SRC with the new
    vocabulary's tokenizer; continue its pre-training on the new language's text.

    \b
    Example:
      factory vocab --lang pt --size 32k --corpus pt=pt.txt --out pt-32k
      factory transplant microsoft/mdeberta-v3-base --vocab pt-32k --out mdeberta-on-pt-32k
      factory shards --vocab mdeberta-on-pt-32k --corpus pt=pt.txt --out pt-shards
      factory pretrain --init-from mdeberta-on-pt-32k --shards pt-shards --out continued
    """
    from factory.derive.transplant import transplant as run

    config = resolve(TransplantConfig, [from_flags(flags)], fixed={"source": source}, wired_by="the SRC argument")
    for line in run(config).summary:
        click.echo(line)
