"""One evaluation end to end: check inputs, fine-tune N seeds, predict every language, write the folder.

Every task type (factory/evaluate/tasks.py) goes through the same two phases: `prepare` checks the model, the
output folder and every row of the data (a mistake is one line before any compute), `execute` fine-tunes and
scores. A benchmark (glue, xtreme, assin2) prepares all its tasks first, then executes them one by one into
OUT/<task>/, and writes the summary across tasks and languages into OUT (factory/evaluate/benchmark.py: OUT is
staged whole, and a rerun keeps the tasks a stopped run finished).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.launch import check_launch
from factory.core.manifest import ModelSource
from factory.evaluate.config import FinetuneSettings
from factory.evaluate.control import CONTROL, PRETRAINED, Arm, arms, with_control
from factory.evaluate.data import Data, check_data, examples_of, folder_rows, hub_rows, load_files
from factory.evaluate.qa import QuestionAnswering
from factory.evaluate.suite import Suite
from factory.evaluate.tasks import Classification, Regression, TaskType, Tokens

log = logging.getLogger(__name__)
EVAL_SPLITS = ("validation", "test")


@dataclasses.dataclass(frozen=True)
class Request:
    """What the user asked for, after parsing (the command builds it; `run` validates it)."""

    suite: Suite
    model: Path
    data: str  # "hf:NAME" or a folder
    train_language: str
    languages: str  # "all" or "en,fr,..."
    runs: int
    settings: FinetuneSettings
    out: Path
    force: bool = False
    arguments: dict[str, Any] = dataclasses.field(default_factory=dict)  # for factory.json
    files: dict[str, Path] | None = None  # classify: split -> file, instead of `data`
    splits: tuple[str, ...] = EVAL_SPLITS  # the splits evaluated
    control: str | None = None  # "random": also the random-init control (factory.evaluate.control)
    tasks: str = "all"  # a benchmark's tasks to run
    source: ModelSource | None = None  # where `model` came from (a Hub id and its commit), for the manifest

    @property
    def model_name(self) -> str:
        """The model as the user named it (a folder, or a Hub id rather than the cache's snapshot path)."""
        return self.source.given if self.source else str(self.model)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A checked request: its task type, every example, the languages evaluated."""

    request: Request
    task: TaskType
    data: Data
    languages: list[str]


def resolve_languages(suite: Suite, spec: str, train_language: str, data_languages: set[str] | None) -> list[str]:
    """`all` -> the suite's languages (those the data has, for a local folder); a list is checked against the suite."""
    known = list(suite.languages) or sorted(data_languages or ())
    if train_language not in known and suite.languages:
        raise FactoryError(f"unknown --train-lang {train_language!r}; {suite.name} has {', '.join(known)}")
    if spec == "all":
        return [lang for lang in known if data_languages is None or lang in data_languages]
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [lang for lang in wanted if lang not in known]
    if unknown:
        raise FactoryError(f"unknown language {', '.join(unknown)} in --langs; {suite.name} has {', '.join(known)}")
    return wanted


TASK_TYPES: dict[str, type[TaskType]] = {t.name: t for t in (Classification, Regression, Tokens, QuestionAnswering)}


def task_type(name: str, labels=(), metric_names=(), **options: Any) -> TaskType:
    """The task type a suite's `task:` names (retrieval is not one: it fine-tunes nothing, benchmark.py)."""
    if name not in TASK_TYPES:
        raise FactoryError(f"unknown task type {name!r}; use one of {', '.join(TASK_TYPES)}")
    return TASK_TYPES[name](labels, metric_names, **options)


QA_KNOBS = ("doc_stride", "max_query_length", "n_best", "max_answer_length", "null_score_diff_threshold")


def make_task(suite: Suite, settings: FinetuneSettings) -> TaskType:
    """The suite's task type, with its options and (QA) the post-processing settings."""
    knobs = {k: getattr(settings, k) for k in QA_KNOBS} if suite.task == "qa" else {}
    return task_type(suite.task, suite.labels, suite.metrics, **{**suite.options, **knobs})


def load_data(request: Request, languages: list[str] | None) -> Data:
    """{split: {language: examples}} from --train/--test files, a Hub dataset or a local folder."""
    s = request.suite
    if request.files is not None:
        return load_files(request.files, s.text_a, s.text_b, s.labels)
    if request.data.startswith("hf:"):
        assert languages is not None
        rows = _hub(request, languages)
    else:
        only = request.train_language if len(s.languages) == 1 else None  # GLUE/SQuAD files need no language
        rows = folder_rows(Path(request.data), (*request.splits, "train"), only)
    return {
        split: {lang: examples_of(s.task, r, s.columns, s.labels, s.drop_labels) for lang, r in by_lang.items()}
        for split, by_lang in rows.items()
    }


def _hub(request: Request, languages: list[str]) -> dict:
    """The suite's Hub dataset: train in the train language (from `train:` when another dataset trains), every
    evaluated split in every language."""
    s, name = request.suite, request.data[3:]
    rows = {}
    for split in request.splits:
        rows[split] = hub_rows(name, s.config, s.hub_splits.get(split, split), languages, s.id_languages)
    train = s.train or {"dataset": request.data, "config": s.config, "split": s.hub_splits.get("train", "train")}
    source = str(train["dataset"])[3:] if str(train["dataset"]).startswith("hf:") else str(train["dataset"])
    got = hub_rows(source, train.get("config"), train.get("split", "train"), [request.train_language], s.id_languages)
    rows["train"] = {request.train_language: got.get(request.train_language, [])}
    return rows


def check_model(folder: Path) -> None:
    """A deberta-v2 folder with spm.model: checked before any data is read."""
    import factory.model  # noqa: F401  (before factory.model.folder: importing that one first is circular)
    from factory.model.folder import check_weights, read_config
    from factory.model.tokenizer import SPM_FILE, Tokenizer

    config = read_config(folder)  # ModelFolderError for a missing folder, no config.json, or another model type
    check_weights(folder)  # missing, empty or truncated weights: one line now, not after the data is read
    if not (folder / SPM_FILE).is_file():
        raise FactoryError(f"{folder} has no {SPM_FILE}; copy the vocabulary's spm.model into the model folder")
    Tokenizer.from_folder(folder).check_fits(config, folder)


def make_accelerator(precision: str):
    import torch
    from accelerate import Accelerator

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16:
        raise FactoryError("precision bf16 needs a GPU that supports it; use --set precision=auto")
    # cpu=True without CUDA: Accelerate then treats a torchrun launch (WORLD_SIZE > 1) as multi-CPU (gloo)
    return Accelerator(
        mixed_precision="bf16" if precision == "bf16" or (precision == "auto" and bf16) else "no",
        cpu=not torch.cuda.is_available(),
    )


def prepare(request: Request, check_out: bool = True) -> Prepared:
    """Everything that can be wrong with the input, checked before a model is built (one line, exit 2)."""
    from factory.core.outputs import check_output

    suite = request.suite
    check_model(request.model)
    if check_out:
        check_output(request.out, request.force)
    task = make_task(suite, request.settings)
    # the language list is checked before a download; a local folder also tells which languages it has
    hub = request.data.startswith("hf:")
    languages = resolve_languages(suite, request.languages, request.train_language, None) if hub else None
    data = load_data(request, languages)
    if not hub:
        present = set().union(*(set(by_lang) for by_lang in data.values()))
        languages = resolve_languages(suite, request.languages, request.train_language, present)
    assert languages is not None
    labels = suite.labels if suite.task == "classification" else ()  # main's unseen-label check: classes only
    check_data(data, request.train_language, languages, request.data, request.splits, labels, task.scored_by_id)
    for split in ("train", *request.splits):  # what the task's options ask of its examples (QA v1.1: answers)
        for lang in [request.train_language] if split == "train" else languages:
            task.check_examples(data[split][lang])
    return Prepared(request, task, data, languages)


def run(request: Request) -> dict[str, Any]:
    """Check everything, then fine-tune and evaluate `request.runs` seeds; returns the results.json dict."""
    prepared = prepare(request)
    accelerator = make_accelerator(request.settings.precision)
    check_launch(accelerator.num_processes, "the evaluation")  # processes Accelerate did not join: one line
    return execute(prepared, accelerator)


def execute(prepared: Prepared, accelerator) -> dict[str, Any]:
    """Fine-tune and score every seed for the model (and its control), then write the folder (main process)."""
    from factory.evaluate.report import summarise

    request, data, languages = prepared.request, prepared.data, prepared.languages
    counts = {lang: {split: len(data[split][lang]) for split in request.splits} for lang in languages}
    measured = {}
    for arm in arms(request.model, request.control):  # the model first, then its control with the same seeds
        per_run, predictions, losses, schedule = _run_seeds(accelerator, prepared, arm)
        metric_names = prepared.task.metric_names
        measured[arm.name] = (arm, *summarise(per_run, counts, request.splits, metric_names), predictions, losses)
    _, results, average, predictions, losses = measured[PRETRAINED]
    report = _report(prepared, results, average, schedule, accelerator, losses)
    folders = {"predictions": predictions}
    if CONTROL in measured:
        arm, control, control_average, folders["predictions/control"], control_losses = measured[CONTROL]
        control_average = {
            split: {k: v for k, v in control_average[split].items() if k != "per_run"} for split in request.splits
        }  # fmt: skip  (as `average`)
        report = with_control(report, arm, control, control_average, request.splits, report["main_metric"])
        report["control_model"]["final_train_loss"] = control_losses
    if accelerator.is_main_process:
        _write(prepared, report, folders)
    accelerator.wait_for_everyone()
    return report


def _run_seeds(accelerator, prepared: Prepared, arm: Arm):
    """Fine-tune and predict every seed for one arm (the model, or its control: same seeds, same settings)."""
    import torch

    from factory.evaluate.finetune import plan, predict, train

    request, task, data, languages = prepared.request, prepared.task, prepared.data, prepared.languages
    settings = request.settings
    tokenizer = arm.tokenizer()
    train_features = task.features(tokenizer, data["train"][request.train_language], settings.max_length, True)
    eval_features = {
        (lang, s): task.features(tokenizer, data[s][lang], settings.max_length, False)
        for lang in languages
        for s in request.splits
    }
    per_run = {lang: {s: [] for s in request.splits} for lang in languages}
    predictions: dict[tuple[str, str], list[list[Any]]] = {key: [] for key in eval_features}
    losses = []
    for k in range(request.runs):
        seed = settings.seed + k
        torch.manual_seed(seed)  # the fresh head depends on the seed (the same head for both arms)
        model = arm.model(head=task.head, labels=task.model_labels, problem_type=task.problem_type)
        _set_dropout(model, settings.dropout)
        model, loss = train(accelerator, model, train_features, task, settings, seed)
        losses.append(round(loss, 4))
        for (lang, split), features in eval_features.items():
            outputs = predict(accelerator, model, [f.ids for f in features], settings.eval_batch_size,
                              desc=f"{lang} {split}", output=task.output)  # fmt: skip
            preds = task.predictions(data[split][lang], features, outputs)
            predictions[(lang, split)].append(preds)
            per_run[lang][split].append(task.score(data[split][lang], preds, lang))
        accelerator.free_memory()
        first = {lang: per_run[lang][request.splits[0]][-1] for lang in languages}
        log.info("%s run %d (seed %d): %s", arm.name, k, seed, first)
    return per_run, predictions, losses, plan(len(train_features), settings)


def _set_dropout(model, p: float | None) -> None:
    """Override every active dropout (embeddings, hidden, attention, classifier); pooler's 0 stays 0."""
    if p is None:
        return
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Dropout) and module.p > 0:
            module.p = p
        if getattr(module, "dropout_p", 0) > 0:
            module.dropout_p = p


