"""The `factory` command line: thin commands that parse, validate and call the library.

User mistakes (`FactoryError`, bad flags) print one line and exit 2; there is never a traceback for them.
torch and friends are imported inside the commands so that `factory --help` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from factory import __version__
from factory.errors import FactoryError

PRESET_NAMES = ["debug", "xsmall", "small", "base", "large", "xlarge", "xxlarge"]  # == presets.PRESETS
HEAD_NAMES = ["none", "mlm", "rtd", "cls"]  # == model.heads.HEADS


class FactoryGroup(click.Group):
    """A click group whose errors are one line: `Error: what is wrong; how to fix it`, exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            return self._fail(f"{e.format_message()}{hint}", 2, standalone_mode)
        except FactoryError as e:
            return self._fail(str(e), 2, standalone_mode)
        except click.ClickException as e:
            return self._fail(e.format_message(), e.exit_code, standalone_mode)
        except click.Abort:
            return self._fail("aborted", 1, standalone_mode)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return rv

    @staticmethod
    def _fail(message: str, code: int, standalone_mode: bool):
        click.echo(f"Error: {message}", err=True)
        if standalone_mode:
            sys.exit(code)
        return code


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=FactoryGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="factory")
def cli() -> None:
    """Build DeBERTa-v3 model families: vocabulary -> pre-training -> evaluation -> Hub.

    \b
    Start here:
      factory presets                         the sizes you can build (xsmall ... xxlarge)
      factory init --preset base --out m/     a random model in Hugging Face format

    Every command writes one folder with a factory.json manifest, so each step can be re-run,
    resumed or replaced on its own. Run `factory COMMAND --help` for the details of a step.
    """


def main() -> None:
    cli(prog_name="factory")


# ---- presets ------------------------------------------------------------------------------------
@cli.command()
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
@cli.command()
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="base", show_default=True, help="Size preset.")
@click.option("--vocab-size", default="128k", show_default=True, help="Vocabulary: 32k, 128k, 250k or a number.")
@click.option(
    "--layout",
    type=click.Choice(["official", "pad128"]),
    default="official",
    show_default=True,
    help="Embedding rows: as published (128k -> 128100) or padded to a multiple of 128 (faster on GPU).",
)
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
    from factory.outputs import check_output, staged_output, write_manifest
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
        write_manifest(
            tmp,
            "init",
            {"preset": preset, "vocab_size": str(vocab), "layout": layout, "head": head, "seed": seed},
            parameters=counts,
        )
    click.echo(
        f"wrote {out}: {preset}, {vocab.pieces:,}-piece vocabulary ({vocab.rows:,} rows), head {head}, "
        f"{counts['total'] / 1e6:.1f}M parameters"
    )


if __name__ == "__main__":
    main()
