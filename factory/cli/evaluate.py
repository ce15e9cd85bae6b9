"""`factory eval xnli | pawsx | classify`: fine-tune on one language, test on every language, in one command;
`factory eval glue | xtreme | assin2 | squad | squad2`: the model cards' and XTREME's tasks (every task type);
`factory eval retrieval`: parallel-sentence retrieval, no fine-tuning."""

from __future__ import annotations

import inspect
from pathlib import Path

import click

from factory.core.options import click_options, from_flags, resolve
from factory.evaluate.config import BenchmarkConfig, ClassifyConfig, EvalConfig, RetrievalConfig

DATA_LAYOUT = """\b
Local data (--data DIR), jsonl / tsv (header row) / parquet, label = an id or a label name:
  DIR/{{split}}.{{ext}}           all languages in one file, with a `language` column
  DIR/{{split}}.{{lang}}.{{ext}}    one file per split and language
  split: train, validation (or dev), test.  Columns: {columns}, label, language."""


@click.group(name="eval")
def eval_group() -> None:
    """Zero-shot cross-lingual evaluation: fine-tune on one language, test on all the others.

    Each command fine-tunes a fresh head for its task (classification, regression, token classification,
    extractive QA) on the train split of one language, evaluates the validation and test splits of every
    language in the same run, and writes results.json, results.md (beside the published references), a
    per-language chart and the predictions. glue, xtreme and assin2 run several tasks and add a summary.
    Runs on Accelerate, with the same numbers as one process: `accelerate launch --multi_gpu -m factory
    eval xnli ...` on several GPUs, `torchrun --standalone --nproc_per_node 2 -m factory eval xnli ...`
    on CPU processes. bf16 autocast where the GPU supports it.

    `retrieval` fine-tunes nothing: it measures how well the encoder aligns parallel sentences.
    `--control random` on any of them also evaluates a random-init model of the same config and
    tokenizer, with the same seeds and settings, and reports the gain of pre-training per language.
    """


def _run(suite_name: str, config_class: type, flags: dict) -> None:
    from factory.evaluate.entry import evaluate

    config = resolve(config_class, [from_flags(flags)])
    _echo_summary(evaluate(suite_name, config), config.out)


def _echo_summary(report: dict, out: Path) -> None:
    from factory.core.launch import is_main_process

    if not is_main_process():  # N launched processes print what one prints
        return
    if report.get("benchmark"):
        return _echo_benchmark(report, out)
    metric = report.get("main_metric", "accuracy")
    splits = list(report["average"])
    width, heads = (12, splits) if metric == "accuracy" else (24, [f"{s[:14]} {metric}" for s in splits])
    click.echo(f"{'lang':<6}" + "".join(f"{h:>{width}}" for h in heads))
    for lang in [*report["languages"], "avg"]:
        entry = report["average"] if lang == "avg" else report["results"][lang]
        click.echo(f"{lang:<6}" + "".join(f"{entry[s][metric]:>{width}.1f}" for s in splits))
    if metric == "accuracy":
        _echo_control(report, splits)
    click.echo(f"wrote {out}: results.json, results.md, chart, predictions/ ({report['runs']} run(s))")


def _echo_benchmark(summary: dict, out: Path) -> None:
    from factory.evaluate.report import headline_split

    click.echo(
        f"{'task':<10}{'metric':>10}{'avg':>8}" + (f"{'control':>9}{'gain':>7}" if _has_control(summary) else "")
    )
    for name, t in summary["tasks"].items():
        split, metric = headline_split(t), t["main_metric"]
        line = f"{name:<10}{metric:>10}{t['average'][split][metric]:>8.1f}"
        if "control_average" in t:
            line += f"{t['control_average'][split][metric]:>9.1f}{t['gain']['avg'][split]:>+7.1f}"
        click.echo(line)
    click.echo(f"wrote {out}: results.json, results.md, {summary['suite']}_summary.png, one folder per task")


def _has_control(summary: dict) -> bool:
    return any("control" in t for t in summary["tasks"].values())