def _report(prepared: Prepared, results, average, schedule, accelerator, losses) -> dict[str, Any]:
    from factory.model.folder import weights_fingerprint

    request, data, task = prepared.request, prepared.data, prepared.task
    s = request.settings
    settings = {
        **dataclasses.asdict(s),
        "warmup": schedule.warmup_steps,
        "total_steps": schedule.total_steps,
        "steps_per_epoch": schedule.steps_per_epoch,
        "train_examples": len(data["train"][request.train_language]),
        "processes": accelerator.num_processes,
        "mixed_precision": str(accelerator.mixed_precision),
        "final_train_loss": losses,
        "labels": list(request.suite.labels),
        "data": request.data,
    }
    suite_langs = set(request.suite.languages) | {"avg"} | set(task.metric_names)
    report = {
        "schema": "factory.eval/v1",
        "suite": request.suite.name,
        "model": request.model_name,
        "model_fingerprint": weights_fingerprint(request.model),  # the weights evaluated: publish checks them
        **({"revision": request.source.revision} if request.source and request.source.revision else {}),
        "train_language": request.train_language,
        "languages": prepared.languages,
        "runs": request.runs,
        "seeds": [s.seed + k for k in range(request.runs)],
        "settings": settings,
        "results": results,
        "average": {split: {k: v for k, v in average[split].items() if k != "per_run"} for split in request.splits},
        "references": {
            name: {lang: v for lang, v in table.items() if lang in suite_langs or not request.suite.languages}
            for name, table in request.suite.references.items()
        },
    }
    if task.name != "classification" or task.metric_names != ("accuracy",):  # XNLI's results.json stays as it was
        report.update(task=task.name, metrics=list(task.metric_names), dataset=_dataset_id(request))
    report["main_metric"] = task.metric_names[0]
    return report


