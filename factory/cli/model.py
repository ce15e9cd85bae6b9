"""`factory presets` and `factory init`: the size table and a random model of a preset."""

from __future__ import annotations

import json

import click

from factory.core.options import click_options, from_flags, resolve
from factory.model.init_config import InitConfig, PresetsConfig


# ---- presets ------------------------------------------------------------------------------------
@click.command()
@click_options(PresetsConfig)
def presets(**flags) -> None:
    """List the size presets with their parameter counts.

    Counts come from an instantiated model, for the vocabulary you give: backbone (everything but the
    word embeddings), embedding (vocabulary rows x hidden) and total. xlarge/xxlarge are the published
    v2 shapes (with the conv layer); the rest are DeBERTa-v3's.

    \b
    Examples:
      factory presets                     # v3 sizes with the 128k vocabulary
      factory presets --vocab-size 32k    # DeBERTina-style 32k vocabulary
      factory presets --json
    """
    from factory.model.presets import VocabSize, preset_table

    config = resolve(PresetsConfig, [from_flags(flags)])
    rows = preset_table(VocabSize.parse(config.vocab_size))
    if config.json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"vocabulary {rows[0]['vocab_pieces']:,} pieces -> {rows[0]['embedding_rows']:,} embedding rows")
    header = f"{'preset':<8} {'layers':>6} {'hidden':>6} {'heads':>5} {'FFN':>6} {'gen':>4}"
    header += f" {'backbone':>10} {'embedding':>10} {'total':>10} {'published':>10}"
    click.echo(header)
    for r in rows:
        pub = f"{r['published_backbone_m']}M" if r["published_backbone_m"] else "-"
        click.echo(
            f"{r['preset']:<8} {r['layers']:>6} {r['hidden']:>6} {r['heads']:>5} {r['ffn']:>6} "
            f"{r['generator_layers']:>4} {_millions(r['backbone']):>10} {_millions(r['embedding']):>10} "
            f"{_millions(r['total']):>10} {pub:>10}"
        )
    click.echo("gen = generator layers for RTD pre-training; published = backbone size in the DeBERTa README")


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M"


# ---- init ---------------------------------------------------------------------------------------
@click.command()
@click_options(InitConfig)
def init(**flags) -> None:
    """Write a randomly initialised model of a size preset, in Hugging Face deberta-v2 format.

    --layers/--hidden/--heads/--ffn give a shape between the presets: the preset's config with those sizes
    (--ffn defaults to 4 x --hidden), recorded as preset "custom" with its base preset in config.json.

    The folder loads with transformers (AutoModel, AutoModelForMaskedLM for --head mlm,
    AutoModelForSequenceClassification for --head cls) and with `factory.model.load_model`. With --vocab,
    the embedding is sized to that vocabulary and its tokenizer files are copied in, so the folder is
    ready for `factory eval` and `factory publish`.

    \b
    Examples:
      factory init --preset xsmall --vocab-size 32k --head mlm --out models/xsmall-32k
      factory init --preset debug --vocab runs/demo/vocab --head cls --out models/debug
      factory init --preset debug --layers 4 --hidden 128 --heads 4 --vocab-size 16k --out models/4x128
    """
    from factory.model.init import init_model

    config = resolve(InitConfig, [from_flags(flags)])
    summary = init_model(config)
    click.echo(
        f"wrote {config.out}: {summary['shape']}, {summary['pieces']:,}-piece vocabulary ({summary['rows']:,} rows), "
        f"head {config.head}, {summary['total'] / 1e6:.1f}M parameters"
        + (f", tokenizer from {config.vocab}" if config.vocab else "")
    )
