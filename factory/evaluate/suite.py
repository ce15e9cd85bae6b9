"""An evaluation suite: what is evaluated (task type, dataset, columns, languages, splits, metrics), how
(fine-tuning settings) and against what (reference numbers), read from `eval/*.yaml`.

The YAML files are the single place where the published recipe (and where each number comes from) is kept;
commands only override a setting on purpose (`--set epochs=3`). A benchmark of several tasks (glue, xtreme,
assin2) is one file with a `tasks:` table: each entry has the keys of a one-task suite, and the file's own
`settings` are the defaults under every task's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.options import Layer, load_yaml, resolve
from factory.core.resources import find
from factory.evaluate.config import FinetuneSettings

DEFAULT_COLUMNS = {
    "classification": {"text_a": "premise", "text_b": "hypothesis", "label": "label"},
    "regression": {"text_a": "sentence1", "text_b": "sentence2", "label": "label"},
    "tokens": {"words": "tokens", "tags": "tags"},
    "qa": {"question": "question", "context": "context", "answers": "answers"},
    "retrieval": {},
}


@dataclasses.dataclass(frozen=True)
class Suite:
    """What is evaluated and how: read from eval/<name>.yaml (one task; a benchmark's tasks are Suites too)."""

    name: str
    dataset: str | None  # default --data, e.g. hf:facebook/xnli
    languages: tuple[str, ...]  # the suite's languages; empty: whatever the data holds (classify)
    train_language: str
    labels: tuple[str, ...]
    text_a: str
    text_b: str | None  # None: single-sentence classification
    settings: FinetuneSettings  # declared in the step configs
    references: dict[str, dict[str, float]]
    task: str = "classification"  # the task type (factory.evaluate.tasks)
    metrics: tuple[str, ...] = ()  # empty: the task type's; the first is averaged and charted
    columns: dict[str, str | None] = dataclasses.field(default_factory=dict)  # role -> the dataset's column
    config: str | dict[str, str] | None = "{lang}"  # the Hub config per language: template, table or one name
    splits: tuple[str, ...] = ("validation", "test")  # the splits evaluated
    hub_splits: dict[str, str] = dataclasses.field(default_factory=dict)  # our split -> the dataset's
    train: dict[str, Any] | None = None  # another dataset to train on: {dataset, config, split}
    drop_labels: tuple = ()  # rows with these labels are left out (PAWS-X's -1)
    id_languages: dict[str, str] | None = None  # one config for all languages: id prefix -> language (TyDiQA)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # task-type options (qa_metric, ...)
    tasks: dict[str, Suite] = dataclasses.field(default_factory=dict)  # a benchmark's tasks, in order

    @property
    def is_benchmark(self) -> bool:
        return bool(self.tasks)


SUITE_KEYS = {"suite", "dataset", "languages", "train_language", "labels", "columns", "settings", "references",
              "task", "metrics", "config", "splits", "hub_splits", "train", "drop_labels", "id_languages", "options",
              "tasks", "source"}  # fmt: skip
LABELLED = ("classification", "tokens")


def load_suite(name_or_path: str | Path) -> Suite:
    """`xnli` -> the bundled eval/xnli.yaml, or a path to a YAML file of the same shape."""
    import yaml

    path = find("suite", name_or_path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise FactoryError(f"suite file {path} is not readable YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raw = {"(not a mapping)": raw}
    name = raw.get("suite", path.stem)
    if not raw.get("tasks"):
        return _task(raw, name, path, {})
    if not isinstance(raw["tasks"], dict):
        raise FactoryError(f"suite file {path}: `tasks` must map a task name to its keys (see eval/glue.yaml)")
    _check_keys(raw, path, name)
    shared = raw.get("settings") or {}
    tasks = {str(t): _task(spec or {}, str(t), path, shared) for t, spec in raw["tasks"].items()}
    first = next(iter(tasks.values()))
    return dataclasses.replace(first, name=name, tasks=tasks, references=raw.get("references") or {})


def _check_keys(raw: dict, path: Path, name: str) -> None:
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown:
        raise FactoryError(
            f"suite file {path} ({name}): unknown keys {', '.join(map(str, unknown))}; a suite has "
            f"{', '.join(sorted(SUITE_KEYS))} (see eval/xnli.yaml)"
        )


def _task(raw: dict, name: str, path: Path, shared: dict) -> Suite:
    _check_keys(raw, path, name)
    task = raw.get("task", "classification")
    if task not in DEFAULT_COLUMNS:
        raise FactoryError(f"suite file {path} ({name}): task {task!r} unknown; use {', '.join(DEFAULT_COLUMNS)}")
    labels = raw.get("labels")
    if task in LABELLED and (not isinstance(labels, list) or len(labels) < 2):
        raise FactoryError(
            f"suite file {path} ({name}): needs `labels` (two or more names in id order) for a {task} task; a suite "
            f"has {', '.join(sorted(SUITE_KEYS))} (see eval/xnli.yaml)"
        )
    settings = resolve(FinetuneSettings, [Layer(shared, f"{path}: settings."),
                                          Layer(raw.get("settings") or {}, f"{path}: {name}.settings.")])  # fmt: skip
    columns = {**DEFAULT_COLUMNS[task], **(raw.get("columns") or {})}
    return Suite(
        name=raw.get("suite", name),
        dataset=raw.get("dataset"),
        languages=tuple(raw.get("languages") or ()),
        train_language=raw.get("train_language", "en"),
        labels=tuple(str(x) for x in labels or ()),
        text_a=columns.get("text_a") or "premise",
        text_b=columns.get("text_b"),
        settings=settings,
        references={n: {k: float(v) for k, v in table.items()} for n, table in (raw.get("references") or {}).items()},
        task=task,
        metrics=tuple(raw.get("metrics") or ()),
        columns=columns,
        config=raw.get("config", "{lang}"),
        splits=tuple(raw.get("splits") or ("validation", "test")),
        hub_splits=dict(raw.get("hub_splits") or {}),
        train=raw.get("train"),
        drop_labels=tuple(raw.get("drop_labels") or ()),
        id_languages=raw.get("id_languages"),
        options=dict(raw.get("options") or {}),
    )


def setting_layer(pairs: list[str]) -> Layer:
    """`--set key=value` strings as a layer over the suite file's fine-tuning settings."""
    values = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FactoryError(f"--set {item!r} is not KEY=VALUE (e.g. --set epochs=3)")
        values[key.strip()] = value.strip()
    return Layer(values, "--set ")


def select_tasks(suite: Suite, spec: str) -> list[str]:
    """`--tasks all` or `cola,stsb`: checked against the benchmark's tasks."""
    if spec.strip() == "all":
        return list(suite.tasks)
    wanted = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in suite.tasks]
    if unknown or not wanted:
        raise FactoryError(f"unknown task {', '.join(unknown) or '(none)'} in --tasks; {suite.name} has "
                           f"{', '.join(suite.tasks)}")  # fmt: skip
    return wanted