def _echo_control(report: dict, keys: list[str], heads: list[str] | None = None) -> None:
    """The control's accuracy and the gain (points), one line per language, when `--control` asked for it."""
    if "control" not in report:
        return
    heads = heads or keys
    click.echo("control (random init, same config and settings) and gain:")
    click.echo(f"{'lang':<6}" + "".join(f"{h:>12}{'gain':>8}" for h in heads))
    for lang in [*report["languages"], "avg"]:
        entry = report["control_average"] if lang == "avg" else report["control"][lang]
        gain = report["gain"][lang]
        click.echo(f"{lang:<6}" + "".join(f"{entry[k]['accuracy']:>12.1f}{gain[k]:>+8.1f}" for k in keys))


@eval_group.command()
@click_options(EvalConfig)
def xnli(**flags) -> None:
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
    _run("xnli", EvalConfig, flags)


xnli.help += "\n\n" + DATA_LAYOUT.format(columns="premise, hypothesis")


@eval_group.command()
@click_options(EvalConfig)
def pawsx(**flags) -> None:
    """PAWS-X paraphrase identification: fine-tune on English, test on en de es fr ja ko zh.

    Labels: 0 not a paraphrase, 1 paraphrase. Settings: eval/pawsx.yaml (XNLI's recipe).
    """
    _run("pawsx", EvalConfig, flags)


pawsx.help += "\n\n" + DATA_LAYOUT.format(columns="sentence1, sentence2")


BENCHMARK_LAYOUT = """\b
Local data (--data DIR): one folder per task, each laid out as above (DIR/TASK/{{split}}.{{ext}} or
DIR/TASK/{{split}}.{{lang}}.{{ext}}), with the columns of the task's Hub dataset:
{columns}"""


def _benchmark(name: str, doc: str, columns: str, config: type = BenchmarkConfig):
    def command(**flags) -> None:
        _run(name, config, flags)

    command.__doc__ = inspect.cleandoc(doc)  # a string, not a def: its indentation is not stripped by Python
    command = click_options(config)(command)
    command = eval_group.command(name=name)(command)
    layout = (
        BENCHMARK_LAYOUT
        if config is BenchmarkConfig
        else DATA_LAYOUT.replace("Columns: {columns}, label, language.", "Columns:\n{columns}")
    )
    command.help += "\n\n" + layout.format(columns=columns)
    return command


_benchmark(
    "glue",
    """GLUE dev sets: cola (MCC), sst2, mrpc (accuracy/F1), qqp (accuracy/F1), stsb (Pearson/Spearman),
    mnli (matched/mismatched), qnli, rte; --tasks to pick.

    Settings per task from the DeBERTa repository's experiments/glue scripts (eval/glue.yaml); data from
    nyu-mll/glue. --set sift=true adds SiFT (the DeBERTa paper's adversarial fine-tuning).

    \b
    Examples:
      factory eval glue --model m/ --tasks mnli,stsb --out r/glue
      factory eval glue --model m/ --tasks mnli --set sift=true --runs 3 --out r/mnli-sift
    """,
    "  sentence / sentence1,sentence2 / question1,question2 / premise,hypothesis / question,sentence; label",
)
_benchmark(
    "xtreme",
    """XTREME: fine-tune on English, test every language: pawsx, xnli, panx, udpos, xquad, mlqa,
    tydiqa, bucc, tatoeba; one summary table and chart across tasks and languages.

    Settings and scorers are XTREME's (eval/xtreme.yaml). bucc and tatoeba are retrieval on local parallel files
    (DIR/bucc/<lang>.tsv, en<TAB>translation); the others read google/xtreme, google/xquad, paws-x, xnli
    and rajpurkar/squad (the QA tasks train on SQuAD v1.1, TyDiQA on its own English split).

    \b
    Examples:
      factory eval xtreme --model m/ --tasks pawsx,panx,xquad --out r/xtreme
      factory eval xtreme --model m/ --data local/ --control random --out r/xtreme
    """,
    "  pawsx/xnli: sentence1,sentence2 / premise,hypothesis, label; panx/udpos: tokens, ner_tags / pos_tags\n"
    "  (lists); xquad/mlqa/tydiqa: id, context, question, answers {text: [...], answer_start: [...]}",
)
_benchmark(
    "assin2",
    """ASSIN 2 (Portuguese): sts (regression, Pearson/Spearman) and rte (accuracy/F1).

    Data: nilc-nlp/assin2; references: DeBERTina's card (eval/assin2.yaml).
    """,
    "  premise, hypothesis, relatedness_score (1-5), entailment_judgment (NONE/ENTAILMENT or 0/1)",
)
_benchmark(
    "squad",
    """SQuAD v1.1: fine-tune on train, EM/F1 on the dev set (evaluate-v1.1.py's scoring).""",
    "  id, title, context, question, answers {text: [...], answer_start: [...]}",
    EvalConfig,
)
_benchmark(
    "squad2",
    """SQuAD 2.0: answerable and unanswerable questions; EM/F1 and the threshold search
    (best_f1, best_exact and their no-answer thresholds), as evaluate-v2.0.py.""",
    "  id, title, context, question, answers {text: [], answer_start: []} when unanswerable",
    EvalConfig,
)


