"""`factory presets` and `factory init`: the size table and a random model of a preset."""

from __future__ import annotations

import json
from pathlib import Path

import click

from factory.commands import PRESET_NAMES, layout_option

HEAD_NAMES = ["none", "mlm", "rtd", "cls"]  # == model.heads.HEADS


# ---- presets ------------------------------------------------------------------------------------
@click.command()
@click.option("--vocab-size", default="128k", show_default=True, help="Vocabulary: 32k, 128k, 250k or a number.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def presets(vocab_size: str, as_json: bool) -> None:
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
    from factory.presets import VocabSize, preset_table

    rows = preset_table(VocabSize.parse(vocab_size))
    if as_json:
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
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="base", show_default=True, help="Size preset.")
@click.option("--vocab-size", default="128k", show_default=True, help="Vocabulary: 32k, 128k, 250k or a number.")
@layout_option
@click.option(
    "--head",
    type=click.Choice(HEAD_NAMES),
    default="none",
    show_default=True,
    help="none: bare encoder (AutoModel); mlm: generator head; rtd: discriminator head; cls: sequence classification.",
)
@click.option("--num-labels", type=click.IntRange(min=1), default=2, show_default=True, help="Labels of --head cls.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the random weights.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--force", is_flag=True, help="Replace --out if it is not empty.")
def init(
    preset: str, vocab_size: str, layout: str, head: str, num_labels: int, seed: int, out: Path, force: bool
) -> None:
    """Write a randomly initialised model of a size preset, in Hugging Face deberta-v2 format.

    The folder loads with transformers (AutoModel, AutoModelForMaskedLM for --head mlm,
    AutoModelForSequenceClassification for --head cls) and with `factory.model.load_model`.

    \b
    Example:
      factory init --preset xsmall --vocab-size 32k --head mlm --out models/xsmall-32k
    """
    from factory.manifest import InitManifest, write_manifest
    from factory.outputs import check_output, staged_output
    from factory.presets import VocabSize, count_parameters, get_preset

    vocab = VocabSize.parse(vocab_size, layout)
    config = get_preset(preset).config(vocab, labels=tuple(f"LABEL_{i}" for i in range(num_labels)))
    config = config.replace(factory={**config.factory, "preset": preset})
    check_output(out, force)

    from factory.model import build_model, save_model

    with staged_output(out, force) as tmp:
        model = build_model(config, head, seed=seed)
        save_model(model, tmp)
        counts = count_parameters(config)
        arguments = {"preset": preset, "vocab_size": str(vocab), "layout": layout, "head": head, "seed": seed}
        write_manifest(tmp, InitManifest(arguments=arguments, parameters=counts))
    click.echo(
        f"wrote {out}: {preset}, {vocab.pieces:,}-piece vocabulary ({vocab.rows:,} rows), head {head}, "
        f"{counts['total'] / 1e6:.1f}M parameters"
    )
