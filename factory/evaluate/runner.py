"""One evaluation command end to end: check inputs, fine-tune N seeds, predict every language, write the folder."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from factory.configs import FinetuneSettings
from factory.errors import FactoryError
from factory.evaluate.control import CONTROL, PRETRAINED, Arm, arms, with_control
from factory.evaluate.data import Data, check_data, load_files, load_folder, load_hub
from factory.evaluate.suite import Suite
from factory.manifest import ModelSource

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
    source: ModelSource | None = None  # where `model` came from (a Hub id and its commit), for the manifest

    @property
    def model_name(self) -> str:
        """The model as the user named it (a folder, or a Hub id rather than the cache's snapshot path)."""
        return self.source.given if self.source else str(self.model)


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


def load_data(request: Request, languages: list[str] | None) -> Data:
    s = request.suite
    if request.files is not None:
        return load_files(request.files, s.text_a, s.text_b, s.labels)
    if request.data.startswith("hf:"):
        assert languages is not None
        langs = sorted(set(languages) | {request.train_language})
        return load_hub(request.data[3:], langs, request.train_language, s.text_a, s.text_b, s.labels)
    return load_folder(Path(request.data), s.text_a, s.text_b, s.labels)


def check_model(folder: Path) -> None:
    """A deberta-v2 folder with spm.model: checked before any data is read."""
    import factory.model  # noqa: F401  (before factory.export: importing that one first is circular)
    from factory.export import read_config
    from factory.tokenizer import SPM_FILE, Tokenizer

    config = read_config(folder)  # ModelFolderError for a missing folder, no config.json, or another model type
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


def run(request: Request) -> dict[str, Any]:
    """Check everything, then fine-tune and evaluate `request.runs` seeds; returns the results.json dict."""
    from factory.evaluate.report import summarise
    from factory.outputs import check_output

    suite, settings = request.suite, request.settings
    check_model(request.model)
    check_output(request.out, request.force)
    # the language list is checked before a download; a local folder also tells which languages it has
    hub = request.data.startswith("hf:")
    languages = resolve_languages(suite, request.languages, request.train_language, None) if hub else None
    data = load_data(request, languages)
    if not hub:
        present = set(data.get("validation", {})) | set(data.get("test", {})) | set(data.get("train", {}))
        languages = resolve_languages(suite, request.languages, request.train_language, present)
    assert languages is not None
    check_data(data, request.train_language, languages, request.data, request.splits)
    accelerator = make_accelerator(settings.precision)
    counts = {lang: {split: len(data[split][lang]) for split in request.splits} for lang in languages}
    measured = {}
    for arm in arms(request.model, request.control):  # the model first, then its control with the same seeds
        per_run, predictions, losses, schedule = _run_seeds(accelerator, request, data, languages, arm)
        measured[arm.name] = (arm, *summarise(per_run, counts, request.splits), predictions, losses)
    _, results, average, predictions, losses = measured[PRETRAINED]
    report = _report(request, data, languages, results, average, schedule, accelerator, losses)
    folders = {"predictions": predictions}
    if CONTROL in measured:
        arm, control, control_average, folders["predictions/control"], control_losses = measured[CONTROL]
        control_average = {
            split: {k: v for k, v in control_average[split].items() if k != "per_run"} for split in request.splits
        }  # fmt: skip  (as `average`)
        report = with_control(report, arm, control, control_average, request.splits)
        report["control_model"]["final_train_loss"] = control_losses
    if accelerator.is_main_process:
        _write(request, report, data, folders, languages)
    accelerator.wait_for_everyone()
    return report


def _run_seeds(accelerator, request: Request, data: Data, languages: list[str], arm: Arm):
    """Fine-tune and predict every seed for one arm (the model, or its control: same seeds, same settings)."""
    import torch

    from factory.evaluate.finetune import encode, plan, predict, train

    settings = request.settings
    tokenizer = arm.tokenizer()
    train_examples = data["train"][request.train_language]
    train_ids = encode(tokenizer, train_examples, settings.max_length)
    eval_ids = {
        (lang, s): encode(tokenizer, data[s][lang], settings.max_length) for lang in languages for s in request.splits
    }
    per_run = {lang: {s: [] for s in request.splits} for lang in languages}
    predictions: dict[tuple[str, str], list[list[int]]] = {key: [] for key in eval_ids}
    losses = []
    for k in range(request.runs):
        seed = settings.seed + k
        torch.manual_seed(seed)  # the fresh classification head depends on the seed (the same head for both arms)
        model = arm.model(head="cls", labels=request.suite.labels)
        _set_dropout(model, settings.dropout)
        model, loss = train(accelerator, model, train_ids, [e.label for e in train_examples], settings, seed)
        losses.append(round(loss, 4))
        for (lang, split), ids in eval_ids.items():
            preds = predict(accelerator, model, ids, settings.eval_batch_size, desc=f"{lang} {split}")
            predictions[(lang, split)].append(preds)
            gold = [e.label for e in data[split][lang]]
            per_run[lang][split].append(100.0 * sum(p == g for p, g in zip(preds, gold, strict=True)) / len(gold))
        accelerator.free_memory()
        first = {lang: per_run[lang][request.splits[0]][-1] for lang in languages}
        log.info("%s run %d (seed %d): %s", arm.name, k, seed, first)
    return per_run, predictions, losses, plan(len(train_ids), settings)


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


def _report(request, data, languages, results, average, schedule, accelerator, losses) -> dict[str, Any]:
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
    suite_langs = set(request.suite.languages) | {"avg"}
    return {
        "schema": "factory.eval/v1",
        "suite": request.suite.name,
        "model": request.model_name,
        **({"revision": request.source.revision} if request.source and request.source.revision else {}),
        "train_language": request.train_language,
        "languages": languages,
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


def _write(request: Request, report: dict[str, Any], data: Data, folders, languages: list[str]) -> None:
    """The output folder; `folders`: predictions/ (the model's) and predictions/control/ -> {(lang, split): runs}."""
    import json

    from factory.evaluate.report import chart, markdown, write_predictions
    from factory.manifest import EvalFigures, EvalInputs, EvalManifest, write_manifest
    from factory.outputs import fingerprint_file, staged_output

    with staged_output(request.out, request.force) as tmp:
        for folder, predictions in folders.items():
            (tmp / folder).mkdir(parents=True, exist_ok=True)
            for (lang, split), runs in predictions.items():
                write_predictions(tmp / folder, lang, split, data[split][lang], runs, request.suite.labels)
        (tmp / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        (tmp / "results.md").write_text(markdown(report))
        chart(report, tmp / f"{request.suite.name}_accuracy.png", len(request.suite.labels))
        weights = request.model / "model.safetensors"
        fingerprint = fingerprint_file(weights) if weights.is_file() else None
        manifest = EvalManifest(
            step=f"eval {request.suite.name}",
            arguments=request.arguments,
            inputs=EvalInputs(model=request.model_name, model_fingerprint=fingerprint, source=request.source),
            figures=EvalFigures(average=report["average"], languages=languages, splits=list(request.splits)),
        )
        write_manifest(tmp, manifest)