@eval_group.command()
@click_options(ClassifyConfig)
def classify(**flags) -> None:
    """Any cross-lingual sentence or pair classification set given as files: train on one language, test on all.

    Each file (.jsonl, .tsv with a header, or .parquet) has the text column(s), `label` and `language`. A label
    is a name (`positive`) or an integer id; without --labels the names come from a parquet file's `ClassLabel`
    (as `datasets` writes it), else the distinct names sorted, else ids 0..max. Settings are XNLI's
    (eval/xnli.yaml); change them with --set.

    \b
    Examples:
      factory eval classify --model m/ --train tr.jsonl --test te.jsonl --out r/
      factory eval classify --model m/ --train tr.jsonl --test te.jsonl --labels neg,pos --out r/
    """
    _run("classify", ClassifyConfig, flags)


@eval_group.command()
@click_options(RetrievalConfig)
def retrieval(**flags) -> None:
    """Parallel-sentence retrieval (XTREME's Tatoeba/BUCC protocol): no fine-tuning, seconds on CPU.

    Each text is encoded once; its hidden states at one layer (a fraction of the depth, 0 = embeddings) are
    mean-pooled into a vector, each language's vectors are centred, and every item must find its
    translation among all the pivot's items by cosine similarity: accuracy@1 in both directions (x -> pivot,
    pivot -> x) per language. The protocol is written into results.json.

    \b
    --data layouts:
      DIR/<lang>.txt        one item per line, line i of every file the same item
      DIR/<lang>.tsv        pivot<TAB>translation per line (optional header: en<TAB>de)
      FILE.jsonl|.parquet   one row per item, one column per language
      hf:NAME[:CONFIG][@SPLIT]   the same through `datasets`

    \b
    Examples:
      factory eval retrieval --model m/ --data aligned/ --out r/
      factory eval retrieval --model m/ --data pairs.parquet --pivot en --layer 1 --control random --out r/
    """
    from factory.evaluate.retrieval import run

    config = resolve(RetrievalConfig, [from_flags(flags)])
    report = run(config)
    pivot = report["pivot"]
    heads = [f"x->{pivot}", f"{pivot}->x"]
    click.echo(f"{'lang':<6}{'n':>7}" + "".join(f"{h:>12}" for h in heads))
    for lang in [*report["languages"], "avg"]:
        entry = report["average"] if lang == "avg" else report["results"][lang]
        n = "" if lang == "avg" else entry["to_pivot"]["n"]
        click.echo(f"{lang:<6}{n:>7}" + "".join(f"{entry[d]['accuracy']:>12.1f}" for d in ("to_pivot", "from_pivot")))
    _echo_control(report, ["to_pivot", "from_pivot"], heads)
    click.echo(f"wrote {config.out}: results.json, results.md, retrieval_accuracy.png, factory.json")