def _dataset_id(request: Request) -> dict[str, Any]:
    """What the card's model-index names: the Hub dataset and its config per language, or the local folder."""
    s = request.suite
    if not request.data.startswith("hf:"):
        return {"local": str(request.data)}
    config = s.config if isinstance(s.config, (str, dict)) else None
    return {"id": request.data[3:], "config": config, "splits": {x: s.hub_splits.get(x, x) for x in request.splits},
            "train": s.train}  # fmt: skip


def _write(prepared: Prepared, report: dict[str, Any], folders) -> None:
    """The output folder; `folders`: predictions/ (the model's) and predictions/control/ -> {(lang, split): runs}."""
    import json

    from factory.core.manifest import write_manifest
    from factory.core.outputs import fingerprint_file, staged_output
    from factory.evaluate.manifest import EvalFigures, EvalInputs, EvalManifest
    from factory.evaluate.report import chart, markdown, write_task_predictions

    request = prepared.request
    with staged_output(request.out, request.force) as tmp:
        for folder, predictions in folders.items():
            (tmp / folder).mkdir(parents=True, exist_ok=True)
            for (lang, split), runs in predictions.items():
                write_task_predictions(tmp / folder, lang, split, prepared.data[split][lang], runs, prepared.task)
        (tmp / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        (tmp / "results.md").write_text(markdown(report))
        chart(report, tmp / f"{request.suite.name}_{report['main_metric']}.png", len(request.suite.labels))
        weights = request.model / "model.safetensors"
        fingerprint = fingerprint_file(weights) if weights.is_file() else None
        manifest = EvalManifest(
            step=f"eval {request.suite.name}",
            arguments=request.arguments,
            inputs=EvalInputs(model=request.model_name, model_fingerprint=fingerprint, source=request.source),
            figures=EvalFigures(average=report["average"], languages=prepared.languages, splits=list(request.splits)),
        )
        write_manifest(tmp, manifest)
