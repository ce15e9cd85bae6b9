"""The model card's results: the files `factory eval` wrote, as model-index entries and tables.

Every evaluation suite goes into the model-index (`model_index`): one entry per task, language, split and
metric, with the Hub dataset id, its config and split name as the dataset has them (xquad's test is the Hub's
`validation`), the Hub's task type (text-classification, token-classification, question-answering) and metric
ids (accuracy, f1, matthews_correlation, pearsonr, spearmanr, exact_match). The splits are the dev splits when
the task has them (MNLI's matched and mismatched both), as the published references are; a task scored on test
only gives its test. SQuAD 2.0's threshold-searched best_f1/best_exact are left out of the index (the threshold
is tuned on the very split scored) but shown in the table. Data from local files is named `local:<folder>` (its
config: the language), never as the benchmark's dataset.

In the body, XNLI keeps its table beside the published references (dev-set accuracies per language); every
other suite gets one table (one row per task: the main metric per language and averaged, the references);
parallel retrieval gets a table of its own (no model-index entry: the Hub has no task for it). When an
evaluation ran with `--control random`, the tables show the random-init control and the gain beside the model,
so a reader sees what pre-training bought.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.markdown import markdown_table
from factory.core.sources import ResolvedModel

logger = logging.getLogger(__name__)

RESULTS_SCHEMA = "factory.eval/v1"


def find_results(model_dir: Path, given: list[Path]) -> list[Path]:
    """--results files first, then DIR/results.json and DIR/eval/*/results.json."""
    found = list(given)
    for path in [model_dir / "results.json", *sorted(model_dir.glob("eval/*/results.json"))]:
        if path.is_file() and path not in found:
            found.append(path)
    return found


def read_results(paths: list[Path], model: ResolvedModel | None = None) -> dict[str, dict[str, Any]]:
    """{suite: the first results file (schema factory.eval/v1) of it}, each file read once; every file given must
    be a results file, and with `model` (the model a card is for) a file of that model (`check_evaluated`); a
    second file of the same suite is skipped with a log line."""
    from factory.model.folder import weights_fingerprint

    weights = weights_fingerprint(model.path) if model is not None else None
    found: dict[str, dict[str, Any]] = {}
    for path in paths:
        data = _read_one(path)
        if model is not None:
            check_evaluated(path, data, model, weights)
        suite = str(data.get("suite"))
        if suite in found:
            logger.info("skipping %s: the card already shows a %s results file", path, suite)
        found.setdefault(suite, data)
    return found


