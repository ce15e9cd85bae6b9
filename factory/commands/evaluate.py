"""`factory eval xnli | pawsx | classify`: fine-tune on one language, test on every language, in one command."""

from __future__ import annotations

import functools
from pathlib import Path

import click

DATA_LAYOUT = """\b
Local data (--data DIR), jsonl / tsv (header row) / parquet, label = integer id:
  DIR/{{split}}.{{ext}}           all languages in one file, with a `language` column
  DIR/{{split}}.{{lang}}.{{ext}}    one file per split and language
  split: train, validation (or dev), test.  Columns: {columns}, label, language."""


def common_options(command):
    """Options every suite shares."""

    @click.option(
        "--model", required=True, type=click.Path(path_type=Path), help="deberta-v2 model folder with spm.model."
    )
    @click.option("--train-lang", default=None, help="Language to fine-tune on (default: the suite's, en).")
    @click.option("--langs", default="all", show_default=True, help="Languages to test: all, or a list like en,fr,de.")
    @click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True, help="Seeds to average over.")
    @click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a setting of the suite file, e.g. --set epochs=3 --set learning_rate=3e-5.",
    )
    @click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
    @click.option("--force", is_flag=True, help="Replace --out if it is not empty.")
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        return command(*args, **kwargs)

    return wrapper


@click.group(name="eval")
def eval_group() -> None:
    """Zero-shot cross-lingual evaluation: fine-tune on one language, test on all the others.

    Each command fine-tunes a fresh classification head on the train split of one language, evaluates
    the validation and test splits of every language in the same run, and writes results.json,
    results.md (beside the published references), a per-language chart and the predictions.
    Runs on Accelerate, with the same numbers as one process: `accelerate launch --multi_gpu -m factory
    eval xnli ...` on several GPUs, `torchrun --standalone --nproc_per_node 2 -m factory eval xnli ...`
    on CPU processes. bf16 autocast where the GPU supports it.
    """


def _run(suite_name: str, model: Path, data: str | None, train_lang, langs, runs, overrides, out, force, **extra):
    from factory.evaluate.runner import Request, run
    from factory.evaluate.suite import load_suite

    suite = extra.pop("suite", None) or load_suite(suite_name)
    settings = suite.settings.override(_pairs(overrides))
    arguments = {"model": str(model), "data": data, "train_lang": train_lang, "langs": langs, "runs": runs}
    request = Request(
        suite=suite,
        model=model,
        data=data or suite.dataset or "",
        train_language=train_lang or suite.train_language,
        languages=langs,
        runs=runs,
        settings=settings,
        out=out,
        force=force,
        arguments={**arguments, "set": list(overrides), **{k: str(v) for k, v in extra.items()}},
        **extra,
    )
    report = run(request)
    _echo_summary(report, out)


def _pairs(overrides: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        pairs[key.strip()] = value.strip()
    return pairs


def _echo_summary(report: dict, out: Path) -> None:
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    splits = list(report["average"])
    click.echo(f"{'lang':<6}" + "".join(f"{s:>12}" for s in splits))
    for lang in report["languages"]:
        click.echo(f"{lang:<6}" + "".join(f"{report['results'][lang][s]['accuracy']:>12.1f}" for s in splits))
    click.echo(f"{'avg':<6}" + "".join(f"{report['average'][s]['accuracy']:>12.1f}" for s in splits))
    click.echo(f"wrote {out}: results.json, results.md, chart, predictions/ ({report['runs']} run(s))")


@eval_group.command()
@common_options
@click.option("--data", default=None, help="hf:facebook/xnli (default; needs the network or a cache) or a local DIR.")
def xnli(model, train_lang, langs, runs, overrides, out, force, data) -> None:
    """XNLI: fine-tune on English (or --train-lang), test on the 15 languages.

    Settings (eval/xnli.yaml) are the mDeBERTa-v3 card's: lr 2e-5, 6 epochs, batch 32, max length 256,
    3000 warm-up steps (at most 10% of the steps on small data), AdamW eps 1e-8, no weight decay,
    linear schedule. Labels: 0 entailment, 1 neutral, 2 contradiction.

    \b
    Examples:
      factory eval xnli --model models/mdeberta --out results/xnli
      factory eval xnli --model m/ --data recipes/demo/nli --set epochs=3 --out results/demo
      accelerate launch --multi_gpu -m factory eval xnli --model m/ --runs 3 --out results/xnli
    """
    _run("xnli", model, data, train_lang, langs, runs, overrides, out, force)


xnli.help += "\n\n" + DATA_LAYOUT.format(columns="premise, hypothesis")


@eval_group.command()
@common_options
@click.option("--data", default=None, help="hf:google-research-datasets/paws-x (default) or a local DIR.")
def pawsx(model, train_lang, langs, runs, overrides, out, force, data) -> None:
    """PAWS-X paraphrase identification: fine-tune on English, test on en de es fr ja ko zh.

    Labels: 0 not a paraphrase, 1 paraphrase. Settings: eval/pawsx.yaml (XNLI's recipe).
    """
    _run("pawsx", model, data, train_lang, langs, runs, overrides, out, force)


pawsx.help += "\n\n" + DATA_LAYOUT.format(columns="sentence1, sentence2")


@eval_group.command()
@common_options
@click.option("--train", "train_file", required=True, type=click.Path(path_type=Path), help="Training file.")
@click.option("--validation", "validation_file", type=click.Path(path_type=Path), help="Validation file (optional).")
@click.option("--test", "test_file", required=True, type=click.Path(path_type=Path), help="Test file.")
@click.option("--labels", required=True, help="Label names in id order, e.g. negative,positive.")
@click.option(
    "--columns",
    default="text",
    show_default=True,
    help="Text column, or two for pairs: premise,hypothesis.",
)
def classify(
    model, train_lang, langs, runs, overrides, out, force, train_file, validation_file, test_file, labels, columns
) -> None:
    """Any cross-lingual sentence or pair classification set given as files: train on one language, test on all.

    Each file (.jsonl, .tsv with a header, or .parquet) has the text column(s), `label` (an integer id)
    and `language`. Settings are XNLI's (eval/xnli.yaml); change them with --set.

    \b
    Example:
      factory eval classify --model m/ --train tr.jsonl --test te.jsonl --labels neg,pos --out r/
    """
    import dataclasses

    from factory.evaluate.suite import load_suite

    names = [c.strip() for c in columns.split(",") if c.strip()]
    label_names = tuple(x.strip() for x in labels.split(",") if x.strip())
    if not 1 <= len(names) <= 2 or len(label_names) < 2:
        raise click.BadParameter(
            "give one or two text columns and at least two labels", param_hint="--columns/--labels"
        )
    suite = dataclasses.replace(
        load_suite("xnli"),
        name="classify",
        dataset=None,
        languages=(),
        labels=label_names,
        text_a=names[0],
        text_b=names[1] if len(names) == 2 else None,
        references={},
    )
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    files = {split: path for split, path in files.items() if path is not None}
    splits = tuple(s for s in ("validation", "test") if s in files)
    _run("classify", model, "files", train_lang or "en", langs, runs, overrides, out, force, suite=suite, files=files,
         splits=splits)  # fmt: skip