def _read_one(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FactoryError(f"--results {path} does not exist; give the results.json that `factory eval` wrote")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FactoryError(f"{path} is not valid JSON ({e}); run `factory eval` again") from None
    if (not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA
            or not isinstance(data.get("tasks" if data.get("benchmark") else "results"), dict)):  # fmt: skip
        raise FactoryError(f"{path} is not a {RESULTS_SCHEMA} results file; give the results.json `factory eval` wrote")
    return data


def check_evaluated(path: Path, data: dict[str, Any], model: ResolvedModel, weights: str | None) -> None:
    """Refuse the results of another model, so that no card shows another model's scores as its own.

    results.json records the fingerprint of the weights evaluated (`model_fingerprint`, factory.model.folder's
    `weights_fingerprint`): it must be `weights`, the published model's, so the same folder, a copy of it and a
    Hub id's snapshot all pass, and so does no other model, whatever it is called. A file written before eval
    recorded it must name the model published (the same text, or a path to the same folder)."""
    evaluated, recorded = str(data.get("model")), data.get("model_fingerprint")
    if recorded is not None and recorded == weights:
        return
    if recorded is None and (evaluated == model.given or Path(evaluated).resolve() == model.path.resolve()):
        return
    fix = f"give the results.json of an evaluation of {model.given} (`factory eval SUITE --model {model.given}`)"
    if recorded is None:
        raise FactoryError(
            f"{path} names the model {evaluated}, not {model.given}, the model being published, and records no "
            f"fingerprint of the weights it evaluated; {fix}"
        )
    raise FactoryError(
        f"{path} holds the results of {evaluated} (weights {recorded}), not of {model.given} (weights {weights}), "
        f"the model being published; {fix}"
    )


def results_split(results: dict[str, Any]) -> str:
    """Validation (dev) when every language has it, as the published references are dev accuracy; else test."""
    per_lang = results["results"].values()
    return "validation" if all("validation" in r for r in per_lang) else "test"


# ---- the model-index ------------------------------------------------------------------------------------------
HUB_TASKS = {"classification": "text-classification", "regression": "text-classification",
             "tokens": "token-classification", "qa": "question-answering"}  # fmt: skip
TASK_NAMES = {  # the Hub's task_name per task of the bundled suites; others fall back on the task type's
    "xnli": "Natural Language Inference", "mnli": "Natural Language Inference", "qnli": "Natural Language Inference",
    "rte": "Natural Language Inference", "pawsx": "Paraphrase Identification", "mrpc": "Paraphrase Identification",
    "qqp": "Paraphrase Identification", "cola": "Linguistic Acceptability", "sst2": "Sentiment Analysis",
    "stsb": "Semantic Textual Similarity", "sts": "Semantic Textual Similarity", "panx": "Named Entity Recognition",
    "udpos": "Part-of-Speech Tagging",
}  # fmt: skip
TYPE_NAMES = {"classification": "Text Classification", "regression": "Semantic Textual Similarity",
              "tokens": "Token Classification", "qa": "Extractive Question Answering"}  # fmt: skip
TITLES = {"xnli": "XNLI", "pawsx": "PAWS-X", "panx": "PAN-X", "udpos": "UD-POS", "xquad": "XQuAD", "mlqa": "MLQA",
          "tydiqa": "TyDiQA-GoldP", "squad": "SQuAD v1.1", "squad2": "SQuAD 2.0", "cola": "CoLA", "sst2": "SST-2",
          "mrpc": "MRPC", "qqp": "QQP", "stsb": "STS-B", "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE"}  # fmt: skip
SUITE_TITLES = {"glue": "GLUE", "xtreme": "XTREME", "assin2": "ASSIN 2"}
HUB_METRICS = {  # ours -> (the Hub's metric id, the name shown); values are in % (correlations x 100)
    "accuracy": ("accuracy", "accuracy"),
    "f1": ("f1", "F1"),
    "mcc": ("matthews_correlation", "Matthews correlation x 100"),
    "pearson": ("pearsonr", "Pearson correlation x 100"),
    "spearman": ("spearmanr", "Spearman correlation x 100"),
    "exact_match": ("exact_match", "exact match"),
    "exact": ("exact_match", "exact match"),
}


def as_tasks(suite: str, results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{task: its results}: a benchmark summary's tasks, or a one-task suite's file as its only task."""
    return dict(results["tasks"]) if results.get("benchmark") else {suite: results}


def index_splits(task: dict[str, Any]) -> list[str]:
    """The splits a task puts in the model-index: its dev splits (validation, validation_matched, ...) if any."""
    splits = list(task.get("average") or {})
    dev = [s for s in splits if s.startswith("validation")]
    return dev or splits


def _dataset(task: dict[str, Any], suite: str) -> tuple[str, Any, dict[str, str], bool]:
    """(dataset type, config, our split -> the dataset's, from the Hub?) of a task's results; local data is named
    `local:<folder>` with the language as its config."""
    described = task.get("dataset")
    if isinstance(described, dict) and "id" in described:
        return described["id"], described.get("config"), described.get("splits") or {}, True
    data = str((described or {}).get("local") or (task.get("settings") or {}).get("data")
               or ("hf:facebook/xnli" if suite == "xnli" else ""))  # fmt: skip
    if data.startswith("hf:"):
        return data[3:].split(":")[0], "{lang}", {}, True  # the one-task classification suites: a config per language
    return f"local:{Path(data).name}", "{lang}", {}, False  # local rows are told apart by their language


def _config(config: Any, lang: str) -> str | None:
    if isinstance(config, dict):
        return config.get(lang)
    return config.replace("{lang}", lang) if isinstance(config, str) else None


def task_index(suite: str, name: str, task: dict[str, Any]) -> list:
    """The EvalResults of one task (module docstring); none for retrieval."""
    from huggingface_hub import EvalResult

    kind = task.get("task", "classification")
    if kind not in HUB_TASKS:
        return []
    dataset_type, config, hub_splits, hub = _dataset(task, suite)
    train = task.get("train_language", "en")
    title = TITLES.get(name, name)
    metrics = [m for m in task.get("metrics") or [task.get("main_metric", "accuracy")] if m in HUB_METRICS]
    out = []
    for split in index_splits(task):
        for lang, splits in task["results"].items():
            scores = splits.get(split) or {}
            for metric in metrics:
                if not isinstance(scores.get(metric), (int, float)):
                    continue
                metric_type, shown = HUB_METRICS[metric]
                out.append(EvalResult(
                    task_type=HUB_TASKS[kind],
                    task_name=TASK_NAMES.get(name, TYPE_NAMES[kind]),
                    dataset_type=dataset_type,
                    dataset_name=f"{title} ({lang})" if hub else f"{name}-format {dataset_type[6:]} ({lang})",
                    dataset_config=_config(config, lang),
                    dataset_split=hub_splits.get(split, split),
                    metric_type=metric_type,
                    metric_value=round(float(scores[metric]), 2),
                    metric_name=f"{shown} (zero-shot, fine-tuned on {train})" if lang != train else shown,
                ))  # fmt: skip
    return out


def model_index(suites: dict[str, dict[str, Any]]) -> list:
    """Every suite's results as the card's model-index entries, suite by suite, task by task."""
    return [
        entry
        for suite, results in suites.items()
        for name, task in as_tasks(suite, results).items()
        for entry in task_index(suite, name, task)
    ]


def results_section(res: dict[str, Any] | None, name: str) -> str:
    """ "## Results: XNLI": ours beside the published references, on the split of the model-index."""
    if not res:
        return ""
    split = results_split(res)
    langs = list(res["results"])
    header = ["Model", "avg", *langs]

    ours = [(res["results"][lang].get(split) or {}) for lang in langs]
    avg = (res.get("average") or {}).get(split) or {}
    runs = res.get("runs")
    several = isinstance(runs, int) and runs > 1  # a standard deviation over one run says nothing
    std = avg.get("std")
    avg_text = _pct(avg.get("accuracy")) + (f" ± {std:.1f}" if several and isinstance(std, (int, float)) else "")
    rows = [[f"**{name}**", avg_text, *(_pct(r.get("accuracy")) for r in ours)]]
    for model, ref in (res.get("references") or {}).items():
        rows.append([f"{model} (published)", _pct(ref.get("avg")), *(_pct(ref.get(x)) for x in langs)])
    if "control" in res:  # --control random: the same network untrained, then what pre-training added
        control = [((res["control"].get(lang) or {}).get(split) or {}) for lang in langs]
        control_avg = ((res.get("control_average") or {}).get(split) or {}).get("accuracy")
        rows.append(["random-init control", _pct(control_avg), *(_pct(c.get("accuracy")) for c in control)])
        gain = res.get("gain") or {}
        rows.append(["gain over the control (points)", signed((gain.get("avg") or {}).get(split)),
                     *(signed((gain.get(lang) or {}).get(split)) for lang in langs)])  # fmt: skip
    seeds = res.get("seeds") or []
    how = (
        f"Zero-shot cross-lingual transfer: fine-tuned on {res.get('train_language', 'en')} only and evaluated on the "
        f"{'validation (dev)' if split == 'validation' else split} set of each language; accuracy in %"
        + (f", mean ± std over {runs} runs (seeds {', '.join(map(str, seeds))})" if several else "")
        + (f", one run (seed {seeds[0]})" if not several and len(seeds) == 1 else "")
        + ". Published rows are the numbers reported by their authors (the avg column is theirs, over all 15 "
        "languages)." + (control_note(fine_tuned=True) if "control" in res else "")
    )
    return "## Results: XNLI\n\n" + how + "\n\n" + "\n".join(markdown_table(header, rows))


def suite_section(suite: str, results: dict[str, Any]) -> str:
    """ "## Results: GLUE": one row per task (the summary's table), for every suite but XNLI and retrieval."""
    from factory.evaluate.report import benchmark_table

    tasks = {name: {"main_metric": "accuracy", **t} for name, t in as_tasks(suite, results).items()}
    control = any("control" in t for t in tasks.values())
    how = (
        "Each task's main metric in % (mean over runs; correlations x 100), per language and averaged over the "
        "languages evaluated, on the split shown (dev where the task has one); multilingual tasks are fine-tuned "
        "on one language and evaluated zero-shot on the others. Published rows are their authors' numbers (their "
        "average covers all of their languages)." + (control_note(fine_tuned=True) if control else "")
    )
    return f"## Results: {SUITE_TITLES.get(suite, TITLES.get(suite, suite))}\n\n{how}\n\n" + "\n".join(
        benchmark_table(tasks))  # fmt: skip


def control_note(fine_tuned: bool) -> str:
    """What the control rows are, for the sentence under a table."""
    how = "fine-tuned and evaluated" if fine_tuned else "evaluated"
    return (" The random-init control is the same network and tokenizer with freshly initialised weights (a fixed "
            f"control seed), {how} exactly as the model: the gain is what pre-training bought.")  # fmt: skip


def signed(value: Any) -> str:
    return f"{value:+.1f}" if isinstance(value, (int, float)) else "-"


def retrieval_section(res: dict[str, Any] | None) -> str:
    """ "## Results: parallel retrieval": accuracy@1 per language and direction, with the control when measured."""
    if not res:
        return ""
    pivot, langs = res.get("pivot", "en"), list(res["results"])
    has_control = "control" in res
    header = ["Language", f"x → {pivot}", f"{pivot} → x", *(["control → / ←", "gain → / ←"] if has_control else [])]

    def acc(block: dict[str, Any] | None, direction: str) -> Any:
        return ((block or {}).get(direction) or {}).get("accuracy")

    def row(label: str, ours: dict | None, control: dict | None, gain: dict | None) -> list[str]:
        cells = [label, _pct(acc(ours, "to_pivot")), _pct(acc(ours, "from_pivot"))]
        if has_control:
            cells.append(f"{_pct(acc(control, 'to_pivot'))} / {_pct(acc(control, 'from_pivot'))}")
            cells.append(f"{signed((gain or {}).get('to_pivot'))} / {signed((gain or {}).get('from_pivot'))}")
        return cells

    control, gain = res.get("control") or {}, res.get("gain") or {}
    rows = [row(lang, res["results"][lang], control.get(lang), gain.get(lang)) for lang in langs]
    rows.append(row("**avg**", res.get("average"), res.get("control_average"), gain.get("avg")))
    protocol = res.get("protocol") or {}
    pool = next((b.get("n") for b in (res["results"][langs[0]] or {}).values() if isinstance(b, dict)), None)
    how = (
        f"Parallel-sentence retrieval without fine-tuning: each text is encoded, {protocol.get('pooling', 'mean')}-"
        f"pooled at layer {protocol.get('layer_index', '?')} of {protocol.get('depth', '?')}"
        + (", each language's vectors centred" if protocol.get("centre") else "")
        + "; accuracy@1 (%) of finding the translation by cosine similarity"
        + (f" among {pool:,} candidates" if isinstance(pool, int) else "")
        + f", in both directions against {pivot}."
        + (control_note(fine_tuned=False) if has_control else "")
    )
    return "## Results: parallel retrieval\n\n" + how + "\n\n" + "\n".join(markdown_table(header, rows))


def _pct(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"
